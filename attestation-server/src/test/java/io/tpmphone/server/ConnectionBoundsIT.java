package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's connection bounds over real TLS connections to a real server: the bound on open connections holds
 * however many connections came and went before (a TLS connection counts once: Jetty 12.0's {@code ConnectionLimit}
 * let 48 in under a bound of 16 after 32 had closed), one client address cannot take every slot, and a client too
 * slow to send a request (slowloris) is cut off while prompt ones are served. Loopback is 127.0.0.0/8, so clients
 * bind 127.0.0.2, 127.0.0.3, … to be other addresses.
 */
@Timeout(180)
class ConnectionBoundsIT {
    private static final String ADMIN = "an-admin-token-for-this-test";
    /**
     * Where the deadlines are not under test: long enough that no connection here is cut by them, and, at the bound,
     * that held idle connections are not closed to make room (that idle timeout is the request timeout).
     */
    private static final Duration PATIENT = Duration.ofMinutes(10);
    /**
     * Where they are: short to watch, long enough for a TLS handshake and a request on a loaded CI machine (a
     * connection whose first request the server has not had within it is cut as a slow one).
     */
    private static final Duration DEADLINE = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    private final List<Socket> sockets = new ArrayList<>();
    private final ExecutorService clients = Executors.newCachedThreadPool();
    private final ScheduledExecutorService trickle = Executors.newSingleThreadScheduledExecutor();

