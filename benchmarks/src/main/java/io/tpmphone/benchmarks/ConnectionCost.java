package io.tpmphone.benchmarks;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * What a fleet's open connections cost the server: {@code tpmphone server} in a JVM of its own, N TLS connections held
 * open as agents hold theirs (each after three POSTs, then a request every 30 s so none idles out), the server's live
 * heap before and with them ({@code jcmd GC.class_histogram}), and the CPU of the thread that checks every open
 * connection's request deadlines once a second, over a window. Not a test: a benchmark that prints figures.
 */
final class ConnectionCost {
    private static final String ADMIN_TOKEN = "a-benchmark-admin-token-000000";
    private static final Duration CYCLE = Duration.ofSeconds(30);
    /** An appraisal request the server refuses (400): the parser and the API see a POST, nothing is stored. */
    private static final byte[] BODY = ("{\"akId\":\"none\",\"nonce\":\"AAAA\",\"quote\":\"AAAA\","
            + "\"signature\":\"AAAA\"}").getBytes(StandardCharsets.UTF_8);

    private ConnectionCost() {
    }

    /**
     * @param connections          held at once
     * @param heapBytesBefore       the server's live heap after a warm-up, no connection open
     * @param heapBytesWith         the same with the connections open
     * @param openSeconds           how long opening them took (8 client threads)
     * @param sweepCpuMillisPerSweep the deadline sweep's CPU per sweep (one a second) over the window
     * @param windowSeconds         the window
     */
    record Result(int connections, long heapBytesBefore, long heapBytesWith, double openSeconds,
                  double sweepCpuMillisPerSweep, double windowSeconds) {
        double bytesPerConnection() {
            return (heapBytesWith - heapBytesBefore) / (double) connections;
        }
    }

