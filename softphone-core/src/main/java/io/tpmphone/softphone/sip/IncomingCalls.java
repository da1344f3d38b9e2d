package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.message.SIPRequest;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.tls.PeerAttestation;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sip.InvalidArgumentException;
import javax.sip.RequestEvent;
import javax.sip.ServerTransaction;
import javax.sip.SipException;
import javax.sip.TransactionUnavailableException;
import javax.sip.address.SipURI;
import javax.sip.header.CallIdHeader;
import javax.sip.header.FromHeader;
import javax.sip.header.ToHeader;
import javax.sip.header.WarningHeader;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The decision pipeline of an INVITE that arrives, in this order: a request for a call in progress (a re-INVITE, or
 * another transaction with its Call-ID: {@code 482}/{@code 481}) and a malformed one ({@code 400}) are dealt with
 * first; then the peer's attestation on the connection it came over; a {@code From} identity other than the attested
 * host ({@code 403}); the call policy ({@code 403} with a {@code Warning}); the SDP offer and its SDES key (none, no
 * common codec, or a key seen before: {@code 488}); room among the calls being set up ({@code 503}); and only then
 * {@code 180} and {@code 200} with our key from the sealed keystore, whose Contact names the transport the INVITE came
 * over. Every refusal is sent without a transaction and holds nothing. The call is established by the peer's ACK of our
 * 200 — only a call we answered, never one we placed. Thread-safe.
 */
