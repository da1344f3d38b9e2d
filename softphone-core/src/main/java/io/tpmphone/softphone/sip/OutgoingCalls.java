package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.tls.PeerAttestation;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import javax.sip.ClientTransaction;
import javax.sip.Dialog;
import javax.sip.InvalidArgumentException;
import javax.sip.ResponseEvent;
import javax.sip.SipException;
import javax.sip.address.Address;
import javax.sip.address.SipURI;
import javax.sip.header.CSeqHeader;
import javax.sip.header.WarningHeader;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Calls the phone places: an INVITE with our key from the sealed keystore, decided by the call policy for the
 * destination on its first hop's attestation before it is written ({@link ConnectionAttestation}); the answers to it —
 * a proxy's digest challenge answered with the registration's credentials, {@code 180}, a {@code 2xx} ACKed whose SDES
 * key must be new (a replayed answer is hung up), a refusal shown with its {@code Warning}. Thread-safe.
 */
final class OutgoingCalls {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final Signalling sip;
    private final CallTable calls;
    private final ConnectionAttestation attestation;
    private final MediaKeys keys;
    private final CallMedia media;
    private final DigestChallenges challenges;
    private final EndToEndCalls endToEnd;
    private final SipPhone.Listener listener;

    OutgoingCalls(Signalling sip, CallTable calls, ConnectionAttestation attestation, MediaKeys keys, CallMedia media,
                  DigestChallenges challenges, EndToEndCalls endToEnd, SipPhone.Listener listener) {
        this.endToEnd = endToEnd;
        this.sip = sip;
        this.calls = calls;
        this.attestation = attestation;
        this.keys = keys;
        this.media = media;
        this.challenges = challenges;
        this.listener = listener;
    }

    /**
     * Calls {@code target} through {@code next} over {@code transport} as {@code fromUri} ({@code sips:} when
     * {@code secure}), answering {@code account}'s registrar's challenges (null: none). Returns at once with the call;
     * a call that cannot be placed is returned refused, saying why.
     */
    Call place(String target, boolean secure, InetSocketAddress next, String transport, String fromUri,
               Registration.Account account) {
        Call call = new Call(sip.callId(), CallPolicy.Direction.OUT, target);
        Optional<String> full = calls.add(call, account);
        if (full.isPresent()) {
            call.refused("this phone is busy: " + full.get());
            calls.remember(call);
            listener.ended(call);
            return call;
        }
        try {
            SipURI requestUri = (SipURI) sip.addresses.createURI(target);
            if (secure) {
                requestUri.setSecure(true);
            }
            Address from = sip.addresses.createAddress(sip.addresses.createURI(fromUri));
            Address to = sip.addresses.createAddress(requestUri);
            Request invite = sip.messages.createRequest(requestUri, Request.INVITE,
                    sip.headers.createCallIdHeader(call.callId()), sip.headers.createCSeqHeader(1L, Request.INVITE),
                    sip.headers.createFromHeader(from, sip.tag()), sip.headers.createToHeader(to, null),
                    new ArrayList<>(List.of(sip.via(transport))), sip.headers.createMaxForwardsHeader(70));
            invite.addHeader(sip.route(next, transport));
            invite.addHeader(sip.contact(transport));
            call.transport(transport);
            if (endToEnd.forOutgoing(account)) {
                // DTLS-SRTP: no key in the SDP; the answer comes in a reliable 183 (RFC 3262), so the far end's level
                // is known end to end before it rings
                media.open(call);
                if (call.audio().isEmpty()) {
                    call.refused("cannot place a DTLS-SRTP call: this phone has no media");
                    listener.ended(call);
                    return call;
                }
                call.offeredDtls(true);
                invite.setContent(media.dtlsSdp(call, endToEnd.ours(io.tpmphone.tls.DtlsSetup.ACTPASS),
                        media.offered()), sip.headers.createContentTypeHeader("application", "sdp"));
                invite.addHeader(sip.headers.createSupportedHeader("100rel"));
            } else {
                SdesCrypto local = keys.own(call.callId(), 1);
                call.localCrypto(local);
                media.open(call);
                invite.setContent(media.sdp(call, local, media.offered()),
                        sip.headers.createContentTypeHeader("application", "sdp"));
            }
            InetSocketAddress hop = new InetSocketAddress(next.getAddress(), next.getPort());
            call.hop(hop);
            Optional<PeerAttestation> known = attestation.known(hop, transport);
            attestation.watch(call, hop);
            if (known.isPresent()) {
                // An open connection to this hop: its attestation is decided on now. Should JAIN-SIP open a new
                // connection for the INVITE after all, the TLS gate decides again on that one.
                CallPolicy.Decision d = attestation.decide(call, known.get());
                if (d.action() == CallPolicy.Action.REJECT) {
                    return call;
                }
            }
            // Otherwise a new connection: the TLS gate decides right after its handshake, before the INVITE is written.
            ClientTransaction ct = sip.provider.getNewClientTransaction(invite);
            call.dialog(ct.getDialog());
            call.inviteClient(ct);
            ct.sendRequest();
            return call;
        } catch (ParseException | InvalidArgumentException | IOException | ClassCastException e) {
            call.refused("cannot build the INVITE: " + e.getMessage());
            listener.ended(call);
            return call;
        } catch (SipException e) {
            if (call.state() != Call.State.REFUSED) {
                call.refused("cannot send the INVITE: " + Signalling.rootMessage(e));
            }
            listener.ended(call);
            return call;
        }
    }

