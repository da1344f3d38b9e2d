package io.tpmphone.benchmarks;

import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import io.tpmphone.swtpm.SwtpmProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Durable-append throughput of the attestation server's {@link AuditLog} with concurrent callers: every append is
 * committed with fsync (WAL, {@code synchronous=FULL}, group commit) before it returns. Two seconds of warm-up (JIT,
 * page cache, WAL growth), then {@code seconds} of measurement; afterwards {@link AuditVerifier} checks the whole
 * chain and the checkpoint signatures, and that is timed too.
 *
 * <p>Returns the figures and prints nothing; {@code tpmphone bench audit} prints them. The database lives in a
 * scratch directory under the given directory, deleted afterwards: put it on the disk you care about (not tmpfs).
 */
public final class AuditAppendLoad {
    private static final long WARMUP_NANOS = TimeUnit.SECONDS.toNanos(2);
    /** How long past its deadline a worker may take to finish its last append (the log's append timeout is 5 s). */
    private static final long JOIN_GRACE_NANOS = TimeUnit.SECONDS.toNanos(30);

    private AuditAppendLoad() {
    }

    /**
     * A run's figures. Latencies are per append, in milliseconds.
     *
     * @param threads           concurrent callers
     * @param seconds           measured wall-clock seconds
     * @param appends           records appended while measuring
     * @param appendsPerSecond  durable appends per second
     * @param verifySeconds     time {@link AuditVerifier#verify} took over the whole log (warm-up records included)
     * @param verifySummary     its summary
     * @param databaseBytes     size of the database file at the end
     */
    public record Result(int threads, double seconds, long appends, double appendsPerSecond, double p50Millis,
                         double p99Millis, double maxMillis, double verifySeconds, String verifySummary,
                         long databaseBytes) {
    }

    /**
     * Runs {@code threads} callers appending for {@code seconds} (after a 2 s warm-up) to a fresh audit log in a
     * scratch directory under {@code directory}.
     *
     * @throws IllegalArgumentException if {@code threads} or {@code seconds} is not positive
     * @throws IllegalStateException    if the log fails verification afterwards
     * @throws Exception                if an append fails or a caller does not finish in time
     */
    public static Result run(int threads, int seconds, Path directory) throws Exception {
        if (threads <= 0 || seconds <= 0) {
            throw new IllegalArgumentException("threads and seconds must be positive, got " + threads + " and "
                    + seconds);
        }
        Objects.requireNonNull(directory, "directory");
        Path scratch = Files.createTempDirectory(Files.createDirectories(directory), "audit-bench");
        try {
            return measure(threads, seconds, scratch.resolve("audit.db"));
        } finally {
            SwtpmProcess.deleteDirectory(scratch);
        }
    }

    /**
     * As {@link #run}, against the shared chain of several server instances on PostgreSQL: a fresh database is created
     * next to the one {@code adminUrl} names (which needs CREATE DATABASE), {@code instances} audit logs are opened on
     * it ({@link AuditLog#openShared}, each with its own connection pool, as separate servers would have), the callers
     * are spread over them, and the database is dropped afterwards. The result's database size is PostgreSQL's.
     */
    public static Result runShared(int threads, int seconds, String adminUrl, int instances) throws Exception {
        if (threads <= 0 || seconds <= 0 || instances <= 0) {
            throw new IllegalArgumentException("threads, seconds and instances must be positive, got " + threads
                    + ", " + seconds + " and " + instances);
        }
        if (!adminUrl.startsWith("jdbc:postgresql://")) {
            throw new IllegalArgumentException("--database must be jdbc:postgresql://HOST:PORT/DB?user=USER");
        }
        String name = "tpmphone_bench_" + Long.toHexString(System.nanoTime());
        try (java.sql.Connection c = java.sql.DriverManager.getConnection(adminUrl);
             java.sql.Statement s = c.createStatement()) {
            s.execute("CREATE DATABASE " + name);
        }
        int slash = adminUrl.indexOf('/', "jdbc:postgresql://".length());
        int q = adminUrl.indexOf('?');
        String url = adminUrl.substring(0, slash + 1) + name + (q < 0 ? "" : adminUrl.substring(q));
        List<com.zaxxer.hikari.HikariDataSource> pools = new ArrayList<>();
        try {
            KeyPair keys = ecKeyPair();
            List<AuditLog> logs = new ArrayList<>();
            for (int i = 0; i < instances; i++) {
                com.zaxxer.hikari.HikariDataSource pool = new com.zaxxer.hikari.HikariDataSource();
                pool.setJdbcUrl(url);
                pool.setMaximumPoolSize(10);
                pools.add(pool);
                logs.add(AuditLog.openShared(pool, name, AuditSigner.ecdsa(keys), AuditLog.Options.defaults()));
            }
            double elapsed;
            long appended;
            long[] latencies;
            try {
                append(logs, threads, WARMUP_NANOS);
                long before = size(url);
                long start = System.nanoTime();
                latencies = append(logs, threads, TimeUnit.SECONDS.toNanos(seconds));
                elapsed = (System.nanoTime() - start) / 1e9;
                appended = size(url) - before;
                Arrays.sort(latencies);
            } finally {
                for (AuditLog log : logs) {
                    log.close();
                }
            }
            long verifyStart = System.nanoTime();
            VerificationReport report = AuditVerifier.verify(url, Optional.of(keys.getPublic()),
                    io.tpmphone.server.audit.VerifyOptions.closed());
            double verifySeconds = (System.nanoTime() - verifyStart) / 1e9;
            if (!report.intact()) {
                throw new IllegalStateException("the audit log does not verify: " + report.summary());
            }
            long bytes;
            try (java.sql.Connection c = java.sql.DriverManager.getConnection(url);
                 java.sql.Statement s = c.createStatement();
                 java.sql.ResultSet rs = s.executeQuery("SELECT pg_database_size(current_database())")) {
                rs.next();
                bytes = rs.getLong(1);
            }
            return new Result(threads, elapsed, appended, appended / elapsed, pct(latencies, 0.50),
                    pct(latencies, 0.99), latencies[latencies.length - 1] / 1e6, verifySeconds, report.summary(),
                    bytes);
        } finally {
            for (com.zaxxer.hikari.HikariDataSource pool : pools) {
                pool.close();
            }
            try (java.sql.Connection c = java.sql.DriverManager.getConnection(adminUrl);
                 java.sql.Statement s = c.createStatement()) {
                s.execute("DROP DATABASE IF EXISTS " + name);
            }
        }
    }

