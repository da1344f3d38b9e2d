package io.tpmphone.benchmarks;

import java.lang.management.ManagementFactory;
import java.util.Collection;
import java.util.List;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.profile.InternalProfiler;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.ScalarResult;

/**
 * A JMH profiler that reports the benchmark JVM's CPU time per measured operation ({@code cpu.time.per.op}, µs),
 * for comparing two builds on a machine shared with other work: neighbours that take CPU away lower the throughput JMH
 * measures by the wall clock, but hardly the CPU time each operation costs. Run with
 * {@code -prof io.tpmphone.benchmarks.CpuTimeProfiler} (benchmarks/README.md).
 *
 * <p>What it counts: the process CPU time of the forked JVM from before an iteration to after it
 * ({@code OperatingSystemMXBean.getProcessCpuTime}: every thread, so also the JIT compiler, the garbage collector, the
 * iteration's {@code @Setup} and the unmeasured calls JMH makes while threads synchronize), divided by the operations
 * measured in it. So it is the cost of an operation for benchmarks without per-iteration set-up (the {@code core}
 * ones), and an upper bound for the others. CPU time of other processes (swtpm) is not counted.
 */
public final class CpuTimeProfiler implements InternalProfiler {
    private final com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    private long before;

    @Override
    public String getDescription() {
        return "CPU time of the benchmark JVM (all its threads) per measured operation";
    }

    @Override
    public void beforeIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams) {
        before = os.getProcessCpuTime();
    }

    @Override
    public Collection<? extends Result<?>> afterIteration(BenchmarkParams benchmarkParams,
                                                          IterationParams iterationParams, IterationResult result) {
        long cpu = os.getProcessCpuTime() - before;
        long ops = result.getMetadata().getMeasuredOps();
        if (ops <= 0 || cpu < 0) {
            return List.of();
        }
        return List.of(new ScalarResult("cpu.time.per.op", cpu / 1_000.0 / ops, "us/op", AggregationPolicy.AVG));
    }
}
