package io.tpmphone.benchmarks;

import io.tpmphone.server.AttestationServer;
import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.swtpm.SwtpmProcess;
import java.io.InputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * Render time of the web console's pages on a large server: {@code hosts} enrolled hosts and {@code records} audit
 * records (enrollments, appraisals of every host in turn with a claim vector, call decisions every 50th record). The
 * log is written with the server's own checkpoint key while the server is stopped, then the server starts on it, its
 * console index reads the whole log (timed), and a signed-in client requests each page {@code requests} times over
 * loopback HTTPS (keep-alive, one at a time): p50/p95/max per page, as the server's time plus a loopback round trip.
 * Each page view also appends its own durable audit record, as in production.
 *
 * <p>Returns the figures and prints nothing. The scratch state goes under {@code directory} and is deleted.
 */
public final class ConsolePagesLoad {
    private static final String ADMIN = "console-benchmark-admin-token";

    private ConsolePagesLoad() {
    }

    /** One page's figures, in milliseconds. */
    public record Page(String path, int requests, double p50Millis, double p95Millis, double maxMillis) {
    }

    /** A run's figures. */
    public record Result(int hosts, long records, double writeSeconds, double indexSeconds, List<Page> pages) {
    }

    public static Result run(int hosts, long records, int requests, Path directory) throws Exception {
        if (hosts < 1 || records < hosts || requests < 1) {
            throw new IllegalArgumentException("need hosts >= 1, records >= hosts, requests >= 1");
        }
        Path scratch = Files.createTempDirectory(Files.createDirectories(directory), "console-bench");
        try {
            Path state = scratch.resolve("server");
            try (AttestationServer first = AttestationServer.builder().stateDirectory(state).adminToken(ADMIN)
                    .start()) {
                first.port(); // creates the keys, the registry and the log
            }
            long t0 = System.nanoTime();
            write(state, hosts, records);
            double writeSeconds = (System.nanoTime() - t0) / 1e9;
            try (AttestationServer server = AttestationServer.builder().stateDirectory(state).adminToken(ADMIN)
                    .start()) {
                HttpClient http = client(server);
                String base = "https://127.0.0.1:" + server.port();
                String cookie = signIn(http, base);
                long t1 = System.nanoTime();
                long deadline = t1 + TimeUnit.MINUTES.toNanos(30);
                while (get(http, base + "/ui/audit?type=POLICY_CHANGE", cookie).contains("has not yet read")) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("the console index did not catch up in 30 minutes");
                    }
                    Thread.sleep(1000); // a benchmark's poll; each poll is itself a page view and a record
                }
                double indexSeconds = (System.nanoTime() - t1) / 1e9;
                String someHost = URLEncoder.encode(String.format("host-%05d", hosts / 2), StandardCharsets.UTF_8);
                List<String> paths = List.of("/ui/fleet", "/ui/fleet?after=" + someHost, "/ui/fleet?level=FAILED",
                        "/ui/fleet?claim=executables&status=contraindicated", "/ui/host?name=" + someHost,
                        "/ui/audit", "/ui/audit?before=" + records / 2, "/ui/audit?type=CALL_DECISION",
                        "/ui/audit?subject=" + someHost, "/ui/calls");
                List<Page> pages = new ArrayList<>();
                for (String p : paths) {
                    for (int i = 0; i < Math.min(20, requests); i++) {
                        get(http, base + p, cookie); // warm-up
                    }
                    double[] millis = new double[requests];
                    for (int i = 0; i < requests; i++) {
                        long s = System.nanoTime();
                        get(http, base + p, cookie);
                        millis[i] = (System.nanoTime() - s) / 1e6;
                    }
                    Arrays.sort(millis);
                    pages.add(new Page(p, requests, millis[requests / 2], millis[(int) Math.ceil(requests * 0.95) - 1],
                            millis[requests - 1]));
                }
                return new Result(hosts, records, writeSeconds, indexSeconds, pages);
            }
        } finally {
            SwtpmProcess.deleteDirectory(scratch);
        }
    }

    /** Appends the synthetic history with the server's checkpoint key (many callers: the log commits in groups). */
    private static void write(Path state, int hosts, long records) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        char[] password = Files.readString(state.resolve("keys/server-keys.pass"), StandardCharsets.US_ASCII).trim()
                .toCharArray();
        try (InputStream in = Files.newInputStream(state.resolve("keys/server-keys.p12"))) {
            ks.load(in, password);
        }
        KeyPair results = new KeyPair(ks.getCertificate("results").getPublicKey(),
                (PrivateKey) ks.getKey("results", password));
        int threads = 32;
        try (AuditLog log = AuditLog.open(state.resolve("audit.db"), AuditSigner.ecdsa(results),
                AuditLog.Options.builder().maxBatch(1000).queueCapacity(100_000).build())) {
            for (int h = 0; h < hosts; h++) {
                log.append(AuditEntry.of(AuditEventType.ENROLLMENT, String.format("host-%05d", h), "ACCEPTED",
                        Map.of("akId", "00".repeat(34))));
            }
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> jobs = new ArrayList<>();
                long perThread = (records - hosts) / threads + 1;
                for (int t = 0; t < threads; t++) {
                    int thread = t;
                    jobs.add(pool.submit(() -> {
                        for (long i = 0; i < perThread && log.size() < records; i++) {
                            long n = thread * perThread + i;
                            String host = String.format("host-%05d", n % hosts);
                            if (n % 50 == 49) {
                                log.append(AuditEntry.of(AuditEventType.CALL_DECISION, host, "ACCEPT", Map.of(
                                        "callId", "call-" + n + "@bench", "direction", "OUT", "peer", "sips:peer@x",
                                        "peerLevel", "MEASURED", "requiredLevel", "MEASURED")));
                            } else {
                                boolean failed = n % 97 == 0;
                                Map<String, Object> claims = new LinkedHashMap<>();
                                claims.put("instance-identity", "affirming");
                                claims.put("executables", failed ? "contraindicated" : "affirming");
                                claims.put("configuration", "affirming");
                                Map<String, Object> d = new LinkedHashMap<>();
                                d.put("akId", "00".repeat(34));
                                d.put("evidenceSha256", "11".repeat(32));
                                d.put("level", failed ? "FAILED" : "MEASURED");
                                d.put("reasons", failed ? List.of("softphone.jar is not an approved jar") : List.of());
                                d.put("policyVersion", 1);
                                d.put("claims", claims);
                                d.put("release", "softphone-1.4.2");
                                d.put("eventLogSha256", "22".repeat(32));
                                log.append(AuditEntry.of(AuditEventType.APPRAISAL, host, failed ? "FAILED"
                                        : "MEASURED", d));
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : jobs) {
                    f.get();
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    private static HttpClient client(AttestationServer server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, tmf.getTrustManagers(), null);
        return HttpClient.newBuilder().sslContext(tls).followRedirects(HttpClient.Redirect.NEVER)
                .connectTimeout(Duration.ofSeconds(10)).build();
    }

    private static String signIn(HttpClient http, String base) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/ui/sign-in"))
                .header("Content-Type", "application/x-www-form-urlencoded").header("Origin", base)
                .POST(HttpRequest.BodyPublishers.ofString("credential=" + ADMIN)).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 303) {
            throw new IllegalStateException("sign-in answered " + r.statusCode());
        }
        String c = r.headers().firstValue("Set-Cookie").orElseThrow();
        return c.substring(0, c.indexOf(';'));
    }

    private static String get(HttpClient http, String url, String cookie) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url)).header("Cookie", cookie)
                .timeout(Duration.ofSeconds(60)).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IllegalStateException(url + " answered " + r.statusCode());
        }
        return r.body();
    }
}
