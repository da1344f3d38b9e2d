package io.tpmphone.softphone.internal;

import io.tpmphone.softphone.BrokerRefusedException;
import io.tpmphone.softphone.SrtpKeyMaterial;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The softphone's side of the agent broker (see the agent's {@code Broker} for the protocol); the public face is
 * {@link io.tpmphone.softphone.AgentBroker}. JDK only: the measured child loads as little as it can. Replies are read
 * as bytes; a key reply is decoded from them and the buffers are wiped, so no key material is left in a
 * {@code String}. Every request must be written and answered within the timeout: a broker that does not answer in
 * time gets its connection closed (a late answer would otherwise be read as the answer to the next request), and
 * every later request fails at once. Not thread-safe: one request at a time.
 */
public final class BrokerClient implements AutoCloseable {
    private static final int MAX_REPLY = 1 << 20;

    private final SocketChannel channel;
    private final Selector selector;
    private final long timeoutNanos;
    private final Duration timeout;
    private final byte[] readBuffer = new byte[8192];
    private int readPosition;
    private int readLimit;
    /** Why the connection can no longer be used (a request timed out), or null. */
    private String broken;

    private BrokerClient(SocketChannel channel, Selector selector, Duration timeout) {
        this.channel = channel;
        this.selector = selector;
        this.timeout = timeout;
        this.timeoutNanos = timeout.toNanos();
    }

