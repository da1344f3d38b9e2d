package io.tpmphone.server.internal.console;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.Objects;

/**
 * Limits failed console sign-ins: at most {@code perSource} failures per client address and {@code overall} in all
 * in any {@code window}; once a limit is reached, further attempts from addresses that failed are refused without the
 * credential being looked at until the window has moved on. An address without failures of its own is never refused
 * (so nobody can lock the operator out). Addresses are tracked in a table of at most {@code maxSources} (the least recently
 * failing one is forgotten first; the overall limit still holds), so a client rotating addresses cannot grow memory.
 * Thread-safe.
 */
public final class SignInThrottle {
    private final Clock clock;
    private final Duration window;
    private final int perSource;
    private final int overall;
    private final int maxSources;
    private final Deque<Instant> all = new ArrayDeque<>();
    private final LinkedHashMap<String, Deque<Instant>> bySource = new LinkedHashMap<>(16, 0.75f, true);

    public SignInThrottle(Clock clock, Duration window, int perSource, int overall, int maxSources) {
        this.clock = Objects.requireNonNull(clock, "clock");
        if (window.isNegative() || window.isZero() || perSource < 1 || overall < perSource || maxSources < 1) {
            throw new IllegalArgumentException("sign-in throttle needs a positive window and 1 <= perSource <="
                    + " overall, maxSources >= 1");
        }
        this.window = window;
        this.perSource = perSource;
        this.overall = overall;
        this.maxSources = maxSources;
    }

    /** Whether a sign-in from {@code source} may be checked now. */
    public synchronized boolean allowed(String source) {
        Instant now = clock.instant();
        prune(all, now);
        Deque<Instant> failures = bySource.get(source);
        if (failures != null) {
            prune(failures, now);
        }
        if (failures == null || failures.isEmpty()) {
            // An address that has not failed is never refused because others did: otherwise anyone could lock the
            // operator out with a few wrong attempts from a few addresses. The credentials are long random
            // tokens, so one attempt per fresh address gains a guesser nothing.
            return true;
        }
        return all.size() < overall && failures.size() < perSource;
    }

    /** Counts a failed sign-in from {@code source}. */
    public synchronized void failed(String source) {
        Instant now = clock.instant();
        all.addLast(now);
        prune(all, now);
        bySource.computeIfAbsent(source, s -> new ArrayDeque<>()).addLast(now);
        if (bySource.size() > maxSources) {
            var eldest = bySource.entrySet().iterator();
            eldest.next();
            eldest.remove();
        }
        // A deque never holds more than its limit plus the failure just counted: attempts over the limit are refused
        // before they are checked, so they are never counted here.
        trim(all, overall);
        trim(bySource.get(source), perSource);
    }

    private void prune(Deque<Instant> d, Instant now) {
        Instant horizon = now.minus(window);
        while (!d.isEmpty() && !d.peekFirst().isAfter(horizon)) {
            d.removeFirst();
        }
    }

    private static void trim(Deque<Instant> d, int limit) {
        while (d.size() > limit) {
            d.removeFirst();
        }
    }

    /** Sources tracked now (for tests). */
    synchronized int trackedSources() {
        return bySource.size();
    }

    @Override
    public synchronized String toString() {
        return "SignInThrottle{" + all.size() + " failures in window}";
    }
}
