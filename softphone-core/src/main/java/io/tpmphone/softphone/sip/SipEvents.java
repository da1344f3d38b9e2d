package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import java.util.Optional;
import javax.sip.DialogTerminatedEvent;
import javax.sip.IOExceptionEvent;
import javax.sip.RequestEvent;
import javax.sip.ResponseEvent;
import javax.sip.ServerTransaction;
import javax.sip.SipListener;
import javax.sip.TimeoutEvent;
import javax.sip.TransactionTerminatedEvent;
import javax.sip.TransactionUnavailableException;
import javax.sip.header.CSeqHeader;
import javax.sip.header.CallIdHeader;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's events, handed to the part of the phone they concern: INVITEs and their ACKs to {@link IncomingCalls},
 * answers to our INVITEs to {@link OutgoingCalls}, answers to our REGISTERs to {@link Registrations}; BYE, CANCEL,
 * OPTIONS and the methods we do not support are answered here. A request outside any call gets its answer without a
 * transaction (it holds nothing); one JAIN-SIP cannot make a transaction of gets {@code 400}; a failure in handling
 * one gets {@code 500}. Runs on JAIN-SIP's threads (reentrant).
 */
final class SipEvents implements SipListener {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final Signalling sip;
    private final CallTable calls;
    private final IncomingCalls incoming;
    private final OutgoingCalls outgoing;
    private final Registrations registrations;
    private final SipPhone.Listener listener;
    /**
     * Lines about SIP a peer sends outside any transaction of ours (a stray answer, a CANCEL for a call that has
     * ended): a peer may send as many as it likes, so at most {@link #STRAY_LINES_PER_SECOND} a second are logged.
     */
    private final LogBudget strayLines;
    static final int STRAY_LINES_PER_SECOND = 2;

    SipEvents(Signalling sip, CallTable calls, IncomingCalls incoming, OutgoingCalls outgoing,
              Registrations registrations, SipPhone.Listener listener, LogBudget strayLines) {
        this.strayLines = strayLines;
        this.sip = sip;
        this.calls = calls;
        this.incoming = incoming;
        this.outgoing = outgoing;
        this.registrations = registrations;
        this.listener = listener;
    }

    /**
     * Test hook, off unless a test in this package sets it: every incoming CANCEL is dropped unanswered, as a proxy
     * that loses or delays it would (the far end's verdict inside DTLS must still end the call).
     */
    static volatile boolean dropCancels;

    /**
     * Test hook, off unless a test in this package sets it: every final error response (3xx-6xx) to our INVITEs is
     * dropped, as a proxy that loses or delays it would.
     */
    static volatile boolean dropInviteErrors;

    private static boolean noFinalResponse(javax.sip.ServerTransaction st) {
        javax.sip.TransactionState s = st.getState();
        return s == null || s == javax.sip.TransactionState.TRYING || s == javax.sip.TransactionState.PROCEEDING;
    }