    /**
     * Connects and presents the one-time token; every request (this one included) must be answered within
     * {@code timeout}.
     */
    public static BrokerClient connect(Path socket, String token, Duration timeout) throws IOException {
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("the broker timeout must be positive, got " + timeout);
        }
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        Selector selector = null;
        BrokerClient c;
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
            ch.configureBlocking(false);
            selector = Selector.open();
            ch.register(selector, 0);
            c = new BrokerClient(ch, selector, timeout);
        } catch (IOException | RuntimeException e) {
            ch.close();
            if (selector != null) {
                selector.close();
            }
            throw e;
        }
        String answer;
        try {
            answer = c.request("HELLO " + token);
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
        if (!answer.equals("OK")) {
            c.close();
            throw new IOException("the agent broker refused us: " + answer);
        }
        return c;
    }

    /** A quote of the measured state over {@code binder}: fields akId, attest, signature, pcrs, values, log. */
    public Map<String, String> quote(byte[] binder) throws IOException {
        String answer = ok(request("QUOTE " + HexFormat.of().formatHex(binder)));
        Map<String, String> fields = new HashMap<>();
        for (String kv : answer.split(" ")) {
            int eq = kv.indexOf('=');
            if (eq > 0) {
                fields.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        return fields;
    }

    /** A fresh SRTP master key and salt for {@code callId} (no spaces) from the sealed keystore. */
    public SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
        checkWord(callId, "call id");
        send("SRTPKEY " + suite + " " + callId);
        byte[] reply = readReply();
        try {
            if (reply.length < 3 || reply[0] != 'O' || reply[1] != 'K' || reply[2] != ' ') {
                throw refusal(new String(reply, StandardCharsets.UTF_8));
            }
            int space = -1;
            for (int i = 3; i < reply.length; i++) {
                if (reply[i] == ' ') {
                    space = i;
                    break;
                }
            }
            if (space < 0) {
                throw new IOException("the agent broker's key reply is malformed");
            }
            ByteBuffer k = ByteBuffer.wrap(reply, 3, space - 3);
            ByteBuffer s = ByteBuffer.wrap(reply, space + 1, reply.length - space - 1);
            ByteBuffer key = Base64.getDecoder().decode(k);
            ByteBuffer salt = Base64.getDecoder().decode(s);
            byte[] keyBytes = new byte[key.remaining()];
            byte[] saltBytes = new byte[salt.remaining()];
            key.get(keyBytes);
            salt.get(saltBytes);
            wipe(key);
            wipe(salt);
            return SrtpKeyMaterial.of(keyBytes, saltBytes);
        } catch (IllegalArgumentException e) {
            throw new IOException("the agent broker's key reply is not base64", e);
        } finally {
            Arrays.fill(reply, (byte) 0);
        }
    }

    /** Asks the keystore whether a peer's SDES key was seen before; a replay is a {@link BrokerRefusedException}. */
    public void checkOffered(byte[] key, byte[] salt, String callId) throws IOException {
        checkWord(callId, "call id");
        byte[] both = new byte[key.length + salt.length];
        System.arraycopy(key, 0, both, 0, key.length);
        System.arraycopy(salt, 0, both, key.length, salt.length);
        byte[] fingerprint;
        try {
            fingerprint = java.security.MessageDigest.getInstance("SHA-256").digest(both);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        } finally {
            Arrays.fill(both, (byte) 0);
        }
        // Only the fingerprint crosses the socket: it is what the keystore remembers.
        ok(request("OFFERED " + HexFormat.of().formatHex(fingerprint) + " " + callId));
    }

    /** An ECDSA signature (DER) of a SHA-256 digest by the TPM-resident TLS identity key. */
    public byte[] sign(byte[] digest) throws IOException {
        return Base64.getDecoder().decode(ok(request("SIGN " + HexFormat.of().formatHex(digest))));
    }

    /** The device certificate and its CA, DER each. */
    public List<byte[]> certificates() throws IOException {
        List<byte[]> chain = new ArrayList<>();
        for (String c : ok(request("CERTS")).split(",")) {
            chain.add(Base64.getDecoder().decode(c));
        }
        return chain;
    }

    /** Reports a call decision for the attestation server's audit log (through the agent). */
    public void reportDecision(String direction, String action, String peerLevel, String requiredLevel,
                               String callId, String peerUri, String reason) throws IOException {
        checkWord(callId, "call id");
        checkWord(peerUri, "peer URI");
        ok(request("DECISION " + direction + " " + action + " " + peerLevel + " " + requiredLevel + " " + callId + " "
                + peerUri + " " + (reason.length() > 500 ? reason.substring(0, 500) : reason)
                .replaceAll("[\\r\\n]+", " ")));
    }

    /**
     * Reports a call decision with its structured fields: {@code endToEnd} (the far end's level came from evidence
     * inside the call's DTLS association, else from the SIP connection's handshake), the evidence digest (64
     * lower-case hex digits, or empty) and the age of the attestation result relied on (seconds, or negative when
     * unknown).
     */
    public void reportDecision(String direction, String action, String peerLevel, String requiredLevel,
                               String callId, String peerUri, boolean endToEnd, String evidenceSha256,
                               long resultAgeSeconds, String reason) throws IOException {
        checkWord(callId, "call id");
        checkWord(peerUri, "peer URI");
        if (!evidenceSha256.isEmpty() && !evidenceSha256.matches("[0-9a-f]{64}")) {
            throw new IllegalArgumentException("the evidence digest is 64 lower-case hex digits");
        }
        ok(request("DECISION2 " + direction + " " + action + " " + peerLevel + " " + requiredLevel + " " + callId + " "
                + peerUri + " " + (endToEnd ? "END_TO_END" : "ONE_HOP") + " "
                + (evidenceSha256.isEmpty() ? "-" : evidenceSha256) + " "
                + (resultAgeSeconds < 0 ? "-" : Long.toString(Math.min(resultAgeSeconds, 1_000_000_000L))) + " "
                + (reason.length() > 500 ? reason.substring(0, 500) : reason).replaceAll("[\\r\\n]+", " ")));
    }

    /** The attestation server's result-signing key (SubjectPublicKeyInfo, DER), to verify peers' passports. */
    public byte[] resultVerificationKey() throws IOException {
        return Base64.getDecoder().decode(ok(request("TRUST")));
    }

    /** Tells the agent that the softphone serves as {@code uri} (its SIP transports and control socket are up). */
    public void ready(String uri) throws IOException {
        checkWord(uri, "SIP URI");
        ok(request("READY " + uri));
    }

    /**
     * The person's phrase for the ring screen, unsealed by the agent's keystore for this measured softphone; empty
     * when none was set ({@code ERR NO_PHRASE}).
     */
    public java.util.Optional<String> phrase() throws IOException {
        try {
            byte[] utf8 = java.util.Base64.getDecoder().decode(ok(request("PHRASE")).trim());
            return java.util.Optional.of(new String(utf8, java.nio.charset.StandardCharsets.UTF_8));
        } catch (io.tpmphone.softphone.BrokerRefusedException e) {
            if (e.reason().equals("NO_PHRASE")) {
                return java.util.Optional.empty();
            }
            throw e;
        } catch (IllegalArgumentException e) {
            throw new IOException("the agent's phrase is not base64", e);
        }
    }

    /** A call's audio starts ({@code open}) or ended: the agent grants or withdraws the sound server socket. */
    public void sound(boolean open, String callId) throws IOException {
        checkWord(callId, "call id");
        ok(request("SOUND " + (open ? "OPEN " : "CLOSE ") + callId));
    }

    /** The host's latest signed attestation result (compact JWS), its passport for attested TLS. */
    public String passport() throws IOException {
        return ok(request("RESULT"));
    }

    private static void checkWord(String s, String what) {
        if (s.isEmpty() || s.chars().anyMatch(c -> c <= ' ' || c == 0x7f)) {
            throw new IllegalArgumentException("a " + what + " for the broker is one word without spaces");
        }
    }

    private static String ok(String answer) throws IOException {
        if (answer.equals("OK")) {
            return "";
        }
        if (!answer.startsWith("OK ")) {
            throw refusal(answer);
        }
        return answer.substring(3);
    }

    private static IOException refusal(String answer) {
        if (answer.startsWith("ERR ")) {
            String rest = answer.substring(4);
            int sp = rest.indexOf(' ');
            return new BrokerRefusedException(sp < 0 ? rest : rest.substring(0, sp), sp < 0 ? ""
                    : rest.substring(sp + 1));
        }
        return new IOException("the agent broker answered: " + answer);
    }

    private static void wipe(ByteBuffer b) {
        if (b.hasArray()) {
            Arrays.fill(b.array(), (byte) 0);
        }
    }

    private String request(String line) throws IOException {
        send(line);
        return new String(readReply(), StandardCharsets.UTF_8);
    }

    private void send(String line) throws IOException {
        usable();
        ByteBuffer b = ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8));
        long deadline = System.nanoTime() + timeoutNanos;
        while (b.hasRemaining()) {
            if (channel.write(b) == 0) {
                await(SelectionKey.OP_WRITE, deadline, "take our request");
            }
        }
    }

    private int nextByte(long deadline) throws IOException {
        if (readPosition == readLimit) {
            Arrays.fill(readBuffer, (byte) 0);
            readPosition = 0;
            readLimit = 0;
            ByteBuffer b = ByteBuffer.wrap(readBuffer);
            int n;
            while ((n = channel.read(b)) == 0) {
                await(SelectionKey.OP_READ, deadline, "answer");
            }
            if (n < 0) {
                return -1;
            }
            readLimit = n;
        }
        return readBuffer[readPosition++] & 0xff;
    }

    /**
     * Waits until the channel is ready for {@code op}, at most until {@code deadline}; past it the connection is
     * closed for good and this throws.
     */
    private void await(int op, long deadline, String what) throws IOException {
        SelectionKey key = channel.keyFor(selector);
        if (key == null || !key.isValid()) {
            throw new IOException("the connection to the agent broker is closed");
        }
        try {
            key.interestOps(op);
            while (true) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    broken = "the agent broker did not " + what + " within " + timeout.toMillis() + " ms";
                    close();
                    throw new SocketTimeoutException(broken + "; the connection to it is closed");
                }
                if (selector.select(Math.max(1, java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(left))) > 0) {
                    selector.selectedKeys().clear();
                    return;
                }
            }
        } catch (java.nio.channels.ClosedSelectorException | java.nio.channels.CancelledKeyException e) {
            // closed by another thread meanwhile (the softphone stopping)
            throw new IOException("the connection to the agent broker was closed", e);
        } finally {
            if (key.isValid()) {
                try {
                    key.interestOps(0);
                } catch (java.nio.channels.CancelledKeyException closedMeanwhile) {
                    // nothing left to reset
                }
            }
        }
    }

    private void usable() throws IOException {
        if (broken != null) {
            throw new IOException(broken + " earlier; the connection to it is closed");
        }
        if (!channel.isOpen()) {
            throw new IOException("the connection to the agent broker is closed");
        }
    }

    /** One reply line without its newline; every intermediate buffer is wiped (a key reply passes through). */
    private byte[] readReply() throws IOException {
        byte[] buf = new byte[256];
        int n = 0;
        long deadline = System.nanoTime() + timeoutNanos;
        try {
            for (int c; (c = nextByte(deadline)) >= 0; ) {
                if (c == '\n') {
                    Arrays.fill(readBuffer, 0, readPosition, (byte) 0);
                    return Arrays.copyOf(buf, n);
                }
                if (n == buf.length) {
                    if (n >= MAX_REPLY) {
                        throw new IOException("the agent broker's reply is longer than " + MAX_REPLY + " bytes");
                    }
                    byte[] bigger = Arrays.copyOf(buf, n * 2);
                    Arrays.fill(buf, (byte) 0);
                    buf = bigger;
                }
                buf[n++] = (byte) c;
            }
            throw new IOException("the agent broker closed the connection");
        } finally {
            Arrays.fill(buf, (byte) 0);
        }
    }

    @Override
    public void close() throws IOException {
        try {
            channel.close();
        } finally {
            selector.close();
        }
    }
}
