package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmQuote;
import java.io.IOException;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A fleet against the attestation server: {@code --hosts} software hosts ({@link SoftwareHost}: the TPM's exact
 * formats, enrolled through the normal EK-certificate and credential-activation path) plus {@code --real-hosts} swtpm
 * hosts as a cross-check, each attesting every {@code --interval} seconds as an agent does (a nonce request signed by
 * its AK, then a quote and the event log appraised), against server instances that run as {@code tpmphone server}
 * processes of their own, so that the server's CPU time is read apart from the load's.
 *
 * <p>Open loop: the hosts join the schedule {@link #JOINING_PER_SECOND} a second (over at least one interval), each
 * opening its own connection ({@link HostConnection}) at its first cycle, and then each keeps its period whether or
 * not the server keeps up; a host whose previous cycle has not ended when its next is due skips it (counted as
 * {@code late}). Joining and one more interval warm up (connections, the JIT); the next {@code --seconds} are measured:
 * cycles started in that window, their latency (nonce request to appraisal answer), the appraisals per second and
 * the server's CPU time from the window's start until the last of them ended, per appraisal. Every appraisal must be
 * 200 {@code MEASURED}; anything else is an error, and the first few are reported.
 *
 * <p>Phases: with a PostgreSQL URL, one instance, then two instances on the same database (hosts spread over them by
 * name, as agents choose); then one instance on SQLite, unless {@code --skip-sqlite}. Each backend enrolls the fleet
 * once. At the end of each backend every acknowledged appraisal must have its record in the audit log.
 */
public final class FleetLoad {
    private static final Logger LOG = LoggerFactory.getLogger(FleetLoad.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ADMIN_TOKEN = "fleet-benchmark-admin-token-0123456789";
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(30);
    private static final int ENROLLING_THREADS = 8;
    /**
     * How many software hosts join the schedule per second at a phase's start (each joining opens its connection: a
     * TLS handshake on both sides of this machine's cores). A fleet's agents start over hours, not all in one
     * interval; 10,000 hosts joining within one 30 s interval (333 handshakes/s besides the appraisals, with the
     * hosts' half of each handshake on the same two cores) overloaded the machine and never recovered
     * (benchmarks/README.md, "Why the fleet collapsed").
     */
    static final int JOINING_PER_SECOND = 100;

    private FleetLoad() {
    }

    /**
     * What to run.
     *
     * @param hosts      software hosts (default 10,000)
     * @param interval   each host's attestation period (default 30 s)
     * @param seconds    the measured window after one interval of warm-up (default 120 s)
     * @param realHosts  swtpm hosts attesting alongside (default 2)
     * @param database   PostgreSQL admin URL for the one- and two-instance phases; empty: SQLite only
     * @param skipSqlite with a database, skip the SQLite phase
     */
    public record Options(int hosts, Duration interval, Duration seconds, int realHosts, Optional<String> database,
                          boolean skipSqlite) {
        public Options {
            if (hosts < 1 || hosts > 100_000) {
                throw new IllegalArgumentException("hosts must be 1..100000, got " + hosts);
            }
            if (interval.toMillis() < 1000 || seconds.toMillis() < 1000) {
                throw new IllegalArgumentException("the interval and the measured window are at least 1 s");
            }
            if (realHosts < 0 || realHosts > 16) {
                throw new IllegalArgumentException("real hosts must be 0..16, got " + realHosts);
            }
            Objects.requireNonNull(database, "database");
            database.ifPresent(d -> {
                if (!d.startsWith("jdbc:postgresql://")) {
                    throw new IllegalArgumentException("the database must be jdbc:postgresql://HOST:PORT/DB?user=USER");
                }
            });
            if (database.isEmpty() && skipSqlite) {
                throw new IllegalArgumentException("--skip-sqlite needs --database: there would be nothing to run");
            }
        }
    }

    /**
     * One phase's figures: {@code target} is hosts / interval; latencies are per cycle (nonce request to the
     * appraisal's answer) in milliseconds; {@code serverCpuMillisPerAppraisal} sums the instances' CPU time.
     */
    public record Phase(String backend, int instances, int hosts, double targetPerSecond, double appraisalsPerSecond,
                        long cycles, long errors, long late, double p50Millis, double p99Millis, double maxMillis,
                        double serverCpuMillisPerAppraisal, double loadCpuMillisPerAppraisal, long realHostCycles,
                        long realHostErrors,
                        double realHostP50Millis, long handshakes, long serverLiveHeapBytes,
                        Map<String, ThreadCpu.Time> serverCpuMillisPerAppraisalByThread, List<String> firstErrors,
                        Map<String, Long> errorKinds) {
        public Phase {
            serverCpuMillisPerAppraisalByThread = java.util.Collections.unmodifiableMap(
                    new java.util.LinkedHashMap<>(serverCpuMillisPerAppraisalByThread));
            firstErrors = List.copyOf(firstErrors);
            errorKinds = Map.copyOf(errorKinds);
        }
    }

    /** A backend's enrollment and audit check. */
    public record Backend(String backend, int enrolled, double enrollSeconds, long acknowledged,
                          long appraisalRecords) {
    }

    public record Report(Options options, int cores, List<Backend> backends, List<Phase> phases) {
        public Report {
            backends = List.copyOf(backends);
            phases = List.copyOf(phases);
        }
    }

    /**
     * One instance the hosts attest at: {@code http} for the swtpm hosts and enrollment, {@code tls} for the software
     * hosts' own connections ({@link HostConnection}).
     */
    private record Instance(ServerProcess server, HttpClient http, javax.net.ssl.SSLSocketFactory tls) {
    }

    /** A swtpm host of the cross-check. */
    private record RealHost(MeasuredHost tpm, String akId) {
    }

    /** What happened in a phase; thread-safe. */
    private static final class Tally {
        final ConcurrentLinkedQueue<Long> latencies = new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<Long> realLatencies = new ConcurrentLinkedQueue<>();
        final AtomicLong errors = new AtomicLong();
        final AtomicLong realErrors = new AtomicLong();
        final AtomicLong late = new AtomicLong();
        final AtomicLong acknowledged = new AtomicLong();
        final ConcurrentLinkedQueue<String> firstErrors = new ConcurrentLinkedQueue<>();
        /** Measured errors by kind (exception class and message, or HTTP status): which failure, how often. */
        final java.util.concurrent.ConcurrentHashMap<String, AtomicLong> errorKinds =
                new java.util.concurrent.ConcurrentHashMap<>();
        /** Every cycle started, to wait for the last answers at the end. */
        final ConcurrentLinkedQueue<CompletableFuture<?>> cycles = new ConcurrentLinkedQueue<>();
        /** The cycles started in the measured window: one still unanswered at the end counts as an error. */
        final ConcurrentLinkedQueue<CompletableFuture<?>> windowCycles = new ConcurrentLinkedQueue<>();

        /** Keeps {@code cycle} to wait for; also as a measured one if it started in the window. */
        void started(CompletableFuture<?> cycle, long at) {
            cycles.add(cycle);
            if (at >= windowStart && at < windowEnd) {
                windowCycles.add(cycle);
            }
        }
        volatile long windowStart = Long.MAX_VALUE;
        volatile long windowEnd = Long.MAX_VALUE;

        void kind(Throwable e) {
            String m = String.valueOf(e.getMessage());
            String k = e.getClass().getSimpleName() + ": " + (m.length() > 60 ? m.substring(0, 60) + "…" : m);
            errorKinds.computeIfAbsent(k, x -> new AtomicLong()).incrementAndGet();
        }

        void error(String what) {
            if (firstErrors.size() < 5) {
                firstErrors.add(what.length() > 300 ? what.substring(0, 300) + "…" : what);
            }
        }
    }

    public static Report run(Options o) throws Exception {
        Path dir = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "tpmphone-bench-fleet-");
        try {
            return run(o, dir);
        } finally {
            SwtpmProcess.deleteDirectory(dir);
        }
    }

    private static Report run(Options o, Path dir) throws Exception {
        LaunchSpec spec = Release.spec(dir);
        String policy = Release.policy(spec);
        PcrSelection selection = AttestationPolicy.parse(policy).requiredPcrSelection();
        List<MeasuredHost> real = MeasuredHost.startAll(Math.max(1, o.realHosts()), dir, spec);
        try {
            MeasuredHost model = real.get(0);
            SecureRandom random = new SecureRandom();
            byte[] nonce = new byte[32];
            random.nextBytes(nonce);
            SoftwareHost.Template template = SoftwareHost.Template.of(model.quote(selection, nonce), model.log());
            SoftwareHost.EkCa ca = new SoftwareHost.EkCa();
            long made = System.nanoTime();
            List<SoftwareHost> fleet = new ArrayList<>(o.hosts());
            for (int i = 0; i < o.hosts(); i++) {
                fleet.add(SoftwareHost.create(String.format(java.util.Locale.ROOT, "fleet-%05d", i), ca, template));
            }
            LOG.info("{} software hosts made in {} s", o.hosts(), (System.nanoTime() - made) / 1_000_000_000L);
            List<Path> cas = new ArrayList<>(List.of(pem(dir.resolve("fleet-ek-ca.pem"), List.of(ca.certificate()))));
            cas.add(pem(dir.resolve("swtpm-ek-ca.pem"), model.ekCaChain()));
            Path policyFile = Files.writeString(dir.resolve("policy.json"), policy);
            Path token = dir.resolve("admin.token");
            Files.writeString(token, ADMIN_TOKEN);
            Files.setPosixFilePermissions(token, PosixFilePermissions.fromString("rw-------"));
            List<String> common = new ArrayList<>(List.of("--policy", policyFile.toString()));
            // Every simulated host connects from 127.0.0.1, where a fleet's agents come from addresses of their own:
            // the per-address bound (1,000 by default) would refuse all but the first thousand. The total bound
            // stays the server's default unless the fleet (plus the real hosts and a margin) is larger.
            int connections = Math.max(io.tpmphone.server.AttestationServer.DEFAULT_MAX_CONNECTIONS,
                    o.hosts() + o.realHosts() + 100);
            common.addAll(List.of("--max-connections", String.valueOf(connections), "--max-connections-per-address",
                    String.valueOf(connections)));
            for (Path c : cas) {
                common.addAll(List.of("--ek-ca", c.toString()));
            }
            List<Backend> backends = new ArrayList<>();
            List<Phase> phases = new ArrayList<>();
            List<MeasuredHost> cross = real.subList(0, o.realHosts());
            if (o.database().isPresent()) {
                try (ScratchDatabase db = ScratchDatabase.create(o.database().get())) {
                    List<String> args = new ArrayList<>(common);
                    args.addAll(List.of("--database", db.url(), "--database-pool", "16"));
                    backend("PostgreSQL", List.of(1, 2), dir.resolve("pg"), token, args, o, fleet, cross, selection,
                            backends, phases, db.url());
                }
            }
            if (o.database().isEmpty() || !o.skipSqlite()) {
                backend("SQLite", List.of(1), dir.resolve("sqlite"), token, common, o, fleet, cross, selection,
                        backends, phases, null);
            }
            return new Report(o, Runtime.getRuntime().availableProcessors(), backends, phases);
        } finally {
            real.forEach(MeasuredHost::close);
        }
    }

    /** One backend: instance A, the fleet enrolled through it, a phase per instance count, the audit check. */
    private static void backend(String name, List<Integer> instanceCounts, Path dir, Path token, List<String> args,
                                Options o, List<SoftwareHost> fleet, List<MeasuredHost> cross, PcrSelection selection,
                                List<Backend> backends, List<Phase> phases, String databaseUrl) throws Exception {
        Files.createDirectories(dir);
        List<Instance> instances = new ArrayList<>();
        Tally all = new Tally();
        try {
            instances.add(start(name + "-a", dir.resolve("a"), token, args));
            long enrolling = System.nanoTime();
            List<RealHost> realHosts = enroll(instances.get(0), fleet, cross);
            double enrollSeconds = (System.nanoTime() - enrolling) / 1e9;
            LOG.info("{}: {} hosts enrolled in {} s", name, fleet.size() + cross.size(), Math.round(enrollSeconds));
            long acknowledged = 0;
            for (int count : instanceCounts) {
                while (instances.size() < count) {
                    // Every instance has the same keys (docs/operations.md §9): a copy of the first one's.
                    Path state = Files.createDirectories(dir.resolve(Character.toString('a' + instances.size())));
                    copyKeys(dir.resolve("a").resolve("keys"), state.resolve("keys"));
                    instances.add(start(name + "-" + (char) ('a' + instances.size()), state, token, args));
                }
                Tally t = new Tally();
                phases.add(phase(name, instances, o, fleet, realHosts, selection, t));
                acknowledged += t.acknowledged.get();
            }
            Path auditDb = dir.resolve("a").resolve("audit.db");
            for (Instance i : instances) {
                i.server().close();
            }
            instances.clear();
            long records = appraisalRecords(databaseUrl, auditDb);
            backends.add(new Backend(name, fleet.size() + cross.size(), enrollSeconds, acknowledged, records));
            if (records < acknowledged) {
                throw new IllegalStateException(name + ": the audit log holds " + records + " appraisal records for "
                        + acknowledged + " acknowledged appraisals");
            }
        } finally {
            for (Instance i : instances) {
                i.server().close();
            }
        }
    }

    /** Copies the key files, owner-only as the server wants them. */
    private static void copyKeys(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        Files.setPosixFilePermissions(to, PosixFilePermissions.fromString("rwx------"));
        try (java.util.stream.Stream<Path> files = Files.list(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    Path copy = to.resolve(f.getFileName());
                    Files.copy(f, copy, java.nio.file.StandardCopyOption.COPY_ATTRIBUTES);
                    Files.setPosixFilePermissions(copy, PosixFilePermissions.fromString("rw-------"));
                }
            }
        }
    }

    private static Instance start(String name, Path state, Path token, List<String> args) throws Exception {
        // The hosts' connections idle at most as long as an agent's (shorter than the server's idle timeout), so no
        // request is written to a connection the server is closing; before the JVM's first HTTP client.
        AttestationClient.keepAliveConfigured();
        ServerProcess server = ServerProcess.start(name, state, token, args, Duration.ofMinutes(2));
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("attestation-server", server.certificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLSv1.3");
        tls.init(null, tmf.getTrustManagers(), null);
        HttpClient http = HttpClient.newBuilder().sslContext(tls).connectTimeout(REQUEST_TIMEOUT)
                .version(HttpClient.Version.HTTP_1_1).build();
        return new Instance(server, http, tls.getSocketFactory());
    }

    /** Enrolls the fleet (several at a time) and the swtpm hosts through {@code at}, as agents enroll. */
    private static List<RealHost> enroll(Instance at, List<SoftwareHost> fleet, List<MeasuredHost> cross)
            throws Exception {
        AttestationClient admin = new AttestationClient(at.server().uri(), at.server().certificate(),
                REQUEST_TIMEOUT);
        ExecutorService pool = Executors.newFixedThreadPool(ENROLLING_THREADS);
        try {
            List<java.util.concurrent.Future<?>> done = new ArrayList<>();
            for (SoftwareHost h : fleet) {
                done.add(pool.submit(() -> {
                    String t = admin.post("/v1/enrollment-tokens", Map.of("host", h.name()), ADMIN_TOKEN)
                            .get("enrollmentToken").asText();
                    Base64.Encoder b64 = Base64.getEncoder();
                    Map<String, Object> request = new LinkedHashMap<>();
                    request.put("host", h.name());
                    request.put("ekPublic", b64.encodeToString(h.ekPublic().encoded()));
                    request.put("ekCertificate", b64.encodeToString(h.ekCertificate()));
                    request.put("akPublic", b64.encodeToString(h.akPublic().encoded()));
                    request.put("enrollmentToken", t);
                    JsonNode challenge = admin.post("/v1/enrollments", request, null);
                    JsonNode c = challenge.get("credential");
                    Base64.Decoder d = Base64.getDecoder();
                    byte[] secret = h.activate(new CredentialBlob(d.decode(c.get("integrityHmac").asText()),
                            d.decode(c.get("encIdentity").asText()), d.decode(c.get("encryptedSecret").asText())));
                    JsonNode enrolled = admin.post("/v1/enrollments/" + challenge.get("enrollmentId").asText()
                            + "/activation", Map.of("secret", b64.encodeToString(secret)), null);
                    h.enrolled(enrolled.get("akId").asText());
                    return null;
                }));
            }
            for (java.util.concurrent.Future<?> f : done) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        List<RealHost> real = new ArrayList<>();
        for (MeasuredHost h : cross) {
            String t = admin.post("/v1/enrollment-tokens", Map.of("host", h.name()), ADMIN_TOKEN)
                    .get("enrollmentToken").asText();
            real.add(new RealHost(h, new HostAttestation(h.tpm(), admin).enroll(h.name(), t).akId()));
        }
        return real;
    }

    /** One interval of warm-up, the measured window, then the last cycles drained. */
    private static Phase phase(String backend, List<Instance> instances, Options o, List<SoftwareHost> fleet,
                               List<RealHost> real, PcrSelection selection, Tally t) throws Exception {
        long period = o.interval().toNanos();
        ScheduledExecutorService timer = Executors.newScheduledThreadPool(4, r -> {
            Thread th = new Thread(r, "fleet-timer");
            th.setDaemon(true);
            return th;
        });
        ExecutorService tpmWork = Executors.newFixedThreadPool(Math.max(1, real.size()));
        // A thread per cycle in flight, at most one per host (a host skips a cycle while its last one runs): a fleet
        // of N agents has at most N requests in flight, each on its agent's one connection.
        ExecutorService hostWork = Executors.newCachedThreadPool(r -> {
            Thread th = new Thread(r, "fleet-host");
            th.setDaemon(true);
            return th;
        });
        List<HostConnection> connections = new ArrayList<>(fleet.size());
        AtomicBoolean stop = new AtomicBoolean();
        SecureRandom random = new SecureRandom();
        long start = System.nanoTime();
        // Hosts join at JOINING_PER_SECOND, and at least over one interval (so their phases spread over it); the
        // window starts one interval after the last has joined.
        long joining = Math.max(period, (long) (fleet.size() * 1e9 / JOINING_PER_SECOND));
        t.windowStart = start + joining + period;
        t.windowEnd = t.windowStart + o.seconds().toNanos();
        try {
            for (int i = 0; i < fleet.size(); i++) {
                SoftwareHost h = fleet.get(i);
                Instance at = instances.get(Math.floorMod(h.name().hashCode(), instances.size()));
                long joins = (long) ((i + random.nextDouble()) * joining / fleet.size());
                HostConnection connection = new HostConnection(at.tls(), at.server().uri(),
                        AttestationClient.KEEP_ALIVE);
                connections.add(connection);
                AtomicBoolean busy = new AtomicBoolean();
                timer.scheduleAtFixedRate(() -> {
                    if (stop.get()) {
                        return;
                    }
                    if (!busy.compareAndSet(false, true)) {
                        t.late.incrementAndGet();
                        return;
                    }
                    long now = System.nanoTime();
                    t.started(CompletableFuture.runAsync(() -> {
                        try {
                            cycle(h, connection, t);
                        } finally {
                            busy.set(false);
                        }
                    }, hostWork), now);
                }, joins, period, TimeUnit.NANOSECONDS);
            }
            for (RealHost h : real) {
                Instance at = instances.get(Math.floorMod(h.tpm().name().hashCode(), instances.size()));
                AtomicBoolean busy = new AtomicBoolean();
                timer.scheduleAtFixedRate(() -> {
                    if (stop.get() || !busy.compareAndSet(false, true)) {
                        return;
                    }
                    long now = System.nanoTime();
                    t.started(CompletableFuture.runAsync(() -> {
                        try {
                            realCycle(h, at, t);
                        } finally {
                            busy.set(false);
                        }
                    }, tpmWork), now);
                }, (long) (random.nextDouble() * period), period, TimeUnit.NANOSECONDS);
            }
            sleepUntil(t.windowStart);
            double cpuAtStart = cpu(instances);
            List<Map<String, Map.Entry<String, ThreadCpu.Time>>> threadsAtStart = threads(instances);
            double loadAtStart = ownCpuSeconds();
            long handshakesAtStart = opened(connections);
            sleepUntil(t.windowEnd);
            stop.set(true);
            try {
                CompletableFuture.allOf(t.cycles.toArray(CompletableFuture[]::new)).get(
                        REQUEST_TIMEOUT.toSeconds() * 2, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                // counted as errors by the cycles themselves
            } catch (java.util.concurrent.TimeoutException e) {
                LOG.warn("{}: cycles still unanswered {} s after the window", backend, REQUEST_TIMEOUT.toSeconds() * 2);
            }
            double cpu = cpu(instances) - cpuAtStart;
            Map<String, ThreadCpu.Time> byThread = byThread(instances, threadsAtStart);
            double load = ownCpuSeconds() - loadAtStart;
            long handshakes = opened(connections) - handshakesAtStart;
            long unanswered = t.windowCycles.stream().filter(f -> !f.isDone()).count();
            if (unanswered > 0) { // neither an answer nor a time-out yet: an error, not left out of the figures
                t.errors.addAndGet(unanswered);
                t.errorKinds.computeIfAbsent("unanswered after the window", x -> new AtomicLong())
                        .addAndGet(unanswered);
                t.error(unanswered + " measured cycles unanswered " + REQUEST_TIMEOUT.toSeconds() * 2
                        + " s after the window");
            }
            long[] sorted = t.latencies.stream().mapToLong(Long::longValue).sorted().toArray();
            long[] realSorted = t.realLatencies.stream().mapToLong(Long::longValue).sorted().toArray();
            // With every host's connection still open: what the fleet's connections cost the servers' heaps. After the
            // window's figures are taken: the histogram's full GC pauses the server, and a cycle that ends meanwhile
            // must not count as both unanswered and answered.
            long heap = 0;
            for (Instance i : instances) {
                long bytes = i.server().liveHeapBytes();
                heap = heap < 0 || bytes < 0 ? -1 : heap + bytes;
            }
            long cycles = sorted.length;
            double window = o.seconds().toNanos() / 1e9;
            return new Phase(backend, instances.size(), fleet.size(), fleet.size() / (period / 1e9), cycles / window,
                    cycles, t.errors.get(), t.late.get(), percentile(sorted, 50), percentile(sorted, 99),
                    percentile(sorted, 100), cycles == 0 ? 0 : cpu * 1000 / cycles,
                    cycles == 0 ? 0 : load * 1000 / cycles, realSorted.length,
                    t.realErrors.get(), percentile(realSorted, 50), handshakes, heap, perAppraisal(byThread, cycles),
                    new ArrayList<>(t.firstErrors),
                    t.errorKinds.entrySet().stream().collect(java.util.stream.Collectors.toMap(Map.Entry::getKey,
                            x -> x.getValue().get())));
        } finally {
            stop.set(true);
            timer.shutdownNow();
            tpmWork.shutdownNow();
            tpmWork.awaitTermination(30, TimeUnit.SECONDS);
            hostWork.shutdownNow();
            hostWork.awaitTermination(30, TimeUnit.SECONDS);
            connections.forEach(HostConnection::close);
        }
    }

    /**
     * Nonce request, quote, appraisal on the host's own connection, on the caller's thread; records a cycle that
     * started in the window. Failures are counted, never thrown.
     */
    private static void cycle(SoftwareHost h, HostConnection connection, Tally t) {
        long t0 = System.nanoTime();
        boolean measured = t0 >= t.windowStart && t0 < t.windowEnd;
        try {
            io.tpmphone.attestation.NonceRequest request = h.nonceRequest(System.currentTimeMillis());
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("akId", request.akId());
            body.put("requestedAt", request.requestedAt());
            body.put("signature", Base64.getEncoder().encodeToString(h.sign(request.encoded())));
            HostConnection.Response grant = connection.post("/v1/nonces", JSON.writeValueAsString(body),
                    REQUEST_TIMEOUT);
            if (grant.status() != 200) {
                throw new IllegalStateException("POST /v1/nonces: HTTP " + grant.status() + " " + grant.body());
            }
            JsonNode g = JSON.readTree(grant.body());
            byte[] nonce = HexFormat.of().parseHex(g.get("nonce").asText());
            TpmQuote quote = h.quote(PcrSelection.parse(g.get("pcrSelection").asText()), nonce);
            HostConnection.Response r = connection.post("/v1/appraisals", JSON.writeValueAsString(
                    HostAttestation.appraisalRequest(h.akId(), nonce, quote, h.log())), REQUEST_TIMEOUT);
            String level = null;
            if (r.status() == 200) {
                try {
                    level = JSON.readTree(r.body()).path("level").asText();
                } catch (IOException e) {
                    level = "unreadable";
                }
            }
            if (!"MEASURED".equals(level)) {
                throw new IllegalStateException("POST /v1/appraisals: HTTP " + r.status() + " " + r.body());
            }
            t.acknowledged.incrementAndGet();
            if (measured) {
                t.latencies.add(System.nanoTime() - t0);
            }
        } catch (Exception e) {
            if (measured) {
                t.errors.incrementAndGet();
                t.kind(e);
                t.error(h.name() + ": " + e);
            } else {
                LOG.warn("{} (warm-up): {}", h.name(), e.toString());
            }
        }
    }

    private static long opened(List<HostConnection> connections) {
        long n = 0;
        for (HostConnection c : connections) {
            n += c.opened();
        }
        return n;
    }

    /** The same cycle through a real swtpm, as {@link HttpsAppraisalLoad} does it. */
    private static void realCycle(RealHost h, Instance at, Tally t) {
        long t0 = System.nanoTime();
        boolean measured = t0 >= t.windowStart && t0 < t.windowEnd;
        try {
            String nonceRequest = JSON.writeValueAsString(HostAttestation.nonceRequest(h.tpm().tpm(),
                    PersistentHandle.AK, h.akId(), System.currentTimeMillis()));
            HttpResponse<String> grant = at.http().send(post(at, "/v1/nonces", nonceRequest),
                    HttpResponse.BodyHandlers.ofString());
            if (grant.statusCode() != 200) {
                throw new IllegalStateException("POST /v1/nonces: HTTP " + grant.statusCode() + " " + grant.body());
            }
            JsonNode g = JSON.readTree(grant.body());
            byte[] nonce = HexFormat.of().parseHex(g.get("nonce").asText());
            TpmQuote quote = h.tpm().quote(PcrSelection.parse(g.get("pcrSelection").asText()), nonce);
            HttpResponse<String> r = at.http().send(post(at, "/v1/appraisals", JSON.writeValueAsString(
                    HostAttestation.appraisalRequest(h.akId(), nonce, quote, h.tpm().log()))),
                    HttpResponse.BodyHandlers.ofString());
            String level = r.statusCode() == 200 ? JSON.readTree(r.body()).path("level").asText() : null;
            if (!"MEASURED".equals(level)) {
                throw new IllegalStateException("POST /v1/appraisals: HTTP " + r.statusCode() + " " + r.body());
            }
            t.acknowledged.incrementAndGet();
            if (measured) {
                t.realLatencies.add(System.nanoTime() - t0);
            }
        } catch (Exception e) {
            if (measured) {
                t.realErrors.incrementAndGet();
                t.kind(e);
                t.error(h.tpm().name() + " (swtpm): " + e);
            } else {
                LOG.warn("{} (warm-up): {}", h.tpm().name(), e.toString());
            }
        }
    }

    private static HttpRequest post(Instance at, String path, String body) {
        return HttpRequest.newBuilder(at.server().uri().resolve(path)).timeout(REQUEST_TIMEOUT)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8)).build();
    }

    private static double cpu(List<Instance> instances) throws IOException {
        double sum = 0;
        for (Instance i : instances) {
            sum += i.server().cpuSeconds();
        }
        return sum;
    }

    private static List<Map<String, Map.Entry<String, ThreadCpu.Time>>> threads(List<Instance> instances)
            throws IOException {
        List<Map<String, Map.Entry<String, ThreadCpu.Time>>> all = new ArrayList<>();
        for (Instance i : instances) {
            all.add(ThreadCpu.snapshot(i.server().pid()));
        }
        return all;
    }

    /** The instances' CPU seconds since {@code before}, by thread group, summed over the instances. */
    private static Map<String, ThreadCpu.Time> byThread(List<Instance> instances,
            List<Map<String, Map.Entry<String, ThreadCpu.Time>>> before) throws IOException {
        Map<String, ThreadCpu.Time> sum = new java.util.LinkedHashMap<>();
        List<Map<String, Map.Entry<String, ThreadCpu.Time>>> after = threads(instances);
        for (int i = 0; i < instances.size(); i++) {
            ThreadCpu.between(before.get(i), after.get(i)).forEach((group, time) -> sum.merge(group, time,
                    (a, b) -> new ThreadCpu.Time(a.user() + b.user(), a.system() + b.system(),
                            a.switches() + b.switches())));
        }
        return sum;
    }

    /** Seconds by group as milliseconds per appraisal (and context switches per appraisal). */
    private static Map<String, ThreadCpu.Time> perAppraisal(Map<String, ThreadCpu.Time> seconds, long cycles) {
        Map<String, ThreadCpu.Time> ms = new java.util.LinkedHashMap<>();
        seconds.forEach((group, t) -> ms.put(group, cycles == 0 ? new ThreadCpu.Time(0, 0, 0)
                : new ThreadCpu.Time(t.user() * 1000 / cycles, t.system() * 1000 / cycles, t.switches() / cycles)));
        return ms;
    }

    /**
     * This JVM's CPU time (the load generator: software hosts' signing, the HTTPS clients, the swtpm hosts' TSS side;
     * not the swtpm processes), in seconds: next to the servers', to see whether the load shares the cores fairly.
     */
    private static double ownCpuSeconds() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime() / 1e9;
    }

    private static void sleepUntil(long nanoTime) throws InterruptedException {
        long left;
        while ((left = nanoTime - System.nanoTime()) > 0) {
            TimeUnit.NANOSECONDS.sleep(left);
        }
    }

    private static double percentile(long[] sorted, double p) {
        if (sorted.length == 0) {
            return 0;
        }
        int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(i, sorted.length - 1))] / 1e6;
    }

    /** The APPRAISAL records of the audit log (PostgreSQL's when {@code url} is given, else {@code db}). */
    private static long appraisalRecords(String url, Path db) throws Exception {
        long[] n = {0};
        AuditRecords.forEach(url, db, r -> n[0] += r.type() == AuditEventType.APPRAISAL ? 1 : 0);
        return n[0];
    }

    private static Path pem(Path file, List<X509Certificate> certificates) throws IOException {
        StringWriter s = new StringWriter();
        try (JcaPEMWriter w = new JcaPEMWriter(s)) {
            for (X509Certificate c : certificates) {
                w.writeObject(c);
            }
        }
        return Files.writeString(file, s.toString());
    }

    /** For the command's table: the rows as they print. */
    static List<String> table(Report r) {
        List<String> lines = new ArrayList<>();
        lines.add(String.format(java.util.Locale.ROOT,
                "%-10s %4s %6s %8s %8s %8s %6s %5s %8s %8s %8s %9s %10s %10s %6s %8s",
                "backend", "inst", "hosts", "target/s", "done/s", "cycles", "errors", "late", "p50 ms", "p99 ms",
                "max ms", "cpu ms/ap", "load ms/ap", "handshakes", "swtpm", "heap MB"));
        for (Phase p : r.phases()) {
            lines.add(String.format(java.util.Locale.ROOT,
                    "%-10s %4d %6d %8.1f %8.1f %8d %6d %5d %8.1f %8.1f %8.1f %9.2f %10.2f %10d %6s %8s", p.backend(),
                    p.instances(), p.hosts(), p.targetPerSecond(), p.appraisalsPerSecond(), p.cycles(), p.errors(),
                    p.late(), p.p50Millis(), p.p99Millis(), p.maxMillis(), p.serverCpuMillisPerAppraisal(),
                    p.loadCpuMillisPerAppraisal(), p.handshakes(),
                    p.realHostCycles() + "/" + p.realHostErrors(), p.serverLiveHeapBytes() < 0 ? "n/a"
                            : String.format(java.util.Locale.ROOT, "%.0f", p.serverLiveHeapBytes() / 1048576.0)));
        }
        for (Phase p : r.phases()) {
            StringBuilder b = new StringBuilder(String.format(java.util.Locale.ROOT,
                    "%-10s %4d: server cpu ms/ap by thread (user+system, context switches/ap):", p.backend(),
                    p.instances()));
            p.serverCpuMillisPerAppraisalByThread().forEach((group, t) -> b.append(String.format(java.util.Locale.ROOT,
                    " %s %.3f (%.3f sys, %.1f sw);", group, t.total(), t.system(), t.switches())));
            lines.add(b.toString());
        }
        return lines;
    }
}
