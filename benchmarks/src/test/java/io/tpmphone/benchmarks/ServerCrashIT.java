package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tpmphone crash-test server} for three cycles: the real server as {@code tpmphone server} in its own process,
 * killed with SIGKILL while four hosts' clients send real appraisals over HTTPS, restarted on the same state. Nothing
 * acknowledged is lost, the audit chain verifies after each restart and after the clean stop.
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class ServerCrashIT {
    @TempDir
    Path dir;

    @Test
    void sigkillUnderAppraisalLoad_losesNoAcknowledgedAppraisal_andTheChainVerifies() throws Exception {
        ServerCrash.Report r = ServerCrash.run(new ServerCrash.Options(3, 4, 4, 40, dir, Optional.empty()));
        assertEquals(3, r.cycles().size(), "three cycles: " + r);
        for (ServerCrash.Cycle c : r.cycles()) {
            assertEquals(137, c.exitStatus(), "the server died of SIGKILL: " + c);
            assertTrue(c.acknowledged() >= 40, "the kill came after 40 acknowledged appraisals: " + c);
            assertTrue(c.appraisalRecords() >= c.acknowledged(), "the log holds at least what was acknowledged: "
                    + c);
            assertTrue(!c.auditVerify().isBlank(), "audit verify --open passed (exit 0) and said what it checked: "
                    + c);
        }
        assertTrue(r.acknowledged() >= 3 * 40 + 40, "appraisals acknowledged over the run: " + r);
        assertEquals(r.acknowledged(), r.found(), "every acknowledged appraisal has its record: " + r);
    }
}