    /** An answer to one of our INVITEs (the first, a retry with credentials, or a re-INVITE). */
    void answered(ResponseEvent event, Call call) {
        Response r = event.getResponse();
        CSeqHeader cseq = (CSeqHeader) r.getHeader(CSeqHeader.NAME);
        int status = r.getStatusCode();
        Registration.Account account = calls.account(call.callId()).orElse(null);
        if ((status == Response.UNAUTHORIZED || status == Response.PROXY_AUTHENTICATION_REQUIRED)
                && account != null && event.getClientTransaction() != null
                && call.state() != Call.State.ESTABLISHED) {
            challenges.answer(event.getClientTransaction(), r, account, cseq.getSeqNumber() + 1,
                    next -> {
                        call.dialog(next.getDialog());
                        call.inviteClient(next);
                    }).ifPresent(problem -> {
                        call.refused(status + " " + UntrustedText.forTerminal(r.getReasonPhrase(), 200) + ": "
                                + UntrustedText.forTerminal(problem, 500));
                        listener.ended(call);
                    });
            return;
        }
        try {
            if (status > 100 && status < 200 && call.offeredDtls() && call.dtls().isEmpty()
                    && r.getRawContent() != null && r.getRawContent().length > 0) {
                earlyAnswer(event, call);
            } else if (status > 100 && status < 200 && call.offeredDtls() && r.getHeader("RSeq") != null) {
                prack(event, call); // a later reliable provisional (a 180 sent reliably)
            }
            if (status >= 180 && status < 200 && status != Response.SESSION_PROGRESS
                    && call.state() == Call.State.SETTING_UP) {
                Optional<DtlsMedia> dtls = call.dtls();
                if (dtls.isPresent() && !dtls.get().decided().isDone()) {
                    // The callee decided on us and rings; our own appraisal of it may be a moment behind. The user
                    // sees the ringing with the callee's level, or not at all if our policy refuses it (we cancel).
                    dtls.get().decided().whenComplete((d, failure) -> {
                        if (failure == null && d.action() != CallPolicy.Action.REJECT) {
                            remoteRinging(call);
                        }
                    });
                } else {
                    remoteRinging(call);
                }
            } else if (status >= 200 && status < 300) {
                accepted(event, call, cseq);
            } else if (status >= 300 && (call.state() == Call.State.REFUSED || call.state() == Call.State.ENDED)) {
                answeredAfterEnd(event, call);
            } else if (status >= 300) {
                String said = said(r);
                if (status != Response.REQUEST_TERMINATED) { // a 487 answers our own CANCEL: not the far end's word
                    call.farEndSaid(status + " " + said);
                }
                if (call.offeredDtls() && call.dtls().isPresent()) {
                    // The far end answered early (its DTLS-SRTP answer), then refused. Only the call's DTLS thread
                    // records the end-to-end decision: it names these words only where its own failure was the far
                    // end's abort (an alert, a timeout), or where this refusal closed it during its handshake. Our
                    // own appraisal, still running, or a locally verified failure (a fingerprint mismatch) is never
                    // overwritten by what a far end or proxy says.
                    call.farEndRefused(status, said);
                }
                // a refusal after our own TPM would not sign: the user is told that first, then what the far end said
                String ours = call.localFailure().map(l -> UntrustedText.forTerminal(l, 500)
                        + "; the far end then said: ").orElse("");
                if (call.refused(ours + status + " " + UntrustedText.forTerminal(said, 700))) {
                    listener.ended(call); // once: the far end's verdict may have ended it meanwhile
                }
            }
        } catch (Exception e) {
            LOG.warn("handling the {} to INVITE failed: {}", status, UntrustedText.forTerminal(e.toString()));
            call.ended("handling the answer failed: " + UntrustedText.forTerminal(e.getMessage(), 500));
            listener.ended(call);
        }
    }

