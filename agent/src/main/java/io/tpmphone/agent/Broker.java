package io.tpmphone.agent;

import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.SrtpKeys;
import io.tpmphone.keystore.SrtpSuite;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's private API for its one child: a Unix domain socket in a directory only the agent's user can enter
 * (and, when the child runs as another user, that user, see {@link MeasuredLauncher}), and a one-time token handed to the child on its stdin. The first connection that presents the token becomes the
 * child's session; the listening socket is then closed, so no other process can ever connect. A wrong token ends
 * that connection, and so does silence: a connection has {@link #HELLO_DEADLINE} to present the token, and HELLOs are
 * read concurrently (at most 32 at once), so a process that connects and says nothing cannot keep the child out.
 *
 * <p>Protocol (UTF-8 lines, requests at most 4 KiB):
 * <ul>
 *   <li>{@code HELLO <token>} → {@code OK};</li>
 *   <li>{@code QUOTE <binder hex>} → {@code OK akId=<hex> ak=<TPMT_PUBLIC b64> attest=<b64> signature=<b64> pcrs=<selection>
 *       values=<hex,...> log=<b64>};</li>
 *   <li>{@code SRTPKEY <suite> <callId>} → {@code OK <master key b64> <master salt b64>}: a fresh key from the sealed
 *       keystore; the reply is built in a byte buffer that is wiped after it is written;</li>
 *   <li>{@code OFFERED <SHA-256(key || salt) hex> <callId>} → {@code OK}, or {@code ERR SEEN_BEFORE ...} for a
 *       replayed SDES offer (only the fingerprint travels, never the peer's key);</li>
 *   <li>{@code SIGN <SHA-256 digest hex>} → {@code OK <ECDSA signature, DER, b64>} by the TLS identity key;</li>
 *   <li>{@code CERTS} → {@code OK <device certificate DER b64>,<CA DER b64>};</li>
 *   <li>{@code RESULT} → {@code OK <compact JWS>}: the latest signed attestation result (the passport);</li>
 *   <li>{@code TRUST} → {@code OK <SubjectPublicKeyInfo DER b64>}: the attestation server's result-signing key, with
 *       which the child verifies its peers' passports (the agent holds the server pinned);</li>
 *   <li>{@code DECISION <IN|OUT> <ACCEPT|REJECT|RESTRICT> <peer level> <required level> <callId> <peer URI>
 *       <reason...>} → {@code OK}: a call decision for the server's audit log;</li>
 *   <li>{@code DECISION2 <IN|OUT> <ACCEPT|REJECT|RESTRICT> <peer level> <required level> <callId> <peer URI>
 *       <ONE_HOP|END_TO_END> <evidence SHA-256 hex|-> <result age seconds|-> <reason...>} → {@code OK}: the same
 *       with its structured fields ({@link DecisionFields}); a verb of its own, so that a {@code DECISION} whose
 *       reason starts with {@code ONE_HOP} or {@code END_TO_END} is never read as fields;</li>
 *   <li>{@code READY <SIP URI>} → {@code OK}: the child is serving (its SIP transports and control socket are up);
 *       sent once, after start-up, so the agent can tell a person that the softphone runs, or why it does not;</li>
 *   <li>{@code PHRASE} → {@code OK <UTF-8 b64>}: the person's ring-screen phrase, unsealed by the keystore for this
 *       measured child, or {@code ERR NO_PHRASE} when none was set;</li>
 *   <li>{@code SOUND <OPEN|CLOSE> <callId>} → {@code OK}: a call's audio starts or ended; the agent grants the child a
 *       socket into the sound server while any call holds it ({@link SoundGrant}), only for a call it saw accepted
 *       by a {@code DECISION} (or that call's ringing, {@code <callId>#ring}) and for a bound after it, else
 *       {@code ERR NOT_ACCEPTED};</li>
 * </ul>
 * anything else or any failure → {@code ERR <REASON> <message>}, REASON a keystore reason
 * ({@code NOT_APPROVED}, {@code POLICY_FAIL}, {@code APPROVAL_EXPIRED}, {@code SEEN_BEFORE}, ...) or
 * {@code BAD_REQUEST}, {@code UNAVAILABLE}, {@code FAILED}.
 */
public final class Broker implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Broker.class);
    private static final int MAX_LINE = 4096;
    private static final int MAX_CALL_ID = 1024;
    private static final java.util.Set<String> LEVELS = java.util.Set.of("FAILED", "UNATTESTED", "IDENTIFIED",
            "MEASURED", "HARDENED");

    /** What the broker does for the child. Only {@link #quote} is required; the rest answer UNAVAILABLE. */
    @FunctionalInterface
    public interface Service {
        /** Quote over the measured state with {@code binder} as qualifying data; the reply line after "OK ". */
        String quote(byte[] binder) throws Exception;

        /** A fresh SRTP master key and salt for a call; the broker destroys them once sent. */
        default SrtpKeys srtpKey(String callId, SrtpSuite suite) throws Exception {
            throw new UnsupportedOperationException("no keystore");
        }

        /** Refuses SDES key material seen before, by its fingerprint {@code SHA-256(key || salt)}. */
        default void checkOffered(byte[] fingerprint, String callId) throws Exception {
            throw new UnsupportedOperationException("no keystore");
        }

        /** An ECDSA signature (DER) of a SHA-256 digest by the TLS identity key. */
        default byte[] sign(byte[] digest) throws Exception {
            throw new UnsupportedOperationException("no identity key");
        }

        /** The device certificate and its CA, DER each; empty if none was issued yet. */
        default List<byte[]> certificateChain() throws Exception {
            throw new UnsupportedOperationException("no identity key");
        }

        /** Records a call decision of the softphone for the audit log. */
        default void callDecision(String direction, String action, String peerUri, String peerLevel,
                                  String requiredLevel, String callId, String reason) throws Exception {
            throw new UnsupportedOperationException("no audit channel");
        }

        /**
         * Records a call decision with its structured fields (how the far end's level was established, the digest of
         * the evidence appraised, the result's age); by default the fields are dropped.
         */
        default void callDecision(String direction, String action, String peerUri, String peerLevel,
                                  String requiredLevel, String callId, String reason, DecisionFields fields)
                throws Exception {
            callDecision(direction, action, peerUri, peerLevel, requiredLevel, callId, reason);
        }

        /** The latest signed attestation result (compact JWS) of this host: its passport. */
        default String passport() throws Exception {
            throw new UnsupportedOperationException("no attestation result");
        }

        /** The attestation server's result-signing public key (SubjectPublicKeyInfo, DER). */
        default byte[] resultVerificationKey() throws Exception {
            throw new UnsupportedOperationException("no attestation server");
        }

        /** The person's ring-screen phrase, unsealed for the measured child; empty when none was set. */
        default java.util.Optional<String> phrase() throws Exception {
            return java.util.Optional.empty();
        }

        /** A call's audio starts ({@code open}) or ended: grant or withdraw the sound server socket. */
        default void sound(boolean open, String callId) throws Exception {
            throw new UnsupportedOperationException("no sound server is configured for the softphone (agent run"
                    + " --sound-server)");
        }

        /** The child says it is serving as {@code uri} (one word, at most 1 KiB). */
        default void ready(String uri) {
            // nobody is waiting for it
        }
    }

    /** How long a connection may take to present its token before the broker closes it. */
    public static final Duration HELLO_DEADLINE = Duration.ofSeconds(2);
    /** Connections allowed to be in their HELLO at once; more are closed at once. */
    private static final int MAX_PENDING_HELLOS = 32;

    private final Path socket;
    private final byte[] token;
    private final ServerSocketChannel server;
    private final Service service;
    private final Duration helloDeadline;
    private final Thread thread;
    private final AtomicBoolean claimed = new AtomicBoolean();
    private final AtomicInteger pendingHellos = new AtomicInteger();
    private final ScheduledExecutorService deadlines;
    private volatile SocketChannel session;

    private Broker(Path socket, byte[] token, ServerSocketChannel server, Service service, Duration helloDeadline) {
        this.socket = socket;
        this.token = token;
        this.server = server;
        this.service = service;
        this.helloDeadline = helloDeadline;
        this.thread = new Thread(this::serve, "agent-broker");
        this.thread.setDaemon(true);
        this.deadlines = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "agent-broker-deadline");
            t.setDaemon(true);
            return t;
        });
    }

    /** Creates the socket in {@code directory} (made owner-only) and starts serving. */
    public static Broker start(Path directory, Service service) throws IOException {
        return start(directory, service, HELLO_DEADLINE);
    }

    /** As {@link #start(Path, Service)}, with another HELLO deadline (tests). */
    static Broker start(Path directory, Service service, Duration helloDeadline) throws IOException {
        io.tpmphone.attestation.OwnerOnlyFiles.createPrivateDirectories(directory);
        try {
            Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString("rwx------"));
        } catch (UnsupportedOperationException e) {
            throw new IOException("the broker needs a POSIX file system for an owner-only socket directory", e);
        }
        Path socket = directory.resolve("broker.sock");
        Files.deleteIfExists(socket);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        byte[] token = new byte[32];
        new SecureRandom().nextBytes(token);
        Broker broker = new Broker(socket, token, server, service, helloDeadline);
        broker.thread.start();
        return broker;
    }

    public Path socketPath() {
        return socket;
    }

    /** The directory holding the socket. */
    public Path directory() {
        return socket.getParent();
    }

    /**
     * Lets processes of user {@code uid} (the measured child, which runs unprivileged) connect: the socket becomes
     * theirs with mode 0600 and its directory traversable (0711, not listable). Other users still cannot connect;
     * the token check is unchanged.
     */
    void admitUser(int uid) throws IOException {
        Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        Files.setAttribute(socket, "unix:uid", uid);
        Files.setPosixFilePermissions(directory(), PosixFilePermissions.fromString("rwx--x--x"));
    }

    /** The one-time token, hex; give it to the child on its stdin, never in its environment or argv. */
    public String token() {
        return HexFormat.of().formatHex(token);
    }

    /**
     * Accepts connections; each one's HELLO is read on its own thread under {@link #HELLO_DEADLINE}, so a silent or
     * slow client delays nobody. The first connection with the token becomes the session and ends accepting.
     */
    private void serve() {
        while (server.isOpen() && !claimed.get()) {
            SocketChannel client;
            try {
                client = server.accept();
            } catch (IOException e) {
                break;
            }
            if (pendingHellos.incrementAndGet() > MAX_PENDING_HELLOS) {
                pendingHellos.decrementAndGet();
                LOG.warn("broker: too many connections without a HELLO; closing one");
                closeQuietly(client);
                continue;
            }
            Thread t = new Thread(() -> greet(client), "agent-broker-hello");
            t.setDaemon(true);
            t.start();
        }
        deadlines.shutdown();
    }

    private void greet(SocketChannel client) {
        ScheduledFuture<?> deadline;
        try {
            deadline = deadlines.schedule(() -> {
                LOG.warn("broker: no HELLO within {} ms; closing that connection", helloDeadline.toMillis());
                closeQuietly(client);
            }, helloDeadline.toMillis(), TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException e) {
            deadline = null; // the broker is closing or has its child already
        }
        try {
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(client),
                    StandardCharsets.UTF_8));
            OutputStream out = Channels.newOutputStream(client);
            String hello;
            try {
                hello = deadline == null ? null : readLine(in);
            } finally {
                if (deadline != null) {
                    deadline.cancel(false);
                }
                pendingHellos.decrementAndGet();
            }
            if (!client.isOpen()) {
                return;
            }
            byte[] presented = hello != null && hello.startsWith("HELLO ")
                    ? HexFormat.of().parseHex(hello.substring(6).trim()) : new byte[0];
            if (!MessageDigest.isEqual(presented, token) || !claimed.compareAndSet(false, true)) {
                LOG.warn("broker: refused a connection without the child's token");
                write(out, "ERR REFUSED not the measured child");
                return;
            }
            server.close();
            Files.deleteIfExists(socket);
            session = client;
            write(out, "OK");
            LOG.info("broker: the measured child connected");
            serveSession(in, out);
        } catch (IOException | IllegalArgumentException e) {
            LOG.debug("broker connection ended: {}", e.toString());
        } finally {
            closeQuietly(client);
        }
    }

    private static void closeQuietly(SocketChannel client) {
        try {
            client.close();
        } catch (IOException ignored) {
            // closing a socket that is already gone
        }
    }

    private void serveSession(BufferedReader in, OutputStream out) throws IOException {
        for (String line; (line = readLine(in)) != null; ) {
            String op = line.split(" ", 2)[0];
            if (op.equals("SRTPKEY") || op.equals("OFFERED") || op.equals("SIGN") || line.equals("CERTS")
                    || line.equals("RESULT") || line.equals("TRUST") || op.equals("DECISION") || op.equals("DECISION2")
                    || op.equals("READY")
                    || op.equals("SOUND") || line.equals("PHRASE")) {
                keyRequest(line, out);
            } else if (line.startsWith("QUOTE ")) {
                byte[] binder;
                try {
                    binder = HexFormat.of().parseHex(line.substring(6).trim());
                } catch (IllegalArgumentException e) {
                    write(out, "ERR BAD_REQUEST binder is not hex");
                    continue;
                }
                if (binder.length < 16 || binder.length > 64) {
                    write(out, "ERR BAD_REQUEST binder must be 16..64 bytes");
                    continue;
                }
                try {
                    write(out, "OK " + service.quote(binder));
                } catch (Exception e) {
                    LOG.warn("broker: quote failed: {}", e.toString());
                    write(out, "ERR FAILED quote: " + e.getClass().getSimpleName());
                }
            } else {
                write(out, "ERR BAD_REQUEST unknown request");
            }
        }
    }

    private void keyRequest(String line, OutputStream out) throws IOException {
        String[] f = line.split(" ");
        try {
            switch (f[0]) {
                case "SRTPKEY" -> {
                    if (f.length != 3) {
                        throw new IllegalArgumentException("SRTPKEY <suite> <callId>");
                    }
                    SrtpSuite suite = SrtpSuite.valueOf(f[1]);
                    SrtpKeys keys = service.srtpKey(callId(f[2]), suite);
                    byte[] key = keys.masterKey().reveal();
                    byte[] salt = keys.masterSalt().reveal();
                    keys.destroy();
                    byte[] k64 = Base64.getEncoder().encode(key);
                    byte[] s64 = Base64.getEncoder().encode(salt);
                    byte[] reply = new byte[3 + k64.length + 1 + s64.length + 1];
                    reply[0] = 'O';
                    reply[1] = 'K';
                    reply[2] = ' ';
                    System.arraycopy(k64, 0, reply, 3, k64.length);
                    reply[3 + k64.length] = ' ';
                    System.arraycopy(s64, 0, reply, 4 + k64.length, s64.length);
                    reply[reply.length - 1] = '\n';
                    try {
                        out.write(reply);
                        out.flush();
                    } finally {
                        Arrays.fill(key, (byte) 0);
                        Arrays.fill(salt, (byte) 0);
                        Arrays.fill(k64, (byte) 0);
                        Arrays.fill(s64, (byte) 0);
                        Arrays.fill(reply, (byte) 0);
                    }
                }
                case "OFFERED" -> {
                    byte[] fingerprint = f.length == 3 ? HexFormat.of().parseHex(f[1]) : new byte[0];
                    if (fingerprint.length != 32) {
                        throw new IllegalArgumentException("OFFERED <SHA-256(key || salt) hex> <callId>");
                    }
                    service.checkOffered(fingerprint, callId(f[2]));
                    write(out, "OK");
                }
                case "SIGN" -> {
                    byte[] digest = f.length == 2 ? HexFormat.of().parseHex(f[1]) : new byte[0];
                    if (digest.length != 32) {
                        throw new IllegalArgumentException("SIGN <32-byte SHA-256 digest, hex>");
                    }
                    write(out, "OK " + Base64.getEncoder().encodeToString(service.sign(digest)));
                }
                case "RESULT" -> write(out, "OK " + service.passport());
                case "TRUST" -> write(out, "OK " + Base64.getEncoder().encodeToString(service.resultVerificationKey()));
                case "DECISION" -> {
                    // the first format: the reason is everything after the peer URI, whatever its first word
                    String[] d = line.split(" ", 8);
                    if (d.length != 8 || !java.util.Set.of("IN", "OUT").contains(d[1])
                            || !java.util.Set.of("ACCEPT", "REJECT", "RESTRICT").contains(d[2])
                            || !LEVELS.contains(d[3]) || !LEVELS.contains(d[4])) {
                        throw new IllegalArgumentException("DECISION <IN|OUT> <ACCEPT|REJECT|RESTRICT> <level> <level>"
                                + " <callId> <peer URI> <reason>");
                    }
                    service.callDecision(d[1], d[2], d[6], d[3], d[4], callId(d[5]), d[7]);
                    write(out, "OK");
                }
                case "DECISION2" -> {
                    // the format with structured fields: its own verb, so no reason of the first is read as fields
                    String[] d = line.split(" ", 11);
                    if (d.length != 11 || !DecisionFields.WIRE.containsKey(d[7])
                            || !java.util.Set.of("IN", "OUT").contains(d[1])
                            || !java.util.Set.of("ACCEPT", "REJECT", "RESTRICT").contains(d[2])
                            || !LEVELS.contains(d[3]) || !LEVELS.contains(d[4])) {
                        throw new IllegalArgumentException("DECISION2 <IN|OUT> <ACCEPT|REJECT|RESTRICT> <level>"
                                + " <level> <callId> <peer URI> <ONE_HOP|END_TO_END> <evidence sha256 hex|->"
                                + " <result age s|-> <reason>");
                    }
                    service.callDecision(d[1], d[2], d[6], d[3], d[4], callId(d[5]), d[10],
                            DecisionFields.parse(d[7], d[8], d[9]));
                    write(out, "OK");
                }
                case "PHRASE" -> {
                    java.util.Optional<String> phrase = service.phrase();
                    if (phrase.isEmpty()) {
                        write(out, "ERR NO_PHRASE no phrase was set (tpmphone agent run --phrase-file)");
                    } else {
                        write(out, "OK " + Base64.getEncoder().encodeToString(phrase.get()
                                .getBytes(java.nio.charset.StandardCharsets.UTF_8)));
                    }
                }
                case "SOUND" -> {
                    if (f.length != 3 || !(f[1].equals("OPEN") || f[1].equals("CLOSE"))) {
                        throw new IllegalArgumentException("SOUND <OPEN|CLOSE> <callId>");
                    }
                    service.sound(f[1].equals("OPEN"), callId(f[2]));
                    write(out, "OK");
                }
                case "READY" -> {
                    if (f.length != 2 || f[1].length() > MAX_CALL_ID || !f[1].matches("sips?:[\\x21-\\x7e]+")) {
                        throw new IllegalArgumentException("READY <SIP URI, printable ASCII>");
                    }
                    service.ready(f[1]);
                    write(out, "OK");
                }
                default -> {
                    List<byte[]> chain = service.certificateChain();
                    if (chain.isEmpty()) {
                        write(out, "ERR NO_CERTIFICATE the server has not issued a device certificate yet");
                    } else {
                        List<String> parts = new ArrayList<>();
                        chain.forEach(c -> parts.add(Base64.getEncoder().encodeToString(c)));
                        write(out, "OK " + String.join(",", parts));
                    }
                }
            }
        } catch (KeystoreException e) {
            write(out, "ERR " + e.reason().name() + " " + oneLine(e.getMessage()));
        } catch (IllegalArgumentException e) {
            write(out, "ERR BAD_REQUEST " + oneLine(e.getMessage()));
        } catch (SoundGrant.NotAcceptedException e) {
            write(out, "ERR NOT_ACCEPTED " + oneLine(e.getMessage()));
        } catch (UnsupportedOperationException | IllegalStateException e) {
            write(out, "ERR UNAVAILABLE " + oneLine(e.getMessage()));
        } catch (Exception e) {
            LOG.warn("broker: {} failed: {}", f[0], e.toString());
            write(out, "ERR FAILED " + e.getClass().getSimpleName());
        }
    }

    private static String callId(String s) {
        if (s.isEmpty() || s.length() > MAX_CALL_ID) {
            throw new IllegalArgumentException("a call id is 1.." + MAX_CALL_ID + " characters");
        }
        return s;
    }

    private static String oneLine(String s) {
        String t = s == null ? "" : s.replaceAll("[\\r\\n]+", " ");
        return t.length() > 1000 ? t.substring(0, 1000) : t;
    }

    private static String readLine(BufferedReader in) throws IOException {
        StringBuilder s = new StringBuilder();
        for (int c; (c = in.read()) >= 0; ) {
            if (c == '\n') {
                return s.toString();
            }
            if (s.length() >= MAX_LINE) {
                throw new IOException("broker request longer than " + MAX_LINE + " characters");
            }
            s.append((char) c);
        }
        return s.length() == 0 ? null : s.toString();
    }

    private static void write(OutputStream out, String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** Whether the child has connected. */
    public boolean childConnected() {
        return claimed.get();
    }

    @Override
    public void close() throws IOException {
        server.close();
        deadlines.shutdownNow();
        SocketChannel s = session;
        if (s != null) {
            s.close();
        }
        Files.deleteIfExists(socket);
    }

    /**
     * A call decision's structured fields, as the server's {@code CALL_DECISION} record takes them: how the far end's
     * level was established ({@code "one hop"}: the connection the SIP came over; {@code "end-to-end DTLS"}: evidence
     * inside the call's DTLS association), the SHA-256 of the evidence appraised (lower-case hex) and how old the
     * attestation result the side relied on was when it decided, in seconds.
     */
    public record DecisionFields(String established, java.util.Optional<String> evidenceSha256,
                                 java.util.Optional<Long> resultAgeSeconds) {
        /** The wire's tokens for {@link #established} (it has spaces). */
        static final java.util.Map<String, String> WIRE = java.util.Map.of("ONE_HOP", "one hop",
                "END_TO_END", "end-to-end DTLS");
        private static final java.util.regex.Pattern SHA256_HEX = java.util.regex.Pattern.compile("[0-9a-f]{64}");
        /** Largest result age taken (the server's limit). */
        static final long MAX_AGE_SECONDS = 1_000_000_000L;

        public DecisionFields {
            java.util.Objects.requireNonNull(established, "established");
            java.util.Objects.requireNonNull(evidenceSha256, "evidenceSha256");
            java.util.Objects.requireNonNull(resultAgeSeconds, "resultAgeSeconds");
            if (!WIRE.containsValue(established)) {
                throw new IllegalArgumentException("established is one of " + WIRE.values());
            }
            if (evidenceSha256.isPresent() && !SHA256_HEX.matcher(evidenceSha256.get()).matches()) {
                throw new IllegalArgumentException("the evidence digest is 64 lower-case hex digits");
            }
            if (resultAgeSeconds.isPresent() && (resultAgeSeconds.get() < 0
                    || resultAgeSeconds.get() > MAX_AGE_SECONDS)) {
                throw new IllegalArgumentException("the result age is 0.." + MAX_AGE_SECONDS + " seconds");
            }
        }

        /** From the wire's three words ({@code -} for an absent digest or age). */
        static DecisionFields parse(String established, String evidence, String age) {
            long seconds = -1;
            if (!age.equals("-")) {
                if (!age.matches("[0-9]{1,10}")) {
                    throw new IllegalArgumentException("the result age is a number of seconds or -");
                }
                seconds = Long.parseLong(age);
            }
            return new DecisionFields(WIRE.get(established),
                    evidence.equals("-") ? java.util.Optional.empty() : java.util.Optional.of(evidence),
                    seconds < 0 ? java.util.Optional.empty() : java.util.Optional.of(seconds));
        }
    }
}
