package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * 45 seconds of {@code tpmphone soak}: real swtpm hosts, the server, two agents and their measured softphones
 * calling each other, INVITE noise from a phone without evidence. Every curve must stay flat (the same tolerances as
 * the hour-long run), every call must work, audio included (a call whose audio stalled fails it), and every
 * background INVITE must be refused. The softphones run as users
 * of their own, so this does not collide with a long soak ({@code tpmphone-soak-a/-b}) on the same machine.
 *
 * <p>Why 45 s can judge growth (the suite's time matters; the hour is {@code tpmphone soak}): flatness is judged on
 * the second half, after the first has warmed up. What a healthy phone holds more of as calls end is its bounded
 * history of ended calls (100 by default, about 70 s of this load to fill; a run of two minutes used to be needed to
 * get past it). Here each softphone keeps 10 ({@code sip.calls.history=10}, filled within the first ten seconds),
 * so the second half (about 20 calls and 45 refused INVITEs) holds nothing that may still grow: a thread, socket or
 * TPM handle left behind per call grows by 20 there, above every tolerance (4 threads, 8 fds, 0.5 handles), and so
 * does a heap that keeps 0.4 MiB or more per call (8 MiB).
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class SoakIT {
    @TempDir
    Path dir;

    @Test
    void fortyFiveSecondsOfCallsAndNoise_leaveHeapThreadsFdsAndTpmHandlesFlat() throws Exception {
        Soak.Report r = Soak.run(new Soak.Options(Duration.ofSeconds(45), Duration.ofSeconds(2),
                Duration.ofMillis(500), dir, "tpmphone-soakit-a", "tpmphone-soakit-b", 10));
        String seen = Soak.verdictTable(r) + "calls " + r.callsEstablished() + " ok, " + r.callsFailed()
                + " failed " + r.failures() + "; media stalls " + r.mediaStalls() + " " + r.stalls() + "; noise "
                + r.noiseSent() + " sent, " + r.noiseRefused()
                + " refused, " + r.noiseAccepted() + " let in\n" + Soak.csv(r);
        // what it saw, also when it passes (the counts a report of a run needs)
        System.out.println("SoakIT: calls " + r.callsEstablished() + " ok, " + r.callsFailed() + " failed; media"
                + " stalls " + r.mediaStalls() + "; noise " + r.noiseSent() + " sent, " + r.noiseRefused() + " refused; "
                + r.samples().size() + " samples\n" + Soak.verdictTable(r));
        assertTrue(r.samples().size() >= 20, "a sample every 2 s over 45 s: " + seen);
        assertEquals(0, r.callsFailed(), "every call established and ended on both sides: " + seen);
        // a call set up and torn down fine in which less than a second of the callee's audio reached the caller
        assertEquals(0, r.mediaStalls(), "no media stall: " + r.stalls() + "; " + seen);
        assertTrue(r.callsEstablished() >= 10, "calls ran one after another for 45 s: " + seen);
        assertEquals(0, r.noiseAccepted(), "no INVITE without evidence got in: " + seen);
        // one every 500 ms is 90; at least half of them went out (each waits for its refusal)
        assertTrue(r.noiseSent() >= 45 && r.noiseRefused() == r.noiseSent(), "every background INVITE was"
                + " refused: " + seen);
        for (String child : new String[] {"alice", "bob"}) {
            double heap = Soak.verdict(r, child + ".heap").orElseThrow().min();
            assertTrue(heap > 1, child + "'s softphone reported its heap after GC (MiB): " + seen);
            assertTrue(Soak.verdict(r, child + ".fds").orElseThrow().min() > 10, child + "'s fds were counted: "
                    + seen);
        }
        assertEquals(0, Soak.verdict(r, "alice.tpm-handles").orElseThrow().max()
                + Soak.verdict(r, "bob.tpm-handles").orElseThrow().max(), "no TPM handle held between operations: "
                + seen);
        assertTrue(r.flat(), "every curve flat: " + seen);
    }
}
