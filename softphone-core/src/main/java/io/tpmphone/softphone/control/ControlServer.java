package io.tpmphone.softphone.control;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Registration;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.tls.PeerAttestation;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The running softphone's control channel: a Unix-domain socket (mode 0660) over which a user interface — the
 * {@code tpmphone} CLI, the demo, a test — places and ends calls and reads what the user would see. One JSON object
 * per line each way, requests at most 8 KiB; every request gets exactly one reply, {@code {"ok":true,...}} or
 * {@code {"ok":false,"error":"..."}}:
 * <ul>
 *   <li>{@code {"op":"status"}} → {@code {"uri","tlsPort"}};</li>
 *   <li>{@code {"op":"register","aor":"sip:alice@example.test","registrar":"127.0.0.1:5061","user":"alice",
 *       "password":"…","expiresSeconds":300}} → {@code {"state","reason","digestAlgorithm"}} once the registrar
 *       answered (over TLS; the password is kept for refreshes, never logged or echoed);
 *       {@code {"op":"unregister","aor":AOR}} removes it;</li>
 *   <li>{@code {"op":"call","target":"sips:bob@bob","next":"127.0.0.1:5061"}} → {@code {"callId"}}: returns at once;
 *       or {@code "via":AOR} instead of {@code "next"}: through the registrar of that registration;</li>
 *   <li>{@code {"op":"await","callId":ID,"timeoutMs":N}} → {@code {"call":{...}}} once the call is established,
 *       refused or ended (or N ms passed: the call as it is);</li>
 *   <li>{@code {"op":"calls"}} → {@code {"calls":[{...}]}};</li>
 *   <li>{@code {"op":"audio","callId":ID}} → RTP/RTCP statistics and the dominant frequency of the last second
 *       received;</li>
 *   <li>{@code {"op":"hangup","callId":ID}};</li>
 *   <li>{@code {"op":"answer","callId":ID}} / {@code {"op":"decline","callId":ID}}: a ringing call waiting for the
 *       person ({@link RingScreen});</li>
 *   <li>{@code {"op":"screen","width":W,"height":H,"ansi":true}} → {@code {"ok":true}}, then the connection carries
 *       the ring screen: the softphone writes whole frames (with {@code ansi}, each starts by clearing the terminal;
 *       without, frames are plain text separated by a blank line) whenever it changes and every second, and reads the
 *       person's keys as raw bytes ({@code ESC [ 8 ; ROWS ; COLS t} tells a new window size). {@code q} ends it.</li>
 * </ul>
 * A call is {@code {"callId","direction","peerUri","state","reason","level","peerHost","display","action",
 * "requiredLevel","held","endToEnd"}}, and for a DTLS-SRTP call once known {@code "farEndLevel","farEndHost",
 * "farEndAction","farEndRequiredLevel"} (the far end's level end to end; {@code "level"} is the first hop's). Malformed requests get an error reply and the connection stays usable.
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ControlServer.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_LINE = 8192;
    private static final int MAX_CONNECTIONS = 16;
    private static final long MAX_AWAIT_MS = 120_000;
    /** Frames per thread of the stacks the health op returns when asked. */
    private static final int STACK_FRAMES = 40;
        /** Classes of the heap histogram the health op returns when asked. */
    private static final int HISTOGRAM_LINES = 25;

    private final SipPhone phone;
    /** The ring screen, when the phone has one (null: answer and decline are unavailable). */
    private final RingScreen screen;
    private final Path path;
    private final ServerSocketChannel server;
    private final Thread acceptor;
    private final AtomicInteger open = new AtomicInteger();
    private final Map<SocketChannel, Boolean> clients = new ConcurrentHashMap<>();
    private volatile boolean closed;
    /** The registrations placed through this channel, by address of record. */
    private final Map<String, Registration> registrations = new ConcurrentHashMap<>();
    /** How long a register request waits for the registrar's answer. */
    private static final long REGISTER_WAIT_MS = 15_000;
    /** Addresses of record one phone registers at once through this channel. */
    private static final int MAX_REGISTRATIONS = 8;

    private ControlServer(SipPhone phone, RingScreen screen, Path path, ServerSocketChannel server) {
        this.phone = phone;
        this.screen = screen;
        this.path = path;
        this.server = server;
        this.acceptor = new Thread(this::accept, "control-accept");
        this.acceptor.setDaemon(true);
    }

    /** Listens on {@code path} (replacing a stale socket file there) for {@code phone}. */
    public static ControlServer start(SipPhone phone, Path path) throws IOException {
        return start(phone, null, path);
    }

    /** As above, with the phone's ring screen (its {@code screen}, {@code answer} and {@code decline} ops). */
    public static ControlServer start(SipPhone phone, RingScreen screen, Path path) throws IOException {
        Files.deleteIfExists(path);
        ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.bind(UnixDomainSocketAddress.of(path));
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-rw----"));
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
        ControlServer s = new ControlServer(phone, screen, path, ch);
        s.acceptor.start();
        LOG.info("control channel listening on {}", path);
        return s;
    }

    /** The socket this server listens on. */
    public Path path() {
        return path;
    }

    private void accept() {
        while (!closed) {
            SocketChannel c;
            try {
                c = server.accept();
            } catch (IOException e) {
                if (!closed) {
                    LOG.warn("control channel: accept failed: {}", e.toString());
                }
                return;
            }
            if (open.incrementAndGet() > MAX_CONNECTIONS) {
                open.decrementAndGet();
                closeQuietly(c);
                continue;
            }
            clients.put(c, Boolean.TRUE);
            Thread t = new Thread(() -> serve(c), "control-session");
            t.setDaemon(true);
            t.start();
        }
    }

    private void serve(SocketChannel c) {
        try (c; BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c),
                StandardCharsets.UTF_8)); OutputStream out = Channels.newOutputStream(c)) {
            for (String line; (line = readLine(in)) != null; ) {
                ObjectNode reply;
                try {
                    JsonNode req = JSON.readTree(line);
                    if (req.isObject() && req.path("op").asText().equals("screen")) {
                        if (screen == null) {
                            throw new IllegalArgumentException("this phone has no ring screen");
                        }
                        int width = req.path("width").asInt(80);
                        int height = req.path("height").asInt(24);
                        boolean ansi = req.path("ansi").asBoolean(true);
                        out.write("{\"ok\":true}\n".getBytes(StandardCharsets.UTF_8));
                        out.flush();
                        // frames go out while the keys' read blocks: write to the channel itself, not through
                        // Channels.newOutputStream, whose writes wait for a blocked read of the same channel
                        screenSession(in, ChannelWriter.of(c), width, height, ansi);
                        return;
                    }
                    reply = handle(req);
                } catch (JsonProcessingException e) {
                    reply = error("the request is not JSON: " + e.getOriginalMessage());
                } catch (IllegalArgumentException e) {
                    reply = error(e.getMessage());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                } catch (Exception e) {
                    LOG.warn("control request failed: {}", e.toString());
                    reply = error("failed: " + e.getMessage());
                }
                out.write((JSON.writeValueAsString(reply) + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
        } catch (IOException e) {
            if (!closed) {
                LOG.debug("control session ended: {}", e.toString());
            }
        } finally {
            clients.remove(c);
            open.decrementAndGet();
        }
    }

    /**
     * The ring screen on this connection: frames out whenever the screen changes and every second, keys in. Ends when
     * the person presses {@code q}, the client closes, or the server closes.
     */
    private void screenSession(BufferedReader in, OutputStream out, int width, int height, boolean ansi)
            throws IOException {
        Object lock = new Object();
        boolean[] dirty = {true};
        boolean[] done = {false};
        int[] size = {width, height};
        Runnable onChange = () -> {
            synchronized (lock) {
                dirty[0] = true;
                lock.notifyAll();
            }
        };
        screen.onChange(onChange);
        Thread painter = new Thread(() -> {
            try {
                while (true) {
                    int w;
                    int h;
                    synchronized (lock) {
                        if (!dirty[0] && !done[0]) {
                            lock.wait(1000); // the clock and freshness move on even when nothing happens
                        }
                        if (done[0]) {
                            return;
                        }
                        dirty[0] = false;
                        w = size[0];
                        h = size[1];
                    }
                    String frame = screen.render(w, h, ansi);
                    out.write(((ansi ? "\u001b[H\u001b[2J" : "\r\n") + frame).getBytes(StandardCharsets.UTF_8));
                    out.flush();
                }
            } catch (IOException | InterruptedException e) {
                // the client went away: the reader below ends too
            }
        }, "control-screen");
        painter.setDaemon(true);
        painter.start();
        try {
            for (int c; (c = in.read()) != -1; ) {
                if (c == 0x1b) {
                    in.mark(32);
                    int[] resized = windowSize(in);
                    if (resized != null) {
                        synchronized (lock) {
                            size[0] = resized[1];
                            size[1] = resized[0];
                            dirty[0] = true;
                            lock.notifyAll();
                        }
                        continue;
                    }
                    in.reset();
                }
                if (!screen.key(c)) {
                    break;
                }
            }
        } finally {
            synchronized (lock) {
                done[0] = true;
                lock.notifyAll();
            }
            screen.removeOnChange(onChange);
        }
    }

    /**
     * Writes to a socket channel directly. {@link Channels#newOutputStream} and {@link Channels#newInputStream} of one
     * channel take the channel's blocking lock for each call, so a write waits until a blocked read returns; the
     * channel's own {@code write} does not.
     */
    static final class ChannelWriter extends OutputStream {
        private final SocketChannel channel;

        private ChannelWriter(SocketChannel channel) {
            this.channel = channel;
        }

        static OutputStream of(SocketChannel channel) {
            return new ChannelWriter(channel);
        }

        @Override
        public synchronized void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(b, off, len);
            while (buf.hasRemaining()) {
                channel.write(buf);
            }
        }
    }

    /** After ESC: {@code [8;ROWS;COLSt} (at most 20 characters) as {rows, cols}, else null. */
    private static int[] windowSize(BufferedReader in) throws IOException {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            int c = in.read();
            if (c == -1) {
                return null;
            }
            s.append((char) c);
            if (c == 't') {
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\[8;(\\d{1,4});(\\d{1,4})t")
                        .matcher(s);
                return m.matches() ? new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))} : null;
            }
            if (!(c == '[' || c == ';' || Character.isDigit(c))) {
                return null;
            }
        }
        return null;
    }

    /** A line of at most {@link #MAX_LINE} characters; a longer one ends the session (no unbounded buffering). */
    private static String readLine(BufferedReader in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int ch; (ch = in.read()) != -1; ) {
            if (ch == '\n') {
                return sb.toString();
            }
            if (sb.length() >= MAX_LINE) {
                throw new IOException("control request longer than " + MAX_LINE + " characters");
            }
            sb.append((char) ch);
        }
        return sb.length() == 0 ? null : sb.toString();
    }

    private ObjectNode handle(JsonNode req) throws Exception {
        if (!req.isObject() || !req.path("op").isTextual()) {
            throw new IllegalArgumentException("a request is a JSON object with an \"op\"");
        }
        String op = req.get("op").asText();
        ObjectNode ok = JSON.createObjectNode().put("ok", true);
        switch (op) {
            case "status" -> {
                ok.put("uri", phone.uri());
                ok.put("tlsPort", phone.config().tlsPort());
                return ok;
            }
            case "register" -> {
                return register(req, ok);
            }
            case "unregister" -> {
                String aor = text(req, "aor");
                Registration r = registrations.remove(aor);
                if (r == null) {
                    throw new IllegalArgumentException("no registration as " + aor);
                }
                phone.unregister(r, java.time.Duration.ofSeconds(5));
                return ok.put("state", r.state().name()).put("reason", r.reason());
            }
            case "call" -> {
                String target = text(req, "target");
                if (req.has("via")) {
                    if (req.has("next")) {
                        throw new IllegalArgumentException("a call goes to \"next\" or \"via\" a registration, not"
                                + " both");
                    }
                    if (!target.startsWith("sips:") && !target.startsWith("sip:")) {
                        throw new IllegalArgumentException("target is a sip: or sips: URI, got " + target);
                    }
                    String aor = text(req, "via");
                    Registration r = registrations.get(aor);
                    if (r == null || r.state() != Registration.State.REGISTERED) {
                        throw new IllegalArgumentException("not registered as " + aor + (r == null ? ""
                                : " (" + r.state() + ": " + r.reason() + ")") + ": register first");
                    }
                    return ok.put("callId", phone.call(target, r).callId());
                }
                String next = text(req, "next");
                int colon = next.lastIndexOf(':');
                if (colon <= 0) {
                    throw new IllegalArgumentException("next is HOST:PORT, got " + next);
                }
                int port;
                try {
                    port = Integer.parseInt(next.substring(colon + 1));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("next is HOST:PORT, got " + next, e);
                }
                if (port < 1 || port > 65535) {
                    throw new IllegalArgumentException("the port of next must be 1..65535");
                }
                if (!target.startsWith("sips:") && !target.startsWith("sip:")) {
                    throw new IllegalArgumentException("target is a sip: or sips: URI, got " + target);
                }
                Call call = phone.call(target, new InetSocketAddress(InetAddress.getByName(next.substring(0, colon)),
                        port));
                return ok.put("callId", call.callId());
            }
            case "await" -> {
                Call call = call(req);
                long timeout = Math.min(MAX_AWAIT_MS, Math.max(0, req.path("timeoutMs").asLong(15_000)));
                try {
                    call.settled().get(timeout, TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.TimeoutException e) {
                    // the call as it is now
                }
                ok.set("call", describe(call));
                return ok;
            }
            case "calls" -> {
                ArrayNode a = ok.putArray("calls");
                phone.calls().forEach(c -> a.add(describe(c)));
                return ok;
            }
            case "audio" -> {
                Call call = call(req);
                AudioSession audio = call.audio().orElseThrow(() -> new IllegalArgumentException("call "
                        + call.callId() + " has no audio"));
                AudioSession.Stats s = audio.stats();
                short[] received = audio.received().samples();
                ok.put("packetsSent", s.packetsSent()).put("packetsReceived", s.packetsReceived())
                        .put("datagramsReceived", audio.datagramsReceived())
                        .put("packetsLost", s.packetsLost()).put("jitterMs", s.jitterMs())
                        .put("secondsReceived", received.length / (double) Wav.SAMPLE_RATE);
                if (received.length >= Wav.SAMPLE_RATE) {
                    short[] last = Arrays.copyOfRange(received, received.length - Wav.SAMPLE_RATE, received.length);
                    ok.put("dominantHz", Wav.dominantFrequency(last, 4000));
                }
                return ok;
            }
            case "hangup" -> {
                phone.hangUp(call(req));
                return ok;
            }
            case "health" -> {
                // For soaks: what stays flat in a process that does not leak. The heap after a full collection (the
                // attach mechanism is off in the measured process, so nothing outside can ask the JVM).
                System.gc();
                java.lang.management.MemoryUsage heap = java.lang.management.ManagementFactory.getMemoryMXBean()
                        .getHeapMemoryUsage();
                ok.put("heapUsedAfterGcBytes", heap.getUsed()).put("threads",
                        java.lang.management.ManagementFactory.getThreadMXBean().getThreadCount())
                        .put("calls", phone.calls().size());
                if (req.path("histogram").asBoolean(false)) {
                    // What holds the heap, the classes with the most bytes: the JVM's own GC.class_histogram, asked
                    // in-process (no attach mechanism needed). Class names only; no object contents.
                    String histogram = (String) java.lang.management.ManagementFactory.getPlatformMBeanServer()
                            .invoke(new javax.management.ObjectName("com.sun.management:type=DiagnosticCommand"),
                                    "gcClassHistogram", new Object[] {null}, new String[] {String[].class.getName()});
                    ArrayNode top = ok.putArray("histogram");
                    histogram.lines().skip(2).limit(HISTOGRAM_LINES).forEach(top::add);
                }
                if (req.path("stacks").asBoolean(false)) {
                    // Where each thread is (names and code locations only, no data): how a soak sees which thread
                    // of a stalled call's media waits, and on what.
                    ArrayNode stacks = ok.putArray("stacks");
                    for (java.lang.management.ThreadInfo t : java.lang.management.ManagementFactory.getThreadMXBean()
                            .dumpAllThreads(true, false)) {
                        StringBuilder b = new StringBuilder().append('"').append(t.getThreadName()).append("\" ")
                                .append(t.getThreadState());
                        if (t.getLockName() != null) {
                            b.append(" on ").append(t.getLockName());
                        }
                        StackTraceElement[] frames = t.getStackTrace();
                        for (int i = 0; i < Math.min(frames.length, STACK_FRAMES); i++) {
                            b.append("\n    at ").append(frames[i]);
                        }
                        stacks.add(b.toString());
                    }
                }
                return ok;
            }
            case "answer", "decline" -> {
                if (screen == null) {
                    throw new IllegalArgumentException("this phone answers automatically (no ring screen)");
                }
                Call call = call(req);
                boolean done = op.equals("answer") ? screen.answer(call.callId()) : screen.decline(call.callId());
                if (!done) {
                    throw new IllegalArgumentException("call " + call.callId() + " is not ringing (" + call.state()
                            + ")");
                }
                return ok;
            }
            default -> throw new IllegalArgumentException("unknown op \"" + op + "\" (status, call, await, calls,"
                    + " audio, hangup, answer, decline, screen, health)");
        }
    }

    /**
     * Registers as {@code aor} at {@code registrar} (HOST:PORT, over TLS) with the digest credentials given, replacing
     * an earlier registration of the same address of record; answers once the registrar accepted or refused it. The
     * password is kept in this process's memory for the registration's refreshes and never logged or echoed.
     */
    private ObjectNode register(JsonNode req, ObjectNode ok) throws Exception {
        String aor = text(req, "aor");
        if (!aor.matches("sips?:[A-Za-z0-9._~-]{1,64}@[A-Za-z0-9.-]{1,253}")) {
            throw new IllegalArgumentException("aor is sip:USER@DOMAIN or sips:USER@DOMAIN, got "
                    + io.tpmphone.attestation.UntrustedText.forTerminal(aor, 200));
        }
        InetSocketAddress registrar = hostPort(text(req, "registrar"), "registrar");
        String user = text(req, "user");
        if (!user.matches("[A-Za-z0-9._~-]{1,64}")) {
            throw new IllegalArgumentException("user must be 1-64 characters of A-Z a-z 0-9 . _ ~ -");
        }
        JsonNode pw = req.get("password");
        if (pw == null || !pw.isTextual() || pw.asText().isEmpty() || pw.asText().length() > 256) {
            throw new IllegalArgumentException("\"password\" (1-256 characters) is required");
        }
        char[] password = pw.asText().toCharArray();
        long expires = req.path("expiresSeconds").asLong(300);
        if (expires < 2 || expires > 86_400) {
            throw new IllegalArgumentException("expiresSeconds must be 2..86400");
        }
        if (!registrations.containsKey(aor) && registrations.size() >= MAX_REGISTRATIONS) {
            throw new IllegalArgumentException("at most " + MAX_REGISTRATIONS + " registrations: " + String.join(", ",
                    registrations.keySet()));
        }
        Registration old = registrations.remove(aor);
        if (old != null) {
            phone.unregister(old, java.time.Duration.ofSeconds(5));
        }
        // the registration wipes each copy it is given after answering a challenge
        Registration r = phone.register(new Registration.Account(aor, registrar, "tls", user, password::clone,
                java.time.Duration.ofSeconds(expires)));
        registrations.put(aor, r);
        try {
            r.firstOutcome().get(REGISTER_WAIT_MS, TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            // reported as it is now (REGISTERING)
        }
        ok.put("state", r.state().name()).put("reason", r.reason());
        r.digestAlgorithm().ifPresent(a -> ok.put("digestAlgorithm", a));
        return ok;
    }

    private static InetSocketAddress hostPort(String s, String field) throws java.net.UnknownHostException {
        int colon = s.lastIndexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException(field + " is HOST:PORT, got " + s);
        }
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(field + " is HOST:PORT, got " + s, e);
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("the port of " + field + " must be 1..65535");
        }
        return new InetSocketAddress(InetAddress.getByName(s.substring(0, colon)), port);
    }

    private Call call(JsonNode req) {
        String id = text(req, "callId");
        return phone.callById(id).orElseThrow(() -> new IllegalArgumentException("no call " + id));
    }

    private static String text(JsonNode req, String field) {
        JsonNode n = req.get(field);
        if (n == null || !n.isTextual() || n.asText().isBlank() || n.asText().length() > 1024) {
            throw new IllegalArgumentException("\"" + field + "\" (a non-empty string) is required");
        }
        return n.asText();
    }

    /** What the user sees of a call. */
    static ObjectNode describe(Call c) {
        ObjectNode n = JSON.createObjectNode();
        n.put("callId", c.callId()).put("direction", c.direction().name()).put("peerUri", c.peerUri())
                .put("state", c.state().name()).put("reason", c.reason()).put("held", c.held());
        // what the far end's SIP said when it ended the call, escaped (kept even after our side had ended it)
        c.farEndSaid().ifPresent(s -> n.put("farEndSaid", s));
        c.peer().ifPresent((PeerAttestation p) -> {
            n.put("level", p.level().name());
            n.put("peerHost", p.host().orElse(null));
            n.put("display", c.display());
        });
        c.decision().ifPresent(d -> n.put("action", d.action().name()).put("requiredLevel",
                d.requiredLevel().name()));
        // a DTLS-SRTP call: the far end's level end to end, beside the hop's ("level")
        n.put("endToEnd", c.endToEnd());
        c.farEnd().ifPresent((PeerAttestation f) -> {
            n.put("farEndLevel", f.level().name());
            n.put("farEndHost", f.host().orElse(null));
        });
        c.farEndDecision().ifPresent(d -> n.put("farEndAction", d.action().name())
                .put("farEndRequiredLevel", d.requiredLevel().name()));
        return n;
    }

    private static ObjectNode error(String message) {
        return JSON.createObjectNode().put("ok", false).put("error", message == null ? "failed" : message);
    }

    private static void closeQuietly(SocketChannel c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // already gone
        }
    }

    @Override
    public void close() throws IOException {
        closed = true;
        server.close();
        clients.keySet().forEach(ControlServer::closeQuietly);
        Files.deleteIfExists(path);
    }
}
