package io.tpmphone.server.internal.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class SignInThrottleTest {
    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-07T10:00:00Z"));

    @Test
    void aSourceIsStoppedAfterItsFailures_untilTheWindowMovesOn() {
        SignInThrottle t = new SignInThrottle(clock, Duration.ofMinutes(1), 5, 30, 100);
        for (int i = 0; i < 5; i++) {
            assertTrue(t.allowed("192.0.2.1"), "failure " + i);
            t.failed("192.0.2.1");
        }
        assertFalse(t.allowed("192.0.2.1"));
        assertTrue(t.allowed("192.0.2.2"), "another source is not stopped");
        clock.advance(Duration.ofSeconds(61));
        assertTrue(t.allowed("192.0.2.1"), "a minute later");
    }

    @Test
    void theOverallLimit_stopsEveryAddressThatFailed_butNeverOneThatDidNot() {
        SignInThrottle t = new SignInThrottle(clock, Duration.ofMinutes(1), 5, 30, 100);
        for (int i = 0; i < 30; i++) {
            assertTrue(t.allowed("198.51.100." + i), "source " + i);
            t.failed("198.51.100." + i);
        }
        assertFalse(t.allowed("198.51.100.3"), "an address that failed once, once 30 failed in the window");
        // The operator signing in from an address without failures is not locked out by the attacker's (review
        // finding: 5 wrong attempts from each of 6 addresses refused the admin's correct token with 429).
        assertTrue(t.allowed("203.0.113.9"), "an address without failures of its own");
    }

    @Test
    void theSourceTable_isBounded() {
        SignInThrottle t = new SignInThrottle(clock, Duration.ofMinutes(1), 1, 1_000_000, 64);
        for (int i = 0; i < 10_000; i++) {
            t.failed("10.0." + (i / 256) + "." + (i % 256));
        }
        assertEquals(64, t.trackedSources());
    }
}
