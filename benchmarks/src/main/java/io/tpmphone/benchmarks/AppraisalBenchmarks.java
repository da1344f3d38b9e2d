package io.tpmphone.benchmarks;

import java.io.OutputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.NoBenchmarksException;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.format.OutputFormat;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * Runs {@link AppraisalBenchmark} twice through JMH's Java API — throughput (ops/s), then sample time (latency
 * percentiles) — and returns one {@link Row} per benchmark method. Prints nothing itself: {@code tpmphone bench
 * appraisal} prints the table. All four pipeline/core variants take about three minutes on a 2-core machine.
 */
public final class AppraisalBenchmarks {
    private AppraisalBenchmarks() {
    }

    /**
     * One benchmark method's figures: throughput from the throughput run, percentiles from the sample-time run (NaN
     * when a run did not produce the method).
     */
    public record Row(String benchmark, int threads, double opsPerSecond, double p50Micros, double p99Micros) {
    }

    /** Runs the benchmark methods whose names match {@code includeRegex} with JMH's progress output silenced. */
    public static List<Row> run(String includeRegex) throws RunnerException {
        return run(includeRegex, null);
    }

    /**
     * Runs the benchmark methods of {@link AppraisalBenchmark} whose names match {@code includeRegex} (e.g.
     * {@code ".*"}, {@code "pipeline.*"}, {@code "core$"}).
     *
     * @param progress where JMH writes its own progress (iterations, forked VM output), or {@code null} for none
     * @throws RunnerException if JMH fails, e.g. a benchmark threw (its evidence pool ran dry, an appraisal was not
     *                         MEASURED)
     */
    public static List<Row> run(String includeRegex, PrintStream progress) throws RunnerException {
        Objects.requireNonNull(includeRegex, "includeRegex");
        String include = AppraisalBenchmark.class.getName() + "\\." + includeRegex;
        Options throughput = new OptionsBuilder().include(include)
                .mode(Mode.Throughput).timeUnit(TimeUnit.SECONDS)
                .verbosity(VerboseMode.NORMAL).shouldFailOnError(true).build();
        Options latency = new OptionsBuilder().include(include)
                .mode(Mode.SampleTime).timeUnit(TimeUnit.MICROSECONDS)
                .verbosity(VerboseMode.NORMAL).shouldFailOnError(true).build();
        Collection<RunResult> rates;
        Collection<RunResult> samples;
        try {
            rates = new Runner(throughput, output(progress)).run();
            samples = new Runner(latency, output(progress)).run();
        } catch (NoBenchmarksException e) {
            throw new RunnerException("no benchmark method of " + AppraisalBenchmark.class.getSimpleName()
                    + " matches '" + includeRegex + "'", e);
        }

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
        List<Row> result = new ArrayList<>();
        for (Map.Entry<String, double[]> e : rows.entrySet()) {
            double[] v = e.getValue();
            result.add(new Row(e.getKey().substring(e.getKey().lastIndexOf('.') + 1), (int) v[0], v[1], v[2], v[3]));
        }
        return List.copyOf(result);
    }

    private static OutputFormat output(PrintStream progress) {
        return progress == null
                ? OutputFormatFactory.createFormatInstance(new PrintStream(OutputStream.nullOutputStream()),
                        VerboseMode.SILENT)
                : OutputFormatFactory.createFormatInstance(progress, VerboseMode.NORMAL);
    }
}
