package io.tpmphone.softphone.sip;

import java.time.Clock;
import java.util.OptionalLong;

/**
 * How many lines of one kind may be logged a second: a peer sending INVITEs must not be able to write one log line per
 * INVITE without bound. Beyond the budget, lines are counted; the first line of a later second says how many were
 * left out. Thread-safe.
 */
final class LogBudget {
    private final Clock clock;
    private final int perSecond;
    private long second = Long.MIN_VALUE;
    private int used;
    private long suppressed;

    LogBudget(Clock clock, int perSecond) {
        this.clock = clock;
        this.perSecond = perSecond;
    }

    /** What to do with the next line: {@link Take#log} it or not, and how many were left out before it. */
    record Take(boolean log, OptionalLong leftOut) {
    }

    synchronized Take take() {
        long now = Math.floorDiv(clock.millis(), 1000);
        OptionalLong leftOut = OptionalLong.empty();
        if (now != second) {
            second = now;
            used = 0;
            if (suppressed > 0) {
                leftOut = OptionalLong.of(suppressed);
                suppressed = 0;
            }
        }
        if (used >= perSecond) {
            suppressed++;
            return new Take(false, OptionalLong.empty());
        }
        used++;
        return new Take(true, leftOut);
    }
}
