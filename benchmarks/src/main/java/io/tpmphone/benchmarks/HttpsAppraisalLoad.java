package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmQuote;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PublicKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Appraisals per second over HTTPS: a real {@link AttestationServer} (Jetty, TLS 1.3, SQLite registry and
 * hash-chained audit log with {@code synchronous=FULL}), {@code --hosts} enrolled hosts (each its own swtpm, EK
 * certificate and AK, enrolled over HTTPS with an enrollment token) and {@code --clients} concurrent closed-loop
 * clients, each serving its own share of the hosts: a host's quotes must reach the server in TPM clock order, so one
 * host never has two appraisals in flight, as with a real agent.
 *
 * <p>A round of {@code --requests} appraisals runs in batches: the server keeps one outstanding nonce per AK (each
 * nonce request, signed by the AK, replaces the last), so each batch first has every host fetch one nonce over HTTPS
 * and quote it (untimed), then all clients fire
 * together, POSTing their appraisals one after another on one keep-alive HTTP/1.1 connection each and timing each
 * request. Throughput is requests over the summed firing time. Every response must be 200 with level MEASURED or the
 * run fails. At the end the audit log must hold one MEASURED appraisal record per request and {@link AuditVerifier}
 * must find the chain and checkpoint signatures intact.
 *
 * <p>{@link #run(Options)} returns the figures (a {@link Report}) and prints nothing; {@code tpmphone bench appraisal}
 * prints them. Progress and warnings go to SLF4J. Load goes to 127.0.0.1 only; every loop is bounded.
 */
public final class HttpsAppraisalLoad {
    private static final Logger LOG = LoggerFactory.getLogger(HttpsAppraisalLoad.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ADMIN_TOKEN = "benchmark-admin-token-0123456789";
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(30);
    /** Evidence older than this when the round starts risks expiring (30 s TTL) before it is sent. */
    private static final Duration MAX_PREPARATION = Duration.ofSeconds(20);
    /** The server keeps one outstanding nonce per AK (NonceService): a host prepares one appraisal at a time. */
    private static final int EVIDENCE_PER_HOST = AppraisalBenchmark.EVIDENCE_PER_HOST;
    /** Nonce request times, strictly increasing across all hosts (the server refuses one not after the last). */
    private static final java.util.concurrent.atomic.AtomicLong REQUEST_TIME =
            new java.util.concurrent.atomic.AtomicLong();

    private HttpsAppraisalLoad() {
    }

    /**
     * What to run.
     *
     * @param clients       concurrent closed-loop clients (default 16)
     * @param hosts         enrolled hosts, one swtpm each; at least {@code clients}, at most 256 (default 64)
     * @param requests      appraisals per round (default 5000)
     * @param rounds        rounds; round 1 warms the JIT (default 3)
     * @param serverThreads Jetty's thread pool maximum (default 64)
     * @param state         where to keep the server state for inspection; empty: a temporary directory, deleted
     */
    public record Options(int clients, int hosts, int requests, int rounds, int serverThreads,
                          Optional<Path> state, Optional<String> database) {
        /** @throws IllegalArgumentException if a count is not positive or the hosts do not fit the clients */
        public Options {
            positive("clients", clients);
            positive("hosts", hosts);
            positive("requests", requests);
            positive("rounds", rounds);
            positive("server threads", serverThreads);
            Objects.requireNonNull(state, "state");
            Objects.requireNonNull(database, "database");
            if (database.isPresent() && !database.get().startsWith("jdbc:postgresql://")) {
                throw new IllegalArgumentException("the database must be jdbc:postgresql://HOST:PORT/DB?user=USER");
            }
            if (hosts < clients || hosts > 256) {
                throw new IllegalArgumentException("hosts (one swtpm each) must be at least the clients (" + clients
                        + ") and at most 256, got " + hosts);
            }
        }

        /** 16 clients, 64 hosts, 5000 requests, 3 rounds, 64 server threads, temporary state. */
        public static Options defaults() {
            return new Options(16, 64, 5000, 3, 64, Optional.empty(), Optional.empty());
        }

        private static void positive(String what, int n) {
            if (n <= 0) {
                throw new IllegalArgumentException(what + " must be positive, got " + n);
            }
        }
    }

    /**
     * One row of figures: a round ({@code "1"}, {@code "2"}, ...) or rounds 2.. together ({@code "2..N"}). Seconds
     * are the firing phases' only; latencies are per request.
     */
    public record Round(String round, int clients, int requests, double seconds, double appraisalsPerSecond,
                        double p50Millis, double p99Millis, double maxMillis) {
    }

    /** The audit log after the run: MEASURED appraisal records found and expected, and the verifier's summary. */
    public record AuditCheck(long measuredRecords, long expectedRecords, boolean intact, String summary) {
    }

    /**
     * A run's figures.
     *
     * @param server        the server's URI (127.0.0.1, an ephemeral port)
     * @param options       what was run
     * @param batchSize     appraisals per batch ({@code hosts}, one per host)
     * @param cores         available processors
     * @param rounds        one row per round
     * @param steadyState   rounds 2.. together, when there were at least two rounds
     * @param audit         the audit check (always passed: a failed check throws)
     */
    public record Report(URI server, Options options, int batchSize, int cores, List<Round> rounds,
                         Optional<Round> steadyState, AuditCheck audit) {
        public Report {
            rounds = List.copyOf(rounds);
        }
    }

    /** The run failed: an appraisal was not 200 MEASURED, or the audit log does not hold every appraisal intact. */
    public static final class LoadFailedException extends Exception {
        private static final long serialVersionUID = 1L;

        LoadFailedException(String message) {
            super(message);
        }
    }

    /** An enrolled host. */
    private record Host(MeasuredHost tpm, String akId) {
    }

    /**
     * One client: its hosts, its own HTTP client (one keep-alive connection), the request bodies of the current batch
     * (host after host, each host's in the order its TPM made them) and what came back.
     */
    private static final class Client {
        final String name;
        final List<Host> hosts = new ArrayList<>();
        final HttpClient http;
        String[] bodies = new String[0];
        final List<Long> latencies = new ArrayList<>();
        final List<String> responses = new ArrayList<>();
        final List<Integer> statuses = new ArrayList<>();
        long finishedAt;

        Client(String name, HttpClient http) {
            this.name = name;
            this.http = http;
        }
    }

    /** One round's figures; seconds are the firing phases' only. */
    private record RoundResult(int clients, int requests, double seconds, long[] sortedLatencies) {
        double rate() {
            return requests / seconds;
        }

        double percentileMillis(double p) {
            int i = (int) Math.ceil(p / 100.0 * sortedLatencies.length) - 1;
            return sortedLatencies[Math.max(0, Math.min(i, sortedLatencies.length - 1))] / 1e6;
        }

        Round toRound(String round) {
            return new Round(round, clients, requests, seconds, rate(), percentileMillis(50), percentileMillis(99),
                    percentileMillis(100));
        }
    }

    /**
     * Starts the hosts and the server, enrolls the hosts, runs the rounds and checks the audit log.
     *
     * @throws LoadFailedException if an appraisal was not 200 MEASURED, or the audit log does not hold one MEASURED
     *                             record per request with its chain and checkpoint signatures intact
     * @throws Exception           if the set-up fails (swtpm, server, enrollment) or a request fails outright
     */
    public static Report run(Options o) throws Exception {
        Objects.requireNonNull(o, "options");
        boolean keepState = o.state().isPresent();
        Path dir = keepState ? Files.createDirectories(o.state().get())
                : Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "tpmphone-bench-https-");
        try {
            return run(o, dir);
        } finally {
            if (!keepState) {
                SwtpmProcess.deleteDirectory(dir);
            }
        }
    }

    private static Report run(Options o, Path dir) throws Exception {
        if (o.database().isEmpty()) {
            return run(o, dir, null);
        }
        // A scratch database next to the one named, dropped afterwards: the server's registry and audit chain.
        try (ScratchDatabase scratch = ScratchDatabase.create(o.database().get())) {
            return run(o, dir, scratch.url());
        }
    }

    private static Report run(Options o, Path dir, String scratchUrl) throws Exception {
        LaunchSpec spec = Release.spec(dir);
        String policy = Release.policy(spec);
        List<MeasuredHost> hosts = MeasuredHost.startAll(o.hosts(), dir, spec);
        ExecutorService pool = Executors.newFixedThreadPool(o.clients(), r -> {
            Thread t = new Thread(r, "bench-client");
            t.setDaemon(true);
            return t;
        });
        AttestationServer server = null;
        try {
            AttestationServer.Builder b = AttestationServer.builder().stateDirectory(dir.resolve("server"))
                    .adminToken(ADMIN_TOKEN).policy(policy).maxThreads(o.serverThreads());
            if (scratchUrl != null) {
                b.database(scratchUrl);
            }
            for (X509Certificate ca : hosts.get(0).ekCaChain()) {
                b.trustEkCa(ca);
            }
            server = b.start();
            AttestationClient admin = new AttestationClient(server.uri(), server.tlsCertificate(), REQUEST_TIMEOUT);
            SSLContext tls = pinned(server.tlsCertificate());
            List<Client> clients = new ArrayList<>();
            for (int c = 0; c < o.clients(); c++) {
                clients.add(new Client("client-" + c, HttpClient.newBuilder().sslContext(tls)
                        .connectTimeout(REQUEST_TIMEOUT).version(HttpClient.Version.HTTP_1_1).build()));
            }
            for (int i = 0; i < hosts.size(); i++) {
                MeasuredHost h = hosts.get(i);
                String token = admin.post("/v1/enrollment-tokens", Map.of("host", h.name()), ADMIN_TOKEN)
                        .get("enrollmentToken").asText();
                String akId = new HostAttestation(h.tpm(), admin).enroll(h.name(), token).akId();
                clients.get(i % o.clients()).hosts.add(new Host(h, akId));
            }
            URI uri = server.uri();
            int batchSize = o.hosts() * EVIDENCE_PER_HOST;
            int cores = Runtime.getRuntime().availableProcessors();
            LOG.info("server {}, {} Jetty threads max, {} clients, {} hosts (one swtpm each), {} requests per round in"
                    + " batches of {}, {} rounds, {} cores", uri, o.serverThreads(), o.clients(), o.hosts(),
                    o.requests(), batchSize, o.rounds(), cores);
            List<RoundResult> results = new ArrayList<>();
            List<Round> rows = new ArrayList<>();
            for (int round = 1; round <= o.rounds(); round++) {
                RoundResult r = round(o, server.uri(), clients, pool);
                results.add(r);
                Round row = r.toRound(Integer.toString(round));
                rows.add(row);
                LOG.info("round {}: {} requests in {} s, {} appraisals/s", round, row.requests(), row.seconds(),
                        Math.round(row.appraisalsPerSecond()));
                checkResponses(clients);
            }
            Optional<Round> steadyState = Optional.empty();
            if (results.size() > 1) {
                long[] all = results.subList(1, results.size()).stream().flatMapToLong(r -> Arrays.stream(
                        r.sortedLatencies())).sorted().toArray();
                double seconds = results.subList(1, results.size()).stream().mapToDouble(RoundResult::seconds).sum();
                steadyState = Optional.of(new RoundResult(o.clients(), all.length, seconds, all)
                        .toRound("2.." + results.size()));
            }
            PublicKey checkpointKey = server.resultVerificationKey();
            server.close();
            server = null;
            AuditCheck audit = checkAudit(dir.resolve("server/audit.db"), scratchUrl, checkpointKey,
                    (long) o.requests() * o.rounds());
            return new Report(uri, o, batchSize, cores, rows, steadyState, audit);
        } finally {
            pool.shutdownNow();
            if (server != null) {
                server.close();
            }
            hosts.forEach(MeasuredHost::close);
        }
    }

    private static RoundResult round(Options o, URI server, List<Client> clients, ExecutorService pool)
            throws Exception {
        for (Client c : clients) {
            c.latencies.clear();
            c.responses.clear();
            c.statuses.clear();
        }
        int left = o.requests();
        long firingNanos = 0;
        while (left > 0) {
            int batch = Math.min(left, o.hosts() * EVIDENCE_PER_HOST);
            firingNanos += batch(clients, server, batch, pool);
            left -= batch;
        }
        long[] all = clients.stream().flatMapToLong(c -> c.latencies.stream().mapToLong(Long::longValue)).sorted()
                .toArray();
        return new RoundResult(clients.size(), all.length, firingNanos / 1e9, all);
    }

    /**
     * One batch: every client prepares the evidence of its hosts (one per host, the server's limit of outstanding
     * nonces per AK), then all fire together. Returns the firing time.
     */
    private static long batch(List<Client> clients, URI server, int requests, ExecutorService pool) throws Exception {
        int n = clients.size();
        CyclicBarrier start = new CyclicBarrier(n + 1);
        List<Future<?>> work = new ArrayList<>();
        long preparing = System.nanoTime();
        int hosts = clients.stream().mapToInt(c -> c.hosts.size()).sum();
        int perHost = requests / hosts;
        int extra = requests % hosts;
        int hostIndex = 0;
        for (Client client : clients) {
            int[] counts = new int[client.hosts.size()];
            for (int h = 0; h < counts.length; h++, hostIndex++) {
                counts[h] = perHost + (hostIndex < extra ? 1 : 0);
            }
            work.add(pool.submit(() -> {
                prepare(client, server, counts);
                start.await();
                fire(client, server);
                return null;
            }));
        }
        start.await();
        long started = System.nanoTime();
        for (Future<?> f : work) {
            f.get();
        }
        if (Duration.ofNanos(started - preparing).compareTo(MAX_PREPARATION) > 0) {
            LOG.warn("preparing the evidence took {} s; nonces live 30 s",
                    Duration.ofNanos(started - preparing).toSeconds());
        }
        return clients.stream().mapToLong(c -> c.finishedAt).max().orElseThrow() - started;
    }

    /** Nonces over HTTPS, a TPM quote for each, request bodies serialized: nothing of this is timed. */
    private static void prepare(Client c, URI server, int[] counts) throws Exception {
        c.bodies = new String[Arrays.stream(counts).sum()];
        int n = 0;
        for (int h = 0; h < counts.length; h++) {
            Host host = c.hosts.get(h);
            for (int i = 0; i < counts[h]; i++) {
                long requestedAt = REQUEST_TIME.updateAndGet(last -> Math.max(System.currentTimeMillis(), last + 1));
                String nonceRequest = JSON.writeValueAsString(HostAttestation.nonceRequest(host.tpm().tpm(),
                        PersistentHandle.AK, host.akId(), requestedAt));
                HttpResponse<String> grant = c.http.send(post(server, "/v1/nonces", nonceRequest),
                        HttpResponse.BodyHandlers.ofString());
                if (grant.statusCode() != 200) {
                    throw new IllegalStateException("POST /v1/nonces: HTTP " + grant.statusCode() + " "
                            + grant.body());
                }
                JsonNode g = JSON.readTree(grant.body());
                byte[] nonce = HexFormat.of().parseHex(g.get("nonce").asText());
                TpmQuote quote = host.tpm().quote(PcrSelection.parse(g.get("pcrSelection").asText()), nonce);
                c.bodies[n++] = JSON.writeValueAsString(HostAttestation.appraisalRequest(host.akId(), nonce, quote,
                        host.tpm().log()));
            }
        }
    }

    /** Closed loop: one request in flight per client. */
    private static void fire(Client c, URI server) throws Exception {
        for (String body : c.bodies) {
            HttpRequest request = post(server, "/v1/appraisals", body);
            long t0 = System.nanoTime();
            HttpResponse<String> r = c.http.send(request, HttpResponse.BodyHandlers.ofString());
            c.latencies.add(System.nanoTime() - t0);
            c.statuses.add(r.statusCode());
            c.responses.add(r.body());
        }
        c.finishedAt = System.nanoTime();
    }

    private static HttpRequest post(URI server, String path, String body) {
        return HttpRequest.newBuilder(server.resolve(path)).timeout(REQUEST_TIMEOUT)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }

    /** Every response 200 and MEASURED; throws naming the first few failures. */
    private static void checkResponses(List<Client> clients) throws Exception {
        int failures = 0;
        StringBuilder first = new StringBuilder();
        for (Client c : clients) {
            for (int i = 0; i < c.responses.size(); i++) {
                String level = c.statuses.get(i) == 200 ? JSON.readTree(c.responses.get(i)).path("level").asText()
                        : null;
                if (!"MEASURED".equals(level)) {
                    if (failures++ < 5) {
                        first.append(System.lineSeparator()).append("  ").append(c.name).append(" request ").append(i)
                                .append(": HTTP ").append(c.statuses.get(i)).append(' ').append(c.responses.get(i));
                    }
                }
            }
            c.responses.clear();
        }
        if (failures > 0) {
            throw new LoadFailedException(failures + " appraisals were not 200 MEASURED; the first "
                    + Math.min(failures, 5) + ":" + first);
        }
    }

    /** The audit log in {@code db}, or in the PostgreSQL database {@code url} if it is not null. */
    private static AuditCheck checkAudit(Path db, String url, PublicKey checkpointKey, long expectedAppraisals)
            throws Exception {
        long[] counted = {0};
        AuditRecords.forEach(url, db, r -> counted[0] += r.type() == AuditEventType.APPRAISAL
                && "MEASURED".equals(r.outcome()) ? 1 : 0);
        long measured = counted[0];
        VerificationReport report = url == null ? AuditVerifier.verify(db, Optional.of(checkpointKey))
                : AuditVerifier.verify(url, Optional.of(checkpointKey), io.tpmphone.server.audit.VerifyOptions.closed());
        AuditCheck check = new AuditCheck(measured, expectedAppraisals, report.intact(), report.summary());
        if (measured != expectedAppraisals || !report.intact()) {
            throw new LoadFailedException("the audit log does not hold every appraisal, or its chain is broken: "
                    + measured + " MEASURED appraisal records (expected " + expectedAppraisals + "); "
                    + report.summary());
        }
        return check;
    }

    private static SSLContext pinned(X509Certificate certificate) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("attestation-server", certificate);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLSv1.3");
        tls.init(null, tmf.getTrustManagers(), null);
        return tls;
    }
}
