package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's connections are bounded ({@code --max-connections}): at the limit a new connection is not served
 * (it waits in the backlog), and the idle ones are closed sooner, so the waiting one gets its turn — a flood of
 * connections cannot take the heap, and a fleet bigger than the limit still gets through.
 */
@Timeout(120)
class ConnectionLimitTest {
    private static final int LIMIT = 16;

    @TempDir
    Path dir;

    @Test
    void atTheLimit_aNewConnectionWaits_untilOneCloses() throws Exception {
        // Idle connections are not cut during this test (60 s), so only the client's close lets the next one in.
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir)
                .adminToken("an-admin-token-for-this-test").maxConnections(LIMIT)
                .connectionLimitIdleTimeout(Duration.ofSeconds(60)).metricsPort(0).start()) {
            SSLContext tls = pinned(server);
            List<SSLSocket> held = holdTheLimit(tls, server);
            try {
                String metrics = scrape(server.metricsUri().orElseThrow());
                assertTrue(metrics.contains("tpmphone_https_connections{state=\"open\"} " + LIMIT + ".0")
                        && metrics.contains("tpmphone_https_connections{state=\"limit\"} " + LIMIT + ".0"),
                        "the metrics show " + LIMIT + " of " + LIMIT + " open: " + metrics.lines()
                                .filter(l -> l.startsWith("tpmphone_https")).toList());
                SSLSocket waiting = open(tls, server);
                waiting.setSoTimeout(60_000);
                CompletableFuture<Void> handshake = CompletableFuture.runAsync(() -> {
                    try {
                        waiting.startHandshake();
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                });
                assertThrows(TimeoutException.class, () -> handshake.get(1, TimeUnit.SECONDS),
                        "with " + LIMIT + " connections open, the next one is not served");
                held.remove(0).close();
                handshake.get(30, TimeUnit.SECONDS);
                assertEquals(200, health(waiting), "GET /health on the connection that waited for a close");
                waiting.close();
            } finally {
                for (SSLSocket s : held) {
                    s.close();
                }
            }
        }
    }

    @Test
    void atTheLimit_theServerClosesIdleConnections_soTheNextGetsItsTurn() throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir)
                .adminToken("an-admin-token-for-this-test").maxConnections(LIMIT)
                .connectionLimitIdleTimeout(Duration.ofMillis(500)).start()) {
            SSLContext tls = pinned(server);
            List<SSLSocket> held = holdTheLimit(tls, server);
            try {
                // Nobody closes anything: the server closes idle ones (500 ms here, 5 s by default), the next is served.
                SSLSocket next = open(tls, server);
                next.setSoTimeout(30_000);
                next.startHandshake();
                assertEquals(200, health(next), "GET /health on the connection after the limit");
                next.close();
                int closedByServer = 0;
                for (SSLSocket s : held) {
                    s.setSoTimeout(100);
                    try {
                        if (s.getInputStream().read() < 0) {
                            closedByServer++;
                        }
                    } catch (SocketTimeoutException stillOpen) {
                        // not closed (yet)
                    } catch (IOException reset) {
                        closedByServer++;
                    }
                }
                assertTrue(closedByServer >= 1, "the server closed idle connections at the limit: " + closedByServer
                        + " of " + LIMIT + " held ones closed");
            } finally {
                for (SSLSocket s : held) {
                    s.close();
                }
            }
        }
    }

    /** {@link #LIMIT} connections, each served once (TLS and GET /health) and then held idle. */
    private static List<SSLSocket> holdTheLimit(SSLContext tls, AttestationServer server) throws IOException {
        List<SSLSocket> held = new ArrayList<>();
        for (int i = 0; i < LIMIT; i++) {
            SSLSocket s = open(tls, server);
            held.add(s);
            s.setSoTimeout(30_000);
            s.startHandshake();
            assertEquals(200, health(s), "GET /health on held connection " + i);
        }
        return held;
    }

    private static String scrape(java.net.URI metrics) throws Exception {
        java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(metrics).timeout(Duration.ofSeconds(10)).GET().build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "GET " + metrics + ": " + r.body());
        return r.body();
    }

    private static SSLContext pinned(AttestationServer server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, tmf.getTrustManagers(), null);
        return tls;
    }

    private static SSLSocket open(SSLContext tls, AttestationServer server) throws IOException {
        return (SSLSocket) tls.getSocketFactory().createSocket(server.uri().getHost(), server.uri().getPort());
    }

    /** One keep-alive GET /health on {@code s}; its status. */
    private static int health(SSLSocket s) throws IOException {
        s.getOutputStream().write(("GET /health HTTP/1.1\r\nHost: " + s.getInetAddress().getHostAddress()
                + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        s.getOutputStream().flush();
        StringBuilder head = new StringBuilder();
        var in = s.getInputStream();
        while (!head.toString().contains("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("closed after: " + head);
            }
            head.append((char) b);
        }
        String text = head.toString();
        int length = 0;
        for (String line : text.split("\r\n")) {
            if (line.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
                length = Integer.parseInt(line.substring(15).trim());
            }
        }
        in.readNBytes(length);
        return Integer.parseInt(text.substring(9, 12));
    }
}