    static Result run(int connections, Duration window, Path directory) throws Exception {
        if (connections < 1 || connections > 100_000) {
            throw new IllegalArgumentException("--connections must be 1..100000, got " + connections);
        }
        Path dir = Files.createTempDirectory(directory, "tpmphone-bench-connections-");
        try {
            Path token = dir.resolve("admin.token");
            Files.writeString(token, ADMIN_TOKEN);
            Files.setPosixFilePermissions(token, PosixFilePermissions.fromString("rw-------"));
            int metricsPort;
            try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
                metricsPort = s.getLocalPort();
            }
            // Every connection comes from 127.0.0.1 here: the per-address bound must let them all in.
            String bound = Integer.toString(connections + 1_000);
            try (ServerProcess server = ServerProcess.start("connections", dir.resolve("state"), token,
                    List.of("--max-connections", bound, "--max-connections-per-address", bound, "--metrics-port",
                            Integer.toString(metricsPort)), Duration.ofMinutes(2))) {
                URI metrics = URI.create("http://127.0.0.1:" + metricsPort + "/metrics");
                SSLContext tls = pinned(server);
                try (Fleet warmUp = Fleet.open(tls, server.uri(), 50)) {
                    warmUp.size(); // opened, three requests each
                }
                awaitOpen(metrics, 0);
                long before = server.liveHeapBytes();
                long start = System.nanoTime();
                try (Fleet fleet = Fleet.open(tls, server.uri(), connections)) {
                    double openSeconds = (System.nanoTime() - start) / 1e9;
                    awaitOpen(metrics, connections);
                    long with = server.liveHeapBytes();
                    double cpu0 = server.threadCpuSeconds("attestation-request-deadlines");
                    long w0 = System.nanoTime();
                    TimeUnit.MILLISECONDS.sleep(window.toMillis()); // the measured window, not a synchronisation
                    double cpu1 = server.threadCpuSeconds("attestation-request-deadlines");
                    double seconds = (System.nanoTime() - w0) / 1e9;
                    awaitOpen(metrics, connections); // none was lost in the window
                    double perSweep = cpu0 < 0 || cpu1 < 0 ? -1 : (cpu1 - cpu0) * 1000 / seconds;
                    return new Result(fleet.size(), before, with, openSeconds, perSweep, seconds);
                }
            }
        } finally {
            deleteTree(dir);
        }
    }

    private static SSLContext pinned(ServerProcess server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("attestation-server", server.certificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLSv1.3");
        tls.init(null, tmf.getTrustManagers(), null);
        return tls;
    }

    /** Waits until the server reports {@code expected} open connections (at most 2 minutes). */
    private static void awaitOpen(URI metrics, int expected) throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        String last = "";
        while (System.nanoTime() < deadline) {
            String body = http.send(HttpRequest.newBuilder(metrics).timeout(Duration.ofSeconds(30)).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).body();
            last = body.lines().filter(l -> l.startsWith("tpmphone_https_connections ")).findFirst().orElse("");
            if (last.equals("tpmphone_https_connections " + expected + ".0")) {
                return;
            }
            TimeUnit.MILLISECONDS.sleep(200); // polling a condition with a deadline
        }
        throw new IOException("the server did not report " + expected + " open connections within 2 minutes: "
                + last);
    }

    private static void deleteTree(Path dir) throws IOException {
        try (java.util.stream.Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    /** N held connections, each opened with three POSTs, then a GET every {@link #CYCLE} as an agent's cycle. */
    private static final class Fleet implements AutoCloseable {
        private final List<SSLSocket> held = Collections.synchronizedList(new ArrayList<>());
        private final ExecutorService cycle = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "bench-connections-cycle");
            t.setDaemon(true);
            return t;
        });
        private volatile boolean closed;

        static Fleet open(SSLContext tls, URI server, int n) throws Exception {
            Fleet f = new Fleet();
            f.cycle.submit(f::cycle);
            ExecutorService openers = Executors.newFixedThreadPool(8);
            try {
                List<Future<?>> opened = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    opened.add(openers.submit(() -> {
                        SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket(server.getHost(),
                                server.getPort());
                        s.setSoTimeout(60_000);
                        for (int r = 0; r < 3; r++) {
                            post(s, server);
                        }
                        f.held.add(s);
                        return null;
                    }));
                }
                for (Future<?> o : opened) {
                    o.get(10, TimeUnit.MINUTES);
                }
            } catch (Exception e) {
                f.close();
                throw e;
            } finally {
                openers.shutdownNow();
            }
            return f;
        }

        int size() {
            return held.size();
        }

        private void cycle() {
            try {
                while (!closed) {
                    TimeUnit.MILLISECONDS.sleep(CYCLE.toMillis()); // the agents' interval
                    List<SSLSocket> now;
                    synchronized (held) {
                        now = new ArrayList<>(held);
                    }
                    for (SSLSocket s : now) {
                        if (closed) {
                            return;
                        }
                        write(s, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
                        read(s.getInputStream());
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (IOException e) {
                if (!closed) {
                    throw new java.io.UncheckedIOException("a held connection failed", e);
                }
            }
        }

        private static void post(SSLSocket s, URI server) throws IOException {
            write(s, "POST /v1/appraisals HTTP/1.1\r\nHost: " + server.getHost() + ":" + server.getPort()
                    + "\r\nUser-Agent: Java-http-client/17\r\nContent-Type: application/json\r\nContent-Length: "
                    + BODY.length + "\r\n\r\n");
            s.getOutputStream().write(BODY);
            s.getOutputStream().flush();
            read(s.getInputStream());
        }

        private static void write(SSLSocket s, String text) throws IOException {
            OutputStream out = s.getOutputStream();
            out.write(text.getBytes(StandardCharsets.US_ASCII));
            out.flush();
        }

        /** Reads one answer (head and Content-Length body). */
        private static void read(InputStream in) throws IOException {
            StringBuilder head = new StringBuilder();
            while (head.indexOf("\r\n\r\n") < 0) {
                int b = in.read();
                if (b < 0) {
                    throw new IOException("closed by the server after: " + head);
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
        }

        @Override
        public void close() {
            closed = true;
            cycle.shutdownNow();
            synchronized (held) {
                for (SSLSocket s : held) {
                    try {
                        s.close();
                    } catch (IOException ignored) {
                        // closing is all that is asked
                    }
                }
            }
        }
    }
}
