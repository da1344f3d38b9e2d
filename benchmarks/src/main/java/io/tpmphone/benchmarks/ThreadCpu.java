package io.tpmphone.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Where a process's CPU time goes, by thread: user and system time of each thread from {@code /proc/PID/task}, grouped
 * by the thread's name (the server names its pools: {@code attestation-http} for Jetty's, {@code audit-writer} for
 * the audit log's group commit; the JVM names its GC and JIT threads). Two snapshots give a window's share per group,
 * including what a Java profiler does not see: the kernel's time in the threads' system calls, the garbage collector
 * and the JIT compilers.
 */
final class ThreadCpu {
    /** Clock ticks per second of {@code /proc}'s utime and stime (USER_HZ, 100 on Linux). */
    private static final double USER_HZ = 100.0;

    /**
     * A group's user and system seconds, and its threads' context switches (voluntary and not: each is a trip through
     * the scheduler, which the system time includes and which costs more in a virtual machine).
     */
    record Time(double user, double system, double switches) {
        double total() {
            return user + system;
        }

        Time minus(Time earlier) {
            return new Time(user - earlier.user, system - earlier.system, switches - earlier.switches);
        }
    }

    private ThreadCpu() {
    }

    /**
     * Each thread's user and system seconds so far, keyed by thread id, with the group its name belongs to. A thread
     * that ends before it is read is left out: a thread that lived only inside a window is not counted (the server's
     * pools keep their threads; the process's total, {@link ServerProcess#cpuSeconds()}, counts everything).
     */
    static Map<String, Map.Entry<String, Time>> snapshot(long pid) throws IOException {
        Map<String, Map.Entry<String, Time>> threads = new LinkedHashMap<>();
        Path tasks = Path.of("/proc", Long.toString(pid), "task");
        try (Stream<Path> list = Files.list(tasks)) {
            for (Path task : (Iterable<Path>) list::iterator) {
                String stat;
                try {
                    stat = Files.readString(task.resolve("stat"));
                } catch (NoSuchFileException ended) {
                    continue;
                }
                String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                // fields after the name: state is the 3rd of stat, utime the 14th, stime the 15th
                String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                threads.put(task.getFileName().toString(), Map.entry(group(name),
                        new Time(Long.parseLong(f[11]) / USER_HZ, Long.parseLong(f[12]) / USER_HZ, switches(task))));
            }
        }
        return threads;
    }

    /** The CPU time each group spent between two snapshots of one process, largest first. */
    static Map<String, Time> between(Map<String, Map.Entry<String, Time>> before,
            Map<String, Map.Entry<String, Time>> after) {
        Map<String, Time> sums = new TreeMap<>();
        after.forEach((tid, now) -> {
            Map.Entry<String, Time> then = before.get(tid);
            Time spent = then == null ? now.getValue() : now.getValue().minus(then.getValue());
            sums.merge(now.getKey(), spent, (a, b) -> new Time(a.user + b.user, a.system + b.system,
                    a.switches + b.switches));
        });
        Map<String, Time> ordered = new LinkedHashMap<>();
        sums.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue().total(), a.getValue().total()))
                .forEach(e -> ordered.put(e.getKey(), e.getValue()));
        return ordered;
    }

    /** A thread's context switches so far ({@code voluntary_ctxt_switches} + {@code nonvoluntary_ctxt_switches}). */
    private static long switches(Path task) throws IOException {
        long n = 0;
        try {
            for (String line : Files.readAllLines(task.resolve("status"))) {
                if (line.startsWith("voluntary_ctxt_switches:") || line.startsWith("nonvoluntary_ctxt_switches:")) {
                    n += Long.parseLong(line.substring(line.indexOf(':') + 1).trim());
                }
            }
        } catch (NoSuchFileException ended) {
            return 0;
        }
        return n;
    }

    /** A thread's group by its (kernel-truncated, 15 characters) name. */
    static String group(String name) {
        if (name.startsWith("attestation-htt") || name.startsWith("qtp")) {
            return "http";
        }
        if (name.startsWith("audit-")) {
            return "audit writer";
        }
        if (name.startsWith("GC Thread") || name.startsWith("G1 ") || name.startsWith("VM Thread")
                || name.startsWith("VM Periodic")) {
            return "gc+vm";
        }
        if (name.startsWith("C1 CompilerThre") || name.startsWith("C2 CompilerThre")) {
            return "jit";
        }
        return "other";
    }
}
