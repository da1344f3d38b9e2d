package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmQuote;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * SIGKILL of the attestation server in the middle of an appraisal load, then a restart on the same state, cycle after
 * cycle. The server is the real one started as {@code tpmphone server} in a process of its own (real HTTPS, its
 * SQLite or PostgreSQL registry and audit log); enrolled hosts (one swtpm each) send real appraisals (nonce signed by
 * the AK, swtpm quote, measurement log) from concurrent closed-loop clients. Each cycle waits until the clients have
 * had {@code acknowledgedPerCycle} appraisals acknowledged (200 MEASURED) and kills the server while they keep
 * firing; requests in flight then fail, which is allowed: what was acknowledged must not be lost. After each restart:
 *
 * <ul>
 *   <li>every acknowledged appraisal has its APPRAISAL record (matched by the evidence hash the server records,
 *       {@code evidenceSha256}, which the client computes from what it sent);</li>
 *   <li>{@code tpmphone audit verify --open} passes on the live log;</li>
 *   <li>SQLite's {@code PRAGMA integrity_check} says {@code ok} for the registry and the audit database;</li>
 *   <li>every host attests again (the registry kept its enrollment and rollback state).</li>
 * </ul>
 * At the end the server is stopped cleanly (SIGTERM: its closing checkpoint) and {@code tpmphone audit verify}
 * without {@code --open} must pass. Any other HTTP status than 200 MEASURED while the server is alive fails the run.
 * Returns a {@link Report}; prints nothing. Not thread-safe.
 */
