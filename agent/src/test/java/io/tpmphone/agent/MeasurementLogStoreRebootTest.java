package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.tpmphone.agent.MeasurementLogStore.BootChange;
import io.tpmphone.attestation.ClockInfo;
import org.junit.jupiter.api.Test;

/** The reboot decision: reset count changed → reboot; restart count alone → resume if the PCR still holds the log. */
class MeasurementLogStoreRebootTest {
    private static ClockInfo clock(long reset, long restart) {
        return new ClockInfo(1000, reset, restart, true);
    }

    @Test
    void sameCounters_areTheSameBoot() {
        assertEquals(BootChange.SAME_BOOT, MeasurementLogStore.compareBoot("3.1", clock(3, 1), true));
        assertEquals(BootChange.SAME_BOOT, MeasurementLogStore.compareBoot("3.1", clock(3, 1), false));
    }

    @Test
    void aChangedResetCount_isAReboot_evenIfThePcrHappensToMatch() {
        assertEquals(BootChange.REBOOTED, MeasurementLogStore.compareBoot("3.1", clock(4, 0), true));
        assertEquals(BootChange.REBOOTED, MeasurementLogStore.compareBoot("3.1", clock(4, 1), false));
    }

    @Test
    void aChangedRestartCount_withThePcrStillHoldingTheLog_isAResume() {
        assertEquals(BootChange.RESUMED, MeasurementLogStore.compareBoot("3.1", clock(3, 2), true));
    }

    @Test
    void aChangedRestartCount_withThePcrAtAnotherValue_isARestart_thatIsAReboot() {
        assertEquals(BootChange.REBOOTED, MeasurementLogStore.compareBoot("3.1", clock(3, 2), false));
    }

    @Test
    void anUnreadableBootFile_countsAsAReboot() {
        assertEquals(BootChange.REBOOTED, MeasurementLogStore.compareBoot("garbage", clock(3, 1), true));
    }
}
