package io.tpmphone.benchmarks;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code tpmphone crash-test}: SIGKILL under load, then a check that nothing acknowledged was lost. */
@Command(name = "crash-test", mixinStandardHelpOptions = true,
        description = {"Kill -9 a part of the system under load, restart it, and check that nothing it",
                "acknowledged was lost and nothing is half-written. See docs/robustness.md.",
                "  server  the attestation server in the middle of an appraisal load"},
        footer = {"", "Examples:", "  ./tpmphone crash-test server --cycles 20"},
        subcommands = {CrashTestCommand.Server.class})
final class CrashTestCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "server", mixinStandardHelpOptions = true,
            description = {"SIGKILL of `tpmphone server` (a process of its own, real HTTPS) while enrolled hosts",
                    "(one swtpm each) send real appraisals from concurrent clients; restart on the same state.",
                    "After each restart: every appraisal acknowledged (200 MEASURED) has its audit record,",
                    "`tpmphone audit verify --open` passes and SQLite's integrity_check says ok; at the end a",
                    "clean stop and `tpmphone audit verify`. Exit 0 if nothing was lost, 1 otherwise."},
            footer = {"", "Examples:", "  ./tpmphone crash-test server --cycles 20",
                    "  ./tpmphone crash-test server --cycles 5 --hosts 8 --clients 4 --json",
                    "  ./tpmphone crash-test server --database 'jdbc:postgresql://127.0.0.1:5432/postgres?user=postgres'"})
    static final class Server implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--cycles", paramLabel = "N", defaultValue = "10",
                description = "kill-and-restart cycles (default ${DEFAULT-VALUE})")
        int cycles;
        @Option(names = "--hosts", paramLabel = "N", defaultValue = "8",
                description = "enrolled hosts, one swtpm each, at most 64 (default ${DEFAULT-VALUE})")
        int hosts;
        @Option(names = "--clients", paramLabel = "N", defaultValue = "4",
                description = "concurrent clients, at most --hosts (default ${DEFAULT-VALUE})")
        int clients;
        @Option(names = "--acknowledged", paramLabel = "N", defaultValue = "100",
                description = "appraisals acknowledged in a cycle before the kill (default ${DEFAULT-VALUE})")
        int acknowledged;
        @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
                description = "where the state goes, deleted afterwards (default ${DEFAULT-VALUE})")
        Path directory;
        @Option(names = "--database", paramLabel = "URL", description = {"the server on PostgreSQL instead of"
                + " SQLite: jdbc:postgresql://HOST:PORT/DB?user=USER of a role that may CREATE DATABASE",
                "(a scratch database is created next to DB and dropped)"})
        String database;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            ServerCrash.Options options;
            try {
                options = new ServerCrash.Options(cycles, hosts, clients, acknowledged, directory,
                        Optional.ofNullable(database));
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), e.getMessage());
            }
            PrintWriter out = spec.commandLine().getOut();
            ServerCrash.Report r;
            try {
                r = ServerCrash.run(options);
            } catch (ServerCrash.LostSomethingException e) {
                out.println("LOST: " + e.getMessage());
                return 1;
            }
            if (json) {
                out.println(BenchCommand.JSON.writeValueAsString(r));
                return 0;
            }
            out.printf(Locale.ROOT, "%-6s %13s %15s %5s %11s %17s  %s%n", "cycle", "acknowledged", "failed by kill",
                    "exit", "restart s", "appraisal records", "audit verify --open");
            for (ServerCrash.Cycle c : r.cycles()) {
                out.printf(Locale.ROOT, "%-6d %13d %15d %5d %11.2f %17d  %s%n", c.cycle(), c.acknowledged(),
                        c.failedByKill(), c.exitStatus(), c.restartSeconds(), c.appraisalRecords(), c.auditVerify());
            }
            out.printf(Locale.ROOT, "%s: %d appraisals acknowledged, %d of them in the audit log; after a clean stop:"
                    + " %s%n", r.backend(), r.acknowledged(), r.found(), r.finalVerify());
            return 0;
        }
    }
}
