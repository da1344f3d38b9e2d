package io.tpmphone.benchmarks;

import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code tpmphone soak}: calls between two measured phones plus background INVITE noise for a long time, sampling
 * heap, threads, file descriptors and TPM handles; prints the curves and whether each stayed flat ({@link Soak}).
 */
@Command(name = "soak", mixinStandardHelpOptions = true,
        description = {"Soak: two measured softphones (two swtpm hosts, the attestation server and two agents in",
                "this JVM) call each other one call after another, each established on both sides, a second",
                "of audio, hung up; a third phone without evidence sends INVITEs to both in the background",
                "(each must be refused). Every --sample-seconds: heap after GC, threads and open file",
                "descriptors of this JVM (server and agents) and of both softphone processes, and the",
                "transient objects and sessions each TPM holds. Prints a text plot per curve, a verdict per",
                "curve (flat = least-squares growth over the second half within a tolerance) and writes",
                "the curves as CSV. Exit 0 if every curve is flat, every call worked and no INVITE got",
                "in; 1 otherwise. The softphones run as --child-users (not alice's and bob's), so a soak",
                "needs no lock against the end-to-end tests. See docs/robustness.md."},
        footer = {"", "Examples:", "  ./tpmphone soak --minutes 60",
                "  ./tpmphone soak --minutes 2 --sample-seconds 5 --csv /tmp/soak.csv --json"})
final class SoakCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    @Option(names = "--minutes", paramLabel = "N", defaultValue = "60",
            description = "how long the calls run (default ${DEFAULT-VALUE})")
    int minutes;
    @Option(names = "--sample-seconds", paramLabel = "N", defaultValue = "30",
            description = "sampling period (default ${DEFAULT-VALUE})")
    int sampleSeconds;
    @Option(names = "--noise-ms", paramLabel = "N", defaultValue = "1000",
            description = "one background INVITE every N ms (default ${DEFAULT-VALUE})")
    int noiseMillis;
    @Option(names = "--csv", paramLabel = "FILE", defaultValue = "soak.csv",
            description = "where the curves go as CSV (default ${DEFAULT-VALUE})")
    Path csv;
    @Option(names = "--child-users", paramLabel = "USER,USER", split = ",",
            defaultValue = "tpmphone-soak-a,tpmphone-soak-b",
            description = "the two softphones' users, created by the agent if missing (default ${DEFAULT-VALUE})")
    java.util.List<String> childUsers;
    @Option(names = "--directory", paramLabel = "DIR", defaultValue = "${sys:java.io.tmpdir}",
            description = "where the hosts' state goes, deleted afterwards (default ${DEFAULT-VALUE})")
    Path directory;
    @Option(names = "--json", description = "machine-readable output (the report with every sample)")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (minutes < 1 || sampleSeconds < 1 || noiseMillis < 10) {
            throw new ParameterException(spec.commandLine(), "--minutes and --sample-seconds must be at least 1,"
                    + " --noise-ms at least 10");
        }
        if (childUsers.size() != 2 || childUsers.get(0).equals(childUsers.get(1))) {
            throw new ParameterException(spec.commandLine(), "--child-users takes two different users, got "
                    + childUsers);
        }
        Soak.Options options;
        try {
            options = new Soak.Options(Duration.ofMinutes(minutes), Duration.ofSeconds(sampleSeconds),
                    Duration.ofMillis(noiseMillis), directory, childUsers.get(0), childUsers.get(1));
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        Soak.Report r = Soak.run(options);
        Files.writeString(csv, Soak.csv(r), StandardCharsets.UTF_8);
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(BenchCommand.JSON.writeValueAsString(Soak.toJson(r)));
            return r.passed() ? 0 : 1;
        }
        out.print(Soak.plot(r, 60, 6));
        out.println();
        out.print(Soak.verdictTable(r));
        out.printf(Locale.ROOT, "%.0f s: %d calls established and ended (%d failed, %d with stalled media); %d"
                + " background INVITEs, %d refused, %d let in%n", r.seconds(), r.callsEstablished(), r.callsFailed(),
                r.mediaStalls(), r.noiseSent(), r.noiseRefused(), r.noiseAccepted());
        r.failures().forEach(f -> out.println("  " + f));
        r.stalls().forEach(f -> out.println("  media stall: " + f));
        r.histograms().forEach((phone, top) -> {
            out.println(phone + "'s softphone at the end, heap by class (instances, bytes, class):");
            top.stream().limit(12).forEach(l -> out.println("  " + l));
        });
        out.printf(Locale.ROOT, "curves: %s (%d samples)%n", csv.toAbsolutePath(), r.samples().size());
        out.println(r.passed() ? "verdict: FLAT, every call worked" : "verdict: FAILED (" + (r.flat() ? ""
                : "a curve grows; ") + (r.callsFailed() > 0 || r.callsEstablished() == 0 ? "calls failed; " : "")
                + (r.mediaStalls() > 0 ? "media stalled; " : "")
                + (r.noiseAccepted() > 0 ? "an INVITE without evidence got in" : "") + ")");
        return r.passed() ? 0 : 1;
    }
}
