package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import javax.sip.Dialog;
import javax.sip.SipException;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The clocks that end calls nobody ends: an incoming call must be set up (our {@code 200} acknowledged) within the
 * setup timeout of its acceptance, and its {@code ACK} must come within {@link SipPhone.Limits#ackTimeout()} (64·T1,
 * RFC 3261 §13.3.1.4) of our {@code 200}; an established call whose media stopped — no RTP or RTCP datagram for
 * {@link SipPhone.Limits#mediaSilence()}, while it is not on hold — ends too. A call ended this way after our
 * {@code 200} or once established gets a {@code BYE} (the peer may think it is up), one ended before our {@code 200}
 * gets {@code 480} with a {@code Warning} saying why (its INVITE must not stay unanswered), and its media sockets and
 * keys are released at once. Thread-safe; everything runs on the phone's timer thread.
 */
final class CallTimers {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final ScheduledExecutorService timers;
    private final Signalling sip;
    private final CallTable calls;
    private final SipPhone.Listener listener;
    private final Duration setupTimeout;
    private final Duration ackTimeout;
    private final Duration mediaSilence;

    CallTimers(ScheduledExecutorService timers, Signalling sip, CallTable calls, SipPhone.Listener listener,
               Duration setupTimeout, SipPhone.Limits limits) {
        this.timers = timers;
        this.sip = sip;
        this.calls = calls;
        this.listener = listener;
        this.setupTimeout = setupTimeout;
        this.ackTimeout = limits.ackTimeout();
        this.mediaSilence = limits.mediaSilence();
    }

    /** Starts the media watch: it looks at every established call a few times per {@code mediaSilence}. */
    void start() {
        long period = Math.max(50, Math.min(5_000, mediaSilence.toMillis() / 4));
        timers.scheduleWithFixedDelay(this::watchMedia, period, period, TimeUnit.MILLISECONDS);
    }

    /** An incoming call was accepted: it ends unless set up within the setup timeout. */
    void setupDeadline(Call call) {
        end(call, setupTimeout, "not set up within " + setupTimeout.toSeconds() + " s (no ACK)");
    }

    /**
     * Our 200 is about to answer {@code call}'s INVITE: the call is marked answered ({@link Call#answering()}) and
     * ends, with a BYE, unless the ACK comes in time. Returns false, and arms nothing, for a call that ended meanwhile:
     * its 200 must not leave (the caller then sends the final answer the call's end calls for).
     */
    boolean awaitAck(Call call) {
        if (!call.answering()) {
            return false;
        }
        end(call, ackTimeout, "no ACK for our 200 within " + seconds(ackTimeout) + " s");
        return true;
    }

    private void end(Call call, Duration after, String why) {
        ScheduledFuture<?> deadline;
        try {
            deadline = timers.schedule(() -> {
                try {
                    expire(call, why);
                } finally {
                    java.util.function.Consumer<Call> hook = deadlineRan;
                    if (hook != null) {
                        hook.accept(call);
                    }
                }
            }, after.toMillis(), TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException stopping) {
            return; // the phone is stopping and ends every call itself
        }
        // a cancelled deadline must not keep its call in the queue until it would have fired
        call.settled().whenComplete((c, e) -> deadline.cancel(false));
    }

    /** Test hook: told of each call whose deadline has run (after it did what it does). */
    static volatile java.util.function.Consumer<Call> deadlineRan;

    /**
     * A deadline of {@code call} has come. An incoming call not yet answered takes its INVITE's one final answer
     * first ({@link Call#claimFinalAnswer()}): if another sender has it (the person's 200 on its way, a 487, a 603),
     * that one decides and this deadline changes nothing — the 200's own ACK deadline then covers the call. (That
     * holder's wait is bounded: the answer path waits only for {@link SipPhone.Keys}, whose contract bounds it.)
     */
    private void expire(Call call, String why) {
        Optional<Dialog> dialog = call.dialog();
        boolean owesAnswer = call.direction() == io.tpmphone.softphone.CallPolicy.Direction.IN
                && !call.isAnswered() && call.inviteTransaction().isPresent();
        if (owesAnswer && !call.claimFinalAnswer()) {
            return;
        }
        if (call.abandon(why)) {
            if (call.isAnswered()) {
                bye(call, dialog);
            } else if (owesAnswer) {
                // not answered yet (the caller's verdict inside DTLS still to come): its INVITE gets its
                // final answer, else it would stay unanswered at the caller's proxy for minutes
                sip.answerClaimed(call, Response.TEMPORARILY_UNAVAILABLE, why);
            }
            listener.ended(call);
        } else if (owesAnswer) {
            // ended meanwhile by a path that could not take the final answer (we held it): it is still owed — in a
            // fixed phrase (the call's reason may carry an exception's text, which stays in our log and record)
            sip.answerEnded(call);
        }
    }

    private void watchMedia() {
        long now = System.nanoTime();
        for (Call c : calls.inProgress()) {
            if (c.state() != Call.State.ESTABLISHED || c.audio().isEmpty()) {
                continue;
            }
            if (c.held()) {
                c.mediaWatchReset();
                continue;
            }
            long still = c.mediaStillSince(c.audio().get().datagramsReceived(), now);
            if (now - still >= mediaSilence.toNanos()) {
                Optional<Dialog> dialog = c.dialog();
                String why = "no media from the peer for " + seconds(mediaSilence) + " s";
                LOG.info("call {}: {}; hanging up", UntrustedText.forTerminal(c.callId(), 200), why);
                bye(c, dialog);
                c.ended(why);
                listener.ended(c);
            }
        }
    }

    private void bye(Call call, Optional<Dialog> dialog) {
        try {
            sip.bye(dialog);
        } catch (SipException | RuntimeException e) {
            LOG.info("call {}: could not send BYE: {}", UntrustedText.forTerminal(call.callId(), 200),
                    UntrustedText.forTerminal(Signalling.rootMessage(e), 300));
        }
    }

    private static String seconds(Duration d) {
        return d.toMillis() % 1000 == 0 ? Long.toString(d.toSeconds()) : Double.toString(d.toMillis() / 1000.0);
    }
}
