package io.tpmphone.cli;

import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.TpmBenchmark;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** Benchmarks that print figures (performance is measured here, never by timed unit tests). */
@Command(name = "bench", mixinStandardHelpOptions = true, description = {"Benchmarks that print figures.",
        "./tpmphone bench appraisal [--clients N --requests N --rounds N] runs the appraisal benchmarks",
        "(JMH in-process, then HTTPS load; see benchmarks/README.md)."},
        subcommands = {BenchCommand.Tpm.class})
final class BenchCommand {

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
            try (SwtpmProcess swtpm = SwtpmProcess.builder().start()) {
                List<TpmBenchmark.Figure> figures = new TpmBenchmark(swtpm.host(), swtpm.port())
                        .run(rounds, samples, stockSamples);
                if (json) {
                    Map<String, Object> doc = new LinkedHashMap<>();
                    doc.put("rounds", rounds);
                    doc.put("figures", figures);
                    out.println(TpmCommand.JSON.writeValueAsString(doc));
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
}
