package io.tpmphone.benchmarks;

import io.tpmphone.swtpm.SwtpmProcess;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code tpmphone bench}: benchmarks that print figures (performance is measured here, never by timed unit tests).
 * The benchmark classes return figures; this command prints them. Run by {@code ./tpmphone bench} on the benchmarks
 * module's own class path ({@link BenchMain}): the CLI's distribution does not carry the benchmarks.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, description = {"Benchmarks that print figures:",
        "  tpm        TPM round trips, our transport vs TSS.Java's stock device",
        "  appraisal  appraisals/s: JMH in-process, then HTTPS load",
        "  audit      durable audit-log appends/s with concurrent callers",
        "  keystore   SRTP key release and TIK signature latency on a swtpm",
        "  call       call set-up time, attested TLS vs plain TLS",
        "  srtp       SRTP ns per 172-byte packet, ours vs the system's libsrtp2",
        "  console    web console page times with many hosts and audit records",
        "  fleet      thousands of hosts attesting on a schedule: rate, latency, server CPU",
        "  audit-verify  offline `audit verify` of a large export and database",
        "  connections   the server's heap and deadline-sweep CPU with a fleet's connections open",
        "See benchmarks/README.md."},
        footer = {"", "Examples:", "  ./tpmphone bench tpm", "  ./tpmphone bench appraisal",
                "  ./tpmphone bench audit", "  ./tpmphone bench srtp"},
        subcommands = {BenchCommand.Tpm.class, BenchCommand.Appraisal.class, BenchCommand.Audit.class,
                BenchCommand.Keystore.class, BenchCommand.CallSetup.class, BenchCommand.Srtp.class,
                BenchCommand.Console.class, BenchCommand.Fleet.class, BenchCommand.AuditVerify.class,
                BenchCommand.Connections.class})
final class BenchCommand {

    /** JSON for --json: indented, non-ASCII escaped (as the CLI's own commands print it). */
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
            .enable(com.fasterxml.jackson.core.json.JsonWriteFeature.ESCAPE_NON_ASCII.mappedFeature());

