package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.tls.PeerAttestation;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import javax.sip.Dialog;

/**
 * One call as the user sees it: who, which direction, the peer's attestation and the policy's decision, the media
 * keys agreed, and its state. Thread-safe (state changes are synchronized; the future completes once).
 */
public final class Call {
    /** Where a call is. */
    public enum State { SETTING_UP, RINGING, ESTABLISHED, REFUSED, ENDED }

    /** How the reason of a call our user hung up begins ({@link SipPhone#hangUp}). */
    static final String HUNG_UP = "hung up";
    /** How the reason of an incoming call its caller cancelled begins (the CANCEL's Reason may follow). */
    static final String CALLER_CANCELLED = "the caller cancelled";

    private final String callId;
    private final CallPolicy.Direction direction;
    private final String peerUri;
    private final CompletableFuture<Call> settled = new CompletableFuture<>();
    private final CompletableFuture<Call> finished = new CompletableFuture<>();
    private volatile PeerAttestation peer;
    private volatile CallPolicy.Decision decision;
    /** The far end's attestation over the DTLS-SRTP association, and the policy's decision on it. */
    private volatile PeerAttestation farEnd;
    private volatile CallPolicy.Decision farEndDecision;
    /** The call's DTLS-SRTP media, when its media is keyed end to end; null for SDES. */
    private volatile DtlsMedia dtls;
    /** The INVITE's server transaction of a call we answer in stages (183, then 180 and 200). */
    private volatile javax.sip.ServerTransaction inviteTransaction;
    /** Our INVITE's client transaction (to cancel it). */
    private volatile javax.sip.ClientTransaction inviteClient;
    /** Whether we offered DTLS-SRTP (a call we place). */
    private volatile boolean offeredDtls;
    /** Whether the far end answered our INVITE with a 2xx. */
    private volatile boolean farEndAnswered;
    private boolean noAssociationClaimed;
    private boolean cancelClaimed;
    /** The dialogs (their far-end To tag, or our tag) given a late BYE; at most {@link #LATE_BYE_DIALOGS}. */
    private final java.util.Set<String> lateByes = new java.util.HashSet<>();
    private boolean finalAnswerClaimed;
    /** The far end's final refusal of our INVITE ("status phrase: Warning", raw), as its SIP said it; null until. */
    private volatile String farEndRefusal;
    /** This side's own failure to take part in DTLS-SRTP (its TPM would not sign), as recorded; null until. */
    private volatile String localFailure;
    /** What the far end's SIP said when it ended the call before it was set up, escaped; null until. */
    private volatile String farEndSaid;
    private volatile State state = State.SETTING_UP;
    private volatile String reason = "";
    private volatile Sdp remoteSdp;
    private volatile SdesCrypto localCrypto;
    private volatile Dialog dialog;
    private volatile io.tpmphone.softphone.media.AudioSession audio;
    private volatile boolean held;
    private volatile int payloadType;
    /** The remote address of the TCP or TLS connection that carries the call's signalling (its first hop). */
    private volatile java.net.InetSocketAddress hop;
    /** The transport of the call's signalling, {@code tls}, {@code tcp} or {@code udp}: our Contact in it names it. */
    private volatile String transport = "tls";
    /** Whether we answered the call's INVITE with our 200 (its dialog is confirmed on our side). */
    private volatile boolean answered;
    /** The media watch's last look: datagrams received by then (-1: none yet), and since when that count stood. */
    private long mediaSeen = -1;
    private long mediaStillSince;

    Call(String callId, CallPolicy.Direction direction, String peerUri) {
        this.callId = callId;
        this.direction = direction;
        this.peerUri = peerUri;
    }

    public String callId() {
        return callId;
    }

    public CallPolicy.Direction direction() {
        return direction;
    }

    public String peerUri() {
        return peerUri;
    }

    /** The peer's attestation on the connection the call came over (the first hop). */
    public Optional<PeerAttestation> peer() {
        return Optional.ofNullable(peer);
    }

    /**
     * The far end's attestation established end to end over the call's DTLS-SRTP association (its evidence inside
     * DTLS, bound to that association), once known; empty for an SDES call, whose only level is the hop's.
     */
    public Optional<PeerAttestation> farEnd() {
        return Optional.ofNullable(farEnd);
    }

    /** The policy's decision on {@link #farEnd()}. */
    public Optional<CallPolicy.Decision> farEndDecision() {
        return Optional.ofNullable(farEndDecision);
    }

