package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import java.time.Instant;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 10, unit = TimeUnit.SECONDS)
class LogBudgetTest {
    @Test
    void aFloodLogsTheBudgetEachSecond_andThenSaysHowManyWereLeftOut() {
        ManualClock clock = new ManualClock(Instant.parse("2026-12-06T12:00:00Z"));
        LogBudget budget = new LogBudget(clock, 20);
        int logged = 0;
        for (int i = 0; i < 5000; i++) {
            LogBudget.Take take = budget.take();
            logged += take.log() ? 1 : 0;
            assertFalse(take.leftOut().isPresent(), "nothing left out yet at " + i);
        }
        assertEquals(20, logged, "20 lines in the first second, of 5000");
        clock.advance(Duration.ofSeconds(1));
        LogBudget.Take next = budget.take();
        assertTrue(next.log());
        assertEquals(OptionalLong.of(4980), next.leftOut(), "the first line of the next second says how many");
        assertEquals(OptionalLong.empty(), budget.take().leftOut(), "said once");
    }
}
