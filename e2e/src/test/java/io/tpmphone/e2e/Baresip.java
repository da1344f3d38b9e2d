package io.tpmphone.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.StringWriter;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * baresip 1.0.0 (Debian's {@code baresip} package) as a real third-party SIP user agent for interop tests, run
 * headless in a private config directory: SIP on 127.0.0.1 (TLS on the SIP port + 1, with a self-signed certificate
 * made here), one account {@code sip:USER@127.0.0.1} with SDES-SRTP mandatory ({@code mediaenc=srtp-mand}), PCMU only,
 * auto-answer, no registrar and no STUN. It sends a sine tone from a WAV file ({@code aufile}), plays into a null
 * bridge ({@code aubridge}) and records what it decodes ({@code sndfile}, {@code rec/dump-*-dec.wav}). It is driven
 * and watched through {@code ctrl_tcp} (netstring-framed JSON commands, responses and call events) and prints a SIP
 * trace ({@code -s}) into {@link #logFile()}.
 *
 * <p>A missing baresip (or module) fails with what to install; every failure of {@link #await} carries the event
 * history and baresip's log. {@link #close()} kills the process and its children. Thread-safe.
 */
final class Baresip implements AutoCloseable {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final Path BINARY = Path.of("/usr/bin/baresip");
    private static final Path MODULES = Path.of("/usr/lib/baresip/modules");
    private static final List<String> NEEDED = List.of("g711", "srtp", "aufile", "aubridge", "sndfile", "menu",
            "ctrl_tcp", "account");
    private static final Duration START_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(5);
    private static final ObjectMapper JSON = new ObjectMapper();

    /** One call event as ctrl_tcp reports it ({@code CALL_ESTABLISHED}, {@code CALL_CLOSED}, ...). */
    record Event(String type, String callId, String direction, String peerUri, String param, Instant at) {
        static Event of(JsonNode n) {
            return new Event(n.path("type").asText(), n.path("id").asText(), n.path("direction").asText(),
                    n.path("peeruri").asText(), n.path("param").asText(), Instant.now());
        }
    }

    private final String user;
    private final Path dir;
    private final Path log;
    private final int sipPort;
    private final Process process;
    private final Socket control;
    private final OutputStream commands;
    private final List<Event> events = new ArrayList<>();
    private final Map<String, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
    private final AtomicLong tokens = new AtomicLong();

    private Baresip(String user, Path dir, Path log, int sipPort, Process process, Socket control)
            throws IOException {
        this.user = user;
        this.dir = dir;
        this.log = log;
        this.sipPort = sipPort;
        this.process = process;
        this.control = control;
        this.commands = control.getOutputStream();
        Thread reader = new Thread(this::readControl, "baresip-ctrl-" + user);
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Starts baresip as {@code sip:user@127.0.0.1} in {@code dir} (created), sending a sine tone of {@code toneHz},
     * and returns once its control port answers (its SIP transports are up by then).
     */
    static Baresip start(Path dir, String user, double toneHz) throws IOException, InterruptedException {
        return start(dir, user, toneHz, null, "<sip:" + user + "@127.0.0.1;transport=tls>;regint=0"
                + ";answermode=auto;mediaenc=srtp-mand;audio_codecs=PCMU;ptime=20\n");
    }

    /**
     * Starts baresip as {@code sip:user@DOMAIN}, registered at {@code registrar} (kamailio over TLS, with
     * {@code password}; it is also the outbound proxy), with DTLS-SRTP ({@code mediaenc=dtls_srtp}, its
     * {@code dtls_srtp} module, RTCP multiplexed) and PCMU, sending a sine tone of {@code toneHz}.
     */
    static Baresip startDtlsSrtp(Path dir, String user, double toneHz, String domain, InetSocketAddress registrar,
                                 String password) throws IOException, InterruptedException {
        String proxy = "sip:" + registrar.getAddress().getHostAddress() + ":" + registrar.getPort() + ";transport=tls";
        return start(dir, user, toneHz, List.of("dtls_srtp"), "<sip:" + user + "@" + domain + ";transport=tls>"
                + ";auth_pass=" + password + ";outbound=\"" + proxy + "\";regint=60;answermode=auto"
                + ";mediaenc=dtls_srtp;audio_codecs=PCMU;ptime=20\n");
    }

    private static Baresip start(Path dir, String user, double toneHz, List<String> dtlsModules, String account)
            throws IOException, InterruptedException {
        checkInstalled();
        if (dtlsModules != null) {
            for (String m : dtlsModules) {
                if (!Files.isRegularFile(MODULES.resolve(m + ".so"))) {
                    throw new IOException("baresip's module " + m + ".so is missing from " + MODULES
                            + ": Debian's baresip-core 1.0.0 ships it; reinstall `baresip`");
                }
            }
        }
        Files.createDirectories(dir.resolve("rec"));
        Path cert = dir.resolve("cert.pem");
        writeSelfSignedCertificate(cert, user);
        Path tone = dir.resolve("tone.wav");
        // aufile reads the whole file and stops at its end: long enough for any test call.
        Files.write(tone, Wav.encode(Wav.tone(toneHz, 0.5, 60)));
        int sip = FreePorts.tcpAndUdpWithNextTcp();
        int ctrl = FreePorts.tcp();
        int rtp = FreePorts.rtpPair();
        String config = config(dir, cert, tone, sip, ctrl, rtp);
        if (dtlsModules != null) {
            // DTLS-SRTP on one port: RTCP multiplexed (our phone runs one association per call, on its RTP port)
            config = config.replace("rtcp_mux\t\tno", "rtcp_mux\t\tyes").replace("module\t\t\tsrtp.so",
                    "module\t\t\tsrtp.so\nmodule\t\t\tdtls_srtp.so");
        }
        Files.writeString(dir.resolve("config"), config, StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("accounts"), account, StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("contacts"), "", StandardCharsets.UTF_8);
        Path log = dir.resolve("baresip.log");
        // -s: the SIP trace (every message sent and received) goes to the log, for assertions and diagnosis.
        Process p = new ProcessBuilder(BINARY.toString(), "-f", dir.toString(), "-s")
                .directory(dir.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        // Up when its control port accepts a connection (its SIP transports are up by then); a dead process ends the wait.
        Socket control;
        try {
            control = Await.until("baresip to open its ctrl_tcp port " + ctrl, START_TIMEOUT, () -> {
                if (!p.isAlive()) {
                    throw new AssertionError("baresip exited with " + p.exitValue() + " while starting; its log:\n"
                            + read(log));
                }
                Socket s = new Socket();
                try {
                    s.connect(new InetSocketAddress(LOOPBACK, ctrl), 500);
                    return s;
                } catch (IOException notYet) {
                    s.close();
                    throw notYet;
                }
            }, s -> true);
        } catch (AssertionError notStarted) {
            boolean alive = p.isAlive();
            kill(p);
            throw alive ? new AssertionError(notStarted.getMessage() + "; its log:\n" + read(log), notStarted)
                    : notStarted;
        }
        return new Baresip(user, dir, log, sip, p, control);
    }

    private static void checkInstalled() throws IOException {
        if (!Files.isExecutable(BINARY)) {
            throw new IOException("baresip is not installed (" + BINARY + " is missing): install Debian's package"
                    + " with `apt-get install -y baresip` (the test prerequisites of ./tpmphone list it)");
        }
        for (String m : NEEDED) {
            if (!Files.isRegularFile(MODULES.resolve(m + ".so"))) {
                throw new IOException("baresip's module " + m + ".so is missing from " + MODULES
                        + ": reinstall `baresip` (Debian 12, 1.0.0, package baresip-core)");
            }
        }
    }

    /** baresip 1.0.0's config: only the modules a headless TLS/SDES/PCMU peer needs, no sound device, no NAT. */
    private static String config(Path dir, Path cert, Path tone, int sip, int ctrl, int rtp) {
        return String.join("\n",
                "poll_method\t\tepoll",
                // Binds to this address (an interface name such as "lo" fails in containers).
                "net_interface\t\t127.0.0.1",
                // UDP and TCP on this port, TLS on the next one (1.0.0 cannot turn UDP/TCP off).
                "sip_listen\t\t127.0.0.1:" + sip,
                // Certificate and private key in one PEM file; 1.0.0 does not verify the server's certificate.
                "sip_certificate\t\t" + cert,
                "call_local_timeout\t30",
                "call_max_calls\t\t4",
                "audio_source\t\taufile," + tone,
                "audio_player\t\taubridge,nil",
                "audio_alert\t\taubridge,nil",
                "ausrc_srate\t\t8000",
                "ausrc_channels\t\t1",
                "audio_level\t\tno",
                // One RTP port (even) and RTCP on the next, chosen free.
                "rtp_ports\t\t" + rtp + "-" + (rtp + 1),
                "rtcp_mux\t\tno",
                "jitter_buffer_delay\t1-4",
                "rtp_stats\t\tno",
                "module_path\t\t" + MODULES,
                "module\t\t\tg711.so",
                "module\t\t\tsrtp.so",
                "module\t\t\taufile.so",
                "module\t\t\taubridge.so",
                "module\t\t\tsndfile.so",
                "module_tmp\t\taccount.so",
                // menu has the dial/hangup commands ctrl_tcp runs
                "module_app\t\tmenu.so",
                "module_app\t\tctrl_tcp.so",
                "ctrl_tcp_listen\t\t127.0.0.1:" + ctrl,
                "statmode_default\toff",
                "snd_path\t\t" + dir.resolve("rec"),
                "");
    }

    private static void writeSelfSignedCertificate(Path file, String cn) throws IOException {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair kp = g.generateKeyPair();
            X500Name name = new X500Name("CN=" + cn);
            Instant now = Instant.now();
            X509CertificateHolder cert = new JcaX509v3CertificateBuilder(name, BigInteger.valueOf(now.toEpochMilli()),
                    Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(1))), name,
                    kp.getPublic()).build(new JcaContentSignerBuilder("SHA256withECDSA").build(kp.getPrivate()));
            StringWriter pem = new StringWriter();
            try (JcaPEMWriter w = new JcaPEMWriter(pem)) {
                w.writeObject(cert);
                // PKCS#8: the traditional form BC writes for a JCA EC key lacks the curve, which OpenSSL refuses
                w.writeObject(new JcaPKCS8Generator(kp.getPrivate(), null));
            }
            Files.writeString(file, pem.toString(), StandardCharsets.US_ASCII);
        } catch (java.security.GeneralSecurityException | org.bouncycastle.operator.OperatorCreationException e) {
            throw new IOException("cannot make baresip's self-signed certificate", e);
        }
    }

    // ------------------------------------------------------------------------------------------------ ports

    // Ports come from FreePorts (swtpm-test): P free for UDP and TCP with P + 1 (baresip's TLS port) free for TCP,
    // the control port, and an RTP/RTCP pair.

    // ------------------------------------------------------------------------------------------------ use

    /** Its address of record. */
    String uri() {
        return "sip:" + user + "@127.0.0.1";
    }

    /** Where it accepts SIP over TLS. */
    InetSocketAddress tlsAddress() {
        return new InetSocketAddress(LOOPBACK, sipPort + 1);
    }

    /**
     * Dials {@code uri}, e.g. {@code sip:alice@127.0.0.1:5061}: baresip appends its account's {@code transport=tls}, so
     * the call goes over TLS. (1.0.0 does not know {@code sips:}: it would dial {@code sip:sips:alice@...}.) Returns
     * once baresip accepted the command; the call's progress arrives as events.
     */
    void dial(String uri) throws IOException, InterruptedException {
        command("dial", uri);
    }

    /** Hangs up its current call. */
    void hangUp() throws IOException, InterruptedException {
        command("hangup", null);
    }

    private void command(String name, String params) throws IOException, InterruptedException {
        String token = "t" + tokens.incrementAndGet();
        ObjectNode c = JSON.createObjectNode().put("command", name).put("token", token);
        if (params != null) {
            c.put("params", params);
        }
        byte[] body = JSON.writeValueAsBytes(c);
        CompletableFuture<JsonNode> answer = new CompletableFuture<>();
        pending.put(token, answer);
        synchronized (commands) {
            commands.write((body.length + ":").getBytes(StandardCharsets.US_ASCII));
            commands.write(body);
            commands.write(',');
            commands.flush();
        }
        JsonNode r;
        try {
            r = answer.get(COMMAND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException("baresip did not answer the command " + name + " within "
                    + COMMAND_TIMEOUT.toSeconds() + " s" + diagnostics(), e);
        } finally {
            pending.remove(token);
        }
        if (!r.path("ok").asBoolean()) {
            throw new IOException("baresip refused the command " + name + " " + params + ": "
                    + r.path("data").asText() + diagnostics());
        }
    }

    /** The first event of {@code type} (e.g. {@code CALL_CLOSED}); fails with baresip's history and log. */
    Event await(String type, Duration timeout) throws InterruptedException {
        return await(e -> e.type().equals(type), type, timeout);
    }

    /** The first event that {@code matches}; fails after {@code timeout} naming {@code what}. */
    Event await(Predicate<Event> matches, String what, Duration timeout) throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        synchronized (events) {
            while (true) {
                Optional<Event> e = events.stream().filter(matches).findFirst();
                if (e.isPresent()) {
                    return e.get();
                }
                long left = end - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError("baresip reported no " + what + " within " + timeout.toMillis()
                            + " ms" + diagnostics());
                }
                TimeUnit.NANOSECONDS.timedWait(events, left);
            }
        }
    }

    /** Every event so far, oldest first. */
    List<Event> events() {
        synchronized (events) {
            return List.copyOf(events);
        }
    }

    /** The file with baresip's stdout and stderr (its log and SIP trace). */
    Path logFile() {
        return log;
    }

    /** Its log so far. */
    String log() {
        return read(log);
    }

    /**
     * For assertion messages: what baresip reported and logged. The SDES keys in its SIP trace's SDP
     * ({@code a=crypto:... inline:<key||salt>}) are hidden: a failure message never shows key material.
     */
    String diagnostics() {
        return "\n--- baresip events: " + events() + "\n--- baresip log (" + log + ", SDES keys hidden):\n"
                + tail(hideKeys(read(log)), 20_000);
    }

    /** {@code text} with every SDES {@code inline:} key parameter replaced by its length. */
    static String hideKeys(String text) {
        return java.util.regex.Pattern.compile("inline:([A-Za-z0-9+/=]+)").matcher(text)
                .replaceAll(m -> "inline:<hidden, " + m.group(1).length() + " base64 characters>");
    }

    /**
     * The WAV file of what baresip received and decoded in its (only) call, once it exists: sndfile writes it while
     * the call runs and completes its header when the call's audio stops.
     */
    Path receivedWav() throws IOException {
        try (Stream<Path> files = Files.list(dir.resolve("rec"))) {
            return files.filter(f -> f.getFileName().toString().endsWith("-dec.wav")).findFirst()
                    .orElseThrow(() -> new IOException("baresip recorded no received audio in " + dir.resolve("rec")
                            + diagnostics()));
        }
    }

    /**
     * How many samples baresip has recorded so far, counted from the file's size (sndfile completes the header only
     * when the call's audio stops); 0 before the recording exists.
     */
    long receivedSampleCount() {
        try (Stream<Path> files = Files.list(dir.resolve("rec"))) {
            Optional<Path> f = files.filter(p -> p.getFileName().toString().endsWith("-dec.wav")).findFirst();
            return f.isPresent() ? Math.max(0, (Files.size(f.get()) - 44) / 2) : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    /** The samples of {@link #receivedWav()}, once its header is complete (after the call ended). */
    short[] receivedSamples(Duration timeout) {
        java.util.concurrent.atomic.AtomicReference<short[]> samples = new java.util.concurrent.atomic.AtomicReference<>();
        Await.until("baresip's recording to become a complete WAV file", timeout, () -> {
            samples.set(Wav.decode(Files.readAllBytes(receivedWav())));
            return true;
        }, this::diagnostics);
        return samples.get();
    }

    // ------------------------------------------------------------------------------------------------ control

    private void readControl() {
        try (InputStream in = new BufferedInputStream(control.getInputStream())) {
            while (true) {
                JsonNode n = JSON.readTree(netstring(in));
                if (n.path("response").asBoolean()) {
                    CompletableFuture<JsonNode> f = pending.get(n.path("token").asText());
                    if (f != null) {
                        f.complete(n);
                    }
                } else if (n.path("event").asBoolean()) {
                    synchronized (events) {
                        events.add(Event.of(n));
                        events.notifyAll();
                    }
                }
            }
        } catch (IOException e) {
            // baresip stopped or close() closed the socket
            pending.values().forEach(f -> f.completeExceptionally(e));
        }
    }

    /** One netstring: {@code <length>:<bytes>,}. */
    private static byte[] netstring(InputStream in) throws IOException {
        int length = 0;
        int digits = 0;
        for (int c; (c = in.read()) != ':'; ) {
            if (c < 0) {
                throw new EOFException("ctrl_tcp closed");
            }
            if (c < '0' || c > '9' || ++digits > 7) {
                throw new IOException("ctrl_tcp sent a malformed netstring length");
            }
            length = length * 10 + (c - '0');
        }
        byte[] body = in.readNBytes(length);
        if (body.length != length || in.read() != ',') {
            throw new IOException("ctrl_tcp sent a truncated netstring");
        }
        return body;
    }

    // ------------------------------------------------------------------------------------------------ end

    @Override
    public void close() {
        try {
            control.close();
        } catch (IOException ignored) {
            // the process is killed anyway
        }
        kill(process);
    }

    private static void kill(Process p) {
        List<ProcessHandle> children = p.descendants().toList();
        p.destroy();
        try {
            if (!p.waitFor(3, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(3, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        children.forEach(ProcessHandle::destroyForcibly);
    }

    private static String read(Path file) {
        try {
            // baresip colours its warnings; the escapes only clutter assertion messages
            return new String(Files.readAllBytes(file), StandardCharsets.UTF_8).replaceAll("\u001b\\[[;0-9]*m", "");
        } catch (IOException e) {
            return "(cannot read " + file + ": " + e.getMessage() + ")";
        }
    }

    private static String tail(String s, int max) {
        return s.length() <= max ? s : "…" + s.substring(s.length() - max);
    }
}
