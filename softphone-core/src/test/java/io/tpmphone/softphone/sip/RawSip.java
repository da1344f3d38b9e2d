package io.tpmphone.softphone.sip;

import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsClient;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * A SIP peer that writes raw messages, as an attacker does: over a plain TCP or an attested TLS connection from a
 * chosen loopback address, with a reader thread that collects every response (and every request the phone sends on
 * the connection) and notices when the phone closes the connection.
 */
final class RawSip implements AutoCloseable {
    private static final Pattern STATUS = Pattern.compile("^SIP/2\\.0 (\\d{3}) ");
    private static final Pattern CALL_ID = Pattern.compile("(?mi)^(?:Call-ID|i) *: *(\\S+)");
    private static final Pattern LENGTH = Pattern.compile("(?mi)^(?:Content-Length|l) *: *(\\d+)");

    /** One response as it came: its status, its Call-ID and its bytes. */
    record Response(int status, String callId, String text) {
    }

    /** One request the phone sent on this connection: its method, its Call-ID and its bytes. */
    record Request(String method, String callId, String text) {
    }

    private static final Pattern METHOD = Pattern.compile("^([A-Z]+) \\S+ SIP/2\\.0\r\n");

    private final Socket socket;
    private final List<Response> responses = new CopyOnWriteArrayList<>();
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    /** Final responses by Call-ID (the first one). */
    private final Map<String, Response> finals = new ConcurrentHashMap<>();
    private final CompletableFuture<String> closedByPeer = new CompletableFuture<>();
    /** CRLFs the phone sent outside a message: its answers to our CRLF CRLF keep-alives (RFC 5626 §3.5.1). */
    private final java.util.concurrent.atomic.AtomicInteger keepAliveAnswers = new java.util.concurrent.atomic.AtomicInteger();

    private RawSip(Socket socket) {
        this.socket = socket;
        Thread reader = new Thread(this::read, "raw-sip-reader-" + socket.getLocalSocketAddress());
        reader.setDaemon(true);
        reader.start();
    }

    /** A connection the test accepted (plain or attested TLS, already handshaken), read as this one. */
    static RawSip accepted(Socket socket) {
        return new RawSip(socket);
    }

    /** A plain TCP connection from {@code from} to {@code port} on loopback. */
    static RawSip tcp(InetAddress from, int port) throws IOException {
        Socket s = new Socket();
        s.bind(new InetSocketAddress(from, 0));
        s.connect(new InetSocketAddress(TestHosts.LOOPBACK, port), 5_000);
        return new RawSip(s);
    }

    /** A plain TCP connection from {@code from} (an address and port of our choosing) to {@code port} on loopback. */
    static RawSip tcp(InetSocketAddress from, int port) throws IOException {
        Socket s = new Socket();
        s.setReuseAddress(true);
        s.bind(from);
        s.connect(new InetSocketAddress(TestHosts.LOOPBACK, port), 5_000);
        return new RawSip(s);
    }

    /** An attested TLS connection from {@code from} to {@code port} on loopback, handshaken with {@code tls}. */
    static RawSip tls(InetAddress from, int port, AttestedTlsConfig tls) throws IOException {
        Socket raw = new Socket();
        raw.bind(new InetSocketAddress(from, 0));
        raw.connect(new InetSocketAddress(TestHosts.LOOPBACK, port), 5_000);
        raw.setSoTimeout(10_000);
        AttestedSslSocket s = new AttestedSslSocket(raw, true, () -> new AttestedTlsClient(
                new JcaTlsCryptoProvider().create(new SecureRandom()), tls));
        s.startHandshake();
        raw.setSoTimeout(0);
        return new RawSip(s);
    }

    /** The transport to name in a Via. */
    String transport() {
        return socket instanceof AttestedSslSocket ? "TLS" : "TCP";
    }

    /** Our address as a Via names it, {@code 127.0.0.2:40000}. */
    String via() {
        return socket.getLocalAddress().getHostAddress() + ":" + socket.getLocalPort();
    }

    /** Our port. */
    int localPort() {
        return socket.getLocalPort();
    }

    /** Closes the connection with a reset (no FIN): the phone's next write on it fails. */
    void reset() throws IOException {
        socket.setSoLinger(true, 0);
        socket.close();
    }

    void send(byte[] message) throws IOException {
        socket.getOutputStream().write(message);
        socket.getOutputStream().flush();
    }

    void send(String message) throws IOException {
        send(message.getBytes(StandardCharsets.UTF_8));
    }

    List<Response> responses() {
        return List.copyOf(responses);
    }

