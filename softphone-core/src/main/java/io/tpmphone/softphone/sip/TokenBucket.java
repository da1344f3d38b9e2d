package io.tpmphone.softphone.sip;

import java.time.Clock;
import java.util.Objects;

/**
 * An allowance on a clock: at most {@code burst} at once, refilled at {@code perSecond} (a clock set back refills
 * nothing). Thread-safe.
 */
final class TokenBucket {
    private final Clock clock;
    private final int burst;
    private final double perSecond;
    private double tokens;
    private long refilledMillis;

    TokenBucket(Clock clock, int burst, double perSecond) {
        this.clock = Objects.requireNonNull(clock, "clock");
        if (burst < 1 || !(perSecond > 0)) {
            throw new IllegalArgumentException("an allowance needs a burst of at least 1 and a positive rate, got "
                    + burst + " and " + perSecond);
        }
        this.burst = burst;
        this.perSecond = perSecond;
        this.tokens = burst;
        this.refilledMillis = clock.millis();
    }

    /** Takes one, if there is one. */
    synchronized boolean take() {
        long now = clock.millis();
        tokens = Math.min(burst, tokens + Math.max(0, now - refilledMillis) / 1000.0 * perSecond);
        refilledMillis = now;
        if (tokens < 1) {
            return false;
        }
        tokens -= 1;
        return true;
    }
}
