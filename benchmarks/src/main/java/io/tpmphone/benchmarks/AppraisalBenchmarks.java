package io.tpmphone.benchmarks;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * Runs {@link AppraisalBenchmark} twice — throughput (ops/s), then sample time (latency percentiles) — and prints one
 * table: benchmark, threads, ops/s, p50 and p99 in microseconds. Arguments, if any, are a regular expression of the
 * benchmark methods to run (default: all). Takes about three minutes on a 2-core machine.
 */
public final class AppraisalBenchmarks {
    private AppraisalBenchmarks() {
    }

    public static void main(String[] args) throws Exception {
        String include = AppraisalBenchmark.class.getName() + "\\." + (args.length > 0 ? args[0] : ".*");
        Options throughput = new OptionsBuilder().include(include)
                .mode(org.openjdk.jmh.annotations.Mode.Throughput).timeUnit(TimeUnit.SECONDS)
                .verbosity(VerboseMode.NORMAL).build();
        Options latency = new OptionsBuilder().include(include)
                .mode(org.openjdk.jmh.annotations.Mode.SampleTime).timeUnit(TimeUnit.MICROSECONDS)
                .verbosity(VerboseMode.NORMAL).build();
        Collection<RunResult> rates = new Runner(throughput).run();
        Collection<RunResult> samples = new Runner(latency).run();

        Map<String, double[]> rows = new LinkedHashMap<>();
        for (RunResult r : rates) {
            rows.put(r.getParams().getBenchmark(), new double[] {r.getParams().getThreads(),
                    r.getPrimaryResult().getScore(), Double.NaN, Double.NaN});
        }
        for (RunResult r : samples) {
            double[] row = rows.computeIfAbsent(r.getParams().getBenchmark(), k -> new double[] {
                    r.getParams().getThreads(), Double.NaN, Double.NaN, Double.NaN});
            row[2] = r.getPrimaryResult().getStatistics().getPercentile(50);
            row[3] = r.getPrimaryResult().getStatistics().getPercentile(99);
        }
        System.out.println();
        System.out.printf(Locale.ROOT, "%-20s %7s %10s %10s %10s%n", "benchmark", "threads", "ops/s", "p50 us",
                "p99 us");
        for (Map.Entry<String, double[]> e : rows.entrySet()) {
            double[] v = e.getValue();
            System.out.printf(Locale.ROOT, "%-20s %7d %10.0f %10.0f %10.0f%n",
                    e.getKey().substring(e.getKey().lastIndexOf('.') + 1), (int) v[0], v[1], v[2], v[3]);
        }
    }
}