public final class ServerCrash {
    private static final Logger LOG = LoggerFactory.getLogger(ServerCrash.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration START_TIMEOUT = Duration.ofSeconds(120);
    private static final Duration CYCLE_TIMEOUT = Duration.ofMinutes(5);
    /** Nonce request times, strictly increasing across all hosts (the server refuses one not after the last). */
    private static final AtomicLong REQUEST_TIME = new AtomicLong();

    private ServerCrash() {
    }

    /**
     * What to run.
     *
     * @param cycles               kill-and-restart cycles
     * @param hosts                enrolled hosts, one swtpm each
     * @param clients              concurrent closed-loop clients (hosts are shared out among them)
     * @param acknowledgedPerCycle appraisals acknowledged in a cycle before the kill
     * @param directory            where the state goes (deleted afterwards)
     * @param database             a PostgreSQL URL of a role that may CREATE DATABASE (a scratch database is made and
     *                             dropped), or empty for SQLite in the server's state directory
     * @param auditWriterLease     with a database: the server's {@code --audit-writer-lease} in seconds (how long the
     *                             killed server still counts as an audit writer before the final clean stop may
     *                             close the chain), or empty for the server's default (10 s)
     */
    public record Options(int cycles, int hosts, int clients, int acknowledgedPerCycle, Path directory,
                          Optional<String> database, Optional<Integer> auditWriterLease) {
        /** With the server's default audit writer lease. */
        public Options(int cycles, int hosts, int clients, int acknowledgedPerCycle, Path directory,
                       Optional<String> database) {
            this(cycles, hosts, clients, acknowledgedPerCycle, directory, database, Optional.empty());
        }

        public Options {
            if (cycles < 1 || hosts < 1 || clients < 1 || acknowledgedPerCycle < 1) {
                throw new IllegalArgumentException("cycles, hosts, clients and acknowledged appraisals per cycle must"
                        + " be at least 1");
            }
            if (clients > hosts || hosts > 64) {
                throw new IllegalArgumentException("hosts (one swtpm each) must be at least the clients (" + clients
                        + ") and at most 64, got " + hosts);
            }
            Objects.requireNonNull(directory, "directory");
            Objects.requireNonNull(database, "database");
            if (database.isPresent() && !database.get().startsWith("jdbc:postgresql://")) {
                throw new IllegalArgumentException("the database must be jdbc:postgresql://HOST:PORT/DB?user=USER");
            }
            Objects.requireNonNull(auditWriterLease, "auditWriterLease");
            if (auditWriterLease.isPresent() && database.isEmpty()) {
                throw new IllegalArgumentException("an audit writer lease needs a database (SQLite has no leases)");
            }
        }
    }

    /**
     * One cycle: appraisals acknowledged before the kill, requests that failed because of it, the server's exit
     * status (137: SIGKILL), how long the restart took and how many APPRAISAL records the log held afterwards.
     */
    public record Cycle(int cycle, long acknowledged, long failedByKill, int exitStatus, double restartSeconds,
                        long appraisalRecords, String auditVerify) {
    }

    /**
     * A run's outcome: the cycles, every acknowledged appraisal found ({@code acknowledged == found}, or the run
     * throws), and the final {@code audit verify} of the cleanly stopped log.
     */
    public record Report(String backend, List<Cycle> cycles, long acknowledged, long found, String finalVerify) {
        public Report {
            cycles = List.copyOf(cycles);
        }
    }

    /** Something was lost or broken: an acknowledged appraisal without its record, a failed verify, a bad status. */
    public static final class LostSomethingException extends Exception {
        private static final long serialVersionUID = 1L;

        LostSomethingException(String message) {
            super(message);
        }
    }

    /** An enrolled host and its client's share. */
    private record Host(MeasuredHost tpm, String akId) {
    }

    /**
     * Runs the cycles.
     *
     * @throws LostSomethingException if an acknowledged appraisal is missing, a check fails or a live server answered
     *                                anything but 200 MEASURED
     * @throws Exception              if the set-up fails
     */
    public static Report run(Options o) throws Exception {
        Objects.requireNonNull(o, "options");
        Path dir = Files.createTempDirectory(Files.createDirectories(o.directory()), "tpmphone-crash-server-");
        try {
            if (o.database().isEmpty()) {
                return run(o, dir, null);
            }
            String admin = o.database().get();
            String name = "tpmphone_crash_" + Long.toHexString(System.nanoTime());
            try (java.sql.Connection c = java.sql.DriverManager.getConnection(admin);
                 java.sql.Statement s = c.createStatement()) {
                s.execute("CREATE DATABASE " + name);
            }
            int slash = admin.indexOf('/', "jdbc:postgresql://".length());
            int q = admin.indexOf('?');
            try {
                return run(o, dir, admin.substring(0, slash + 1) + name + (q < 0 ? "" : admin.substring(q)));
            } finally {
                try (java.sql.Connection c = java.sql.DriverManager.getConnection(admin);
                     java.sql.Statement s = c.createStatement()) {
                    s.execute("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
                }
            }
        } finally {
            SwtpmProcess.deleteDirectory(dir);
        }
    }

    private static Report run(Options o, Path dir, String databaseUrl) throws Exception {
        LaunchSpec spec = Release.spec(dir);
        Path policy = Files.writeString(dir.resolve("policy.json"), Release.policy(spec));
        List<MeasuredHost> tpms = MeasuredHost.startAll(o.hosts(), dir, spec);
        Path state = dir.resolve("server");
        ServerProcess server = null;
        try {
            Path ekCa = dir.resolve("ek-ca.pem");
            StringBuilder pem = new StringBuilder();
            for (X509Certificate ca : tpms.get(0).ekCaChain()) {
                pem.append(pem(ca));
            }
            Files.writeString(ekCa, pem);
            int port = freePort();
            List<String> args = new ArrayList<>(List.of("server", "--state", state.toString(), "--listen",
                    "127.0.0.1:" + port, "--admin-token-file", dir.resolve("admin.token").toString(),
                    "--generate-admin-token", "--ek-ca", ekCa.toString(), "--policy", policy.toString()));
            if (databaseUrl != null) {
                args.addAll(List.of("--database", databaseUrl));
                o.auditWriterLease().ifPresent(seconds -> args.addAll(List.of("--audit-writer-lease",
                        seconds.toString())));
            }
            server = ServerProcess.start(args, dir.resolve("server-1.log"));
            X509Certificate tlsCertificate = certificate(state.resolve("keys").resolve("tls-cert.pem"));
            String adminToken = Files.readString(dir.resolve("admin.token")).strip();
            AttestationClient admin = new AttestationClient(server.uri, tlsCertificate, REQUEST_TIMEOUT);
            List<Host> hosts = new ArrayList<>();
            for (MeasuredHost h : tpms) {
                String token = admin.post("/v1/enrollment-tokens", Map.of("host", h.name()), adminToken)
                        .get("enrollmentToken").asText();
                hosts.add(new Host(h, new HostAttestation(h.tpm(), admin).enroll(h.name(), token).akId()));
            }
            SSLContext tls = pinned(tlsCertificate);
            Set<String> acknowledged = ConcurrentHashMap.newKeySet();
            List<Cycle> cycles = new ArrayList<>();
            for (int cycle = 1; cycle <= o.cycles(); cycle++) {
                Load load = new Load(o, hosts, server.uri, tls, acknowledged);
                load.start();
                try {
                    if (!load.enough.await(CYCLE_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
                        throw new LostSomethingException("cycle " + cycle + ": " + o.acknowledgedPerCycle()
                                + " appraisals were not acknowledged within " + CYCLE_TIMEOUT + "; "
                                + load.describe());
                    }
                    if (load.problem().isPresent()) {
                        throw new LostSomethingException("cycle " + cycle + ": " + load.problem().get());
                    }
                    long before = load.acknowledged.get();
                    int exit = server.kill(); // SIGKILL, the clients still firing
                    load.stop();
                    long failedByKill = load.failedByKill.get();
                    LOG.info("cycle {}: killed the server (exit {}) after {} acknowledged appraisals; {} requests"
                            + " failed with it", cycle, exit, before, failedByKill);
                    if (load.problem().isPresent()) {
                        throw new LostSomethingException("cycle " + cycle + ": " + load.problem().get());
                    }
                    long restarting = System.nanoTime();
                    server = ServerProcess.start(args, dir.resolve("server-" + (cycle + 1) + ".log"));
                    double restartSeconds = (System.nanoTime() - restarting) / 1e9;
                    long records = checkRecords(state, databaseUrl, acknowledged, "cycle " + cycle);
                    String verify = auditVerify(state, databaseUrl, true, dir);
                    if (databaseUrl == null) {
                        integrityCheck(state.resolve("registry.db"));
                        integrityCheck(state.resolve("audit.db"));
                    }
                    cycles.add(new Cycle(cycle, load.acknowledged.get(), failedByKill, exit, restartSeconds,
                            records, verify));
                } finally {
                    load.stop();
                }
            }
            // The hosts attest again after the last restart, and the log closes cleanly.
            Load last = new Load(o, hosts, server.uri, tls, acknowledged);
            last.start();
            try {
                if (!last.enough.await(CYCLE_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
                    throw new LostSomethingException("after the last restart, the hosts did not attest again: "
                            + last.describe());
                }
            } finally {
                last.stop();
            }
            if (last.problem().isPresent()) {
                throw new LostSomethingException("after the last restart: " + last.problem().get());
            }
            if (databaseUrl != null) {
                // The killed process still counts as an audit writer until its lease runs out (10 s without renewal
                // by default, --audit-writer-lease; docs/audit.md "Several instances"); a server stopped before then
                // signs a plain checkpoint, not the closing one. Stop it once it is the only writer left, as an
                // operator would.
                io.tpmphone.swtpm.testing.Await.until("the killed server's audit writer lease to run out",
                        java.time.Duration.ofSeconds(60), () -> liveAuditWriters(databaseUrl), n -> n <= 1);
            }
            int exit = server.stop();
            if (exit != 0 && exit != 143) {
                throw new LostSomethingException("the server did not stop cleanly on SIGTERM: exit " + exit + "; "
                        + server.logTail());
            }
            long found = checkRecords(state, databaseUrl, acknowledged, "after the clean stop");
            String verify = auditVerify(state, databaseUrl, false, dir);
            return new Report(databaseUrl == null ? "SQLite" : "PostgreSQL", cycles, acknowledged.size(),
                    Math.min(found, acknowledged.size()), verify);
        } finally {
            if (server != null) {
                server.kill();
            }
            tpms.forEach(MeasuredHost::close);
        }
    }

    /**
     * Closed-loop clients over the hosts until stopped: nonce, quote, appraisal; an acknowledged appraisal's evidence
     * hash goes into {@code acknowledged}. A transport failure after the kill is expected; any answer other than 200
     * MEASURED is a problem.
     */
    private static final class Load {
        final CountDownLatch enough;
        final AtomicLong acknowledged = new AtomicLong();
        final AtomicLong failedByKill = new AtomicLong();
        final AtomicBoolean running = new AtomicBoolean(true);
        final List<String> problems = Collections.synchronizedList(new ArrayList<>());
        final List<Thread> threads = new ArrayList<>();

        Load(Options o, List<Host> hosts, URI server, SSLContext tls, Set<String> acks) {
            enough = new CountDownLatch(o.acknowledgedPerCycle());
            for (int c = 0; c < o.clients(); c++) {
                List<Host> mine = new ArrayList<>();
                for (int h = c; h < hosts.size(); h += o.clients()) {
                    mine.add(hosts.get(h));
                }
                HttpClient http = HttpClient.newBuilder().sslContext(tls).connectTimeout(REQUEST_TIMEOUT)
                        .version(HttpClient.Version.HTTP_1_1).build();
                Thread t = new Thread(() -> loop(mine, http, server, acks), "crash-client-" + c);
                t.setDaemon(true);
                threads.add(t);
            }
        }

        void start() {
            threads.forEach(Thread::start);
        }

        private void loop(List<Host> hosts, HttpClient http, URI server, Set<String> acks) {
            for (int i = 0; running.get(); i++) {
                Host host = hosts.get(i % hosts.size());
                try {
                    long requestedAt = REQUEST_TIME.updateAndGet(last -> Math.max(System.currentTimeMillis(),
                            last + 1));
                    HttpResponse<String> grant = http.send(post(server, "/v1/nonces", JSON.writeValueAsString(
                            HostAttestation.nonceRequest(host.tpm().tpm(), PersistentHandle.AK, host.akId(),
                                    requestedAt))), HttpResponse.BodyHandlers.ofString());
                    if (grant.statusCode() != 200) {
                        problem("POST /v1/nonces for " + host.tpm().name() + ": HTTP " + grant.statusCode() + " "
                                + grant.body());
                        return;
                    }
                    JsonNode g = JSON.readTree(grant.body());
                    byte[] nonce = HexFormat.of().parseHex(g.get("nonce").asText());
                    TpmQuote quote = host.tpm().quote(PcrSelection.parse(g.get("pcrSelection").asText()), nonce);
                    byte[] log = host.tpm().log().encode();
                    String body = JSON.writeValueAsString(HostAttestation.appraisalRequest(host.akId(), nonce, quote,
                            host.tpm().log()));
                    HttpResponse<String> r = http.send(post(server, "/v1/appraisals", body),
                            HttpResponse.BodyHandlers.ofString());
                    String level = r.statusCode() == 200 ? JSON.readTree(r.body()).path("level").asText() : "";
                    if (!"MEASURED".equals(level)) {
                        problem("POST /v1/appraisals for " + host.tpm().name() + ": HTTP " + r.statusCode() + " "
                                + r.body());
                        return;
                    }
                    acks.add(evidenceSha256(quote, log));
                    acknowledged.incrementAndGet();
                    enough.countDown();
                } catch (IOException e) {
                    if (running.get()) {
                        failedByKill.incrementAndGet(); // the server is gone; the next kill cycle restarts it
                    }
                    return;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                } catch (Exception e) {
                    problem(host.tpm().name() + ": " + e);
                    return;
                }
            }
        }

        private void problem(String what) {
            problems.add(UntrustedText.forTerminal(what, 500));
            while (enough.getCount() > 0) {
                enough.countDown(); // wake the cycle: it reports the problem
            }
        }

        Optional<String> problem() {
            synchronized (problems) {
                return problems.isEmpty() ? Optional.empty() : Optional.of(String.join("; ", problems));
            }
        }

        void stop() throws InterruptedException {
            running.set(false);
            for (Thread t : threads) {
                t.join(REQUEST_TIMEOUT.toMillis() * 2);
            }
        }

        String describe() {
            return acknowledged.get() + " acknowledged, " + failedByKill.get() + " failed in transport, problems: "
                    + problem().orElse("none");
        }
    }

    /**
     * The evidence hash the server records in an APPRAISAL record's {@code evidenceSha256}: SHA-256 of the TPMS_ATTEST,
     * the signature, the PCR selection's text, the PCR values and the encoded measurement log, as sent.
     */
    static String evidenceSha256(TpmQuote quote, byte[] log) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(quote.attest());
        out.writeBytes(quote.signature());
        out.writeBytes(quote.pcrValues().selection().toString().getBytes(StandardCharsets.US_ASCII));
        for (byte[] v : quote.pcrValues().values()) {
            out.writeBytes(v);
        }
        out.writeBytes(log);
        return HexFormat.of().formatHex(HashAlgorithm.SHA256.digest(out.toByteArray()));
    }

    /** Every acknowledged appraisal has its MEASURED APPRAISAL record; returns how many APPRAISAL records there are. */
    private static long checkRecords(Path state, String databaseUrl, Set<String> acknowledged, String when)
            throws Exception {
        Set<String> recorded = new HashSet<>();
        long[] appraisals = {0};
        AuditRecords.forEach(databaseUrl, state.resolve("audit.db"), r -> {
            if (r.type() == AuditEventType.APPRAISAL) {
                appraisals[0]++;
                if ("MEASURED".equals(r.outcome())) {
                    recorded.add(JSON.readTree(r.detailJson()).path("evidenceSha256").asText());
                }
            }
        });
        List<String> missing = acknowledged.stream().filter(a -> !recorded.contains(a)).limit(5).toList();
        if (!missing.isEmpty()) {
            throw new LostSomethingException(when + ": acknowledged appraisals without their audit record (first "
                    + missing.size() + " evidence hashes): " + missing + "; " + recorded.size()
                    + " MEASURED appraisal records, " + acknowledged.size() + " acknowledged");
        }
        return appraisals[0];
    }

    /** Server processes holding an unexpired audit writer lease in the shared database (its clock decides). */
    private static int liveAuditWriters(String databaseUrl) throws java.sql.SQLException {
        try (java.sql.Connection c = java.sql.DriverManager.getConnection(databaseUrl);
             java.sql.Statement st = c.createStatement();
             java.sql.ResultSet rs = st.executeQuery("SELECT count(*) FROM audit_writer"
                     + " WHERE lease_until > clock_timestamp()")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    /** {@code tpmphone audit verify} in a process of its own; returns its summary line, throws if it fails. */
    private static String auditVerify(Path state, String databaseUrl, boolean open, Path dir) throws Exception {
        List<String> args = new ArrayList<>(List.of("audit", "verify"));
        if (databaseUrl == null) {
            args.addAll(List.of("--db", state.resolve("audit.db").toString()));
        } else {
            args.addAll(List.of("--database", databaseUrl));
        }
        args.addAll(List.of("--public-key", state.resolve("keys").resolve("result-signing-cert.pem").toString()));
        if (open) {
            args.add("--open");
        }
        Path output = dir.resolve("audit-verify.out");
        Path errors = dir.resolve("audit-verify.err");
        Process p = new ProcessBuilder(javaCommand(args)).redirectError(errors.toFile()).redirectOutput(output.toFile())
                .start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new LostSomethingException("tpmphone audit verify did not finish within 120 s");
        }
        String said = Files.readString(output).strip();
        if (p.exitValue() != 0) {
            throw new LostSomethingException("tpmphone audit verify" + (open ? " --open" : "") + " failed (exit "
                    + p.exitValue() + "): " + said + " " + Files.readString(errors).strip());
        }
        return said.lines().findFirst().orElse("");
    }

    /** SQLite's own check of a database file: {@code ok}, or the run fails. */
    private static void integrityCheck(Path db) throws Exception {
        java.util.Properties readOnly = new java.util.Properties();
        readOnly.setProperty("open_mode", "1"); // SQLITE_OPEN_READONLY
        try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + db, readOnly);
             java.sql.Statement s = c.createStatement();
             java.sql.ResultSet rs = s.executeQuery("PRAGMA integrity_check")) {
            String result = rs.next() ? rs.getString(1) : "(no answer)";
            if (!"ok".equals(result)) {
                throw new LostSomethingException(db.getFileName() + " is damaged: PRAGMA integrity_check says "
                        + result);
            }
        }
    }

    static List<String> javaCommand(List<String> args) {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-cp", System.getProperty("java.class.path"), "io.tpmphone.cli.Main"));
        command.addAll(args);
        return command;
    }

    /** The server as {@code tpmphone server} in a process of its own, up once it printed its address. */
    private static final class ServerProcess {
        final Process process;
        final URI uri;
        final Path log;

        private ServerProcess(Process process, URI uri, Path log) {
            this.process = process;
            this.uri = uri;
            this.log = log;
        }

        static ServerProcess start(List<String> args, Path log) throws Exception {
            Process p = new ProcessBuilder(javaCommand(args)).redirectError(log.toFile()).start();
            CompletableFuture<URI> up = new CompletableFuture<>();
            Thread reader = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line = in.readLine(); line != null; line = in.readLine()) {
                        if (line.startsWith("attestation server on ")) {
                            String rest = line.substring("attestation server on ".length());
                            up.complete(URI.create(rest.substring(0, rest.indexOf(' '))));
                        }
                    }
                    up.completeExceptionally(new IOException("the server's output ended"));
                } catch (IOException e) {
                    up.completeExceptionally(e);
                }
            }, "server-stdout");
            reader.setDaemon(true);
            reader.start();
            try {
                return new ServerProcess(p, up.get(START_TIMEOUT.toSeconds(), TimeUnit.SECONDS), log);
            } catch (Exception e) {
                p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
                throw new IOException("tpmphone server did not start: " + e + "; its log ends: "
                        + tail(log), e);
            }
        }

        /** SIGKILL; the exit status (137). */
        int kill() throws InterruptedException {
            process.destroyForcibly();
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the server did not die of SIGKILL within 30 s");
            }
            return process.exitValue();
        }

        /** SIGTERM (its shutdown hook closes the audit log); the exit status. */
        int stop() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IllegalStateException("the server did not stop within 60 s of SIGTERM");
            }
            return process.exitValue();
        }

        String logTail() {
            return tail(log);
        }
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return UntrustedText.forTerminal(String.join(" | ", lines.subList(Math.max(0, lines.size() - 10),
                    lines.size())), 4000);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private static HttpRequest post(URI server, String path, String body) {
        return HttpRequest.newBuilder(server.resolve(path)).timeout(REQUEST_TIMEOUT)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }

    private static X509Certificate certificate(Path pem) throws Exception {
        try (var in = Files.newInputStream(pem)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static String pem(X509Certificate c) throws Exception {
        return "-----BEGIN CERTIFICATE-----\n" + Base64.getMimeEncoder(64, new byte[] {'\n'})
                .encodeToString(c.getEncoded()) + "\n-----END CERTIFICATE-----\n";
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

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