    @AfterEach
    void closeClients() {
        trickle.shutdownNow();
        clients.shutdownNow();
        for (Socket s : sockets) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing is all that is asked of it
            }
        }
    }

    @Test
    void theBound_holdsAfterManyConnectionsCameAndWent_eachTlsConnectionCountingOnce() throws Exception {
        int bound = 16;
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN)
                .maxConnections(bound).requestTimeout(PATIENT).metricsPort(0).start()) {
            SSLContext tls = pinned(server);
            // Churn: 128 connections closed in each way a connection ends — by the client after a request, by the
            // server after a "Connection: close" request, after the handshake alone, before any TLS at all.
            for (int i = 0; i < 128; i++) {
                // From eight addresses, so that closes the server has not seen yet never meet the per-address bound.
                String from = "127.0.0." + (10 + i % 8);
                switch (i % 4) {
                    case 0 -> {
                        SSLSocket s = open(tls, server, from);
                        assertEquals(200, health(s, false), "churned connection " + i);
                        s.close();
                    }
                    case 1 -> {
                        SSLSocket s = open(tls, server, from);
                        assertEquals(200, health(s, true), "churned connection " + i + " (Connection: close)");
                        assertEquals(-1, s.getInputStream().read(), "the server closed churned connection " + i);
                        s.close();
                    }
                    case 2 -> {
                        SSLSocket s = open(tls, server, from);
                        s.startHandshake();
                        s.close();
                    }
                    default -> {
                        Socket plain = new Socket();
                        plain.bind(new InetSocketAddress(InetAddress.getByName(from), 0));
                        plain.connect(new InetSocketAddress(server.uri().getHost(), server.port()), 10_000);
                        plain.close();
                    }
                }
            }
            awaitMetric(server, "tpmphone_https_connections", 0, "every churned connection closed on the server");

            // The reviewer's probe: three times the bound try at once; exactly the bound is served.
            List<CompletableFuture<Integer>> tries = new ArrayList<>();
            List<SSLSocket> trying = new ArrayList<>();
            for (int i = 0; i < 3 * bound; i++) {
                SSLSocket s = open(tls, server, "127.0.0." + (2 + i % 8)); // under the per-address bound
                s.setSoTimeout(120_000);
                trying.add(s);
                tries.add(CompletableFuture.supplyAsync(() -> healthOrFailure(s), clients));
            }
            await(() -> served(tries) >= bound, Duration.ofSeconds(60),
                    () -> served(tries) + " of " + tries.size() + " served, waiting for " + bound);
            // What a drifting bound shows at once: more served. Two seconds for any further one to be served.
            assertThrows(TimeoutException.class, () -> CompletableFuture.anyOf(pending(tries)).get(2, TimeUnit.SECONDS),
                    () -> "with " + bound + " open, no further connection is served: " + served(tries) + " served");
            assertEquals(bound, served(tries), "served with a bound of " + bound + " after 128 churned connections");
            String metrics = scrape(server);
            assertEquals(bound, metric(metrics, "tpmphone_https_connections"), "open on the server: " + metrics);
            assertEquals(bound, metric(metrics, "tpmphone_https_connections_max"), "the bound: " + metrics);
            assertTrue(metric(metrics, "tpmphone_https_connection_limit_reached_total") >= 1,
                    "the bound was reached: " + metrics);

            // One closes: exactly one more of those waiting gets its turn, and no more.
            trying.get(firstServed(tries)).close();
            await(() -> served(tries) >= bound + 1, Duration.ofSeconds(60),
                    () -> "after one close, " + served(tries) + " served of " + tries.size());
            assertThrows(TimeoutException.class, () -> CompletableFuture.anyOf(pending(tries)).get(2, TimeUnit.SECONDS),
                    () -> "after one close, one more is served and no other: " + served(tries) + " served");
            assertEquals(bound, metric(scrape(server), "tpmphone_https_connections"),
                    "open on the server after one close and one served");
        }
    }

    /**
     * A stop at the bound: Jetty's graceful stop cuts the open connections' idle timeout to the shutdown one, and the
     * first close below the bound must not put the connector's back on the others (review rC: the stop then waited
     * out its whole 5 s stop timeout and failed with a TimeoutException, logged as "stopping Jetty").
     */
    @Test
    void aStopAtTheBound_closesTheIdleConnections_withoutWaitingOutTheStopTimeout() throws Exception {
        ch.qos.logback.classic.Logger log = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(
                AttestationServer.class);
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines =
                new ch.qos.logback.core.read.ListAppender<>();
        lines.start();
        log.addAppender(lines);
        try {
            AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN)
                    .maxConnections(2).requestTimeout(PATIENT).metricsPort(0).start();
            List<SSLSocket> held = new ArrayList<>();
            try {
                SSLContext tls = pinned(server);
                for (int i = 0; i < 2; i++) {
                    SSLSocket s = open(tls, server, "127.0.0." + (20 + i));
                    s.setSoTimeout(60_000);
                    assertEquals(200, health(s, false), "held connection " + i);
                    held.add(s);
                }
                awaitMetric(server, "tpmphone_https_connections", 2, "both held connections open at the bound");
            } finally {
                server.close();
            }
            for (int i = 0; i < held.size(); i++) {
                assertEquals(-1, held.get(i).getInputStream().read(), "the stop closed held connection " + i);
            }
            List<String> warned;
            synchronized (lines) {
                warned = lines.list.stream().map(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage)
                        .filter(m -> m.startsWith("stopping Jetty")).toList();
            }
            assertEquals(List.of(), warned, "the stop at the bound finished within Jetty's stop timeout");
        } finally {
            log.detachAppender(lines);
        }
    }

    @Test
    void oneAddress_cannotTakeAllTheSlots_andTheOthersAreStillServed() throws Exception {
        int bound = 16;
        int perAddress = 4;
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN)
                .maxConnections(bound).maxConnectionsPerAddress(perAddress).requestTimeout(PATIENT)
                .metricsPort(0).start()) {
            SSLContext tls = pinned(server);
            List<SSLSocket> first = new ArrayList<>();
            for (int i = 0; i < perAddress; i++) {
                first.add(open(tls, server, "127.0.0.2"));
                assertEquals(200, health(first.get(i), false), "127.0.0.2's connection " + i);
            }
            // 127.0.0.2 keeps trying: each further connection is closed at accept, before the TLS handshake, and
            // costs no slot of the bound (the accept was counted and uncounted).
            int refused = 20;
            for (int i = 0; i < refused; i++) {
                SSLSocket s = open(tls, server, "127.0.0.2");
                s.setSoTimeout(30_000);
                IOException closed = assertThrows(IOException.class, s::startHandshake,
                        "127.0.0.2's connection " + (perAddress + i) + " over the per-address bound");
                assertTrue(closed.getMessage() != null, "refused: " + closed);
            }
            // Every other slot is still there for other addresses: 12 more, from three of them.
            for (int i = 0; i < bound - perAddress; i++) {
                String from = "127.0.0." + (3 + i / perAddress);
                assertEquals(200, health(open(tls, server, from), false), from + "'s connection, " + (perAddress + i)
                        + " open in all");
            }
            String metrics = scrape(server);
            assertEquals(refused, metric(metrics, "tpmphone_https_connections_refused_total{reason=\"address_limit\"}"),
                    "refusals counted: " + metrics);
            assertEquals(bound, metric(metrics, "tpmphone_https_connections"), "open: " + metrics);
            assertEquals(perAddress, metric(metrics, "tpmphone_https_connections_per_address_max"), metrics);
            // Closing 127.0.0.2's connections gives it its slots back.
            for (SSLSocket s : first) {
                s.close();
            }
            awaitMetric(server, "tpmphone_https_connections", bound - perAddress, "127.0.0.2's connections closed");
            assertEquals(200, health(open(tls, server, "127.0.0.2"), false), "127.0.0.2 after its connections closed");
        }
    }

    @Test
    void aSlowlorisHeader_aSilentConnection_andATrickledBody_areCut_whileAPromptKeepAliveConnectionIsServed()
            throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN)
                .requestTimeout(DEADLINE).metricsPort(0).start()) {
            SSLContext tls = pinned(server);
            SSLSocket prompt = open(tls, server, "127.0.0.2");
            assertEquals(200, health(prompt, false), "the prompt client's first request");

            // A header a byte every 300 ms: each byte resets Jetty's idle timeout (120 s), so only the deadline ends
            // it. Each time is taken before the connection is opened, so the deadline cannot be seen to pass early.
            long headerStart = System.nanoTime();
            SSLSocket header = open(tls, server, "127.0.0.3");
            header.startHandshake();
            write(header, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            trickleForever(header, "X-Slow: ");
            // Nothing at all: not even a TLS ClientHello.
            long silentStart = System.nanoTime();
            Socket silent = new Socket();
            sockets.add(silent);
            silent.connect(new InetSocketAddress(server.uri().getHost(), server.port()), 10_000);
            // A prompt header with a body a byte every 300 ms (the API reads bodies whole, on a server thread).
            long bodyStart = System.nanoTime();
            SSLSocket body = open(tls, server, "127.0.0.4");
            write(body, "POST /v1/appraisals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 1000\r\n\r\n{");
            trickleForever(body, "\"");

            double headerClosed = secondsUntilClosed(header, headerStart);
            double silentClosed = secondsUntilClosed(silent, silentStart);
            double bodyClosed = secondsUntilClosed(body, bodyStart);
            // The deadline is 5 s, checked each second; not before 5 s, and well before any idle timeout (120 s).
            for (double[] seen : new double[][] {{headerClosed}, {silentClosed}, {bodyClosed}}) {
                assertTrue(seen[0] >= 5 && seen[0] < 60, "closed after " + seen[0] + " s with a 5 s deadline"
                        + String.format(Locale.ROOT, " (header %.1f s, silent %.1f s, body %.1f s)", headerClosed,
                        silentClosed, bodyClosed));
            }
            String metrics = scrape(server);
            assertEquals(2, metric(metrics, "tpmphone_https_connections_refused_total{reason=\"slow_first_request\"}"),
                    "the header and the silent connection: " + metrics);
            assertEquals(1, metric(metrics, "tpmphone_https_connections_refused_total{reason=\"slow_body\"}"),
                    "the body: " + metrics);
            // The prompt client's connection was idle longer than the deadline meanwhile: an idle keep-alive
            // connection is not a slow request, and its next request is served on it.
            assertEquals(200, health(prompt, false), "the prompt client's second request, on the same connection,"
                    + " after " + headerClosed + " s idle");
            assertEquals(0, metric(scrape(server),
                    "tpmphone_https_connections_refused_total{reason=\"slow_next_request\"}"),
                    "the prompt connection was not cut");
        }
    }

    @Test
    void bytesAfterARequest_thatNeverMakeTheNextOne_areCut() throws Exception {
        // When the bound is reached the connections open till then idle out after the request timeout instead of
        // 120 s, which makes "idle timeout + request timeout" short enough to see here: 5 s + 5 s.
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN)
                .maxConnections(2).requestTimeout(DEADLINE).metricsPort(0).start()) {
            SSLContext tls = pinned(server);
            SSLSocket slow = open(tls, server, "127.0.0.2");
            long start = System.nanoTime(); // before the request ends: the deadline counts from its end
            assertEquals(200, health(slow, false), "a whole request first");
            write(slow, "GET /health HTTP/1.1\r\n");
            trickleForever(slow, "X-Slow: ");
            SSLSocket other = open(tls, server, "127.0.0.3");
            assertEquals(200, health(other, false), "the second connection, which reaches the bound of 2");
            double closed = secondsUntilClosed(slow, start);
            assertTrue(closed >= 10 && closed < 60, "closed " + closed + " s after its request, with an idle timeout"
                    + " of 5 s at the bound and a 5 s deadline");
            String metrics = scrape(server);
            assertEquals(1, metric(metrics, "tpmphone_https_connections_refused_total{reason=\"slow_next_request\"}"),
                    "counted as a slow next request: " + metrics);
            assertEquals(200, health(other, false), "the prompt connection is still served");
        }
    }

    // ------------------------------------------------------------------------------------------------ helpers

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

    /** A TLS socket to the server from {@code localAddress} (connected, handshake not started). */
    private SSLSocket open(SSLContext tls, AttestationServer server, String localAddress) throws IOException {
        Socket tcp = new Socket();
        sockets.add(tcp);
        tcp.bind(new InetSocketAddress(InetAddress.getByName(localAddress), 0));
        tcp.connect(new InetSocketAddress(server.uri().getHost(), server.port()), 10_000);
        SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket(tcp, server.uri().getHost(), server.port(), true);
        sockets.add(s);
        s.setSoTimeout(30_000);
        return s;
    }

    private static void write(Socket s, String text) throws IOException {
        OutputStream out = s.getOutputStream();
        out.write(text.getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    /** Writes one byte of {@code text} every 300 ms, round and round, until the connection fails. */
    private void trickleForever(Socket s, String text) {
        int[] next = {0};
        trickle.scheduleWithFixedDelay(() -> {
            try {
                write(s, String.valueOf(text.charAt(next[0]++ % text.length())));
            } catch (IOException closed) {
                throw new IllegalStateException("closed", closed); // ends this task
            }
        }, 300, 300, TimeUnit.MILLISECONDS);
    }

    /** Blocks until the server closes {@code s} (end of stream or reset); seconds since {@code startNanos}. */
    private static double secondsUntilClosed(Socket s, long startNanos) throws IOException {
        s.setSoTimeout(60_000);
        InputStream in = s.getInputStream();
        try {
            int b;
            do {
                b = in.read();
            } while (b >= 0);
        } catch (SocketTimeoutException e) {
            throw new AssertionError("still open after 60 s", e);
        } catch (IOException closed) {
            // reset or TLS failure: closed by the server all the same
        }
        return (System.nanoTime() - startNanos) / 1e9;
    }

    /** One keep-alive (or {@code close}) GET /health on {@code s}; its status. */
    private static int health(SSLSocket s, boolean close) throws IOException {
        write(s, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n");
        StringBuilder head = new StringBuilder();
        InputStream in = s.getInputStream();
        while (head.indexOf("\r\n\r\n") < 0) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("closed after: " + head);
            }
            head.append((char) b);
        }
        int length = 0;
        for (String line : head.toString().split("\r\n")) {
            if (line.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
                length = Integer.parseInt(line.substring(15).trim());
            }
        }
        in.readNBytes(length);
        return Integer.parseInt(head.substring(9, 12));
    }

    /** The status of GET /health after the handshake, or -1 if the connection failed. */
    private static int healthOrFailure(SSLSocket s) {
        try {
            s.startHandshake();
            return health(s, false);
        } catch (IOException e) {
            return -1;
        }
    }

    private static int served(List<CompletableFuture<Integer>> tries) {
        return (int) tries.stream().filter(f -> f.isDone() && f.join() == 200).count();
    }

    private static int firstServed(List<CompletableFuture<Integer>> tries) {
        for (int i = 0; i < tries.size(); i++) {
            if (tries.get(i).isDone() && tries.get(i).join() == 200) {
                return i;
            }
        }
        throw new AssertionError("none served");
    }

    private static CompletableFuture<?>[] pending(List<CompletableFuture<Integer>> tries) {
        // Only waiting connections can still be served: a refused one has failed (-1) already.
        return tries.stream().filter(f -> !f.isDone()).toArray(CompletableFuture[]::new);
    }

    private static void await(BooleanSupplier condition, Duration deadline,
                              java.util.function.Supplier<String> state) throws InterruptedException {
        io.tpmphone.swtpm.testing.Await.until("a condition of the test", deadline, condition::getAsBoolean,
                state::get);
    }

    private static void awaitMetric(AttestationServer server, String name, double value, String what)
            throws Exception {
        String[] last = {""};
        await(() -> {
            try {
                last[0] = scrape(server);
                return metric(last[0], name) == value;
            } catch (Exception e) {
                return false;
            }
        }, Duration.ofSeconds(30), () -> what + ": " + name + " should be " + value + " in " + last[0]);
    }

    private static String scrape(AttestationServer server) throws Exception {
        java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(server.metricsUri().orElseThrow())
                        .timeout(Duration.ofSeconds(10)).GET().build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "GET /metrics: " + r.body());
        return r.body();
    }

    /** The value of the sample named exactly {@code series} (name and labels). */
    private static double metric(String metrics, String series) {
        return metrics.lines().filter(l -> l.startsWith(series + " ")).mapToDouble(l ->
                Double.parseDouble(l.substring(series.length() + 1).trim())).findFirst()
                .orElseThrow(() -> new AssertionError("no sample " + series + " in:\n" + metrics));
    }
}
