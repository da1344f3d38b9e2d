package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class ThreadCpuTest {
    @Test
    void groupsTheServersThreadsByName() {
        assertEquals("http", ThreadCpu.group("attestation-htt"));
        assertEquals("audit writer", ThreadCpu.group("audit-writer-au"));
        assertEquals("gc+vm", ThreadCpu.group("GC Thread#1"));
        assertEquals("gc+vm", ThreadCpu.group("G1 Conc#0"));
        assertEquals("jit", ThreadCpu.group("C2 CompilerThre"));
        assertEquals("other", ThreadCpu.group("main"));
    }

    /** A thread that spins for a while shows up in its group's time between two snapshots of this process. */
    @Test
    @Timeout(30)
    void aBusyThreadsTimeLandsInItsGroup() throws Exception {
        long pid = ProcessHandle.current().pid();
        Map<String, Map.Entry<String, ThreadCpu.Time>> before = ThreadCpu.snapshot(pid);
        AtomicBoolean stop = new AtomicBoolean();
        Thread busy = new Thread(() -> {
            while (!stop.get()) {
                Thread.onSpinWait();
            }
        }, "audit-writer-test");
        busy.start();
        Map<String, ThreadCpu.Time> spent;
        try {
            // until the spinning thread has used 0.3 s of CPU, however loaded the machine (while it still runs: an
            // ended thread has no /proc entry)
            spent = io.tpmphone.swtpm.testing.Await.until("the spinning thread to use 0.3 s of CPU",
                    java.time.Duration.ofSeconds(20), () -> ThreadCpu.between(before, ThreadCpu.snapshot(pid)),
                    m -> m.get("audit writer") != null && m.get("audit writer").total() >= 0.3);
        } finally {
            stop.set(true);
            busy.join(10_000);
        }
        ThreadCpu.Time writer = spent.get("audit writer");
        assertTrue(writer != null && writer.total() >= 0.3, "the spinning thread's CPU time is its group's: " + spent);
        double[] totals = spent.values().stream().mapToDouble(ThreadCpu.Time::total).toArray();
        for (int i = 1; i < totals.length; i++) {
            assertTrue(totals[i - 1] >= totals[i], "groups are listed largest first: " + spent);
        }
    }

    /** A thread that blocks 50 times has at least 50 context switches in its group (read while it still lives). */
    @Test
    @Timeout(30)
    void aThreadThatBlocks_countsItsContextSwitches() throws Exception {
        long pid = ProcessHandle.current().pid();
        Map<String, Map.Entry<String, ThreadCpu.Time>> before = ThreadCpu.snapshot(pid);
        java.util.concurrent.CountDownLatch blocked = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        Thread sleeper = new Thread(() -> {
            try {
                for (int i = 0; i < 50; i++) {
                    Thread.sleep(1); // each sleep gives up the CPU: a voluntary context switch
                }
                blocked.countDown();
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "qtp-sleeper");
        sleeper.start();
        try {
            assertTrue(blocked.await(20, java.util.concurrent.TimeUnit.SECONDS), "the thread slept 50 times");
            Map<String, ThreadCpu.Time> spent = ThreadCpu.between(before, ThreadCpu.snapshot(pid));
            assertTrue(spent.get("http") != null && spent.get("http").switches() >= 50,
                    "50 sleeps are at least 50 context switches of the thread's group: " + spent);
        } finally {
            release.countDown();
            sleeper.join(10_000);
        }
    }
}
