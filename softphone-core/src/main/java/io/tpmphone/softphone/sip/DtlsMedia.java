package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import io.tpmphone.tls.DtlsSrtpException;
import io.tpmphone.tls.PeerAttestation;
import io.tpmphone.tls.SrtpKeys;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One call's DTLS-SRTP media, in order, on one thread that owns the call's RTP socket until SRTP takes it over: the
 * DTLS handshake with the far end (the certificate its SDP fingerprint names), both evidence exchanges, the call
 * policy on the far end's level ({@link #decided()}), and — only if the policy accepted it and the call is then
 * answered ({@link #go()}) — the SRTP keys taken from the association with {@code accept(level)} and handed to
 * libjitsi. Until then nothing but DTLS leaves the socket and nothing that arrives reaches a decoder. Thread-safe.
 */
final class DtlsMedia implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);
    private static final int SERVICE_MILLIS = 50;

    /** What the phone does with the far end's level, and with a failure after the decision. */
    interface Events {
        /**
         * Decides the call on the far end's level (on this call's DTLS thread): the policy, the user, the audit.
         * {@code callEnded}: the call ended (a CANCEL, a BYE, our user) while this side was appraising the far end;
         * the decision is still made and recorded — the far end recorded its own on the same evidence, and the two
         * records are joined by its digest — and nothing follows it (no verdict, no ringing, no SRTP).
         */
        CallPolicy.Decision decide(Call call, PeerAttestation farEnd, String evidenceDigest, boolean callEnded);

        /**
         * The call ended before this side had the far end's evidence appraised (the association was not complete):
         * recorded explicitly as an end-to-end decision that was never made, {@code why} naming how far it got.
         */
        void endedUndecided(Call call, String why);

        /** The association broke, or SRTP could not start, after the decision: the call ends with {@code why}. */
        void failed(Call call, String why);

        /**
         * No association came about ({@code e} says why): recorded as the far end refused end to end, unless this
         * side is the one that failed ({@code LOCAL_SIGNATURE}, {@code LOCAL_EVIDENCE}).
         */
        void noAssociation(Call call, DtlsSrtpException e);

        /**
         * The call's end closed this thread's association during its handshake or evidence exchange, before any
         * decision: when that end was the far end's SIP refusal, the one record of the call names what it said.
         */
        void closedDuringSetup(Call call);

        /**
         * The far end's verdict says it refused this call (its policy on our level): the call ends now, with its
         * reason for our user, whatever its SIP says or when (a proxy may delay or drop that).
         */
        void refusedByFarEnd(Call call, io.tpmphone.tls.DtlsVerdict verdict);
    }

    /** How long a refusing side keeps the association for its verdict to be acknowledged before it closes it. */
    static final Duration VERDICT_LINGER = Duration.ofSeconds(1);

    /** How long an answered call whose far end attests waits for its verdict (sent at once) before starting SRTP. */
    static final Duration VERDICT_BEFORE_SRTP = Duration.ofSeconds(2);

    /**
     * Test hook: runs on a call's DTLS thread once the far end's evidence is appraised, before the decision (as a slow
     * appraisal would take time there). Tests only, like {@link SipEvents#dropCancels}.
     */
    static volatile java.util.function.Consumer<Call> beforeDecision = c -> { };

    private final Call call;
    private final AudioSession audio;
    private final CompletableFuture<CallPolicy.Decision> decided = new CompletableFuture<>();
    private final CompletableFuture<Void> go = new CompletableFuture<>();
    private final CompletableFuture<Boolean> started = new CompletableFuture<>();
    /** The far end's verdict on us: empty when it sends none (it does not attest), or the association ended first. */
    private final CompletableFuture<java.util.Optional<io.tpmphone.tls.DtlsVerdict>> peerVerdict =
            new CompletableFuture<>();
    private volatile DtlsSrtpAssociation association;
    private volatile boolean closed;
    /** Our policy refused the far end: this call's DTLS thread sends our verdict and closes the association. */
    private volatile boolean refusing;

    DtlsMedia(Call call, AudioSession audio) {
        this.call = call;
        this.audio = audio;
    }

    /**
     * Completes with the policy's decision on the far end, or exceptionally with a {@link DtlsSrtpException} (its
     * reason: a fingerprint mismatch, missing or malformed evidence, a timeout) when no association came about.
     */
    CompletableFuture<CallPolicy.Decision> decided() {
        return decided;
    }

    /**
     * Completes with the far end's verdict on us once it arrived; with empty when it sends none (it does not attest)
     * or the association ended before it came.
     */
    CompletableFuture<java.util.Optional<io.tpmphone.tls.DtlsVerdict>> peerVerdict() {
        return peerVerdict;
    }

    /** Completes once SRTP started (true), or when it never will (false). */
    CompletableFuture<Boolean> started() {
        return started;
    }

    /** The call is answered and acknowledged: SRTP may start once the policy accepted the far end. */
    void go() {
        go.complete(null);
    }

    /**
     * The work of the call's DTLS thread: handshake as client ({@code a=setup:active}) or server towards
     * {@code remote}, evidence, decision, then serve the association until {@link #go()} (at most {@code maxWait})
     * and start SRTP with {@code payloadType}.
     */
    void run(DtlsSrtpConfig config, boolean client, InetSocketAddress remote, int payloadType, Duration maxWait,
             Events events) {
        DtlsSrtpAssociation a;
        try {
            a = new DtlsSrtpEndpoint().establish(audio.dtls(remote), client, config);
        } catch (DtlsSrtpException e) {
            // only this thread records the call's end-to-end decision (once, Call.claimNoAssociation)
            // a failure verified here, or the far end's alert/timeout, is the association's own end whatever closed
            // the call meanwhile; only a handshake cut short by the call's end is "closed during set-up"
            if (!closed || verifiedHere(e) || EndToEndCalls.farEndAborted(e)) {
                events.noAssociation(call, e);
            } else {
                events.closedDuringSetup(call);
            }
            fail(e);
            return;
        } catch (InterruptedIOException | RuntimeException e) {
            if (closed) {
                events.closedDuringSetup(call);
            }
            fail(new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_FAILED, closed
                    ? "the call ended during the DTLS handshake" : "the DTLS handshake broke: " + e, e));
            return;
        }
        association = a;
        beforeDecision.accept(call);
        // A call that ended while the far end was being appraised (its CANCEL, or the far end's refusal in SIP, may
        // overtake this side's appraisal under load) is still decided and recorded, on the far end's evidence: the
        // far end's record names the same digest (a genuine callee's 403 is not recorded as a FAILED far end).
        boolean ended = closed || call.state() == Call.State.ENDED || call.state() == Call.State.REFUSED;
        CallPolicy.Decision d;
        try {
            d = events.decide(call, a.peer(), a.evidenceDigest().map(HexFormat.of()::formatHex).orElse(""), ended);
        } catch (RuntimeException e) {
            a.close();
            fail(new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_FAILED, "deciding on the far end failed: "
                    + e, e));
            return;
        }
        if (ended || closed) {
            // ended before the decision, or while it was taken (its record may then lack the note; nothing follows
            // it either way: no verdict, no ring, no SRTP)
            a.close();
            fail(new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_FAILED, "the call ended before its"
                    + " end-to-end decision"));
            return;
        }
        if (d.action() == CallPolicy.Action.REJECT) {
            refuse(a, d, events);
            return;
        }
        // Our own SIP reaction goes first, then the verdict inside DTLS.
        decided.complete(d);
        if (!a.exchangesVerdicts()) {
            peerVerdict.complete(java.util.Optional.empty()); // a standard phone: no verdicts either way
        } else {
            sendVerdict(a, d);
        }
        long deadline = System.nanoTime() + maxWait.toNanos();
        try {
            while (!go.isDone() && !closed) {
                if (takePeerVerdict(a, events)) {
                    close();
                    started.complete(false);
                    return;
                }
                if (System.nanoTime() - deadline >= 0) {
                    close();
                    events.failed(call, "not answered within " + maxWait.toSeconds() + " s of the DTLS-SRTP"
                            + " association");
                    started.complete(false);
                    return;
                }
                if (!a.serviceIncoming(SERVICE_MILLIS)) {
                    if (takePeerVerdict(a, events)) { // its refusal came just before its close_notify
                        close();
                        started.complete(false);
                        return;
                    }
                    close();
                    events.failed(call, "the far end closed the DTLS-SRTP association");
                    started.complete(false);
                    return;
                }
            }
            if (closed) {
                started.complete(false);
                return;
            }
            // The far end's verdict on us decides too: a refusal that came in already, or comes within
            // VERDICT_BEFORE_SRTP (a caller without 100rel is answered before its verdict), starts no SRTP.
            long verdictBy = System.nanoTime() + VERDICT_BEFORE_SRTP.toNanos();
            while (a.exchangesVerdicts() && a.peerVerdict().isEmpty() && !closed
                    && System.nanoTime() - verdictBy < 0) {
                if (!a.serviceIncoming(SERVICE_MILLIS)) {
                    break;
                }
            }
            if (takePeerVerdict(a, events)) {
                close();
                started.complete(false);
                return;
            }
            if (closed) {
                started.complete(false);
                return;
            }
            // Only here, after both sides' policies accepted (or the far end sent no verdict in time) and the call
            // was answered.
            peerVerdict.complete(a.peerVerdict());
            SrtpKeys keys = a.accept(d.peerLevel());
            try {
                audio.start(keys, remote, payloadType);
            } finally {
                keys.destroy(); // libjitsi's SRTP contexts hold their own copies now
            }
            started.complete(true);
        } catch (IOException | RuntimeException e) {
            boolean wasClosed = closed;
            close();
            if (!wasClosed) {
                LOG.info("call {}: DTLS-SRTP media failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                        UntrustedText.forTerminal(e.toString(), 300));
                events.failed(call, "the DTLS-SRTP media failed: " + UntrustedText.forTerminal(e.toString(), 300));
            }
            started.complete(false);
        }
    }

    /**
     * Our policy refused the far end. Our SIP reaction goes first ({@link #decided}: the caller's CANCEL, the
     * callee's 403), which ends the call with this side's own reason whatever the timing; then our verdict inside the
     * association (the far end learns why whatever a proxy does with our SIP). The association and the call's media
     * socket stay with this thread ({@link #keepsMedia}) until the far end acknowledged our verdict (at most
     * {@link #VERDICT_LINGER}), then close. Before, the call's end closed the association first, so no refusal was
     * ever sent.
     */
    private void refuse(DtlsSrtpAssociation a, CallPolicy.Decision d, Events events) {
        synchronized (this) {
            refusing = true; // close() leaves the association and the media socket to us from now on
        }
        try {
            decided.complete(d); // our SIP (CANCEL, 403) first: this side's own state is set before the far end knows
            if (a.exchangesVerdicts()) {
                sendVerdict(a, d);
            }
            long until = System.nanoTime() + VERDICT_LINGER.toNanos();
            try {
                while (a.exchangesVerdicts() && !a.verdictAcknowledged() && System.nanoTime() - until < 0
                        && a.serviceIncoming(SERVICE_MILLIS)) {
                    takePeerVerdict(a, events);
                }
            } catch (IOException | RuntimeException e) {
                LOG.debug("call {}: waiting for our verdict's acknowledgement: {}",
                        UntrustedText.forTerminal(call.callId(), 200), e.toString());
            }
        } finally {
            a.close();
            audio.close();
            peerVerdict.complete(java.util.Optional.empty());
            started.complete(false);
        }
    }

    private void sendVerdict(DtlsSrtpAssociation a, CallPolicy.Decision d) {
        try {
            a.sendVerdict(new io.tpmphone.tls.DtlsVerdict(d.action() != CallPolicy.Action.REJECT, d.peerLevel(),
                    d.requiredLevel()));
        } catch (IOException | RuntimeException e) {
            LOG.debug("call {}: sending our verdict failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                    e.toString());
        }
    }

    /**
     * Whether the association is still open (not closed by either side, nor by the call's end): a callee still waiting
     * for the caller's verdict rings only then.
     */
    boolean open() {
        DtlsSrtpAssociation a = association;
        return !closed && !refusing && a != null && a.open();
    }

    /** Completes {@link #peerVerdict} when the far end's arrived; whether it refused us (then the call ends). */
    private boolean takePeerVerdict(DtlsSrtpAssociation a, Events events) {
        if (peerVerdict.isDone()) {
            return false;
        }
        java.util.Optional<io.tpmphone.tls.DtlsVerdict> v = a.peerVerdict();
        if (v.isEmpty()) {
            return false;
        }
        peerVerdict.complete(v);
        if (!v.get().accept()) {
            LOG.info("call {}: the far end refused it: {}", UntrustedText.forTerminal(call.callId(), 200),
                    v.get().display());
            events.refusedByFarEnd(call, v.get());
            return true;
        }
        return false;
    }

    /**
     * Whether {@code e} was found by this side itself (the far end's certificate or evidence checked here, or this
     * side's own TPM): then it is this call's record even when the call's end closed the association meanwhile.
     */
    static boolean verifiedHere(DtlsSrtpException e) {
        return switch (e.reason()) {
            case FINGERPRINT_MISMATCH, NO_CERTIFICATE, SRTP_NEGOTIATION, EVIDENCE_MALFORMED, LOCAL_SIGNATURE,
                 LOCAL_EVIDENCE -> true;
            case HANDSHAKE_TIMEOUT, HANDSHAKE_FAILED, EVIDENCE_MISSING -> false;
        };
    }

    private void fail(DtlsSrtpException e) {
        decided.completeExceptionally(e);
        peerVerdict.complete(java.util.Optional.empty());
        started.complete(false);
    }

    /** Ends the association (close_notify) and wipes its keys; the call's media socket closes with its session. */
    @Override
    public void close() {
        keepsMedia();
    }

    /**
     * {@link #close()}, and whether this call's DTLS thread keeps the media socket a while (it is refusing the far
     * end and waits, at most {@link #VERDICT_LINGER}, for our verdict's acknowledgement): then it closes the
     * association and the call's {@link AudioSession} itself, and the caller must not.
     */
    synchronized boolean keepsMedia() {
        closed = true;
        peerVerdict.complete(java.util.Optional.empty());
        go.complete(null);
        if (refusing) {
            return true;
        }
        DtlsSrtpAssociation a = association;
        if (a != null) {
            a.close();
        }
        return false;
    }
}