    /**
     * An answer to our INVITE of a call this side has ended already (its far end's verdict inside DTLS, our own
     * refusal or our user). A provisional answer to an INVITE ended before any came — {@code 100 Trying} too — sends
     * the CANCEL now (RFC 3261 §9.1: a CANCEL waits for one). A 2xx (it crossed our CANCEL, or came after any other
     * end of ours) is acknowledged through its dialog and the call it would start is ended with a BYE at once (RFC
     * 3261 §9.1, §15): otherwise the callee thinks it connected and retransmits its 2xx until its own ACK timeout
     * (64·T1, 32 s). Each fork's 2xx (its own To tag: a dialog of its own) gets its ACK and one BYE; a retransmitted
     * 2xx is acknowledged again, its BYE is not sent twice ({@link Call#claimLateBye}; JAIN-SIP's dialog absorbs most
     * retransmissions itself). JAIN-SIP's INVITE transaction has acknowledged a 3xx-6xx itself; what the far end said
     * in it is kept with the call for the user ({@link Call#farEndSaid()}), escaped, and nothing else changes — the
     * call's state, reason and record stay this side's. A {@code 487} answers our own CANCEL and is not kept. Only a
     * response to our INVITE's client transaction (or, for a 2xx, its dialog) gets here, and it is logged once per
     * call (the line a peer can cause is bounded by the calls this phone made).
     */
    void answeredAfterEnd(ResponseEvent event, Call call) {
        Response r = event.getResponse();
        int status = r.getStatusCode();
        if (status >= 100 && status < 200) {
            cancelAfterEnd(call);
            return;
        }
        if (status >= 200 && status < 300) {
            ackAndBye(event, call);
            return;
        }
        if (status < 300 || status == Response.REQUEST_TERMINATED) {
            return;
        }
        String said = status + " " + said(r);
        if (!call.farEndSaid(said)) {
            return; // logged once per call: a second answer (another fork's) adds a line for nobody
        }
        LOG.info("call {} had ended ({}); the far end then said: {}", UntrustedText.forTerminal(call.callId(), 200),
                UntrustedText.forTerminal(call.reason(), 300), UntrustedText.forTerminal(said, 700));
    }

    /** A 2xx to our INVITE of a call this side has ended: ACK through its dialog, then BYE (once per dialog). */
    private void ackAndBye(ResponseEvent event, Call call) {
        Response r = event.getResponse();
        CSeqHeader cseq = (CSeqHeader) r.getHeader(CSeqHeader.NAME);
        Dialog dialog = event.getDialog() != null ? event.getDialog()
                : event.getClientTransaction() != null ? event.getClientTransaction().getDialog() : null;
        if (dialog == null || cseq == null) {
            LOG.debug("call {}: a 2xx after the call ended has no dialog to acknowledge it in",
                    UntrustedText.forTerminal(call.callId(), 200));
            return;
        }
        try {
            dialog.sendAck(dialog.createAck(cseq.getSeqNumber()));
        } catch (SipException | InvalidArgumentException | RuntimeException e) {
            LOG.debug("call {}: a 2xx after the call ended could not be acknowledged: {}",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(e.toString(), 300));
            return;
        }
        lateBye(dialog, call, r);
    }

