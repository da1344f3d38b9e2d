package io.tpmphone.swtpm.testing;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.Objects;

/**
 * A clock that stands still until a test moves it: for expiries, windows and time-outs that a test checks without
 * waiting. UTC. Thread-safe (the time is a volatile field).
 */
public final class ManualClock extends Clock {
    private volatile Instant now;

    /** A clock at {@code start}. */
    public ManualClock(Instant start) {
        this.now = Objects.requireNonNull(start, "start");
    }

    /** A clock at 2025-01-31T12:00:00Z. */
    public ManualClock() {
        this(Instant.parse("2025-01-31T12:00:00Z"));
    }

    /** Moves the clock by {@code d} (forward if positive). */
    public void advance(Duration d) {
        now = now.plus(d);
    }

    /** Milliseconds since the epoch at this clock's time plus {@code offset}. */
    public long millis(Duration offset) {
        return now.plus(offset).toEpochMilli();
    }

    @Override
    public ZoneId getZone() {
        return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(ZoneId zone) {
        return this;
    }

    @Override
    public Instant instant() {
        return now;
    }
}