    @Command(name = "appraisal", mixinStandardHelpOptions = true,
            description = {"Appraisals per second: JMH in-process, then HTTPS load.",
                    "JMH (benchmarks/README.md): forked JVMs, real swtpm evidence; ops/s, then",
                    "p50/p99 in microseconds; all methods take ~6-7 minutes. HTTPS: a real",
                    "attestation server, enrolled hosts (one swtpm each), closed-loop clients;",
                    "per round appraisals/s and p50/p99/max latency, and rounds 2.. together.",
                    "Every appraisal must be 200 MEASURED and the audit log must hold each one",
                    "intact, or it exits 1. JMH's progress goes to stderr, the tables to stdout."},
            footer = {"", "Examples:", "  ./tpmphone bench appraisal",
                    "  ./tpmphone bench appraisal --jmh 'pipeline.*' --clients 4",
                    "  ./tpmphone bench appraisal --skip-jmh --requests 3000 --rounds 2 --json"})
    static final class Appraisal implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--jmh", paramLabel = "REGEX", defaultValue = ".*",
                description = "JMH benchmark methods of AppraisalBenchmark to run (default ${DEFAULT-VALUE})")
        String jmh;
        @Option(names = "--skip-jmh", description = "skip the JMH part, run the HTTPS load only")
        boolean skipJmh;
        @Option(names = "--clients", paramLabel = "N", defaultValue = "16",
                description = "HTTPS load: concurrent closed-loop clients (default ${DEFAULT-VALUE})")
        int clients;
        @Option(names = "--requests", paramLabel = "N", defaultValue = "5000",
                description = "HTTPS load: appraisals per round (default ${DEFAULT-VALUE})")
        int requests;
        @Option(names = "--rounds", paramLabel = "N", defaultValue = "3",
                description = "HTTPS load: rounds; round 1 warms the JIT (default ${DEFAULT-VALUE})")
        int rounds;
        @Option(names = "--hosts", paramLabel = "N", defaultValue = "64",
                description = "HTTPS load: enrolled hosts, one swtpm each; >= clients, <= 256 "
                        + "(default ${DEFAULT-VALUE})")
        int hosts;
        @Option(names = "--server-threads", paramLabel = "N", defaultValue = "64",
                description = "HTTPS load: Jetty's thread pool maximum (default ${DEFAULT-VALUE})")
        int serverThreads;
        @Option(names = "--state", paramLabel = "DIR",
                description = "HTTPS load: keep the server state here to inspect (default: a temporary directory)")
        Path state;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;
        @Option(names = "--database", paramLabel = "URL", description = {"HTTPS load: the server on PostgreSQL"
                + " (registry and audit chain) instead of SQLite: jdbc:postgresql://HOST:PORT/DB?user=USER of a role",
                "that may CREATE DATABASE (a scratch database is created next to DB and dropped)"})
        String database;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            HttpsAppraisalLoad.Options options = new HttpsAppraisalLoad.Options(clients, hosts, requests, rounds,
                    serverThreads, Optional.ofNullable(state), Optional.ofNullable(database));
            // JMH's own progress (iterations, forked VM output) on stderr; stdout stays for the figures. A failure
            // propagates to the command line's handler, which prints it as every tpmphone command does.
            List<AppraisalBenchmarks.Row> rows = skipJmh ? List.of() : AppraisalBenchmarks.run(jmh, System.err);
            HttpsAppraisalLoad.Report report = HttpsAppraisalLoad.run(options);
            if (json) {
                Map<String, Object> doc = new LinkedHashMap<>();
                if (!skipJmh) {
                    doc.put("jmh", rows);
                }
                Map<String, Object> https = new LinkedHashMap<>();
                https.put("server", report.server().toString());
                https.put("serverThreads", options.serverThreads());
                https.put("clients", options.clients());
                https.put("hosts", options.hosts());
                https.put("requestsPerRound", options.requests());
                https.put("batchSize", report.batchSize());
                https.put("cores", report.cores());
                https.put("rounds", report.rounds());
                https.put("steadyState", report.steadyState().orElse(null));
                https.put("audit", report.audit());
                doc.put("https", https);
                out.println(JSON.writeValueAsString(doc));
                return 0;
            }
            if (!skipJmh) {
                out.printf(Locale.ROOT, "%-20s %7s %10s %10s %10s%n", "benchmark", "threads", "ops/s", "p50 us",
                        "p99 us");
                for (AppraisalBenchmarks.Row r : rows) {
                    out.printf(Locale.ROOT, "%-20s %7d %10.0f %10.0f %10.0f%n", r.benchmark(), r.threads(),
                            r.opsPerSecond(), r.p50Micros(), r.p99Micros());
                }
                out.println();
            }
            out.printf(Locale.ROOT, "server %s, %d Jetty threads max, %d clients, %d hosts (one swtpm each),"
                    + " %d requests per round in batches of %d, %d rounds, %d cores%n", report.server(),
                    options.serverThreads(), options.clients(), options.hosts(), options.requests(),
                    report.batchSize(), options.rounds(), report.cores());
            out.printf(Locale.ROOT, "%-6s %8s %9s %8s %14s %9s %9s %9s%n", "round", "clients", "requests",
                    "seconds", "appraisals/s", "p50 ms", "p99 ms", "max ms");
            for (HttpsAppraisalLoad.Round r : report.rounds()) {
                printRound(out, r);
            }
            report.steadyState().ifPresent(r -> printRound(out, r));
            HttpsAppraisalLoad.AuditCheck audit = report.audit();
            out.printf(Locale.ROOT, "audit: %d MEASURED appraisal records (expected %d); %s%n",
                    audit.measuredRecords(), audit.expectedRecords(), audit.summary());
            return 0;
        }

        private static void printRound(PrintWriter out, HttpsAppraisalLoad.Round r) {
            out.printf(Locale.ROOT, "%-6s %8d %9d %8.2f %14.0f %9.2f %9.2f %9.2f%n", r.round(), r.clients(),
                    r.requests(), r.seconds(), r.appraisalsPerSecond(), r.p50Millis(), r.p99Millis(), r.maxMillis());
        }
    }

    @Command(name = "audit", mixinStandardHelpOptions = true,
            description = {"Durable appends per second of the server's hash-chained audit log.",
                    "SQLite WAL, synchronous=FULL, group commit; concurrent callers, 2 s of",
                    "warm-up, then --seconds measured: per-append latency p50/p99/max, then the",
                    "time AuditVerifier takes over the whole log. The scratch database goes under",
                    "--directory and is deleted afterwards: use the disk you care about (not tmpfs)."},
            footer = {"", "Examples:", "  ./tpmphone bench audit --threads 16 --seconds 10",
                    "  ./tpmphone bench audit --database 'jdbc:postgresql://127.0.0.1:5432/postgres?user=postgres'"
                            + " --instances 2",
                    "  ./tpmphone bench audit --threads 1 --directory /var/lib/tpmphone --json"})
    static final class Audit implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--threads", paramLabel = "N", defaultValue = "16",
                description = "concurrent appending callers (default ${DEFAULT-VALUE})")
        int threads;
        @Option(names = "--seconds", paramLabel = "N", defaultValue = "10",
                description = "measured seconds after a 2 s warm-up (default ${DEFAULT-VALUE})")
        int seconds;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the scratch database goes (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;
        @Option(names = "--database", paramLabel = "URL", description = {"measure the shared chain of several server"
                + " instances on PostgreSQL instead: jdbc:postgresql://HOST:PORT/DB?user=USER of a role that may",
                "CREATE DATABASE (a scratch database is created next to DB and dropped)"})
        String database;
        @Option(names = "--instances", paramLabel = "N", defaultValue = "1", description = "with --database: server"
                + " instances appending to the one chain, each with its own pool (default ${DEFAULT-VALUE})")
        int instances;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            AuditAppendLoad.Result r = database == null ? AuditAppendLoad.run(threads, seconds, directory)
                    : AuditAppendLoad.runShared(threads, seconds, database, instances);
            if (json) {
                out.println(JSON.writeValueAsString(r));
                return 0;
            }
            out.printf(Locale.ROOT, "threads=%d seconds=%.1f appends=%d -> %.0f durable appends/s%n", r.threads(),
                    r.seconds(), r.appends(), r.appendsPerSecond());
            out.printf(Locale.ROOT, "latency ms: p50=%.2f p99=%.2f max=%.2f%n", r.p50Millis(), r.p99Millis(),
                    r.maxMillis());
            out.printf(Locale.ROOT, "verify: %s in %.2f s%n", r.verifySummary(), r.verifySeconds());
            out.printf(Locale.ROOT, "database: %d bytes (scratch, deleted)%n", r.databaseBytes());
            if (database != null) {
                out.printf(Locale.ROOT, "instances: %d on one PostgreSQL chain%n", instances);
            }
            return 0;
        }
    }

    @Command(name = "connections", mixinStandardHelpOptions = true,
            description = {"What a fleet's open connections cost the attestation server: `tpmphone server` in a JVM",
                    "of its own, --connections TLS connections held as agents hold theirs (three POSTs, then a",
                    "request every 30 s), its live heap before and with them (jcmd GC.class_histogram), and",
                    "the CPU of its request-deadline sweep over --seconds. Scratch state under --directory."},
            footer = {"", "Examples:", "  ./tpmphone bench connections --connections 10000"})
    static final class Connections implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--connections", paramLabel = "N", defaultValue = "10000",
                description = "(default ${DEFAULT-VALUE})")
        int connections;
        @Option(names = "--seconds", paramLabel = "S", defaultValue = "60",
                description = "the window the sweep's CPU is measured over (default ${DEFAULT-VALUE})")
        int seconds;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the scratch state goes (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            ConnectionCost.Result r = ConnectionCost.run(connections, java.time.Duration.ofSeconds(seconds),
                    directory);
            if (json) {
                out.println(JSON.writeValueAsString(r));
                return 0;
            }
            out.printf(Locale.ROOT, "connections=%d opened in %.1f s; server live heap %.1f MB without, %.1f MB with"
                    + " them: %.1f KB per connection%n", r.connections(), r.openSeconds(),
                    r.heapBytesBefore() / 1048576.0, r.heapBytesWith() / 1048576.0, r.bytesPerConnection() / 1024);
            out.printf(Locale.ROOT, "request-deadline sweep: %.2f ms of CPU per sweep (one a second, over %.0f s)%n",
                    r.sweepCpuMillisPerSweep(), r.windowSeconds());
            return 0;
        }
    }

    @Command(name = "console", mixinStandardHelpOptions = true,
            description = {"Page times of the attestation server's web console on a large history:",
                    "--hosts enrolled hosts and --records audit records (appraisals with claims, call",
                    "decisions), written with the server's key; the server starts on them, its console",
                    "index reads them (timed), then each page is requested --requests times over",
                    "loopback HTTPS: p50/p95/max in ms. Scratch state under --directory, deleted."},
            footer = {"", "Examples:", "  ./tpmphone bench console --hosts 10000 --records 1000000"})
    static final class Console implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--hosts", paramLabel = "N", defaultValue = "10000", description = "(default ${DEFAULT-VALUE})")
        int hosts;
        @Option(names = "--records", paramLabel = "N", defaultValue = "1000000",
                description = "(default ${DEFAULT-VALUE})")
        long records;
        @Option(names = "--requests", paramLabel = "N", defaultValue = "200",
                description = "requests per page (default ${DEFAULT-VALUE})")
        int requests;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the scratch state goes (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            ConsolePagesLoad.Result r = ConsolePagesLoad.run(hosts, records, requests, directory);
            if (json) {
                out.println(JSON.writeValueAsString(r));
                return 0;
            }
            out.printf(Locale.ROOT, "hosts=%d records=%d: written in %.1f s, indexed by the console in %.1f s%n",
                    r.hosts(), r.records(), r.writeSeconds(), r.indexSeconds());
            for (ConsolePagesLoad.Page p : r.pages()) {
                out.printf(Locale.ROOT, "%-55s n=%d p50=%.1f ms p95=%.1f ms max=%.1f ms%n", p.path(), p.requests(),
                        p.p50Millis(), p.p95Millis(), p.maxMillis());
            }
            return 0;
        }
    }

    @Command(name = "fleet", mixinStandardHelpOptions = true,
            description = {"A fleet attesting on a schedule: --hosts software hosts (a TPM's exact formats, enrolled",
                    "through EK certificates and credential activation) plus --real-hosts swtpm hosts, each",
                    "attesting every --interval seconds (nonce request, quote, appraisal) against",
                    "`tpmphone server` processes. With --database: one instance, then two on PostgreSQL;",
                    "then one on SQLite. One interval warms up, then --seconds are measured: appraisals/s,",
                    "p50/p99/max ms per cycle, errors (anything but 200 MEASURED), late cycles, and the",
                    "servers' CPU ms per appraisal. Every acknowledged appraisal must be in the audit log."},
            footer = {"", "Examples:", "  ./tpmphone bench fleet --hosts 10000 --interval 30",
                    "  ./tpmphone bench fleet --hosts 10000 --interval 30 --database"
                            + " 'jdbc:postgresql://127.0.0.1:5432/postgres?user=postgres'"})
    static final class Fleet implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--hosts", paramLabel = "N", defaultValue = "10000", description = "(default ${DEFAULT-VALUE})")
        int hosts;
        @Option(names = "--interval", paramLabel = "SECONDS", defaultValue = "30",
                description = "each host's attestation period (default ${DEFAULT-VALUE})")
        int interval;
        @Option(names = "--seconds", paramLabel = "N", defaultValue = "120",
                description = "the measured window after one interval of warm-up (default ${DEFAULT-VALUE})")
        int seconds;
        @Option(names = "--real-hosts", paramLabel = "N", defaultValue = "2",
                description = "swtpm hosts attesting alongside (default ${DEFAULT-VALUE})")
        int realHosts;
        @Option(names = "--database", paramLabel = "URL", description = {"PostgreSQL for the one- and two-instance"
                + " phases: jdbc:postgresql://HOST:PORT/DB?user=USER of a role that may CREATE DATABASE",
                "(a scratch database is created next to DB and dropped)"})
        String database;
        @Option(names = "--skip-sqlite", description = "with --database, skip the SQLite phase")
        boolean skipSqlite;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            FleetLoad.Report r = FleetLoad.run(new FleetLoad.Options(hosts, java.time.Duration.ofSeconds(interval),
                    java.time.Duration.ofSeconds(seconds), realHosts, Optional.ofNullable(database), skipSqlite));
            if (json) {
                out.println(JSON.writeValueAsString(r));
            } else {
                out.printf(Locale.ROOT, "%d hosts + %d swtpm, every %d s, %d s measured, %d cores%n", hosts,
                        realHosts, interval, seconds, r.cores());
                for (FleetLoad.Backend b : r.backends()) {
                    out.printf(Locale.ROOT, "%s: %d hosts enrolled in %.1f s; %d appraisals acknowledged, %d"
                            + " appraisal records%n", b.backend(), b.enrolled(), b.enrollSeconds(), b.acknowledged(),
                            b.appraisalRecords());
                }
                FleetLoad.table(r).forEach(out::println);
                for (FleetLoad.Phase p : r.phases()) {
                    p.firstErrors().forEach(e -> out.println("  error (" + p.backend() + ", " + p.instances()
                            + " instance(s)): " + io.tpmphone.attestation.UntrustedText.forTerminal(e)));
                    p.errorKinds().entrySet().stream().sorted(java.util.Map.Entry.comparingByValue(
                            java.util.Comparator.reverseOrder())).forEach(k -> out.println("  errors by kind ("
                            + p.backend() + ", " + p.instances() + " instance(s)): " + k.getValue() + " × "
                            + io.tpmphone.attestation.UntrustedText.forTerminal(k.getKey())));
                }
            }
            return r.phases().stream().allMatch(p -> p.errors() == 0 && p.realHostErrors() == 0) ? 0 : 1;
        }
    }

    @Command(name = "audit-verify", mixinStandardHelpOptions = true,
            description = {"Wall-clock time of `tpmphone audit verify` on a large log, offline, in this JVM:",
                    "--records records (appraisals with claims, call decisions) written with a fresh key,",
                    "exported with it (`audit export --public-key`), then `audit verify --export` and",
                    "`audit verify --db`, --runs times each (the first warms the JIT up). Scratch files",
                    "under --directory, deleted unless --keep (then the export and key are kept for the",
                    "in-browser verifier, docs/console.md)."},
            footer = {"", "Examples:", "  ./tpmphone bench audit-verify --records 1000000"})
    static final class AuditVerify implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--records", paramLabel = "N", defaultValue = "1000000",
                description = "(default ${DEFAULT-VALUE})")
        long records;
        @Option(names = "--runs", paramLabel = "N", defaultValue = "3", description = "(default ${DEFAULT-VALUE})")
        int runs;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the scratch files go (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--keep", description = "keep the database, export and key; print where")
        boolean keep;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            AuditVerifyLoad.Result r = AuditVerifyLoad.run(records, runs, directory, keep);
            if (json) {
                out.println(JSON.writeValueAsString(r));
                return 0;
            }
            out.printf(Locale.ROOT, "records=%d: written in %.1f s, exported in %.1f s (%.0f MB)%n", r.records(),
                    r.writeSeconds(), r.exportSeconds(), r.exportBytes() / 1e6);
            out.printf(Locale.ROOT, "audit verify --export: wall best %.2f s, median %.2f s (runs %s); CPU best %.2f s"
                    + " (runs %s)%n", AuditVerifyLoad.best(r.verifyExportSeconds()),
                    AuditVerifyLoad.median(r.verifyExportSeconds()), seconds(r.verifyExportSeconds()),
                    AuditVerifyLoad.best(r.verifyExportCpuSeconds()), seconds(r.verifyExportCpuSeconds()));
            out.printf(Locale.ROOT, "audit verify --db:     wall best %.2f s, median %.2f s (runs %s); CPU best %.2f s"
                    + " (runs %s)%n", AuditVerifyLoad.best(r.verifyDatabaseSeconds()),
                    AuditVerifyLoad.median(r.verifyDatabaseSeconds()), seconds(r.verifyDatabaseSeconds()),
                    AuditVerifyLoad.best(r.verifyDatabaseCpuSeconds()), seconds(r.verifyDatabaseCpuSeconds()));
            out.println(r.summary());
            if (r.kept() != null) {
                out.println("kept in " + r.kept() + " (audit.json, audit-key.pem, audit.db)");
            }
            return 0;
        }

        private static String seconds(double[] values) {
            StringBuilder s = new StringBuilder();
            for (double v : values) {
                s.append(s.length() == 0 ? "" : " ").append(String.format(Locale.ROOT, "%.2f", v));
            }
            return s.toString();
        }
    }

    @Command(name = "tpm", mixinStandardHelpOptions = true,
            description = {"TPM round trips on a private swtpm: GetRandom, Quote, Unseal, Sign; our transport and",
                    "TSS.Java's stock TpmDeviceTcp side by side in one run (alternating rounds)."},
            footer = {"", "Example:", "  ./tpmphone bench tpm --rounds 5 --samples 100 --stock-samples 6"})
    static final class Tpm implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--rounds", defaultValue = "5", description = "alternating rounds (default ${DEFAULT-VALUE})")
        int rounds;
        @Option(names = "--samples", defaultValue = "100",
                description = "samples per operation per round on our transport (default ${DEFAULT-VALUE})")
        int samples;
        @Option(names = "--stock-samples", defaultValue = "6",
                description = "samples per operation per round on the stock device (default ${DEFAULT-VALUE})")
        int stockSamples;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            // TCP on purpose: the comparison runs TSS.Java's stock TpmDeviceTcp, which speaks only TCP. The TPM is a
            // throwaway (no enrollment, deleted at the end), so what a local user could copy from it is worthless.
            try (SwtpmProcess swtpm = SwtpmProcess.builder().insecureTcp(true).start()) {
                List<TpmBenchmark.Figure> figures = new TpmBenchmark(swtpm.host(), swtpm.port())
                        .run(rounds, samples, stockSamples);
                if (json) {
                    printJson(out, rounds, figures);
                    return 0;
                }
                out.printf(Locale.ROOT, "%-11s %-15s %7s %11s %11s %11s%n", "operation", "device", "samples",
                        "median ms", "p95 ms", "min ms");
                for (TpmBenchmark.Figure f : figures) {
                    out.printf(Locale.ROOT, "%-11s %-15s %7d %11.3f %11.3f %11.3f%n", f.operation(), f.device(),
                            f.samples(), f.medianMillis(), f.p95Millis(), f.minMillis());
                }
                for (TpmBenchmark.Operation o : TpmBenchmark.Operation.values()) {
                    double ours = median(figures, o, TpmBenchmark.Device.TPMPHONE);
                    double stock = median(figures, o, TpmBenchmark.Device.TSS_JAVA_STOCK);
                    out.printf(Locale.ROOT, "%-11s stock/ours median ratio: %.1fx%n", o, stock / ours);
                }
                return 0;
            }
        }

        private static double median(List<TpmBenchmark.Figure> figures, TpmBenchmark.Operation o,
                                     TpmBenchmark.Device d) {
            return figures.stream().filter(f -> f.operation() == o && f.device() == d).findFirst()
                    .orElseThrow().medianMillis();
        }
    }

    @Command(name = "keystore", mixinStandardHelpOptions = true,
            description = {"Key release latency on a private swtpm (unseal + derive + durable fingerprint): AUTHORIZED",
                    "with a clock-limited approval, PCR_ONLY, and a TIK signature, side by side (alternating rounds)."},
            footer = {"", "Example:", "  ./tpmphone bench keystore --rounds 5 --samples 400"})
    static final class Keystore implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--rounds", defaultValue = "5", description = "alternating rounds (default ${DEFAULT-VALUE})")
        int rounds;
        @Option(names = "--samples", defaultValue = "400",
                description = "samples per operation per round (default ${DEFAULT-VALUE})")
        int samples;
        @Option(names = "--warmup", defaultValue = "200", description = "unmeasured releases first (default ${DEFAULT-VALUE})")
        int warmup;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the keystores are created (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            if (rounds < 1 || samples < 1 || warmup < 0) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--rounds and --samples must be at least 1, --warmup at least 0");
            }
            PrintWriter out = spec.commandLine().getOut();
            Path dir = Files.createTempDirectory(directory, "tpmphone-bench-keystore");
            try {
                List<KeystoreBenchmark.Figure> figures =
                        KeystoreBenchmark.run(dir, rounds, samples, warmup);
                if (json) {
                    printJson(out, rounds, figures);
                    return 0;
                }
                out.printf(Locale.ROOT, "%-46s %7s %10s %10s %10s%n", "operation", "samples", "median ms", "p95 ms",
                        "min ms");
                for (KeystoreBenchmark.Figure f : figures) {
                    out.printf(Locale.ROOT, "%-46s %7d %10.3f %10.3f %10.3f%n", f.operation(), f.samples(),
                            f.medianMillis(), f.p95Millis(), f.minMillis());
                }
                return 0;
            } finally {
                deleteTree(dir);
            }
        }
    }

    @Command(name = "call", mixinStandardHelpOptions = true,
            description = {"Call set-up time (INVITE -> 200 OK -> ACK) between two measured softphones on loopback,",
                    "each on a new TLS 1.3 connection: attested vs the same TLS without attestation, alternating rounds.",
                    "With --via-proxy: through a kamailio (TLS) it starts, DTLS-SRTP on the media path, the evidence",
                    "end to end inside the association vs the same DTLS-SRTP call without the evidence exchange;",
                    "targets on loopback: p95 <= 150 ms, the evidence adds <= 30 ms at p50 (exit 1 if a call fails).",
                    "Starts two swtpm hosts, the attestation server and two agents first (a few seconds)."},
            footer = {"", "Examples:", "  ./tpmphone bench call --rounds 5 --calls 20",
                    "  ./tpmphone bench call --via-proxy --rounds 5 --calls 20"})
    static final class CallSetup implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--rounds", defaultValue = "5", description = "alternating rounds (default ${DEFAULT-VALUE})")
        int rounds;
        @Option(names = "--calls", defaultValue = "20",
                description = "calls of each kind per round (default ${DEFAULT-VALUE})")
        int calls;
        @Option(names = "--warmup", defaultValue = "5", description = "unmeasured calls of each kind first (default"
                + " ${DEFAULT-VALUE})")
        int warmup;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the hosts' state goes (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;
        @Option(names = "--via-proxy", description = "through a SIP proxy (kamailio, TLS): DTLS-SRTP with the evidence"
                + " end to end vs without it")
        boolean viaProxy;

        @Override
        public Integer call() throws Exception {
            if (rounds < 1 || calls < 1 || warmup < 0) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--rounds and --calls must be at least 1, --warmup at least 0");
            }
            PrintWriter out = spec.commandLine().getOut();
            Path dir = Files.createTempDirectory(directory, "tpmphone-bench-call");
            try {
                List<CallSetupBenchmark.Figure> figures = viaProxy
                        ? CallSetupBenchmark.viaProxy(dir, rounds, calls, warmup)
                        : CallSetupBenchmark.run(dir, rounds, calls, warmup);
                if (json) {
                    printJson(out, rounds, figures);
                    return 0;
                }
                out.printf(Locale.ROOT, "%-20s %6s %9s %9s %9s %9s%n", viaProxy ? "set-up via proxy" : "call set-up",
                        "calls", "p50 ms", "p95 ms", "min ms", "max ms");
                for (CallSetupBenchmark.Figure f : figures) {
                    out.printf(Locale.ROOT, "%-20s %6d %9.2f %9.2f %9.2f %9.2f%n", f.kind(), f.calls(),
                            f.p50Millis(), f.p95Millis(), f.minMillis(), f.maxMillis());
                }
                CallSetupBenchmark.Figure with = figures.get(0);
                CallSetupBenchmark.Figure without = figures.get(1);
                if (!viaProxy) {
                    out.printf(Locale.ROOT, "attested/plain p50 ratio: %.2fx%n", with.p50Millis()
                            / without.p50Millis());
                    return 0;
                }
                double added = with.p50Millis() - without.p50Millis();
                out.printf(Locale.ROOT, "evidence/no-evidence p50 ratio: %.2fx; the evidence adds %.2f ms at p50"
                        + " (target <= 30: %s); p95 with the evidence %.2f ms (target <= 150: %s)%n",
                        with.p50Millis() / without.p50Millis(), added, added <= 30 ? "met" : "NOT met",
                        with.p95Millis(), with.p95Millis() <= 150 ? "met" : "NOT met");
                return 0;
            } finally {
                deleteTree(dir);
            }
        }
    }

    @Command(name = "srtp", mixinStandardHelpOptions = true,
            description = {"SRTP cost per 172-byte RTP packet (12-byte header + 20 ms of PCMU),",
                    "AES_CM_128_HMAC_SHA1_80: our media path (libjitsi over jitsi-srtp, JMH in",
                    "forked JVMs; a row per AES implementation jitsi-srtp may pick) and the",
                    "system's libsrtp2 (srtp_bench.c, compiled with gcc into the build directory),",
                    "in alternating passes on this machine. Prints protect and unprotect ns per",
                    "packet (medians), the ratios ours/libsrtp2, the CPU and the AES each used.",
                    "Both must protect a reference packet to the same bytes, or it exits 1. Needs",
                    "gcc and libsrtp2-dev (./tpmphone bench srtp installs them as root). About 2",
                    "minutes; JMH's progress goes to stderr."},
            footer = {"", "Examples:", "  ./tpmphone bench srtp",
                    "  ./tpmphone bench srtp --aes elected --passes 4 --iterations 5 \\",
                    "      --rounds 5 --json"})
    static final class Srtp implements Callable<Integer> {
        /** Our design target: at most 1 µs per packet and faster than libsrtp2 on the same machine. */
        private static final double TARGET_NANOS = 1000;

        @Spec
        CommandSpec spec;
        @Option(names = "--passes", paramLabel = "N", defaultValue = "2",
                description = "alternating passes, each running both implementations (default ${DEFAULT-VALUE})")
        int passes;
        @Option(names = "--iterations", paramLabel = "N", defaultValue = "8",
                description = "JMH: measured 1-second iterations per operation and AES per pass, after 4 of "
                        + "warm-up (default ${DEFAULT-VALUE})")
        int iterations;
        @Option(names = "--rounds", paramLabel = "N", defaultValue = "10",
                description = "libsrtp2: measured rounds of 102400 packets per pass, after 2 of warm-up "
                        + "(default ${DEFAULT-VALUE})")
        int rounds;
        @Option(names = "--aes", paramLabel = "LIST", split = ",", defaultValue = "OpenSSL,SunJCE",
                description = "our AES implementations, a row each: OpenSSL, SunJCE, BouncyCastle pin one in "
                        + "jitsi-srtp; elected leaves its per-JVM election alone (default ${DEFAULT-VALUE})")
        List<String> aes;
        @Option(names = "--build-dir", paramLabel = "DIR",
                description = "where the C program is compiled (default: the benchmarks' target/ directory)")
        Path buildDirectory;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            if (passes < 1 || iterations < 1 || rounds < 1) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--passes, --iterations and --rounds must be at least 1");
            }
            if (!SrtpBenchmarks.Options.AES_CHOICES.containsAll(aes) || Set.copyOf(aes).size() != aes.size()) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--aes takes distinct values of " + SrtpBenchmarks.Options.AES_CHOICES + ", got " + aes);
            }
            PrintWriter out = spec.commandLine().getOut();
            Path dir = buildDirectory != null ? buildDirectory : defaultBuildDirectory();
            // JMH's own progress (iterations, forked VM output) on stderr; stdout stays for the figures.
            SrtpBenchmarks.Report r = SrtpBenchmarks.run(new SrtpBenchmarks.Options(passes, iterations, rounds, aes,
                    dir), System.err);
            if (json) {
                out.println(JSON.writeValueAsString(r));
                return 0;
            }
            List<SrtpBenchmarks.Implementation> rows = r.implementations();
            out.printf(Locale.ROOT, "SRTP %s, %d-byte RTP packets (12-byte header + 160-byte PCMU payload), one "
                    + "thread, in place%n", r.suite(), r.packetBytes());
            out.printf(Locale.ROOT, "CPU: %s (%d cores, AES instructions: %s)%n%n", r.cpu(), r.cores(),
                    r.cpuHasAesInstructions() ? "yes" : "no");
            int nameWidth = "implementation".length();
            int aesWidth = "AES".length();
            for (SrtpBenchmarks.Implementation i : rows) {
                nameWidth = Math.max(nameWidth, i.name().length());
                aesWidth = Math.max(aesWidth, i.aes().length());
            }
            String row = "%-" + nameWidth + "s  %-" + aesWidth + "s %11s %13s %14s %16s%n";
            out.printf(Locale.ROOT, row, "implementation", "AES", "protect ns", "unprotect ns", "protect ratio",
                    "unprotect ratio");
            for (SrtpBenchmarks.Implementation i : rows) {
                out.printf(Locale.ROOT, row, i.name(), i.aes(), nanos(i.protectNanos()), nanos(i.unprotectNanos()),
                        ratio(i.protectRatio()), ratio(i.unprotectRatio()));
            }
            out.println("ns per packet, medians; ratio = this row / libsrtp2 (below 1: faster than libsrtp2)");
            out.println();
            SrtpBenchmarks.Implementation lib = rows.get(rows.size() - 1);
            out.printf(Locale.ROOT, "medians of %d alternating passes, per pass protect/unprotect ns:%n", r.passes());
            for (SrtpBenchmarks.Implementation i : rows) {
                out.printf(Locale.ROOT, "  %-" + aesWidth + "s  %s%n", i.aes(), perPass(i));
            }
            out.printf(Locale.ROOT, "samples: ours %d per pass, each a %s; libsrtp2 %d per pass, each a %s%n",
                    rows.get(0).samplesPerPass(), rows.get(0).sample(), lib.samplesPerPass(), lib.sample());
            out.printf(Locale.ROOT, "ours: %s; HMAC %s; native: %s%n", rows.get(0).stack(), rows.get(0).hmac(),
                    rows.get(0).cryptoLibraries());
            out.printf(Locale.ROOT, "libsrtp2: %s; AES and HMAC from %s; mapped at run time: %s%n", lib.stack(),
                    lib.aes(), lib.cryptoLibraries());
            out.printf(Locale.ROOT, "reference packet (index 0x1234, fresh context): identical %d-byte SRTP output"
                    + " from both%n", r.referencePacket().length() / 2);
            out.printf(Locale.ROOT, "design target (<= %.0f ns per packet and faster than libsrtp2):%n",
                    TARGET_NANOS);
            for (SrtpBenchmarks.Implementation i : rows.subList(0, rows.size() - 1)) {
                out.printf(Locale.ROOT, "  %-" + aesWidth + "s  protect %s, unprotect %s%n", i.aes(),
                        met(i.protectNanos(), i.protectRatio()), met(i.unprotectNanos(), i.unprotectRatio()));
            }
            out.printf(Locale.ROOT, "1-minute load average before/after: %.2f/%.2f (other processes share these"
                    + " cores)%n", r.loadAverages().get(0), r.loadAverages().get(1));
            return 0;
        }

        private static String nanos(double ns) {
            return String.format(Locale.ROOT, "%.0f", ns);
        }

        private static String ratio(double ratio) {
            return String.format(Locale.ROOT, "%.2fx", ratio);
        }

        private static String met(double ns, double ratio) {
            return ns <= TARGET_NANOS && ratio < 1 ? "met" : "NOT met";
        }

        private static String perPass(SrtpBenchmarks.Implementation i) {
            StringBuilder s = new StringBuilder();
            for (int p = 0; p < i.protectNanosPerPass().size(); p++) {
                s.append(p == 0 ? "" : ", ").append(nanos(i.protectNanosPerPass().get(p))).append('/')
                        .append(nanos(i.unprotectNanosPerPass().get(p)));
            }
            return s.toString();
        }

        /** The directory holding the benchmarks' jar (or classes): benchmarks/target when run through ./tpmphone. */
        private static Path defaultBuildDirectory() throws java.net.URISyntaxException {
            Path location = Path.of(Srtp.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return location.getParent();
        }
    }

    private static void printJson(PrintWriter out, int rounds, List<?> figures) throws java.io.IOException {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("rounds", rounds);
        doc.put("figures", figures);
        out.println(JSON.writeValueAsString(doc));
    }

    /** Removes a benchmark's scratch directory. */
    private static void deleteTree(Path dir) throws java.io.IOException {
        try (java.util.stream.Stream<Path> files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