    /** Whether the call's media is DTLS-SRTP (keys from the handshake, the far end's level end to end). */
    public boolean endToEnd() {
        return dtls != null;
    }

    void farEnd(PeerAttestation p, CallPolicy.Decision d) {
        this.farEnd = p;
        this.farEndDecision = d;
    }

    /**
     * Claims the one record of "no DTLS-SRTP association came about" for this call: true once. Only the call's DTLS
     * thread records (its own failure, or — when the call's end closed it during its handshake — the far end's SIP
     * refusal stored by {@link #farEndRefused}), so the audit log has one end-to-end decision, not two.
     */
    synchronized boolean claimNoAssociation() {
        if (noAssociationClaimed) {
            return false;
        }
        noAssociationClaimed = true;
        return true;
    }

    /**
     * Claims the one CANCEL of our INVITE of this call: true once, whichever end of the call sends it (our policy, our
     * user, or the first provisional answer to an INVITE this side had ended before any, RFC 3261 §9.1).
     */
    synchronized boolean claimCancel() {
        if (cancelClaimed) {
            return false;
        }
        cancelClaimed = true;
        return true;
    }

    /**
     * Claims the one final answer to the INVITE of an incoming call: true once. Every sender of one (the 200 of the
     * person's answer, the 603 of a decline, the 480 of the setup deadline, the 500 of a failure, the 487 of a CANCEL,
     * a refusal end to end) takes it first, so two can never both be sent — a check of the transaction's state and
     * the send are not one step, and JAIN-SIP sends a 480 even after a 200 (its transaction is then Terminated).
     */
    synchronized boolean claimFinalAnswer() {
        if (finalAnswerClaimed) {
            return false;
        }
        finalAnswerClaimed = true;
        return true;
    }

    /** The most dialogs of one call given a late BYE: forks of one INVITE a proxy answered 2xx after our end. */
    static final int LATE_BYE_DIALOGS = 8;

    /**
     * Claims the one BYE for a dialog of this call that the far end confirmed after this side had ended the call: a
     * 2xx to our INVITE that crossed our CANCEL (RFC 3261 §9.1/§15) — each fork's 2xx makes a dialog of its own — or
     * the ACK of our 200 to a call that ended before the ACK came. {@code dialog} names the dialog (the 2xx's To tag,
     * or our own tag for a call we answered): true once per dialog, so a retransmission is only acknowledged; false
     * for a dialog beyond the first {@link #LATE_BYE_DIALOGS} (a proxy's forks are few; a peer making up To tags gets
     * its ACKs and no more state or BYEs).
     */
    synchronized boolean claimLateBye(String dialog) {
        if (lateByes.contains(dialog) || lateByes.size() >= LATE_BYE_DIALOGS) {
            return false;
        }
        lateByes.add(dialog);
        return true;
    }

    /**
     * The far end refused our INVITE with a final answer ({@code status}, {@code said}: its phrase and Warning, raw):
     * stored for the call's DTLS thread to name in its record (the first one only). Its words are its claim,
     * unverified; the SIP path records nothing itself.
     */
    void farEndRefused(int status, String said) {
        synchronized (this) {
            if (farEndRefusal == null) {
                farEndRefusal = status + " " + said;
            }
        }
    }

    /**
     * What the far end's SIP said when it ended this call before it was set up, escaped for a terminal: the status,
     * reason phrase and {@code Warning} of its final refusal of our INVITE ({@code "403 Forbidden: …"}), or the
     * {@code Reason} of its CANCEL ({@code "CANCEL (Reason: SIP 403 …)"}, RFC 3326) — kept even when this side had
     * ended the call already (the far end's verdict inside DTLS usually comes first; the phone still answers SIP for
     * a just-ended call), so the words it sent through the proxies are seen where they arrived. Its claim,
     * unverified; never a level. Empty when it said nothing (a {@code 487} to our own CANCEL is not its word).
     */
    public Optional<String> farEndSaid() {
        return Optional.ofNullable(farEndSaid);
    }

    /**
     * Keeps the first of {@link #farEndSaid()} ({@code said}: raw peer text, escaped and bounded here); whether this
     * was it.
     */
    boolean farEndSaid(String said) {
        synchronized (this) {
            if (farEndSaid == null) {
                farEndSaid = UntrustedText.forTerminal(said, 700);
                return true;
            }
            return false;
        }
    }

