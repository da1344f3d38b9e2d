package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import io.tpmphone.swtpm.testing.TestCertificateAuthority;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A software host's one connection against real TLS servers on loopback (the JDK's HTTPS server; certificates from a
 * real openssl CA): cycles reuse one connection (one handshake), an idle one past the keep-alive is replaced, a
 * chunked answer is read, and a server that does not answer or answers too much is an error within the deadline.
 */
@Timeout(60)
class HostConnectionTest {
    private static final Duration LONG = Duration.ofSeconds(90);

    @TempDir
    static Path dir;
    private static SSLContext serverTls;
    private static SSLContext clientTls;

    private final List<AutoCloseable> started = new ArrayList<>();

    @BeforeAll
    static void tls() throws Exception {
        TestCertificateAuthority ca = TestCertificateAuthority.create(dir.resolve("ca"), "tpmphone test CA");
        TestCertificateAuthority.Issued loopback = ca.issue("127.0.0.1", "localhost");
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        char[] password = "test".toCharArray();
        String key = Files.readString(loopback.key(), StandardCharsets.US_ASCII)
                .replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        ks.setKeyEntry("server", KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(
                Base64.getDecoder().decode(key))), password, certificates(loopback.chain()).toArray(
                new X509Certificate[0]));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        serverTls = SSLContext.getInstance("TLS");
        serverTls.init(kmf.getKeyManagers(), null, null);
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("ca", certificates(ca.certificate()).get(0));
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        clientTls = SSLContext.getInstance("TLSv1.3");
        clientTls.init(null, tmf.getTrustManagers(), null);
    }

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable c : started) {
            c.close();
        }
    }

    /** The JDK's HTTPS server echoing the request's body; chunked when {@code chunked}; records client ports. */
    private URI echo(Set<Integer> clientPorts, boolean chunked) throws IOException {
        HttpsServer s = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
        s.setHttpsConfigurator(new HttpsConfigurator(serverTls));
        s.createContext("/", exchange -> {
            clientPorts.add(exchange.getRemoteAddress().getPort());
            byte[] body;
            try (InputStream in = exchange.getRequestBody()) {
                body = ("{\"echo\":" + new String(in.readAllBytes(), StandardCharsets.UTF_8) + "}")
                        .getBytes(StandardCharsets.UTF_8);
            }
            exchange.sendResponseHeaders(201, chunked ? 0 : body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        s.start();
        started.add(() -> s.stop(0));
        return URI.create("https://127.0.0.1:" + s.getAddress().getPort());
    }

    @Test
    void cyclesReuseOneConnection_oneHandshake() throws Exception {
        Set<Integer> ports = ConcurrentHashMap.newKeySet();
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(), echo(ports, false), LONG)) {
            for (int i = 0; i < 3; i++) {
                HostConnection.Response r = c.post("/v1/nonces", "{\"cycle\":" + i + "}", Duration.ofSeconds(10));
                assertEquals(201, r.status(), "status of request " + i + ": " + r);
                assertEquals("{\"echo\":{\"cycle\":" + i + "}}", r.body(), "the echoed body of request " + i);
            }
            assertEquals(1, ports.size(), "three requests from one client port (one TCP connection): " + ports);
            assertEquals(1, c.opened(), "handshakes for three requests");
        }
    }

    @Test
    void aChunkedAnswerIsRead_andAConnectionIdlePastTheKeepAliveIsReplaced() throws Exception {
        Set<Integer> ports = ConcurrentHashMap.newKeySet();
        // A keep-alive of zero: any idle time at all is past it, so every request opens a new connection.
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(), echo(ports, true), Duration.ZERO)) {
            for (int i = 0; i < 2; i++) {
                HostConnection.Response r = c.post("/x", "[" + i + "]", Duration.ofSeconds(10));
                assertEquals("{\"echo\":[" + i + "]}", r.body(), "the chunked answer's body, request " + i);
            }
            assertEquals(2, c.opened(), "a connection per request when each was idle past the keep-alive");
            assertEquals(2, ports.size(), "two client ports: " + ports);
        }
    }

    /** A TLS server that completes handshakes and then sends {@code answer} (nothing if null), never closing. */
    private URI raw(byte[] answer) throws IOException {
        SSLServerSocket server = (SSLServerSocket) serverTls.getServerSocketFactory().createServerSocket(0, 16,
                InetAddress.getLoopbackAddress());
        List<Socket> accepted = new java.util.concurrent.CopyOnWriteArrayList<>();
        Thread t = new Thread(() -> {
            try {
                while (true) {
                    Socket s = server.accept();
                    accepted.add(s);
                    s.getInputStream().read(); // the handshake and the request's first bytes
                    if (answer != null) {
                        s.getOutputStream().write(answer);
                        s.getOutputStream().flush();
                    }
                }
            } catch (IOException e) {
                // closed by the test
            }
        }, "raw-tls-server");
        t.setDaemon(true);
        t.start();
        started.add(() -> {
            server.close();
            t.join(10_000);
            for (Socket s : accepted) {
                s.close();
            }
        });
        return URI.create("https://127.0.0.1:" + ((ServerSocket) server).getLocalPort());
    }

    @Test
    void aServerThatDoesNotAnswer_isATimeoutWithinTheDeadline_andTheConnectionIsNotReused() throws Exception {
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(), raw(null), LONG)) {
            long t0 = System.nanoTime();
            SocketTimeoutException e = assertThrows(SocketTimeoutException.class,
                    () -> c.post("/v1/appraisals", "{}", Duration.ofSeconds(2)));
            double seconds = (System.nanoTime() - t0) / 1e9;
            // Closing the timed-out connection is part of it: the JDK's SSLSocket.close drained unread input for the
            // socket's read timeout (another 2 s) until close() cleared it.
            assertTrue(seconds >= 1.95 && seconds < 3.5, "the time-out and the close came after " + seconds
                    + " s (deadline 2 s)");
            assertTrue(e.getMessage().startsWith("request timed out"), "the error says what happened: "
                    + e.getMessage());
            assertThrows(SocketTimeoutException.class, () -> c.post("/v1/appraisals", "{}", Duration.ofMillis(200)));
            assertEquals(2, c.opened(), "the timed-out connection was closed, the next request opened another");
        }
    }

    @Test
    void aServerThatNeverCompletesTheHandshake_isAConnectTimeout() throws Exception {
        // A plain TCP listener: the kernel accepts the connection, nobody answers the ClientHello.
        ServerSocket silent = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
        started.add(silent);
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(),
                URI.create("https://127.0.0.1:" + silent.getLocalPort()), LONG)) {
            SocketTimeoutException e = assertThrows(SocketTimeoutException.class,
                    () -> c.post("/v1/nonces", "{}", Duration.ofMillis(500)));
            assertTrue(e.getMessage().startsWith("connect and TLS handshake timed out"), "said: " + e.getMessage());
            assertEquals(0, c.opened(), "no connection counted as opened without a completed handshake");
        }
    }

    @Test
    void anOversizedOrMalformedAnswerIsAClearError() throws Exception {
        byte[] huge = ("HTTP/1.1 200 OK\r\nContent-Length: " + (HostConnection.MAX_BODY + 1) + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII);
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(), raw(huge), LONG)) {
            IOException e = assertThrows(IOException.class, () -> c.post("/x", "{}", Duration.ofSeconds(10)));
            assertTrue(e.getMessage().contains("at most " + HostConnection.MAX_BODY), "said: " + e.getMessage());
        }
        byte[] garbage = "SSH-2.0-not-http\r\n".getBytes(StandardCharsets.US_ASCII);
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(), raw(garbage), LONG)) {
            IOException e = assertThrows(IOException.class, () -> c.post("/x", "{}", Duration.ofSeconds(10)));
            assertTrue(e.getMessage().contains("not an HTTP/1.x status line"), "said: " + e.getMessage());
        }
        byte[] endless = ("HTTP/1.1 200 OK\r\nX: " + "a".repeat(HostConnection.MAX_LINE + 10))
                .getBytes(StandardCharsets.US_ASCII);
        try (HostConnection c = new HostConnection(clientTls.getSocketFactory(), raw(endless), LONG)) {
            IOException e = assertThrows(IOException.class, () -> c.post("/x", "{}", Duration.ofSeconds(10)));
            assertTrue(e.getMessage().contains("a line over"), "said: " + e.getMessage());
        }
    }

    private static List<X509Certificate> certificates(Path pem) throws Exception {
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(pem)) {
            for (java.security.cert.Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
        }
        return out;
    }
}
