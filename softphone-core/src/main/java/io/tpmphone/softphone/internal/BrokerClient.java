package io.tpmphone.softphone.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The softphone's side of the agent broker (see the agent's {@code Broker} for the protocol). JDK only: the
 * measured child loads as little as it can. Replies are read as bytes; a key reply is decoded from them and the
 * buffers are wiped, so no key material is left in a {@code String}. Not thread-safe: one request at a time.
 */
public final class BrokerClient implements AutoCloseable {
    private static final int MAX_REPLY = 1 << 20;

    private final SocketChannel channel;
    private final InputStream in;
    private final OutputStream out;
    private final byte[] readBuffer = new byte[8192];
    private int readPosition;
    private int readLimit;

    /** The broker refused a request: {@link #reason()} is its REASON word (a keystore reason or BAD_REQUEST, ...). */
    public static final class RefusedException extends IOException {
        private static final long serialVersionUID = 1L;
        private final String reason;

        RefusedException(String reason, String message) {
            super(reason + ": " + message);
            this.reason = reason;
        }

        public String reason() {
            return reason;
        }
    }

    /** An SRTP master key and salt from the sealed keystore; {@link #close()} wipes them. */
    public static final class SrtpKeyMaterial implements AutoCloseable {
        private final byte[] key;
        private final byte[] salt;

        SrtpKeyMaterial(byte[] key, byte[] salt) {
            this.key = key;
            this.salt = salt;
        }

        /** Takes ownership of both arrays (wiped by {@link #close()}). */
        public static SrtpKeyMaterial of(byte[] key, byte[] salt) {
            return new SrtpKeyMaterial(key, salt);
        }

        /** The master key (the array itself: do not keep it beyond {@link #close()}). */
        public byte[] key() {
            return key;
        }

        public byte[] salt() {
            return salt;
        }

        @Override
        public void close() {
            Arrays.fill(key, (byte) 0);
            Arrays.fill(salt, (byte) 0);
        }

        @Override
        public String toString() {
            return "SrtpKeyMaterial[" + key.length + "+" + salt.length + " bytes]";
        }
    }

    private BrokerClient(SocketChannel channel) {
        this.channel = channel;
        this.in = Channels.newInputStream(channel);
        this.out = Channels.newOutputStream(channel);
    }

    /** Connects and presents the one-time token. */
    public static BrokerClient connect(Path socket, String token) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        BrokerClient c = new BrokerClient(ch);
        String answer = c.request("HELLO " + token);
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
            return new SrtpKeyMaterial(keyBytes, saltBytes);
        } catch (IllegalArgumentException e) {
            throw new IOException("the agent broker's key reply is not base64", e);
        } finally {
            Arrays.fill(reply, (byte) 0);
        }
    }

    /** Asks the keystore whether a peer's SDES key was seen before; a replay is a {@link RefusedException}. */
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

    /** The attestation server's result-signing key (SubjectPublicKeyInfo, DER), to verify peers' passports. */
    public byte[] resultVerificationKey() throws IOException {
        return Base64.getDecoder().decode(ok(request("TRUST")));
    }

    /** Tells the agent that the softphone serves as {@code uri} (its SIP transports and control socket are up). */
    public void ready(String uri) throws IOException {
        checkWord(uri, "SIP URI");
        ok(request("READY " + uri));
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
            return new RefusedException(sp < 0 ? rest : rest.substring(0, sp), sp < 0 ? "" : rest.substring(sp + 1));
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
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private int nextByte() throws IOException {
        if (readPosition == readLimit) {
            Arrays.fill(readBuffer, (byte) 0);
            readPosition = 0;
            readLimit = Math.max(0, in.read(readBuffer));
            if (readLimit == 0) {
                return -1;
            }
        }
        return readBuffer[readPosition++] & 0xff;
    }

    /** One reply line without its newline; every intermediate buffer is wiped (a key reply passes through). */
    private byte[] readReply() throws IOException {
        byte[] buf = new byte[256];
        int n = 0;
        try {
            for (int c; (c = nextByte()) >= 0; ) {
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
        channel.close();
    }
}