    /** {@link #farEndRefused}'s words (raw: escape before showing), or empty. */
    Optional<String> farEndRefusal() {
        return Optional.ofNullable(farEndRefusal);
    }

    /** This side could not take part in DTLS-SRTP ({@code why}: its own TPM or broker refused), recorded as such. */
    void localFailure(String why) {
        localFailure = why;
    }

    /** {@link #localFailure(String)}'s reason, or empty. */
    Optional<String> localFailure() {
        return Optional.ofNullable(localFailure);
    }

    void dtls(DtlsMedia d) {
        this.dtls = d;
    }

    Optional<DtlsMedia> dtls() {
        return Optional.ofNullable(dtls);
    }

    void inviteTransaction(javax.sip.ServerTransaction st) {
        this.inviteTransaction = st;
    }

    Optional<javax.sip.ServerTransaction> inviteTransaction() {
        return Optional.ofNullable(inviteTransaction);
    }

    void offeredDtls(boolean b) {
        this.offeredDtls = b;
    }

    boolean offeredDtls() {
        return offeredDtls;
    }

    void farEndAnswered() {
        this.farEndAnswered = true;
    }

    boolean isFarEndAnswered() {
        return farEndAnswered;
    }

    void inviteClient(javax.sip.ClientTransaction ct) {
        this.inviteClient = ct;
    }

    Optional<javax.sip.ClientTransaction> inviteClient() {
        return Optional.ofNullable(inviteClient);
    }

    public Optional<CallPolicy.Decision> decision() {
        return Optional.ofNullable(decision);
    }

    public State state() {
        return state;
    }

    /** Why the call was refused or ended, or "" while it runs. */
    public String reason() {
        return reason;
    }

    /** The peer's SDP (its media address, port and keys), once known. */
    public Optional<Sdp> remoteSdp() {
        return Optional.ofNullable(remoteSdp);
    }

    /** Completes when the call is established, refused or ended. */
    public CompletableFuture<Call> settled() {
        return settled;
    }

    /** Completes when the call is refused or ended (after {@link #settled()}). */
    CompletableFuture<Call> finished() {
        return finished;
    }

    /**
     * What the user sees at ring and answer time: the peer's level, a one-line claim summary and its freshness. The
     * peer's URI is the peer's own text: it is shown escaped ({@link UntrustedText#forTerminal}).
     */
    public String display() {
        PeerAttestation p = peer;
        PeerAttestation f = farEnd;
        CallPolicy.Decision fd = farEndDecision;
        boolean restricted = decision != null && decision.action() == CallPolicy.Action.RESTRICT
                || fd != null && fd.action() == CallPolicy.Action.RESTRICT;
        String hop = p == null ? "not yet verified" : p.display();
        return direction + " " + UntrustedText.forTerminal(peerUri, 200) + ": "
                + (f != null ? "far end " + f.display() + " (end to end); first hop " + hop
                        : dtls != null ? "far end not yet verified; first hop " + hop : hop)
                + (restricted ? " [RESTRICTED]" : "");
    }

    void attested(PeerAttestation p, CallPolicy.Decision d) {
        this.peer = p;
        this.decision = d;
    }

    /** The peer's SDP; its keys are wiped at once when the call is over already (an ended call keeps no key). */
    synchronized void remoteSdp(Sdp sdp) {
        this.remoteSdp = sdp;
        if (over() && sdp != null) {
            sdp.cryptos().forEach(SdesCrypto::destroy);
        }
    }

    /**
     * Our key of the call; wiped at once when the call is over already — it ended while the key was being made (our
     * user hung up, the caller cancelled) and {@link #wipe()} came before it.
     */
    synchronized void localCrypto(SdesCrypto c) {
        this.localCrypto = c;
        if (over() && c != null) {
            c.destroy();
        }
    }

    private boolean over() {
        return state == State.ENDED || state == State.REFUSED;
    }

    Optional<SdesCrypto> localCrypto() {
        return Optional.ofNullable(localCrypto);
    }

    /** Whether the call is on hold (either side put it there with a re-INVITE). */
    /** The negotiated audio codec: RTP static payload type 0 (PCMU) or 8 (PCMA). */
    public int payloadType() {
        return payloadType;
    }

    void payloadType(int pt) {
        this.payloadType = pt;
    }

    public boolean held() {
        return held;
    }

    void held(boolean h) {
        this.held = h;
    }

    /** The call's SRTP audio, when the phone has media. */
    public Optional<io.tpmphone.softphone.media.AudioSession> audio() {
        return Optional.ofNullable(audio);
    }

