package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tpmphone crash-test server} for three cycles: the real server as {@code tpmphone server} in its own process,
 * killed with SIGKILL while four hosts' clients send real appraisals over HTTPS, restarted on the same state. Nothing
 * acknowledged is lost, the audit chain verifies after each restart and after the clean stop. The same for two
 * cycles on PostgreSQL (a real one the test starts; it fails, not skips, without PostgreSQL).
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class ServerCrashIT {
    @TempDir
    Path dir;

    @Test
    void sigkillUnderAppraisalLoad_losesNoAcknowledgedAppraisal_andTheChainVerifies() throws Exception {
        check(ServerCrash.run(new ServerCrash.Options(3, 4, 4, 40, dir, Optional.empty())), 3);
    }

    @Test
    @ExtendWith(PostgresExtension.class)
    void onPostgresql_sigkillUnderAppraisalLoad_losesNoAcknowledgedAppraisal(TestBackend db) throws Exception {
        // The shortest writer lease (4 s, not 10 s): the final clean stop waits for the last killed server's lease
        // to lapse before it may close the chain; what is proven (nothing acknowledged lost, closed chain) is the same.
        ServerCrash.Report r = ServerCrash.run(new ServerCrash.Options(2, 4, 4, 40, dir,
                Optional.of(db.databaseUrl()), Optional.of(4)));
        assertEquals("PostgreSQL", r.backend(), r.toString());
        check(r, 2);
    }

    private static void check(ServerCrash.Report r, int cycles) {
        assertEquals(cycles, r.cycles().size(), "every cycle ran: " + r);
        for (ServerCrash.Cycle c : r.cycles()) {
            assertEquals(137, c.exitStatus(), "the server died of SIGKILL: " + c);
            assertTrue(c.acknowledged() >= 40, "the kill came after 40 acknowledged appraisals: " + c);
            assertTrue(c.appraisalRecords() >= c.acknowledged(), "the log holds at least what was acknowledged: "
                    + c);
            assertTrue(!c.auditVerify().isBlank(), "audit verify --open passed (exit 0) and said what it checked: "
                    + c);
        }
        assertTrue(r.acknowledged() >= cycles * 40L + 40, "appraisals acknowledged over the run: " + r);
        assertEquals(r.acknowledged(), r.found(), "every acknowledged appraisal has its record: " + r);
    }
}