    @Override
    public void processRequest(RequestEvent event) {
        Request r = event.getRequest();
        try {
            switch (r.getMethod()) {
                case Request.INVITE -> incoming.invite(event);
                case Request.ACK -> {
                    Call c = callOf(r);
                    if (c != null) {
                        incoming.ack(event, c);
                    } else {
                        // the ACK of our 200 to a call that ended as the 200 went out: its dialog gets a BYE
                        Call ended = recentlyEnded(r);
                        if (ended != null) {
                            incoming.ackAfterEnd(event, ended);
                        }
                    }
                }
                case Request.BYE -> {
                    Call c = callOf(r);
                    respond(event, c == null && event.getServerTransaction() == null
                            ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST : Response.OK);
                    if (c != null && c.ended("the peer hung up")) {
                        listener.ended(c);
                    }
                }
                case Request.PRACK -> {
                    // RFC 3262: a reliable provisional response of ours acknowledged (JAIN-SIP's dialog matched it)
                    Call c = callOf(r);
                    respond(event, c == null && event.getServerTransaction() == null
                            ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST : Response.OK);
                }
                case Request.CANCEL -> {
                    if (dropCancels) {
                        LOG.debug("a CANCEL dropped (test hook)");
                        return;
                    }
                    // a call in progress, or one that ended a moment ago (the caller's verdict inside DTLS, or our
                    // setup deadline, may end it before its CANCEL comes through the proxies): the CANCEL gets its
                    // 200 and the call keeps what the caller said; a Call-ID never in progress here gets 481. An
                    // ended call's CANCEL is answered through the transaction JAIN-SIP matched, else statelessly:
                    // no new transaction is made for a call that is over
                    Call c = callOf(r);
                    boolean inProgress = c != null;
                    if (c == null) {
                        c = recentlyEnded(r);
                    }
                    send(event, sip.messages.createResponse(c == null && event.getServerTransaction() == null
                            ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST : Response.OK, r), inProgress);
                    // a call that ended already (refused, or ended by the far end's verdict inside DTLS) is over:
                    // nothing more to tell the user; its INVITE still gets a 487 if it has no final response yet
                    // (a CANCEL that crossed the 480 or 500 this side sends when it ends an unanswered call, or one
                    // whose final answer could not be sent)
                    boolean live = c != null && c.state() != Call.State.ENDED && c.state() != Call.State.REFUSED;
                    // the caller's Reason (RFC 3326), escaped: why it cancelled, e.g. both levels of a refusal
                    javax.sip.header.ReasonHeader why = (javax.sip.header.ReasonHeader) r.getHeader(
                            javax.sip.header.ReasonHeader.NAME);
                    if (c != null && !c.isAnswered() && c.state() != Call.State.ESTABLISHED) {
                        // (a CANCEL after our 200 changes nothing, RFC 3261 §9.2: not kept)
                        c.farEndSaid("CANCEL" + (why != null && why.getText() != null ? " (Reason: "
                                + why.getProtocol() + " " + why.getCause() + " " + why.getText() + ")" : ""));
                        LogBudget.Take line = live ? null : strayLines.take();
                        if (line != null && line.log()) {
                            LOG.info("call {} had ended ({}); the caller then cancelled it: {}{}",
                                    UntrustedText.forTerminal(c.callId(), 200),
                                    UntrustedText.forTerminal(c.reason(), 300), c.farEndSaid().orElse(""),
                                    leftOut(line));
                        }
                    }
                    Call call = c;
                    if (c != null && c.state() != Call.State.ESTABLISHED) {
                        // the INVITE we were still deciding on ends with 487 (RFC 3261 §9.2)
                        c.inviteTransaction().filter(SipEvents::noFinalResponse)
                                .filter(st -> call.claimFinalAnswer()).ifPresent(st -> {
                            try {
                                Response terminated = sip.messages.createResponse(Response.REQUEST_TERMINATED,
                                        st.getRequest());
                                // the early dialog's tag (a call that ended has let go of its dialog: the
                                // transaction still has it)
                                call.dialog().or(() -> Optional.ofNullable(st.getDialog()))
                                        .map(javax.sip.Dialog::getLocalTag).ifPresent(tag -> {
                                    try {
                                        ((javax.sip.header.ToHeader) terminated.getHeader(
                                                javax.sip.header.ToHeader.NAME)).setTag(tag);
                                    } catch (java.text.ParseException ignored) {
                                        // a tag of ours always parses
                                    }
                                });
                                Signalling.sendFinal(st, terminated);
                            } catch (Exception e) {
                                LOG.debug("no 487 for the cancelled INVITE: {}", e.toString());
                            }
                        });
                    }
                    if (live) {
                        if (c.ended(Call.CALLER_CANCELLED + (why != null && why.getText() != null
                                ? ": " + io.tpmphone.attestation.UntrustedText.forTerminal(why.getText(), 300)
                                : ""))) {
                            listener.ended(c); // once: the far end's verdict may have ended it meanwhile
                        }
                    }
                }
                case Request.OPTIONS -> {
                    Response ok = sip.messages.createResponse(Response.OK, r);
                    ok.addHeader(sip.headers.createAllowHeader("INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK"));
                    send(event, ok);
                }
                default -> respond(event, Response.METHOD_NOT_ALLOWED);
            }
        } catch (TransactionUnavailableException e) {
            // A request JAIN-SIP cannot make a transaction of (e.g. a missing Contact or Max-Forwards): 400,
            // statelessly, naming what is wrong.
            LOG.info("refusing a malformed {}: {}", UntrustedText.forTerminal(r.getMethod(), 50),
                    UntrustedText.forTerminal(e.getMessage()));
            try {
                Response bad = sip.messages.createResponse(Response.BAD_REQUEST, r);
                // over UDP the standard phrase: nothing of the request's goes back to a source anyone can spoof
                if (e.getMessage() != null && !Signalling.overUdp(r)) {
                    bad.setReasonPhrase(UntrustedText.forTerminal(e.getMessage(), 200));
                }
                sip.statelessly(r, bad);
            } catch (Exception ignored) {
                // the peer's address may be unreachable; the request is dropped
            }
        } catch (Exception e) {
            LOG.warn("handling {} failed: {}", UntrustedText.forTerminal(r.getMethod(), 50),
                    UntrustedText.forTerminal(e.toString()));
            try {
                respond(event, Response.SERVER_INTERNAL_ERROR);
            } catch (Exception ignored) {
                // the transaction may be gone already
            }
        }
    }

    private Call callOf(Request r) {
        CallIdHeader id = (CallIdHeader) r.getHeader(CallIdHeader.NAME);
        return id == null ? null : calls.active(id.getCallId()).orElse(null);
    }

    /** The call of {@code m} that ended a moment ago ({@link CallTable#recentlyEnded}), or null. */
    private Call recentlyEnded(javax.sip.message.Message m) {
        CallIdHeader id = (CallIdHeader) m.getHeader(CallIdHeader.NAME);
        return id == null ? null : calls.recentlyEnded(id.getCallId()).orElse(null);
    }

    private void respond(RequestEvent event, int status) throws Exception {
        send(event, sip.messages.createResponse(status, event.getRequest()));
    }