    /**
     * The call's audio session; closed at once when the call is over already (it ended while the session was being
     * opened: {@link #wipe()} came before it), so no port stays bound for an ended call.
     */
    synchronized void audio(io.tpmphone.softphone.media.AudioSession a) {
        this.audio = a;
        if (over() && a != null) {
            a.close();
        }
    }

    void transport(String t) {
        this.transport = t;
    }

    String transport() {
        return transport;
    }

    /**
     * Our 200 is about to answer the call's INVITE: marks it answered — atomically with a look at the call's state —
     * if it is still being set up; whether it was. False for a call that ended meanwhile (our user hung up, the caller
     * cancelled, a deadline): its 200 must not leave, and the path that holds its final answer sends the one its end
     * calls for. Once true, an end before the ACK is the ACK's business: it gets a BYE ({@link #claimLateBye}).
     */
    synchronized boolean answering() {
        if (state == State.SETTING_UP || state == State.RINGING) {
            answered = true;
            return true;
        }
        return false;
    }

    boolean isAnswered() {
        return answered;
    }

    /**
     * The media watch looks at the call: {@code received} datagrams so far, at {@code now} (System.nanoTime). Returns
     * since when that count has not moved.
     */
    synchronized long mediaStillSince(long received, long now) {
        if (received != mediaSeen) {
            mediaSeen = received;
            mediaStillSince = now;
        }
        return mediaStillSince;
    }

    /** The media watch starts over (the call was on hold: a held peer may send nothing). */
    synchronized void mediaWatchReset() {
        mediaSeen = -1;
    }

    void hop(java.net.InetSocketAddress h) {
        this.hop = h;
    }

    Optional<java.net.InetSocketAddress> hop() {
        return Optional.ofNullable(hop);
    }

    /** Ignored once the call is over: a refused or ended call keeps no JAIN-SIP dialog (and its messages) alive. */
    synchronized void dialog(Dialog d) {
        if (state != State.ENDED && state != State.REFUSED) {
            this.dialog = d;
        }
    }

    Optional<Dialog> dialog() {
        return Optional.ofNullable(dialog);
    }

    /** SETTING_UP to RINGING; whether it changed (only then does the phone send its 180 and show the ring). */
    synchronized boolean ringing() {
        if (state == State.SETTING_UP) {
            state = State.RINGING;
            return true;
        }
        return false;
    }

    /**
     * SETTING_UP or RINGING to ESTABLISHED; whether it changed. False for a call that ended meanwhile (our user hung
     * up as its 2xx or ACK came): its dialog is confirmed, and the caller of this ends it with a BYE.
     */
    synchronized boolean established() {
        if (state == State.SETTING_UP || state == State.RINGING) {
            state = State.ESTABLISHED;
            settled.complete(this);
            return true;
        }
        return false;
    }

    /** Refuses a call not yet over; whether it did (only then is the user told, once). */
    synchronized boolean refused(String why) {
        if (state != State.ENDED && state != State.REFUSED) {
            state = State.REFUSED;
            reason = why;
            wipe();
            settled.complete(this);
            finished.complete(this);
            return true;
        }
        return false;
    }

    /** Ends a call that is still being set up (not yet established); whether it did. */
    synchronized boolean abandon(String why) {
        if (state == State.SETTING_UP || state == State.RINGING) {
            ended(why);
            return true;
        }
        return false;
    }

    /** Ends a call not yet over; whether it did (only then is the user told, once). */
    synchronized boolean ended(String why) {
        if (state != State.ENDED && state != State.REFUSED) {
            state = State.ENDED;
            reason = why;
            wipe();
            settled.complete(this);
            finished.complete(this);
            return true;
        }
        return false;
    }

    private void wipe() {
        dialog = null;
        DtlsMedia d = dtls;
        // a refusing DTLS thread keeps the media socket until the far end acknowledged our verdict (bounded)
        boolean kept = d != null && d.keepsMedia();
        io.tpmphone.softphone.media.AudioSession a = audio;
        if (a != null && !kept) {
            a.close();
        }
        SdesCrypto c = localCrypto;
        if (c != null) {
            c.destroy();
        }
        Sdp r = remoteSdp;
        if (r != null) {
            r.cryptos().forEach(SdesCrypto::destroy);
        }
    }

    @Override
    public String toString() {
        return "Call[" + callId + " " + state + (reason.isEmpty() ? "" : ": " + reason) + "]";
    }
}