    /**
     * Ends with a BYE the dialog a 2xx to our INVITE confirmed after this side had ended the call (its ACK sent), once
     * per dialog — the 2xx's To tag names it ({@link Call#claimLateBye}): each fork's own, a retransmission none.
     */
    private void lateBye(Dialog dialog, Call call, Response r) {
        String toTag = ((javax.sip.header.ToHeader) r.getHeader(javax.sip.header.ToHeader.NAME)).getTag();
        if (toTag == null || !call.claimLateBye(toTag)) {
            return;
        }
        try {
            dialog.sendRequest(sip.provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
            LOG.info("call {} had ended ({}); the far end answered it meanwhile: acknowledged and ended with a BYE",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(call.reason(), 300));
        } catch (SipException | RuntimeException e) {
            LOG.debug("call {}: a 2xx after the call ended could not be ended with a BYE: {}",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(e.toString(), 300));
        }
    }

    /**
     * What a final refusal says, raw (the caller escapes it): its reason phrase, then the text of its {@code Warning}
     * (a refusing phone's reason), then the text of its {@code Reason} header (RFC 3326; a proxy's, or a phone's)
     * when it adds something. A proxy that could not reach the far end (kamailio's {@code 408}/{@code 477}/{@code 503})
     * is named by its status and these, never just "not answered".
     */
    static String said(Response r) {
        StringBuilder b = new StringBuilder(r.getReasonPhrase() == null ? "" : r.getReasonPhrase());
        WarningHeader w = (WarningHeader) r.getHeader(WarningHeader.NAME);
        if (w != null && w.getText() != null) {
            b.append(": ").append(w.getText());
        }
        javax.sip.header.ReasonHeader reason = (javax.sip.header.ReasonHeader) r.getHeader(
                javax.sip.header.ReasonHeader.NAME);
        if (reason != null && reason.getText() != null && !reason.getText().isBlank()
                && (w == null || !reason.getText().equals(w.getText()))) {
            b.append(" (Reason: ").append(reason.getProtocol()).append(" ").append(reason.getCause()).append(" ")
                    .append(reason.getText()).append(")");
        }
        return b.toString();
    }

    private void remoteRinging(Call call) {
        if (call.ringing()) {
            listener.remoteRinging(call);
        }
    }

    /**
     * The far end's answer in a provisional response (a reliable 183, RFC 3262, acknowledged with PRACK): the DTLS
     * handshake on our RTP socket, both evidence exchanges and the policy on the callee's level end to end start now,
     * before the callee rings. A refusal, or no association, cancels the call with the reason.
     */
    private void earlyAnswer(ResponseEvent event, Call call) {
        Response r = event.getResponse();
        if (r.getHeader("RSeq") != null) {
            prack(event, call);
        }
        String problem = beginDtls(call, r);
        if (problem != null) {
            cancel(call, problem);
            return;
        }
        call.dtls().orElseThrow().decided().whenComplete((d, failure) -> {
            if (call.isFarEndAnswered()) {
                return; // the 2xx arrived meanwhile: its handling decides
            }
            if (failure != null) {
                cancel(call, "DTLS-SRTP with the callee failed: " + cause(failure).getMessage());
                // (a failure of our own TPM says so in its message: "this host's TPM did not sign …")
            } else if (d.action() == CallPolicy.Action.REJECT) {
                cancel(call, "refused by our call policy: " + d.reason());
            }
        });
    }

    /** Parses the DTLS-SRTP answer in {@code r} and starts the call's DTLS media; returns why not, or null. */
    private String beginDtls(Call call, Response r) {
        Sdp answer;
        try {
            answer = Sdp.parse(new String(r.getRawContent() == null ? new byte[0] : r.getRawContent(),
                    StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            return "the SDP answer is unusable: " + e.getMessage();
        }
        if (answer.dtls().isEmpty()) {
            return "the answer is not DTLS-SRTP (UDP/TLS/RTP/SAVP with a=fingerprint) as we offered";
        }
        io.tpmphone.tls.DtlsSetup ours;
        try {
            ours = io.tpmphone.tls.DtlsSetup.offererRole(answer.dtls().get().setup());
        } catch (io.tpmphone.tls.MalformedExtensionException e) {
            return "the SDP answer is unusable: " + e.getMessage();
        }
        Optional<Integer> codec = Sdp.choose(answer.payloadTypes());
        if (codec.isEmpty()) {
            return "the answer has no codec we offered: " + answer.payloadTypes();
        }
        call.remoteSdp(answer);
        call.payloadType(codec.get());
        try {
            endToEnd.begin(call, answer, ours.isClient(), codec.get());
        } catch (java.util.concurrent.RejectedExecutionException e) {
            return "this phone is busy: every DTLS-SRTP handshake place is taken";
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        return null;
    }

    private void prack(ResponseEvent event, Call call) {
        try {
            Dialog dialog = event.getDialog() != null ? event.getDialog() : event.getClientTransaction().getDialog();
            Request prack = dialog.createPrack(event.getResponse());
            dialog.sendRequest(sip.provider.getNewClientTransaction(prack));
        } catch (SipException | RuntimeException e) {
            LOG.debug("call {}: no PRACK for a reliable provisional response: {}",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(e.toString(), 300));
        }
    }

    /**
     * This side ended {@code call} (our user hung up, or any other end of ours) before its 2xx: its INVITE is
     * cancelled once a provisional answer came (its client transaction is Proceeding, RFC 3261 §9.1) — now, or when
     * the first provisional answer arrives ({@link #answeredAfterEnd}). Once per call ({@link Call#claimCancel()}),
     * with a {@code Reason} (RFC 3326) in a fixed phrase: {@code "hung up"} for our user's hang-up, else
     * {@code "call ended"} — never the call's reason, which may carry an exception's text (it goes to the far end and
     * every proxy on the way). Before, the INVITE was left to be retransmitted and to ring on at the far end.
     */
    void cancelAfterEnd(Call call) {
        call.inviteClient().filter(ct -> ct.getState() == javax.sip.TransactionState.PROCEEDING)
                .filter(ct -> call.claimCancel()).ifPresent(ct -> {
            try {
                Request cancel = ct.createCancel();
                Signalling.addReason(sip, cancel, Response.REQUEST_TERMINATED,
                        call.reason().startsWith(Call.HUNG_UP) ? "hung up" : "call ended");
                sip.provider.getNewClientTransaction(cancel).sendRequest();
            } catch (SipException | RuntimeException e) {
                LOG.debug("call {}: the CANCEL could not be sent: {}", UntrustedText.forTerminal(call.callId(), 200),
                        UntrustedText.forTerminal(e.toString(), 300));
            }
        });
    }

    /** Ends a call we placed before its 2xx: CANCEL (RFC 3261 §9), with the reason for the user. */
    private void cancel(Call call, String why) {
        String shown = UntrustedText.forTerminal(why, 500);
        if (call.state() != Call.State.SETTING_UP && call.state() != Call.State.RINGING) {
            return;
        }
        // Ended here first: on loopback the callee's 487 to our CANCEL can arrive before the next line runs, and it
        // must find the call ended with our reason, not take it as the far end's refusal (CI saw "487 Request
        // Terminated" as alice's reason in EndToEndCallIT).
        boolean refusedNow = call.refused("cancelled: " + shown);
        call.inviteClient().filter(ct -> call.claimCancel()).ifPresent(ct -> {
            try {
                Request cancel = ct.createCancel();
                // why, for the callee and anyone relaying (RFC 3326); escaped, both levels named for a refusal
                Signalling.addReason(sip, cancel, why.startsWith("refused by our call policy")
                        ? Response.FORBIDDEN : Response.NOT_ACCEPTABLE_HERE, shown);
                sip.provider.getNewClientTransaction(cancel).sendRequest();
            } catch (SipException | RuntimeException e) {
                LOG.debug("call {}: the CANCEL could not be sent: {}", UntrustedText.forTerminal(call.callId(), 200),
                        UntrustedText.forTerminal(e.toString(), 300));
            }
        });
        LOG.info("call {} cancelled: {}", UntrustedText.forTerminal(call.callId(), 200), shown);
        if (refusedNow) {
            listener.ended(call);
        }
    }

    private static Throwable cause(Throwable t) {
        return t instanceof java.util.concurrent.CompletionException c && c.getCause() != null ? c.getCause() : t;
    }

    /**
     * A 2xx to a DTLS-SRTP offer: ACKed; the far end's level end to end decides — at once when known (from the 183),
     * otherwise once the association the answer starts now is appraised — and SRTP starts only once it passed. A
     * refusal or a failed association ends the call with a BYE; so does a 2xx to a call we cancelled meanwhile.
     */
    private void acceptedEndToEnd(Response r, Dialog dialog, Call call) throws SipException {
        call.farEndAnswered();
        if (call.dtls().isPresent()) {
            // The answer came in a reliable 183 and the DTLS association (and the evidence in it) follows it: the 2xx
            // carries the same SDP or none (RFC 3262 §5, RFC 3264). Another media identity here — a proxy or an
            // attacker swapping the far end after its evidence passed — ends the call, and no SRTP starts.
            Optional<String> changed = changedByTheFinalAnswer(call, r);
            if (changed.isPresent()) {
                String why = "the 2xx's SDP is not the answer of the reliable 183: " + changed.get();
                LOG.warn("call {}: {}", UntrustedText.forTerminal(call.callId(), 200),
                        UntrustedText.forTerminal(why, 500));
                call.dtls().get().close();
                dialog.sendRequest(sip.provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
                call.ended(UntrustedText.forTerminal(why, 500));
                listener.ended(call);
                return;
            }
        }
        if (call.dtls().isEmpty()) {
            String problem = beginDtls(call, r);
            if (problem != null) {
                dialog.sendRequest(sip.provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
                call.ended(UntrustedText.forTerminal(problem, 500));
                listener.ended(call);
                return;
            }
        }
        DtlsMedia dtls = call.dtls().orElseThrow();
        dtls.decided().whenComplete((d, failure) -> {
            String why = failure != null ? "DTLS-SRTP with the callee failed: " + cause(failure).getMessage()
                    : d.action() == CallPolicy.Action.REJECT ? "refused by our call policy: " + d.reason() : null;
            if (why == null) {
                dtls.go();
                if (!call.established()) {
                    lateBye(dialog, call, r); // ended while it was decided (our user hung up): no SRTP, a BYE
                }
                return;
            }
            try {
                dialog.sendRequest(sip.provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
            } catch (SipException e) {
                LOG.debug("call {}: no BYE: {}", UntrustedText.forTerminal(call.callId(), 200), e.toString());
            }
            call.ended(UntrustedText.forTerminal(why, 500));
            listener.ended(call);
        });
    }

    /**
     * The answer to our re-INVITE (hold, resume) of a DTLS-SRTP call: it must keep the association (fingerprints,
     * address, port, role); then the call is held or resumed as the answer's direction says. An answer that changes
     * it ends the call with a BYE and the reason: its media identity would no longer be the one whose evidence passed.
     */
    private void reInviteAnsweredEndToEnd(Dialog dialog, Call call, Sdp answer) throws SipException {
        Optional<String> changed = call.remoteSdp().get().associationChange(answer);
        if (changed.isPresent()) {
            String why = "the answer to our re-INVITE changes the DTLS-SRTP association: " + changed.get();
            dialog.sendRequest(sip.provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
            call.ended(UntrustedText.forTerminal(why, 500));
            listener.ended(call);
            return;
        }
        boolean held = !answer.direction().equals("sendrecv");
        // the direction first: once the call reports held, nothing is sent
        call.audio().ifPresent(a -> a.direction(answer.direction().equals("inactive") ? "inactive"
                : held ? "sendonly" : "sendrecv"));
        call.held(held);
    }

    /** What the SDP of the 2xx {@code r} changes of the early answer's media identity; empty when it has none. */
    private static Optional<String> changedByTheFinalAnswer(Call call, Response r) {
        byte[] body = r.getRawContent();
        if (body == null || body.length == 0 || call.remoteSdp().isEmpty()) {
            return Optional.empty();
        }
        try {
            return call.remoteSdp().get().mediaIdentityChange(Sdp.parse(new String(body,
                    StandardCharsets.US_ASCII)));
        } catch (IllegalArgumentException e) {
            return Optional.of("its SDP is unusable: " + e.getMessage());
        }
    }

    /**
     * A 2xx: ACKed, then the answer's SDES key checked — the key of this very call in the answer to a re-INVITE (hold,
     * resume), otherwise a key never seen before — and the call established with its audio started, or hung up.
     */
    private void accepted(ResponseEvent event, Call call, CSeqHeader cseq) throws Exception {
        Response r = event.getResponse();
        Dialog dialog = event.getDialog() != null ? event.getDialog() : event.getClientTransaction().getDialog();
        Request ack = dialog.createAck(cseq.getSeqNumber());
        dialog.sendAck(ack);
        call.dialog(dialog);
        if (call.state() == Call.State.REFUSED || call.state() == Call.State.ENDED) {
            // ended as its 2xx came (our user hung up, or we cancelled): ACKed, ended with a BYE, no media
            call.farEndAnswered();
            lateBye(dialog, call, r);
            return;
        }
        if (call.offeredDtls() && call.state() != Call.State.ESTABLISHED) {
            acceptedEndToEnd(r, dialog, call);
            return;
        }
        Sdp answer = Sdp.parse(new String(r.getRawContent() == null ? new byte[0] : r.getRawContent(),
                StandardCharsets.US_ASCII));
        if (call.state() == Call.State.ESTABLISHED && call.dtls().isPresent() && call.remoteSdp().isPresent()) {
            reInviteAnsweredEndToEnd(dialog, call, answer);
            return;
        }
        Optional<SdesCrypto> theirs = answer.cryptos().stream().findFirst();
        boolean reInvite = call.state() == Call.State.ESTABLISHED;
        boolean sameKey = reInvite && theirs.isPresent() && call.remoteSdp().isPresent()
                && !call.remoteSdp().get().cryptos().isEmpty()
                && MediaKeys.sameKey(theirs.get(), call.remoteSdp().get().cryptos().get(0));
        call.remoteSdp(answer);
        String problem = null;
        Optional<Integer> codec = media.choose(answer);
        if (theirs.isEmpty()) {
            problem = "the answer has no SDES key";
        } else if (codec.isEmpty() && !reInvite) {
            problem = "the answer has no codec we offered: " + answer.payloadTypes();
        } else if (sameKey) {
            // a re-INVITE answered with the key of this very call: no replay
            boolean held = !answer.direction().equals("sendrecv");
            // the direction first: once the call reports held, nothing is sent
            call.audio().ifPresent(a -> a.direction(answer.direction().equals("inactive") ? "inactive"
                    : held ? "sendonly" : "sendrecv"));
            call.held(held);
        } else {
            Optional<String> replayed = keys.refused(theirs.get(), call.callId());
            if (replayed.isPresent()) {
                problem = "the answered SRTP key was seen before (replayed): " + replayed.get();
            }
        }
        if (problem != null) {
            dialog.sendRequest(sip.provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
            call.ended(problem);
            listener.ended(call);
        } else if (!reInvite) {
            call.payloadType(codec.orElseThrow());
            media.start(call);
            if (!call.established()) {
                // ended since the look above (our user hung up as the 2xx was handled): its end closed the audio;
                // the dialog the 2xx confirmed gets its BYE
                lateBye(dialog, call, r);
            }
        }
    }
}
