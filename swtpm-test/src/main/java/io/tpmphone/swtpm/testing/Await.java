package io.tpmphone.swtpm.testing;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Waits for a condition with a deadline, asking again every {@link #POLL_INTERVAL}. On time-out it throws an {@link
 * AssertionError} (so the test fails, it does not error) whose message says what was awaited, for how long, and what
 * was last seen.
 *
 * <p>Use it only for state that can be observed by asking again (a status, a file, an audit log, a process table).
 * Where the code under test offers an event (a latch, a future, a listener, {@code Process.onExit()}, a line read from
 * a stream), wait for that instead. Never use a wait that runs out as proof that something did not happen: prove it by
 * an event that shows the system moved on (a later request answered, a refusal, a close).
 *
 * <pre>{@code
 * Status s = Await.until("the agent to report MEASURED", Duration.ofSeconds(10), agent::status,
 *         st -> st.is(IntegrityLevel.MEASURED));
 * Await.until("the PID file to disappear", Duration.ofSeconds(5), () -> !Files.exists(pid),
 *         () -> "the PID file still holds " + Files.readString(pid));
 * }</pre>
 *
 * <p>A probe that throws counts as "not yet"; the exception is what was last seen, and becomes the cause of the
 * {@code AssertionError}. An {@link Error} thrown by a probe (an assertion inside it) ends the wait at once.
 */
public final class Await {
    /** How long to wait between two probes. */
    public static final Duration POLL_INTERVAL = Duration.ofMillis(20);

    private Await() {
    }

    /** A value to look at; may throw, which counts as "not yet". */
    @FunctionalInterface
    public interface Probe<T> {
        T get() throws Exception;
    }

    /** A condition; may throw, which counts as "not yet". */
    @FunctionalInterface
    public interface Condition {
        boolean holds() throws Exception;
    }

    /** Describes what is there now, for the failure message; may throw, which is then reported instead. */
    @FunctionalInterface
    public interface Seen {
        String describe() throws Exception;
    }

    /**
     * Asks {@code probe} until {@code done} accepts its value, and returns that value.
     *
     * @param what what is awaited, read as "waiting for {@code what}", e.g. "the call to be ESTABLISHED"
     * @throws AssertionError after {@code timeout}, naming {@code what} and the last value seen
     */
    public static <T> T until(String what, Duration timeout, Probe<T> probe, Predicate<? super T> done) {
        Objects.requireNonNull(probe, "probe");
        Objects.requireNonNull(done, "done");
        return poll(what, timeout, probe, done, lastSeen -> String.valueOf(lastSeen));
    }

    /**
     * Asks {@code condition} until it holds.
     *
     * @param what what is awaited, read as "waiting for {@code what}"
     * @param seen what is there instead, asked once on time-out for the failure message
     * @throws AssertionError after {@code timeout}, naming {@code what} and what {@code seen} describes
     */
    public static void until(String what, Duration timeout, Condition condition, Seen seen) {
        Objects.requireNonNull(condition, "condition");
        Objects.requireNonNull(seen, "seen");
        poll(what, timeout, condition::holds, Boolean::booleanValue, lastSeen -> {
            String now = describe(seen);
            return lastSeen instanceof Exception ? now + " (the condition last threw " + lastSeen + ")" : now;
        });
    }

    /**
     * Waits for an event: {@code event} completing (a {@code CompletableFuture} of a listener, {@code
     * Process.onExit()}, ...), and returns its value. No polling.
     *
     * @param what what is awaited, read as "waiting for {@code what}"
     * @param seen what is there instead, asked once on time-out for the failure message
     * @throws AssertionError after {@code timeout}, naming {@code what} and what {@code seen} describes; or at once if
     *                        the event failed, with its exception as the cause
     */
    public static <T> T event(String what, Duration timeout, Future<T> event, Seen seen) {
        Objects.requireNonNull(what, "what");
        Objects.requireNonNull(seen, "seen");
        try {
            return event.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while waiting for " + what, e);
        } catch (ExecutionException e) {
            throw new AssertionError(what + " failed: " + e.getCause() + "; last seen: " + describe(seen), e.getCause());
        } catch (TimeoutException e) {
            throw new AssertionError("timed out after " + format(timeout) + " waiting for " + what + "; last seen: "
                    + describe(seen));
        }
    }

    private static String describe(Seen seen) {
        try {
            return seen.describe();
        } catch (Exception e) {
            return "(cannot describe: " + e + ")";
        }
    }

    private static <T> T poll(String what, Duration timeout, Probe<T> probe, Predicate<? super T> done,
                              Function<Object, String> describe) {
        Objects.requireNonNull(what, "what");
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Object lastSeen;
            Exception lastFailure = null;
            try {
                T value = probe.get();
                if (done.test(value)) {
                    return value;
                }
                lastSeen = value;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while waiting for " + what, e);
            } catch (Exception e) {
                lastSeen = e;
                lastFailure = e;
            }
            if (System.nanoTime() - deadline >= 0) {
                throw new AssertionError("timed out after " + format(timeout) + " waiting for " + what
                        + "; last seen: " + describe.apply(lastSeen), lastFailure);
            }
            LockSupport.parkNanos(POLL_INTERVAL.toNanos());
            if (Thread.currentThread().isInterrupted()) {
                throw new AssertionError("interrupted while waiting for " + what);
            }
        }
    }

    private static String format(Duration d) {
        long ms = d.toMillis();
        return ms % 1000 == 0 ? ms / 1000 + " s" : ms + " ms";
    }
}
