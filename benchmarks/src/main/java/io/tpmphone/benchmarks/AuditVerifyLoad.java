package io.tpmphone.benchmarks;

import io.tpmphone.cli.Main;
import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditReader;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.swtpm.SwtpmProcess;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine;

/**
 * How long {@code tpmphone audit verify} takes on a large log, offline: {@code records} records like a busy server's
 * (appraisals with a claim vector, call decisions), written with a fresh checkpoint key, exported with the key
 * ({@code audit export --public-key}), then {@code audit verify --export} and {@code audit verify --db} run in this
 * JVM through the CLI, {@code runs} times each (the first includes JIT warm-up). Not a test: it prints figures.
 */
final class AuditVerifyLoad {
    /**
     * Figures of one size. Seconds are wall-clock of the whole command, file reading included; CPU seconds are the
     * JVM's process CPU time over the same span (all threads: the verifier, its parallel signature checks, GC, JIT),
     * which on a shared machine says more than the wall clock.
     */
    record Result(long records, long exportBytes, double writeSeconds, double exportSeconds,
                  double[] verifyExportSeconds, double[] verifyExportCpuSeconds, double[] verifyDatabaseSeconds,
                  double[] verifyDatabaseCpuSeconds, String summary, Path kept) {
    }

    private AuditVerifyLoad() {
    }

    static Result run(long records, int runs, Path directory, boolean keep) throws Exception {
        if (records < 1 || runs < 1) {
            throw new IllegalArgumentException("need records >= 1 and runs >= 1");
        }
        Path dir = Files.createTempDirectory(directory, "bench-audit-verify");
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair keys = g.generateKeyPair();
            Path db = dir.resolve("audit.db");
            long t0 = System.nanoTime();
            write(db, keys, records);
            double writeSeconds = (System.nanoTime() - t0) / 1e9;
            Path key = dir.resolve("audit-key.pem");
            Files.writeString(key, AuditVerifier.publicKeyPem(keys.getPublic()));
            Path export = dir.resolve("audit.json");
            long t1 = System.nanoTime();
            try (AuditReader reader = AuditReader.open(db); OutputStream out = Files.newOutputStream(export)) {
                reader.exportJson(out, Optional.of(keys.getPublic()));
            }
            double exportSeconds = (System.nanoTime() - t1) / 1e9;
            double[] fromExport = new double[runs];
            double[] fromDatabase = new double[runs];
            double[] exportCpu = new double[runs];
            double[] databaseCpu = new double[runs];
            String summary = null;
            for (int i = 0; i < runs; i++) {
                Timed e = cli("audit", "verify", "--export", export.toString(), "--public-key", key.toString());
                Timed d = cli("audit", "verify", "--db", db.toString(), "--public-key", key.toString());
                if (e.exit != 0 || d.exit != 0) {
                    throw new IllegalStateException("audit verify did not find the log intact: " + e.out + d.out);
                }
                fromExport[i] = e.seconds;
                fromDatabase[i] = d.seconds;
                exportCpu[i] = e.cpuSeconds;
                databaseCpu[i] = d.cpuSeconds;
                summary = e.out.strip();
            }
            return new Result(records, Files.size(export), writeSeconds, exportSeconds, fromExport, exportCpu,
                    fromDatabase, databaseCpu, summary, keep ? dir : null);
        } finally {
            if (!keep) {
                SwtpmProcess.deleteDirectory(dir);
            }
        }
    }

    private record Timed(int exit, String out, double seconds, double cpuSeconds) {
    }

    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
    }

    private static Timed cli(String... args) {
        StringWriter out = new StringWriter();
        CommandLine cli = Main.withConventions(new CommandLine(new Main()), Map.of());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(new StringWriter()));
        long cpu = cpuNanos();
        long t = System.nanoTime();
        int exit = cli.execute(args);
        double seconds = (System.nanoTime() - t) / 1e9;
        double cpuSeconds = (cpuNanos() - cpu) / 1e9;
        cli.getOut().flush();
        return new Timed(exit, out.toString(), seconds, cpuSeconds);
    }

    static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    static double best(double[] values) {
        return Arrays.stream(values).min().orElseThrow();
    }

    /** Many callers, so the log commits in groups of up to 1000. */
    private static void write(Path db, KeyPair keys, long records) throws Exception {
        int threads = 32;
        AtomicLong next = new AtomicLong();
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys),
                AuditLog.Options.builder().maxBatch(1000).queueCapacity(100_000).build())) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> jobs = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    jobs.add(pool.submit(() -> {
                        for (long n = next.getAndIncrement(); n < records; n = next.getAndIncrement()) {
                            String host = String.format("host-%05d", n % 10_000);
                            if (n % 50 == 49) {
                                log.append(AuditEntry.of(AuditEventType.CALL_DECISION, host, "ACCEPT", Map.of(
                                        "callId", "call-" + n + "@bench", "direction", "OUT", "peer", "sips:peer@x",
                                        "peerLevel", "MEASURED", "requiredLevel", "MEASURED")));
                            } else {
                                Map<String, Object> d = new LinkedHashMap<>();
                                d.put("akId", "00".repeat(34));
                                d.put("evidenceSha256", "11".repeat(32));
                                d.put("level", "MEASURED");
                                d.put("reasons", List.of());
                                d.put("policyVersion", 1);
                                d.put("claims", Map.of("instance-identity", "affirming", "executables", "affirming",
                                        "configuration", "affirming"));
                                d.put("release", "softphone-1.4.2");
                                d.put("eventLogSha256", "22".repeat(32));
                                log.append(AuditEntry.of(AuditEventType.APPRAISAL, host, "MEASURED", d));
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
}
