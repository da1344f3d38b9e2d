package io.tpmphone.server.audit;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Durable-append throughput of {@link AuditLog} with concurrent callers (a benchmark, not a test). Run:
 * <pre>
 * java -cp attestation-server/target/classes:attestation-server/target/test-classes:$(cat cp.txt) \
 *     io.tpmphone.server.audit.AuditLogBenchmark [threads=16] [seconds=10] [directory=target]
 * </pre>
 * Prints appends/s and per-append latency percentiles; every append is committed with fsync (WAL,
 * synchronous=FULL) before it returns. The directory must be on the disk you care about (not tmpfs).
 */
public final class AuditLogBenchmark {
    private AuditLogBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 16;
        int seconds = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        Path directory = Files.createTempDirectory(Path.of(args.length > 2 ? args[2] : "target"), "audit-bench");
        Path db = directory.resolve("audit.db");
        var keys = AuditTestSupport.ecKeyPair();
        long warmupNanos = TimeUnit.SECONDS.toNanos(2);
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), AuditLog.Options.defaults())) {
            run(log, threads, warmupNanos); // JIT, page cache, WAL growth
            long before = log.size();
            long start = System.nanoTime();
            long[] latencies = run(log, threads, TimeUnit.SECONDS.toNanos(seconds));
            double elapsed = (System.nanoTime() - start) / 1e9;
            long appended = log.size() - before;
            Arrays.sort(latencies);
            System.out.printf("threads=%d seconds=%.1f appends=%d -> %.0f durable appends/s%n", threads, elapsed,
                    appended, appended / elapsed);
            System.out.printf("latency ms: p50=%.2f p99=%.2f max=%.2f%n", pct(latencies, 0.50), pct(latencies, 0.99),
                    latencies[latencies.length - 1] / 1e6);
        }
        long verifyStart = System.nanoTime();
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        System.out.printf("verify: %s in %.2f s%n", report.summary(), (System.nanoTime() - verifyStart) / 1e9);
        System.out.printf("database: %s (%d bytes)%n", db, Files.size(db));
    }

    private static double pct(long[] sorted, double p) {
        return sorted[(int) Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1e6;
    }

    private static long[] run(AuditLog log, int threads, long durationNanos) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        AtomicBoolean stop = new AtomicBoolean();
        List<Future<long[]>> results = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int thread = t;
            results.add(pool.submit(() -> {
                long[] lat = new long[1 << 16];
                int n = 0;
                while (!stop.get()) {
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
        Thread.sleep(TimeUnit.NANOSECONDS.toMillis(durationNanos));
        stop.set(true);
        List<long[]> all = new ArrayList<>();
        for (Future<long[]> f : results) {
            all.add(f.get(30, TimeUnit.SECONDS));
        }
        pool.shutdown();
        return all.stream().flatMapToLong(Arrays::stream).toArray();
    }
}
