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
 * Two minutes of {@code tpmphone soak}: real swtpm hosts, the server, two agents and their measured softphones
 * calling each other, INVITE noise from a phone without evidence. Every curve must stay flat (the same tolerances as
 * the hour-long run), every call must work, audio included (a call whose audio stalled fails it), and every
 * background INVITE must be refused. The softphones run as users
 * of their own, so this does not collide with a long soak ({@code tpmphone-soak-a/-b}) on the same machine.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class SoakIT {
    @TempDir
    Path dir;

    @Test
    void twoMinutesOfCallsAndNoise_leaveHeapThreadsFdsAndTpmHandlesFlat() throws Exception {
        Soak.Report r = Soak.run(new Soak.Options(Duration.ofMinutes(2), Duration.ofSeconds(5),
                Duration.ofMillis(500), dir, "tpmphone-soakit-a", "tpmphone-soakit-b"));
        String seen = Soak.verdictTable(r) + "calls " + r.callsEstablished() + " ok, " + r.callsFailed()
                + " failed " + r.failures() + "; media stalls " + r.mediaStalls() + " " + r.stalls() + "; noise "
                + r.noiseSent() + " sent, " + r.noiseRefused()
                + " refused, " + r.noiseAccepted() + " let in\n" + Soak.csv(r);
        // what it saw, also when it passes (the counts a report of a run needs)
        System.out.println("SoakIT: calls " + r.callsEstablished() + " ok, " + r.callsFailed() + " failed; media"
                + " stalls " + r.mediaStalls() + "; noise " + r.noiseSent() + " sent, " + r.noiseRefused() + " refused; "
                + r.samples().size() + " samples");
        assertTrue(r.samples().size() >= 20, "a sample every 5 s over 2 min: " + seen);
        assertEquals(0, r.callsFailed(), "every call established and ended on both sides: " + seen);
        // a call set up and torn down fine in which less than a second of the callee's audio reached the caller
        assertEquals(0, r.mediaStalls(), "no media stall: " + r.stalls() + "; " + seen);
        assertTrue(r.callsEstablished() >= 10, "calls ran one after another for 2 minutes: " + seen);
        assertEquals(0, r.noiseAccepted(), "no INVITE without evidence got in: " + seen);
        assertTrue(r.noiseSent() >= 60 && r.noiseRefused() == r.noiseSent(), "every background INVITE was"
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