final class IncomingCalls {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);
    /** Incoming call decisions logged per second at most: anyone can send INVITEs (the audit log sums them up). */
    static final int DECISION_LINES_PER_SECOND = 20;

    private final Signalling sip;
    private final CallTable calls;
    private final ConnectionAttestation attestation;
    private final CallPolicy policy;
    private final MediaKeys keys;
    private final CallMedia media;
    private final CallTimers callTimers;
    private final EndToEndCalls endToEnd;
    private final SipPhone.Listener listener;
    private final ScheduledExecutorService timers;
    private final LogBudget decisionLines;
    /** Who decides whether a ringing call is answered: at once, or a person at the ring screen. */
    private final java.util.concurrent.atomic.AtomicReference<SipPhone.AnswerDecision> answers;
    /** INVITEs answered 503 because the phone was full, since the last log line about them (one line per burst). */
    private final AtomicInteger turnedAway = new AtomicInteger();

    IncomingCalls(Signalling sip, CallTable calls, ConnectionAttestation attestation, CallPolicy policy,
                  MediaKeys keys, CallMedia media, CallTimers callTimers, EndToEndCalls endToEnd,
                  SipPhone.Listener listener, ScheduledExecutorService timers, LogBudget decisionLines,
                  java.util.concurrent.atomic.AtomicReference<SipPhone.AnswerDecision> answers) {
        this.endToEnd = endToEnd;
        this.answers = answers;
        this.sip = sip;
        this.calls = calls;
        this.attestation = attestation;
        this.policy = policy;
        this.keys = keys;
        this.media = media;
        this.callTimers = callTimers;
        this.listener = listener;
        this.timers = timers;
        this.decisionLines = decisionLines;
    }

    /** An INVITE arrived: a new call through the pipeline, or a request within a call in progress. */
    void invite(RequestEvent event) throws Exception {
        Request request = event.getRequest();
        String callId = ((CallIdHeader) request.getHeader(CallIdHeader.NAME)).getCallId();
        Optional<Call> existing = calls.active(callId);
        if (existing.isPresent()) {
            inProgress(event, existing.get());
            return;
        }
        try {
            // what JAIN-SIP checks before it makes a transaction: a malformed INVITE gets its 400 and leaves no call
            ((SIPRequest) request).checkHeaders();
        } catch (ParseException e) {
            throw new TransactionUnavailableException(e.getMessage(), e);
        }
        FromHeader from = (FromHeader) request.getHeader(FromHeader.NAME);
        String fromUri = from.getAddress().getURI().toString();
        Call call = new Call(callId, CallPolicy.Direction.IN, fromUri);
        // Until the INVITE is accepted it has no transaction: every refusal below is answered statelessly (over TCP
        // and TLS on the connection it came over), because an INVITE transaction refused with 4xx-5xx waits 32 s for
        // an ACK (Timer H) that an attacker never sends, and JAIN-SIP holds every one of them (its
        // MAX_SERVER_TRANSACTIONS is not enforced by 1.3.0-91). The peer's ACK for such an answer reaches nothing.
        ServerTransaction st = event.getServerTransaction();

        // attestation: the level of the connection it came over
        PeerAttestation peer = attestation.peerOf(request);
        // identity: the From host must be the attested one (a measured host cannot call in someone else's name)
        if (peer.host().isPresent() && from.getAddress().getURI() instanceof SipURI su
                && !peer.host().get().equalsIgnoreCase(su.getHost())) {
            CallPolicy.Decision d = new CallPolicy.Decision(CallPolicy.Action.REJECT, peer.level(),
                    peer.level(), "identity", "the From identity " + UntrustedText.forTerminal(fromUri, 200)
                    + " differs from the attested host " + peer.host().get());
            call.attested(peer, d);
            listener.decided(call, d);
            refuse(request, st, call, Response.FORBIDDEN, d.reason());
            return;
        }
        // policy
        CallPolicy.Decision d = policy.decide(CallPolicy.Direction.IN, fromUri, peer);
        call.attested(peer, d);
        logDecision(callId, fromUri, peer, d);
        listener.decided(call, d);
        if (d.action() == CallPolicy.Action.REJECT) {
            refuse(request, st, call, Response.FORBIDDEN, d.reason());
            return;
        }
        // the offer: SDES key, codec, replay
        Sdp offer;
        try {
            offer = Sdp.parse(body(request));
        } catch (IllegalArgumentException e) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "the SDP offer is unusable: " + e.getMessage());
            return;
        }
        Optional<String> modeRefuses = endToEnd.refusesOffer(offer.dtls().isPresent());
        if (modeRefuses.isPresent()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, modeRefuses.get());
            return;
        }
        if (offer.dtls().isPresent()) {
            endToEnd(request, st, call, offer);
            return;
        }
        // Keyed by SDES there is no end-to-end evidence: the hop must meet the far end's floor too.
        CallPolicy.Decision withoutEndToEnd = policy.decideWithoutEndToEnd(CallPolicy.Direction.IN, fromUri, peer);
        if (withoutEndToEnd.action() == CallPolicy.Action.REJECT) {
            call.attested(peer, withoutEndToEnd);
            logDecision(callId, fromUri, peer, withoutEndToEnd);
            listener.decided(call, withoutEndToEnd);
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, withoutEndToEnd.reason());
            return;
        }
        Optional<SdesCrypto> theirs = offer.cryptos().stream()
                .filter(c -> c.suite() == MediaKeys.SUITE).findFirst()
                .or(() -> offer.cryptos().stream().findFirst());
        // keep only the key we accept: it is the one media uses
        call.remoteSdp(new Sdp(offer.address(), offer.port(), offer.payloadTypes(),
                theirs.map(List::of).orElse(List.of()), offer.direction()));
        if (theirs.isEmpty()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "SRTP with SDES (a=crypto) is required");
            return;
        }
        Optional<Integer> codec = media.choose(offer);
        if (codec.isEmpty()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "no common audio codec: offered "
                    + offer.payloadTypes() + ", we support " + (media.offered().contains(Sdp.OPUS)
                    ? "Opus (opus/48000/2), " : "") + "PCMU (0) and PCMA (8)");
            return;
        }
        call.payloadType(codec.get());
        Optional<String> replayed = keys.refused(theirs.get(), callId);
        if (replayed.isPresent()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "the offered SRTP key was seen before (a"
                    + " replayed SDES offer): " + replayed.get());
            return;
        }
        call.hop(Signalling.connectionOf(request).orElse(null));
        call.transport(Signalling.transportOf(request));
        // bounds: only now does the call take a place among those being set up (refusals above take none, so a
        // flood the policy refuses cannot crowd out callers it accepts), and a caller that never ACKs holds it, and
        // after our 200 a media session, until the setup timeout or the ACK timeout ends it.
        if (!admitted(request, st, call)) {
            return;
        }
        callTimers.setupDeadline(call);
        answer(request, st, call, theirs.get(), codec.get());
    }

    /** The call takes a place among those being set up, or is answered 503; whether it did. */
    private boolean admitted(Request request, ServerTransaction st, Call call) throws Exception {
        Optional<String> full = calls.add(call, null, Signalling.sourceOf(request));
        if (full.isPresent()) {
            call.refused("503 this phone is busy: " + full.get());
            if (st != null) {
                Signalling.sendFinal(st, busy(request, full.get()));
                countTurnedAway(full.get());
            } else {
                turnAway(request, full.get());
            }
            return false;
        }
        return true;
    }

    /**
     * A DTLS-SRTP offer (RFC 5763): decided before the phone rings. Our answer ({@code a=setup:active}, our
     * fingerprint, no key) goes in a reliable {@code 183} (RFC 3262) when the caller supports 100rel; then the DTLS
     * handshake on the call's RTP socket, both evidence exchanges and the policy on the caller's level end to end —
     * and only if it passed, {@code 180} and {@code 200}; otherwise {@code 403} with a {@code Warning} naming both
     * levels, or {@code 488} naming why no association came about. A caller without 100rel gets the answer in the
     * {@code 200}, and the call ends with a BYE if its level fails the policy (it cannot be decided before ringing).
     */
    private void endToEnd(Request request, ServerTransaction st, Call call, Sdp offer) throws Exception {
        call.remoteSdp(offer);
        Optional<Integer> codec = Sdp.choose(offer.payloadTypes());
        if (codec.isEmpty()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "no common audio codec: offered "
                    + offer.payloadTypes() + ", we support PCMU (0) and PCMA (8)");
            return;
        }
        io.tpmphone.tls.DtlsSetup role;
        try {
            role = offer.dtls().orElseThrow().setup().answer();
        } catch (io.tpmphone.tls.MalformedExtensionException e) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "the SDP offer is unusable: " + e.getMessage());
            return;
        }
        if (!offer.dtls().get().rtcpMux()) {
            LOG.debug("call {}: the offer has no a=rtcp-mux; RTCP is multiplexed all the same",
                    UntrustedText.forTerminal(call.callId(), 200));
        }
        call.payloadType(codec.get());
        call.hop(Signalling.connectionOf(request).orElse(null));
        call.transport(Signalling.transportOf(request));
        if (!admitted(request, st, call)) {
            return;
        }
        callTimers.setupDeadline(call);
        if (st == null) {
            st = serverTransaction(call, request);
        }
        ServerTransaction invite = st;
        call.dialog(st.getDialog());
        call.inviteTransaction(st);
        media.open(call);
        if (call.audio().isEmpty()) {
            failBeforeAnswer(request, invite, call, null, Response.NOT_ACCEPTABLE_HERE,
                    "this phone has no media for DTLS-SRTP");
            return;
        }
        byte[] answer = media.dtlsSdp(call, endToEnd.ours(role), List.of(codec.get()));
        boolean reliable = supports100rel(request);
        String toTag = sip.tag();
        if (reliable) {
            Response early = st.getDialog().createReliableProvisionalResponse(Response.SESSION_PROGRESS);
            ((ToHeader) early.getHeader(ToHeader.NAME)).setTag(toTag);
            early.addHeader(sip.contact(call.transport()));
            early.setContent(answer, sip.headers.createContentTypeHeader("application", "sdp"));
            st.getDialog().sendReliableProvisionalResponse(early);
        } else {
            Response ok = sip.messages.createResponse(Response.OK, request);
            ((ToHeader) ok.getHeader(ToHeader.NAME)).setTag(toTag);
            ok.addHeader(sip.contact(call.transport()));
            ok.setContent(answer, sip.headers.createContentTypeHeader("application", "sdp"));
            if (!call.claimFinalAnswer()) {
                return; // ended meanwhile (the setup deadline, a CANCEL): answered there
            }
            if (!callTimers.awaitAck(call)) {
                sip.answerEnded(call); // ended after the claim (hung up, cancelled): we hold its final answer
                return;
            }
            st.sendResponse(ok);
        }
        DtlsMedia dtls;
        try {
            dtls = endToEnd.begin(call, offer, role.isClient(), codec.get());
        } catch (RejectedExecutionException e) {
            failBeforeAnswer(request, invite, call, toTag, Response.SERVICE_UNAVAILABLE,
                    "this phone is busy: every DTLS-SRTP handshake place is taken");
            return;
        } catch (IllegalArgumentException e) {
            failBeforeAnswer(request, invite, call, toTag, Response.NOT_ACCEPTABLE_HERE, e.getMessage());
            return;
        }
        dtls.decided().whenComplete((d, failure) -> {
            try {
                decidedEndToEnd(request, invite, call, toTag, reliable, d, failure);
            } catch (Exception e) {
                LOG.warn("call {}: answering after the end-to-end decision failed: {}",
                        UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(e.toString()));
                if (call.abandon("answering failed: " + UntrustedText.forTerminal(e.getMessage(), 300))) {
                    // The far end learns that, not our internal exception (its text stays in our log and record).
                    sip.answerIfUnanswered(call, Response.SERVER_INTERNAL_ERROR, "answering failed");
                    listener.ended(call);
                }
            }
        });
    }

    /** The caller's level end to end is decided (or no association came about): ring and answer, or refuse. */
    private void decidedEndToEnd(Request request, ServerTransaction st, Call call, String toTag, boolean reliable,
                                 CallPolicy.Decision d, Throwable failure) throws Exception {
        if (call.state() != Call.State.SETTING_UP) {
            // A caller without 100rel was answered already (200 with our SDP), and its ACK may have set the call up
            // before the decision: a refusal or a failed association still ends it, with a BYE.
            if (reliable || call.state() != Call.State.ESTABLISHED) {
                return; // cancelled or timed out meanwhile
            }
            if (failure == null && d.action() != CallPolicy.Action.REJECT) {
                return; // accepted: its SRTP starts once the decision lets it (DtlsMedia)
            }
        }
        if (failure != null) {
            Throwable cause = failure instanceof java.util.concurrent.CompletionException c && c.getCause() != null
                    ? c.getCause() : failure;
            boolean ours = cause instanceof io.tpmphone.tls.DtlsSrtpException x
                    && (x.reason() == io.tpmphone.tls.DtlsSrtpException.Reason.LOCAL_SIGNATURE
                    || x.reason() == io.tpmphone.tls.DtlsSrtpException.Reason.LOCAL_EVIDENCE);
            String why = (ours ? "this phone could not set up DTLS-SRTP: " : "DTLS-SRTP with the caller failed: ")
                    + cause.getMessage();
            if (reliable) {
                // Our own failure (this host's TPM would not sign: a tampered host) is a 500, not the caller's offer
                // being unacceptable (488): the Warning says why, and the caller records it as our refusal.
                failBeforeAnswer(request, st, call, toTag, ours ? Response.SERVER_INTERNAL_ERROR
                        : Response.NOT_ACCEPTABLE_HERE, why);
            } else {
                endAfterAnswer(call, why);
            }
            return;
        }
        if (d.action() == CallPolicy.Action.REJECT) {
            if (reliable) {
                failBeforeAnswer(request, st, call, toTag, Response.FORBIDDEN, d.reason());
            } else {
                endAfterAnswer(call, "refused by our call policy: " + d.reason());
            }
            return;
        }
        if (!reliable) {
            if (call.ringing()) {
                listener.ringing(call);
            }
            return; // answered already; the ACK starts the media
        }
        // Ring only once the caller accepted us too: its verdict comes inside the association. A caller that does
        // not attest sends none (its empty verdict comes at once, the association open); one that attests sends it
        // at once after its decision and resends it until acknowledged, so there is no timeout here: a caller that
        // never sends one is not rung for (the setup deadline ends the call). An association that ended first, or a
        // refusal (EndToEndCalls.refusedByFarEnd ends the call), never rings this phone.
        DtlsMedia dtls = call.dtls().orElseThrow();
        dtls.peerVerdict().whenComplete((v, t) -> {
            if (v == null || (v.isPresent() ? !v.get().accept() : !dtls.open())) {
                return;
            }
            try {
                ring(request, st, call, toTag);
            } catch (Exception e) {
                LOG.warn("call {}: ringing failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                        UntrustedText.forTerminal(e.toString()));
                if (call.abandon("ringing failed: " + UntrustedText.forTerminal(e.getMessage(), 300))) {
                    sip.answerIfUnanswered(call, Response.SERVER_INTERNAL_ERROR, "ringing failed");
                    listener.ended(call);
                }
            }
        });
    }

    /** Both sides accepted each other end to end: 180, the ring screen, then the person's answer. */
    private void ring(Request request, ServerTransaction st, Call call, String toTag) throws Exception {
        if (!call.ringing()) {
            return; // cancelled, refused or timed out meanwhile
        }
        listener.ringing(call);
        Response ringing = sip.messages.createResponse(Response.RINGING, request);
        ((ToHeader) ringing.getHeader(ToHeader.NAME)).setTag(toTag);
        st.sendResponse(ringing);
        // The person (or the auto-answer policy) decides now, as for a call keyed by SDES; the answer in the 183 stands.
        awaitAnswer(request, st, call, toTag, () -> {
            Response ok = sip.messages.createResponse(Response.OK, request);
            ((ToHeader) ok.getHeader(ToHeader.NAME)).setTag(toTag);
            ok.addHeader(sip.contact(call.transport()));
            // before the 200 leaves (its ACK may come back at once, on another thread), and only if the call has not
            // ended meanwhile: then this path, which holds its final answer, sends the one its end calls for
            if (!callTimers.awaitAck(call)) {
                sip.answerEnded(call);
                return;
            }
            st.sendResponse(ok);
        });
    }

    /** Refuses a DTLS-SRTP call before its 200, through its INVITE transaction. */
    private void failBeforeAnswer(Request request, ServerTransaction st, Call call, String toTag, int status,
                                  String why) throws Exception {
        String shown = UntrustedText.forTerminal(why, 500);
        if (call.refused(status + " " + shown)) {
            listener.ended(call);
        }
        if (!call.claimFinalAnswer()) {
            return; // answered already (a CANCEL's 487, the setup deadline's 480)
        }
        Response r = sip.messages.createResponse(status, request);
        if (toTag != null) {
            ((ToHeader) r.getHeader(ToHeader.NAME)).setTag(toTag);
        } else {
            sip.tagTo(request, r);
        }
        if (!Signalling.overUdp(request)) {
            r.addHeader(sip.headers.createWarningHeader(sip.config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    shown));
        }
        Signalling.sendFinal(st, r);
    }

    /** Ends a DTLS-SRTP call that was answered already (a caller without 100rel), with a BYE once confirmed. */
    private void endAfterAnswer(Call call, String why) {
        Optional<javax.sip.Dialog> dialog = call.dialog();
        String shown = UntrustedText.forTerminal(why, 500);
        if (call.state() == Call.State.ESTABLISHED) { // its ACK came before the decision: hang up as for a BYE
            try {
                sip.bye(dialog);
            } catch (SipException e) {
                LOG.debug("no BYE for call {}: {}", UntrustedText.forTerminal(call.callId(), 200), e.toString());
            }
            call.ended(shown);
            listener.ended(call);
            return;
        }
        if (call.abandon(shown)) {
            try {
                sip.bye(dialog);
            } catch (SipException e) {
                LOG.debug("no BYE for call {}: {}", UntrustedText.forTerminal(call.callId(), 200), e.toString());
            }
            listener.ended(call);
        }
    }

    /** Whether the request says {@code Supported: 100rel} or {@code Require: 100rel} (RFC 3262). */
    static boolean supports100rel(Request request) {
        for (String name : List.of(javax.sip.header.SupportedHeader.NAME, javax.sip.header.RequireHeader.NAME)) {
            java.util.ListIterator<?> it = request.getHeaders(name);
            while (it != null && it.hasNext()) {
                Object h = it.next();
                String tag = h instanceof javax.sip.header.OptionTag o ? o.getOptionTag() : null;
                if (tag != null && tag.trim().equalsIgnoreCase("100rel")) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Accepted: 180, then the {@link SipPhone.AnswerDecision}: answered, 200 with our key and a Contact for the
     * transport the INVITE came over; declined, 603. Exactly one final answer leaves: the decision's, or 487 when the
     * caller cancelled, or 480 when nobody decided before the setup deadline.
     */
    private void answer(Request request, ServerTransaction st, Call call, SdesCrypto theirs, int codec)
            throws Exception {
        if (st == null) {
            st = serverTransaction(call, request);
        }
        call.dialog(st.getDialog());
        call.inviteTransaction(st); // for every sender of its one final answer (the deadline's, a CANCEL's 487)
        st.sendResponse(sip.messages.createResponse(Response.RINGING, request));
        if (call.ringing()) {
            listener.ringing(call);
        }
        ServerTransaction tx = st;
        awaitAnswer(request, tx, call, null, () -> accept(request, tx, call, theirs, codec));
    }

    /** What answering a ringing call sends: its 200. */
    @FunctionalInterface
    private interface Answering {
        void answer() throws Exception;
    }

    /**
     * The call rings (its 180 is sent): the {@link SipPhone.AnswerDecision} decides, for a call keyed by SDES and for
     * one keyed by DTLS-SRTP alike. Exactly one final answer leaves: {@code answering}'s 200, or 603 when declined,
     * 487 when the caller cancelled, 480 when nobody decided before the setup deadline. {@code toTag}: the early
     * dialog's To tag (DTLS-SRTP, after its reliable 183), which every final answer carries; null otherwise.
     */
    private void awaitAnswer(Request request, ServerTransaction tx, Call call, String toTag, Answering answering) {
        SipPhone.AnswerDecision decision = answers.get();
        java.util.concurrent.CompletableFuture<SipPhone.AnswerDecision.Answer> decided;
        try {
            decided = decision.ring(call).toCompletableFuture();
        } catch (RuntimeException e) {
            decided = java.util.concurrent.CompletableFuture.failedFuture(e);
        }
        // a call that ends while it rings (CANCEL, the setup deadline) gets its final answer here
        call.settled().whenComplete((c, e) -> {
            if (call.state() != Call.State.ESTABLISHED && !call.isAnswered() && call.claimFinalAnswer()) {
                boolean cancelled = Signalling.callerCancelled(call);
                try {
                    Response r = sip.messages.createResponse(cancelled ? Response.REQUEST_TERMINATED
                            : Response.TEMPORARILY_UNAVAILABLE, request);
                    tagged(r, toTag);
                    Signalling.sendFinal(tx, r);
                } catch (Exception failed) {
                    LOG.debug("call {}: the final answer to an unanswered INVITE failed: {}",
                            UntrustedText.forTerminal(call.callId(), 200), failed.toString());
                }
            }
        });
        decided.whenComplete((answer, failure) -> {
            if (call.state() != Call.State.RINGING || !call.claimFinalAnswer()) {
                return; // cancelled or timed out meanwhile: answered above
            }
            try {
                if (failure == null && answer == SipPhone.AnswerDecision.Answer.ANSWER) {
                    answering.answer();
                } else {
                    decline(request, tx, call, failure, toTag);
                }
            } catch (Exception e) {
                LOG.warn("call {}: answering failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                        UntrustedText.forTerminal(e.toString()));
                // This path holds the call's final answer (taken above), so it always sends one: 500 for a call the
                // failure ends, else the one the call's earlier end calls for (a hang-up's 480, a CANCEL's 487, whose
                // own senders could not take it). The far end learns what failed, never our exception's text (it
                // stays in our log and the call's reason).
                if (call.abandon("answering failed: " + UntrustedText.forTerminal(Signalling.rootMessage(e), 300))) {
                    sip.answerClaimed(call, Response.SERVER_INTERNAL_ERROR, "answering failed");
                    listener.ended(call);
                } else {
                    sip.answerEnded(call);
                }
            }
        });
    }

    /** Sets the early dialog's To tag on {@code r}, if there is one. */
    private static void tagged(Response r, String toTag) throws java.text.ParseException {
        if (toTag != null) {
            ((ToHeader) r.getHeader(ToHeader.NAME)).setTag(toTag);
        }
    }

    /** The person declined (or the decision failed): 603 Decline (RFC 3261 §21.6.2). */
    private void decline(Request request, ServerTransaction st, Call call, Throwable failure, String toTag)
            throws Exception {
        String why = failure == null ? "603 declined at the phone"
                : "603 declined: the answer decision failed (" + UntrustedText.forTerminal(failure.toString(), 200)
                        + ")";
        call.refused(why);
        listener.ended(call);
        Response r = sip.messages.createResponse(Response.DECLINE, request);
        tagged(r, toTag);
        Signalling.sendFinal(st, r);
        LOG.info("call {}: {}", UntrustedText.forTerminal(call.callId(), 200), why);
    }

    /**
     * Answered: our key from the keystore, the audio session, 200 with our SDP. The call may end while they are made
     * (the keystore takes its time: our user hangs up, the caller cancels); this path holds the INVITE's one final
     * answer, so it then sends the one the end calls for ({@code 480}, {@code 487}) instead of the 200, and the key
     * and the audio session it made for the ended call are released at once ({@link Call#localCrypto(SdesCrypto)},
     * {@link Call#audio}).
     */
    private void accept(Request request, ServerTransaction st, Call call, SdesCrypto theirs, int codec)
            throws Exception {
        SdesCrypto local = keys.own(call.callId(), theirs.tag());
        call.localCrypto(local);
        media.open(call);
        Response ok = sip.messages.createResponse(Response.OK, request);
        sip.tagTo(request, ok);
        ok.addHeader(sip.contact(call.transport()));
        ok.setContent(media.sdp(call, local, List.of(codec)), sip.headers.createContentTypeHeader("application",
                "sdp"));
        // before the 200 leaves (its ACK may come back at once, on another thread), and only for a call not ended
        if (!callTimers.awaitAck(call)) {
            sip.answerEnded(call);
            return;
        }
        st.sendResponse(ok);
    }

    /**
     * The ACK of our 200: the call we answered is established and its audio starts. Any other ACK changes nothing —
     * one for a call we placed (a proxy that sends our own ACK back, or a stray one while it rings) would otherwise
     * establish it before its 200, or start its audio a second time. A call that ended as its ACK came (our user hung
     * up) is not established: the ACK's dialog gets its BYE ({@link #ackAfterEnd}).
     */
    void ack(RequestEvent event, Call call) {
        if (call.direction() == CallPolicy.Direction.IN && call.isAnswered()
                && call.state() != Call.State.ESTABLISHED) {
            if (call.state() == Call.State.ENDED || call.state() == Call.State.REFUSED) {
                ackAfterEnd(event, call);
                return;
            }
            Optional<DtlsMedia> dtls = call.dtls();
            if (dtls.isPresent()) {
                dtls.get().go(); // SRTP starts on the call's DTLS thread, once its policy accepted the far end
            } else {
                media.start(call);
            }
            if (!call.established()) {
                ackAfterEnd(event, call);
            }
        }
    }

    /**
     * The ACK of our 200 to a call that ended before the ACK came — our user hung up (or a CANCEL came) once the 200
     * was on its way: the caller's dialog is confirmed now, so it gets a BYE at once (RFC 3261 §15: not before the
     * ACK), once ({@link Call#claimLateBye}), through the dialog JAIN-SIP matched the ACK to (an ended call has let go
     * of its own). Before, the ACK found no call and the caller stayed connected to nobody. Any other ACK (a call we
     * placed, one never answered) changes nothing.
     */
    void ackAfterEnd(RequestEvent event, Call call) {
        javax.sip.Dialog dialog = event.getDialog();
        if (call.direction() != CallPolicy.Direction.IN || !call.isAnswered() || dialog == null
                || dialog.getLocalTag() == null || !call.claimLateBye(dialog.getLocalTag())) {
            return;
        }
        try {
            if (sip.bye(Optional.of(dialog))) {
                LOG.info("call {} had ended ({}) as our 200 went out; its ACK came: ended with a BYE",
                        UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(call.reason(), 300));
            }
        } catch (SipException | RuntimeException e) {
            LOG.debug("call {}: no BYE after the ACK of an ended call: {}",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(e.toString(), 300));
        }
    }

    /**
     * An INVITE for a call in progress: a re-INVITE of an established call (hold and resume), or — not a
     * retransmission, which JAIN-SIP's transaction absorbs — another transaction with this call's Call-ID, a merged
     * request or someone else's. It may not replace the call, and it gets an answer (RFC 3261 §8.2.2.2: 482; with a To
     * tag, no such dialog: 481), so a peer is never left waiting and its connection stays usable.
     */
    private void inProgress(RequestEvent event, Call call) throws Exception {
        Request request = event.getRequest();
        boolean tagged = ((ToHeader) request.getHeader(ToHeader.NAME)).getTag() != null;
        if (call.state() == Call.State.ESTABLISHED && tagged) {
            reInvite(event.getServerTransaction() != null ? event.getServerTransaction()
                    : sip.provider.getNewServerTransaction(request), request, call);
            return;
        }
        Response r = sip.messages.createResponse(tagged ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST
                : Response.LOOP_DETECTED, request);
        LOG.debug("answered {} to another INVITE for call {} in progress", r.getStatusCode(),
                UntrustedText.forTerminal(call.callId(), 200));
        if (event.getServerTransaction() == null) {
            sip.statelessly(request, r);
        } else {
            Signalling.sendFinal(event.getServerTransaction(), r);
        }
    }

    /**
     * A re-INVITE in an established call (hold and resume, RFC 3264 §8.4): the same SDES key of this call is no replay;
     * a new one is refused (no rekeying). We answer with our key of this call and the complementary direction.
     */
    private void reInvite(ServerTransaction st, Request request, Call call) throws Exception {
        Sdp offer;
        try {
            offer = Sdp.parse(body(request));
        } catch (IllegalArgumentException e) {
            Signalling.sendFinal(st, sip.messages.createResponse(Response.NOT_ACCEPTABLE_HERE, request));
            return;
        }
        if (call.dtls().isPresent()) {
            reInviteEndToEnd(st, request, call, offer);
            return;
        }
        Optional<SdesCrypto> theirs = offer.cryptos().stream().findFirst();
        Optional<SdesCrypto> current = call.remoteSdp().flatMap(s -> s.cryptos().stream().findFirst());
        if (theirs.isEmpty() || current.isEmpty() || !MediaKeys.sameKey(theirs.get(), current.get())) {
            Response r = sip.messages.createResponse(Response.NOT_ACCEPTABLE_HERE, request);
            r.addHeader(sip.headers.createWarningHeader(sip.config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    "a re-INVITE must keep this call's SDES key (rekeying is not supported)"));
            Signalling.sendFinal(st, r);
            return;
        }
        String ours = answerDirection(offer.direction());
        call.remoteSdp(offer);
        call.audio().ifPresent(a -> a.direction(ours)); // first: once the call reports held, nothing is sent
        call.held(!offer.direction().equals("sendrecv"));
        Response ok = sip.messages.createResponse(Response.OK, request);
        ok.addHeader(sip.contact(Signalling.transportOf(request)));
        SdesCrypto local = call.localCrypto().orElseThrow();
        ok.setContent(media.sdp(call, local, List.of(call.payloadType()), ours),
                sip.headers.createContentTypeHeader("application", "sdp"));
        Signalling.sendFinal(st, ok);
        LOG.info("call {}: the peer {}", UntrustedText.forTerminal(call.callId(), 200),
                call.held() ? "put it on hold" : "resumed it");
    }

    /** Our direction in the answer to an offer of {@code offered} (RFC 3264 §6.1): the complement, else sendrecv. */
    private static String answerDirection(String offered) {
        return switch (offered) {
            case "sendonly" -> "recvonly";
            case "recvonly" -> "sendonly";
            case "inactive" -> "inactive";
            default -> "sendrecv";
        };
    }

    /**
     * A re-INVITE in an established DTLS-SRTP call (hold and resume): the same fingerprints, address and port keep
     * the association and its keys (RFC 5763 §6.7.1); we answer with our same DTLS attributes and the complementary
     * direction. Anything else would need a new handshake and new evidence before any SRTP, which this phone does not
     * do in a call: it is refused with 488 naming what changed (the call goes on as it was).
     */
    private void reInviteEndToEnd(ServerTransaction st, Request request, Call call, Sdp offer) throws Exception {
        Sdp current = call.remoteSdp().orElseThrow();
        Optional<String> changed = current.associationChange(offer);
        if (changed.isPresent()) {
            Response r = sip.messages.createResponse(Response.NOT_ACCEPTABLE_HERE, request);
            r.addHeader(sip.headers.createWarningHeader(sip.config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    ("a re-INVITE must keep this call's DTLS-SRTP association (a new one would need new evidence): "
                            + changed.get()).replace('"', '\'')));
            Signalling.sendFinal(st, r);
            LOG.info("call {}: a re-INVITE that changes the DTLS-SRTP association was refused: {}",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(changed.get(), 300));
            return;
        }
        String ours = answerDirection(offer.direction());
        call.audio().ifPresent(a -> a.direction(ours)); // first: once the call reports held, nothing is sent
        call.held(!offer.direction().equals("sendrecv"));
        Response ok = sip.messages.createResponse(Response.OK, request);
        ok.addHeader(sip.contact(Signalling.transportOf(request)));
        ok.setContent(media.dtlsSdp(call, endToEnd.ours(ourRole(current)), List.of(call.payloadType()), ours),
                sip.headers.createContentTypeHeader("application", "sdp"));
        Signalling.sendFinal(st, ok);
        LOG.info("call {}: the peer {} (DTLS-SRTP association kept)", UntrustedText.forTerminal(call.callId(), 200),
                call.held() ? "put it on hold" : "resumed it");
    }

    /** Our role in a call's association, from the far end's SDP that set it up (RFC 4145, RFC 5763 §5). */
    static io.tpmphone.tls.DtlsSetup ourRole(Sdp farEnd) {
        return farEnd.dtls().orElseThrow().setup() == io.tpmphone.tls.DtlsSetup.ACTIVE
                ? io.tpmphone.tls.DtlsSetup.PASSIVE : io.tpmphone.tls.DtlsSetup.ACTIVE;
    }

    private void logDecision(String callId, String fromUri, PeerAttestation peer, CallPolicy.Decision d) {
        LogBudget.Take line = decisionLines.take();
        if (line.leftOut().isPresent()) {
            LOG.info("{} more incoming call decisions were not logged (at most {} a second)",
                    line.leftOut().getAsLong(), DECISION_LINES_PER_SECOND);
        }
        if (line.log()) {
            LOG.info("call {} IN from {}: {} → {}", UntrustedText.forTerminal(callId, 200),
                    UntrustedText.forTerminal(fromUri, 200), peer.display(), d.action());
        }
    }

    private static String body(Request request) {
        return new String(request.getRawContent() == null ? new byte[0] : request.getRawContent(),
                StandardCharsets.US_ASCII);
    }

    /**
     * Refuses an incoming INVITE, through its transaction or (null: not accepted yet, the usual case) statelessly.
     * {@code why} may carry the peer's text (a URI, an SDP line): it goes to the user escaped, and over TCP and TLS
     * escaped in a {@code Warning}; over UDP, where the source address is anyone's, the answer carries no
     * {@code Warning} at all (nothing to reflect at a spoofed source, and never more bytes than the INVITE).
     */
    private void refuse(Request request, ServerTransaction st, Call call, int status, String why) throws Exception {
        String shown = UntrustedText.forTerminal(why, 500);
        call.refused(status + " " + shown);
        calls.remember(call);
        listener.ended(call);
        Response r = sip.messages.createResponse(status, request);
        sip.tagTo(request, r);
        if (!Signalling.overUdp(request)) {
            r.addHeader(sip.headers.createWarningHeader(sip.config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    shown));
        }
        if (st != null) {
            Signalling.sendFinal(st, r);
        } else {
            sip.statelessly(request, r);
        }
    }

    /**
     * Answers an INVITE the phone has no room for with {@code 503} and {@code Retry-After}, statelessly: no call, no
     * transaction, no dialog, no media and no key are made for it. One log line per burst, not per INVITE.
     */
    private void turnAway(Request request, String why) {
        try {
            sip.statelessly(request, busy(request, why));
        } catch (Exception e) {
            // the peer's address may be unreachable; the INVITE is dropped all the same
        }
        countTurnedAway(why);
    }

    private Response busy(Request request, String why) throws ParseException, InvalidArgumentException {
        Response r = sip.messages.createResponse(Response.SERVICE_UNAVAILABLE, request);
        sip.tagTo(request, r);
        r.addHeader(sip.headers.createRetryAfterHeader(5));
        if (!Signalling.overUdp(request)) {
            r.addHeader(sip.headers.createWarningHeader(sip.config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    "this phone is busy: " + why));
        }
        return r;
    }

    private void countTurnedAway(String why) {
        if (turnedAway.incrementAndGet() == 1) {
            try {
                timers.schedule(() -> LOG.warn("turned away {} INVITEs with 503 in the last second: {}",
                        turnedAway.getAndSet(0), why), 1, TimeUnit.SECONDS);
            } catch (RejectedExecutionException stopping) {
                turnedAway.set(0);
            }
        }
    }

    private ServerTransaction serverTransaction(Call call, Request request) throws SipException {
        try {
            return sip.provider.getNewServerTransaction(request);
        } catch (SipException | RuntimeException e) {
            call.refused("no SIP transaction for the INVITE: "
                    + UntrustedText.forTerminal(Signalling.rootMessage(e), 300));
            throw e;
        }
    }
}
