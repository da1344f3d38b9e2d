package io.tpmphone.softphone.sip;

import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The clocks that end calls nobody ends: an incoming call must be set up (our {@code 200} acknowledged) within the
 * setup timeout of its acceptance, or it ends and its media is released. Thread-safe; everything runs on the phone's
 * timer thread.
 */
final class CallTimers {
    private final ScheduledExecutorService timers;
    private final CallTable calls;
    private final SipPhone.Listener listener;
    private final Duration setupTimeout;

    CallTimers(ScheduledExecutorService timers, CallTable calls, SipPhone.Listener listener, Duration setupTimeout) {
        this.timers = timers;
        this.calls = calls;
        this.listener = listener;
        this.setupTimeout = setupTimeout;
    }

    /** An incoming call was accepted: it ends unless set up within the setup timeout. */
    void setupDeadline(Call call) {
        end(call, setupTimeout, "not set up within " + setupTimeout.toSeconds() + " s (no ACK)");
    }

    private void end(Call call, Duration after, String why) {
        ScheduledFuture<?> deadline;
        try {
            deadline = timers.schedule(() -> {
                if (call.abandon(why)) {
                    listener.ended(call);
                }
            }, after.toMillis(), TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException stopping) {
            return; // the phone is stopping and ends every call itself
        }
        // a cancelled deadline must not keep its call in the queue until it would have fired
        call.settled().whenComplete((c, e) -> deadline.cancel(false));
    }
}