    /**
     * Answers through the request's transaction; a request without one gets a transaction only if it belongs to a
     * call in progress, and is otherwise answered statelessly: an OPTIONS, a request we do not support or one for a
     * call we do not have holds nothing (over UDP a non-INVITE transaction lingers 32 s, Timer J).
     */
    private void send(RequestEvent event, Response response) throws Exception {
        send(event, response, callOf(event.getRequest()) != null);
    }

    /**
     * As above; {@code ofACall}: the request belongs to a call in progress (otherwise, without a transaction, it is
     * answered statelessly).
     */
    private void send(RequestEvent event, Response response, boolean ofACall) throws Exception {
        ServerTransaction st = event.getServerTransaction();
        Request request = event.getRequest();
        if (st == null) {
            if (request.getMethod().equals(Request.ACK)) {
                return;
            }
            if (!ofACall) {
                sip.statelessly(request, response);
                return;
            }
            st = sip.provider.getNewServerTransaction(request);
        }
        Signalling.sendFinal(st, response);
    }

    @Override
    public void processResponse(ResponseEvent event) {
        Response r = event.getResponse();
        CSeqHeader cseq = (CSeqHeader) r.getHeader(CSeqHeader.NAME);
        CallIdHeader id = (CallIdHeader) r.getHeader(CallIdHeader.NAME);
        if (id == null || cseq == null) {
            return;
        }
        if (cseq.getMethod().equals(Request.REGISTER)) {
            Registration reg = registrations.byCallId(id.getCallId());
            if (reg != null && event.getClientTransaction() != null) {
                registrations.answered(event.getClientTransaction(), r, reg);
            }
            return;
        }
        if (dropInviteErrors && cseq.getMethod().equals(Request.INVITE) && r.getStatusCode() >= 300) {
            LOG.debug("a {} to an INVITE dropped (test hook)", r.getStatusCode());
            return;
        }
        if (cseq.getMethod().equals(Request.INVITE) && !ours(event, id.getCallId())) {
            // JAIN-SIP hands us a response no client transaction of ours matched (its branch names none): anyone
            // who knows a Call-ID can send one. It neither refuses a call nor becomes what the far end said.
            LogBudget.Take line = strayLines.take();
            if (line.log()) {
                LOG.info("a stray {} to an INVITE of {} dropped: it answers no transaction of ours{}",
                        r.getStatusCode(), UntrustedText.forTerminal(id.getCallId(), 200), leftOut(line));
            }
            return;
        }
        Call call = calls.active(id.getCallId()).orElse(null);
        if (call != null && cseq.getMethod().equals(Request.INVITE)) {
            outgoing.answered(event, call);
        } else if (call == null && cseq.getMethod().equals(Request.INVITE)) {
            // a final answer to a call we ended a moment ago (the far end's verdict inside DTLS usually comes before
            // its 403 through the proxies): its words are kept with the call
            Call ended = recentlyEnded(r);
            if (ended != null) {
                outgoing.answeredAfterEnd(event, ended);
            }
        }
    }

    /**
     * Whether a response to an INVITE answers one of ours: it matched a client transaction of ours for that very
     * Call-ID, or (a 2xx retransmitted after its transaction ended, RFC 3261 §13.2.2.4) JAIN-SIP matched it to a
     * dialog of that Call-ID.
     */
    private static boolean ours(ResponseEvent event, String callId) {
        javax.sip.ClientTransaction ct = event.getClientTransaction();
        if (ct != null) {
            CallIdHeader sent = (CallIdHeader) ct.getRequest().getHeader(CallIdHeader.NAME);
            return sent != null && callId.equals(sent.getCallId());
        }
        int status = event.getResponse().getStatusCode();
        return status >= 200 && status < 300 && event.getDialog() != null
                && callId.equals(event.getDialog().getCallId().getCallId());
    }

    private static String leftOut(LogBudget.Take line) {
        return line.leftOut().isPresent() ? " (" + line.leftOut().getAsLong() + " such lines left out before)" : "";
    }

    @Override
    public void processTimeout(TimeoutEvent event) {
        Request r = event.isServerTransaction() ? event.getServerTransaction().getRequest()
                : event.getClientTransaction().getRequest();
        if (r.getMethod().equals(Request.REGISTER)) {
            Registration reg = registrations.byCallId(((CallIdHeader) r.getHeader(CallIdHeader.NAME)).getCallId());
            if (reg != null) {
                registrations.failed(reg, "no answer from the registrar " + reg.account().registrar()
                        + " (SIP timer expired)");
            }
            return;
        }
        Call c = callOf(r);
        if (c != null) {
            c.ended("no answer (SIP timer expired for " + r.getMethod() + ")");
            listener.ended(c);
        }
    }

    @Override
    public void processIOException(IOExceptionEvent event) {
        LOG.info("SIP transport error towards {}:{} ({})", UntrustedText.forTerminal(event.getHost(), 100),
                event.getPort(), UntrustedText.forTerminal(event.getTransport(), 20));
    }

    @Override
    public void processTransactionTerminated(TransactionTerminatedEvent event) {
        // nothing to clean up: calls are keyed by Call-ID
    }

    @Override
    public void processDialogTerminated(DialogTerminatedEvent event) {
        // the call's state is already final when its dialog ends
    }
}