    private static long size(String url) throws java.sql.SQLException {
        try (java.sql.Connection c = java.sql.DriverManager.getConnection(url);
             java.sql.Statement s = c.createStatement();
             java.sql.ResultSet rs = s.executeQuery("SELECT seq FROM audit_tip WHERE id = 1")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private static Result measure(int threads, int seconds, Path db) throws Exception {
        KeyPair keys = ecKeyPair();
        double elapsed;
        long appended;
        long[] latencies;
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), AuditLog.Options.defaults())) {
            append(log, threads, WARMUP_NANOS); // JIT, page cache, WAL growth
            long before = log.size();
            long start = System.nanoTime();
            latencies = append(log, threads, TimeUnit.SECONDS.toNanos(seconds));
            elapsed = (System.nanoTime() - start) / 1e9;
            appended = log.size() - before;
            Arrays.sort(latencies);
        }
        long verifyStart = System.nanoTime();
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        double verifySeconds = (System.nanoTime() - verifyStart) / 1e9;
        if (!report.intact()) {
            throw new IllegalStateException("the audit log does not verify: " + report.summary());
        }
        return new Result(threads, elapsed, appended, appended / elapsed, pct(latencies, 0.50),
                pct(latencies, 0.99), latencies[latencies.length - 1] / 1e6, verifySeconds, report.summary(),
                Files.size(db));
    }

    private static double pct(long[] sorted, double p) {
        return sorted[(int) Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1e6;
    }

    /**
     * {@code threads} callers append until a common deadline {@code durationNanos} from now; the caller joins each one
     * with a bounded wait. Returns every append's latency in nanoseconds.
     */
    private static long[] append(AuditLog log, int threads, long durationNanos) throws Exception {
        return append(List.of(log), threads, durationNanos);
    }

    /** As {@link #append(AuditLog, int, long)}, caller {@code t} appending to {@code logs.get(t % logs.size())}. */
    private static long[] append(List<AuditLog> logs, int threads, long durationNanos) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "audit-bench");
            t.setDaemon(true);
            return t;
        });
        try {
            long deadline = System.nanoTime() + durationNanos;
            List<Future<long[]>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                AuditLog log = logs.get(t % logs.size());
                results.add(pool.submit(() -> {
                    long[] lat = new long[1 << 16];
                    int n = 0;
                    while (System.nanoTime() - deadline < 0) {
                        long s = System.nanoTime();
                        log.append(AuditEntry.of(AuditEventType.APPRAISAL, "host-" + thread, "MEASURED",
                                Map.of("evidenceSha256", "ab".repeat(32), "policyVersion", 42, "ak", "ak-" + thread)));
                        if (n == lat.length) {
                            lat = Arrays.copyOf(lat, n * 2);
                        }
                        lat[n++] = System.nanoTime() - s;
                    }
                    return Arrays.copyOf(lat, n);
                }));
            }
            List<long[]> all = new ArrayList<>();
            for (Future<long[]> f : results) {
                long wait = deadline + JOIN_GRACE_NANOS - System.nanoTime();
                try {
                    all.add(f.get(Math.max(0, wait), TimeUnit.NANOSECONDS));
                } catch (TimeoutException e) {
                    throw new TimeoutException("an audit append caller was still running "
                            + TimeUnit.NANOSECONDS.toSeconds(JOIN_GRACE_NANOS) + " s past the deadline");
                }
            }
            long[] latencies = all.stream().flatMapToLong(Arrays::stream).toArray();
            if (latencies.length == 0) {
                throw new IllegalStateException("no append completed in " + durationNanos / 1e9 + " s");
            }
            return latencies;
        } finally {
            pool.shutdownNow();
        }
    }

    private static KeyPair ecKeyPair() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        return generator.generateKeyPair();
    }
}