    Map<String, Response> finals() {
        return Map.copyOf(finals);
    }

    /** The requests the phone sent on this connection (a BYE, an in-dialog request). */
    List<Request> requests() {
        return List.copyOf(requests);
    }

    /** How many CRLF keep-alive answers the phone sent. */
    int keepAliveAnswers() {
        return keepAliveAnswers.get();
    }

    /** Completes (with what ended the connection) once the phone closed it: end of stream or a reset. */
    CompletableFuture<String> closedByPeer() {
        return closedByPeer;
    }

    private void read() {
        ByteArrayOutputStream pending = new ByteArrayOutputStream();
        byte[] buf = new byte[65_536];
        try {
            InputStream in = socket.getInputStream();
            while (true) {
                int n = in.read(buf);
                if (n < 0) {
                    closedByPeer.complete("end of stream");
                    return;
                }
                pending.write(buf, 0, n);
                byte[] all = pending.toByteArray();
                int used = parse(all);
                pending.reset();
                pending.write(all, used, all.length - used);
            }
        } catch (IOException e) {
            closedByPeer.complete(socket.isClosed() ? "closed by the test" : e.toString());
        }
    }

    /** Takes every complete message from {@code all}; how many bytes they were. */
    private int parse(byte[] all) {
        String text = new String(all, StandardCharsets.ISO_8859_1);
        int at = 0;
        while (true) {
            while (text.startsWith("\r\n", at)) {
                at += 2; // keep-alive answers
                keepAliveAnswers.incrementAndGet();
            }
            int end = text.indexOf("\r\n\r\n", at);
            if (end < 0) {
                return at;
            }
            String head = text.substring(at, end + 4);
            Matcher len = LENGTH.matcher(head);
            int body = len.find() ? Integer.parseInt(len.group(1)) : 0;
            if (end + 4 + body > text.length()) {
                return at;
            }
            String message = text.substring(at, end + 4 + body);
            at = end + 4 + body;
            Matcher st = STATUS.matcher(message);
            Matcher id = CALL_ID.matcher(message);
            Matcher method = METHOD.matcher(message);
            if (method.find() && id.find()) {
                requests.add(new Request(method.group(1), id.group(1), message));
                continue;
            }
            id.reset();
            if (st.find() && id.find()) {
                Response r = new Response(Integer.parseInt(st.group(1)), id.group(1), message);
                responses.add(r);
                if (r.status() >= 200) {
                    finals.putIfAbsent(r.callId(), r);
                }
            }
        }
    }

    /**
     * An INVITE from {@code from} (a SIP URI) with an SDES offer, its Via naming {@code via} over {@code transport}.
     */
    static String invite(String callId, String from, String transport, String via) {
        String sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio 40000 RTP/SAVP 0\r\n"
                + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        return "INVITE sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/" + transport + " " + via + ";rport;branch=z9hG4bK" + token(callId) + "\r\n"
                + "Max-Forwards: 70\r\n"
                + "To: <sip:victim@127.0.0.1>\r\nFrom: <" + from + ">;tag=f" + token(callId) + "\r\n"
                + "Call-ID: " + callId + "\r\nCSeq: 1 INVITE\r\n"
                + "Contact: <sip:flood@" + via + ";transport=" + transport.toLowerCase(java.util.Locale.ROOT) + ">\r\n"
                + "Content-Type: application/sdp\r\nContent-Length: " + sdp.length() + "\r\n\r\n" + sdp;
    }

    /** An OPTIONS, to see that the phone still answers on this connection. */
    static String options(String callId, String transport, String via) {
        return request("OPTIONS", callId, transport, via);
    }

    /** A request of {@code method} outside any call (no To tag, nothing before it), without a body. */
    static String request(String method, String callId, String transport, String via) {
        return method + " sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/" + transport + " " + via + ";rport;branch=z9hG4bK" + method.charAt(0)
                + token(callId) + "\r\nMax-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\n"
                + "From: <sip:probe@probe.test>;tag=p1\r\nCall-ID: " + callId + "\r\nCSeq: 1 " + method + "\r\n"
                + "Contact: <sip:probe@" + via + ">\r\nContent-Length: 0\r\n\r\n";
    }

    /** {@code s} as a SIP token (a branch or tag), one to one for the Call-IDs the tests make. */
    private static String token(String s) {
        return s.replaceAll("[^A-Za-z0-9.-]", ".");
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }

    @Override
    public String toString() {
        return "RawSip[" + transport() + " " + socket.getLocalSocketAddress() + " -> " + socket.getRemoteSocketAddress()
                + ", " + responses.size() + " responses]";
    }
}
