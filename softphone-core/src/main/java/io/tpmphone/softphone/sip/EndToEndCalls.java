package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSetup;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.PeerAttestation;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.cert.CertificateEncodingException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Calls whose media is DTLS-SRTP with end-to-end evidence (docs/softphone.md, "End to end through proxies"): which
 * calls are ({@link SipPhone.MediaMode}), our SDP attributes (the SHA-256 fingerprint of the device certificate, whose
 * key is the TIK), and the bounded pool of threads that run each call's handshake, evidence exchange and decision
 * ({@link DtlsMedia}). A call takes a thread only once it holds a place among the calls being set up, and the pool
 * has no queue: a call beyond it is refused, so a flood of INVITEs cannot start unbounded DTLS work. Thread-safe.
 */
final class EndToEndCalls implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final SipPhone.Config config;
    private final Signalling sip;
    private final AttestedTlsConfig tls;
    private final CallPolicy policy;
    private final SipPhone.Listener listener;
    private final ThreadPoolExecutor threads;
    private final java.util.concurrent.ScheduledExecutorService timers;
    /** Whether the phone opens audio for its calls (DTLS-SRTP runs on a call's RTP socket). */
    private final boolean hasMedia;
    private final Duration maxWait;

    EndToEndCalls(Signalling sip, AttestedTlsConfig tls, CallPolicy policy, SipPhone.Listener listener,
                  SipPhone.Limits limits, java.util.concurrent.ScheduledExecutorService timers, boolean hasMedia) {
        this.sip = sip;
        this.hasMedia = hasMedia;
        this.timers = timers;
        this.config = sip.config;
        this.tls = tls;
        this.policy = policy;
        this.listener = listener;
        // every call being set up may hold one, and a thread outlives its call only until its socket closes
        int max = 2 * limits.maxSettingUp();
        AtomicInteger n = new AtomicInteger();
        this.threads = new ThreadPoolExecutor(0, max, 30, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
            Thread t = new Thread(r, "dtls-srtp-" + config.host() + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        // an answered call waits for its ACK at most this long before its DTLS thread lets go
        this.maxWait = config.setupTimeout().plus(limits.ackTimeout());
    }

    /**
     * Whether this phone can key media by DTLS-SRTP: its mode allows it, it has a device certificate to present, and
     * it has media (a phone that does signalling only keeps SDES in {@code AUTO}).
     */
    boolean available() {
        return config.mediaMode() != SipPhone.MediaMode.SDES && tls.identity().isPresent() && hasMedia;
    }

    /** Whether a call we place through {@code account}'s registrar (null: a direct call) uses DTLS-SRTP. */
    boolean forOutgoing(Registration.Account account) {
        return switch (config.mediaMode()) {
            case SDES -> false;
            case DTLS_SRTP -> true;
            case AUTO -> account != null && available();
        };
    }

    /** Why an incoming offer of this kind is refused by the phone's mode, or empty when it is taken. */
    Optional<String> refusesOffer(boolean dtlsOffer) {
        if (dtlsOffer && !available()) {
            return Optional.of(config.mediaMode() == SipPhone.MediaMode.SDES
                    ? "this phone keys media by SDES only (media.mode=sdes)"
                    : !hasMedia ? "this phone has no media for DTLS-SRTP"
                    : "this phone has no device certificate for DTLS-SRTP");
        }
        if (!dtlsOffer && config.mediaMode() == SipPhone.MediaMode.DTLS_SRTP) {
            return Optional.of("this phone keys media by DTLS-SRTP only (media.mode=dtls-srtp): offer"
                    + " UDP/TLS/RTP/SAVP with a=fingerprint");
        }
        return Optional.empty();
    }

    /** Our DTLS attributes: the SHA-256 fingerprint of our device certificate, {@code setup}, rtcp-mux. */
    Sdp.DtlsAttributes ours(DtlsSetup setup) throws IOException {
        List<X509Certificate> chain = tls.identity().orElseThrow().certificateChain();
        if (chain.isEmpty()) {
            throw new IOException("this host has no device certificate yet");
        }
        try {
            return Sdp.DtlsAttributes.of(DtlsFingerprint.sha256(chain.get(0).getEncoded()), setup);
        } catch (CertificateEncodingException e) {
            throw new IOException("cannot encode our device certificate", e);
        }
    }

    /**
     * Starts {@code call}'s DTLS-SRTP media towards the far end's SDP {@code remote}: as DTLS client when
     * {@code client}. The call's audio session must be open.
     *
     * @throws RejectedExecutionException when every DTLS thread is busy (the caller refuses the call)
     * @throws IllegalArgumentException when the far end's SDP address does not resolve to an address
     */
    DtlsMedia begin(Call call, Sdp remote, boolean client, int payloadType) {
        InetSocketAddress far;
        try {
            far = new InetSocketAddress(InetAddress.getByName(remote.address()), remote.port());
        } catch (java.net.UnknownHostException e) {
            throw new IllegalArgumentException("the far end's media address is not an address");
        }
        if (remote.port() == 0 || far.getAddress().isAnyLocalAddress() || far.getAddress().isMulticastAddress()) {
            throw new IllegalArgumentException("the far end's media address is not one to send to");
        }
        Sdp.DtlsAttributes theirs = remote.dtls().orElseThrow();
        DtlsSrtpConfig dtls = DtlsSrtpConfig.of(tls, theirs.fingerprints()).withTimeouts(
                min(DtlsSrtpConfig.DEFAULT_HANDSHAKE_TIMEOUT, config.setupTimeout()),
                min(DtlsSrtpConfig.DEFAULT_EVIDENCE_TIMEOUT, config.setupTimeout()));
        DtlsMedia media = new DtlsMedia(call, call.audio().orElseThrow());
        call.dtls(media);
        threads.execute(() -> media.run(dtls, client, far, payloadType, maxWait, events));
        return media;
    }

    private static Duration min(Duration a, Duration b) {
        return a.compareTo(b) <= 0 ? a : b;
    }

    private final DtlsMedia.Events events = new DtlsMedia.Events() {
        @Override
        public CallPolicy.Decision decide(Call call, PeerAttestation farEnd, String evidenceDigest,
                                          boolean callEnded) {
            CallPolicy.Decision d = policy.decideEndToEnd(call.direction(), call.peerUri(), farEnd, evidenceDigest);
            if (callEnded) {
                d = new CallPolicy.Decision(d.action(), d.peerLevel(), d.requiredLevel(), d.rule(), d.reason()
                        + " (the call had ended before this decision: nothing followed it)", d.established(),
                        d.evidenceDigest());
            }
            call.farEnd(farEnd, d);
            LOG.info("call {} {}: far end {} (end to end) → {}", UntrustedText.forTerminal(call.callId(), 200),
                    call.direction(), UntrustedText.forTerminal(farEnd.display(), 500), d.action());
            listener.decided(call, d);
            return d;
        }

        @Override
        public void noAssociation(Call call, io.tpmphone.tls.DtlsSrtpException e) {
            if (e.reason() == io.tpmphone.tls.DtlsSrtpException.Reason.LOCAL_SIGNATURE
                    || e.reason() == io.tpmphone.tls.DtlsSrtpException.Reason.LOCAL_EVIDENCE) {
                // This side cannot take part (a tampered host: its TIK signs only in an approved state). Nothing was
                // seen of the far end, and the refusal is ours: recorded as such, once (the far end's later 488 is
                // not a second decision), so the host's own audit trail says why the call never rang (its SIP
                // answer, a 500 with a Warning, tells the caller).
                if (!call.claimNoAssociation()) {
                    return;
                }
                LOG.warn("call {}: {}", UntrustedText.forTerminal(call.callId(), 200), e.getMessage());
                call.localFailure("this phone could not set up DTLS-SRTP: " + e.getMessage());
                CallPolicy.Decision policyWould = policy.decideEndToEnd(call.direction(), call.peerUri(),
                        new PeerAttestation(io.tpmphone.attestation.IntegrityLevel.UNATTESTED, Optional.empty(),
                                "not seen: this phone could not take part in the association", Optional.empty(),
                                java.time.Instant.now(), e.getMessage()), "");
                listener.decided(call, new CallPolicy.Decision(CallPolicy.Action.REJECT,
                        io.tpmphone.attestation.IntegrityLevel.UNATTESTED, policyWould.requiredLevel(),
                        policyWould.rule(), "refused by this phone: " + e.getMessage(), CallPolicy.END_TO_END, ""));
                return;
            }
            if (!farEndAborted(e)) {
                // Verified here (a fingerprint mismatch, a missing certificate, broken or missing evidence): recorded
                // at once with its own reason; nothing the far end or a proxy says afterwards replaces it.
                recordNoAssociation(call, e.reason().name(), e.getMessage());
                return;
            }
            if (call.direction() == CallPolicy.Direction.OUT && call.farEndRefusal().isEmpty()) {
                // The far end aborted the handshake (an alert) or never finished it: a callee that did so usually
                // says why in its SIP answer, through the proxy a moment later (a tampered callee: "this phone could
                // not set up DTLS-SRTP: this host's TPM did not sign …"). Wait GRACE for its words.
                try {
                    call.settled().get(GRACE.toMillis(), TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException waited) {
                    // no answer in time: our own failure is the reason
                } catch (InterruptedException stopping) {
                    Thread.currentThread().interrupt();
                }
            }
            // our own code first; the far end's words (its claim) after it
            recordNoAssociation(call, e.reason().name(), e.getMessage() + call.farEndRefusal()
                    .map(said -> "; the far end said: " + said).orElse(""));
        }

        @Override
        public void closedDuringSetup(Call call) {
            // The call ended (and closed our association) before any evidence was appraised. The far end's final
            // refusal, when that is what ended it, is recorded naming what it said; otherwise (a CANCEL, our user
            // hung up) that the call ended first — a record is owed either way, once, so both sides' decisions of
            // one call can be joined.
            Optional<String> said = call.farEndRefusal();
            if (said.isPresent()) {
                // nobody appraised the far end: UNATTESTED, whatever its (or a proxy's) answer says — a refusal in
                // SIP is not evidence of a FAILED far end (a genuine callee's 403, a proxy's 408 or a forged one)
                recordNoAssociation(call, "FAR_END_REFUSED", "the far end refused the call before any association: "
                        + said.get(), io.tpmphone.attestation.IntegrityLevel.UNATTESTED);
            } else {
                endedUndecided(call, "DTLS-SRTP association not complete");
            }
        }

        @Override
        public void endedUndecided(Call call, String why) {
            if (!call.claimNoAssociation()) {
                return; // recorded already (once per call)
            }
            // No evidence was appraised: the far end's level is not known to this side. The record says so, with
            // the rule that would have applied; REJECT, as nothing was or will be keyed.
            PeerAttestation farEnd = new PeerAttestation(io.tpmphone.attestation.IntegrityLevel.UNATTESTED,
                    Optional.empty(), "not appraised: the call ended first", Optional.empty(),
                    java.time.Instant.now(), why);
            CallPolicy.Decision policyWould = policy.decideEndToEnd(call.direction(), call.peerUri(), farEnd, "");
            CallPolicy.Decision d = new CallPolicy.Decision(CallPolicy.Action.REJECT, farEnd.level(),
                    policyWould.requiredLevel(), policyWould.rule(), "the call ended before this side decided on the"
                    + " far end (" + why + ")", CallPolicy.END_TO_END, "");
            call.farEnd(farEnd, d);
            LOG.info("call {} {}: ended before its end-to-end decision ({})",
                    UntrustedText.forTerminal(call.callId(), 200), call.direction(), why);
            listener.decided(call, d);
        }

        @Override
        public void refusedByFarEnd(Call call, io.tpmphone.tls.DtlsVerdict verdict) {
            // the same words as the far end's 403 Warning (its policy's reason starts so), whichever comes first
            Optional<CallPolicy.Decision> ours = call.farEndDecision();
            end(call, "403 refused end to end by the far end's verdict: far end level " + verdict.farEnd()
                    + (verdict.farEnd().atLeast(verdict.required()) ? " meets" : " is below") + " the required "
                    + verdict.required() + ours.map(d -> "; we saw it as " + d.peerLevel()).orElse(""),
                    javax.sip.message.Response.FORBIDDEN);
        }

        @Override
        public void failed(Call call, String why) {
            if (call.state() == Call.State.SETTING_UP || call.state() == Call.State.RINGING) {
                // Before the answer a far end that ends the association has usually refused the call: its SIP
                // answer (a 403 naming both levels, a CANCEL) says why, and may come a moment after its
                // close_notify. It has GRACE to; then the call ends with our reason.
                try {
                    timers.schedule(() -> end(call, why, javax.sip.message.Response.NOT_ACCEPTABLE_HERE),
                            GRACE.toMillis(), TimeUnit.MILLISECONDS);
                    return;
                } catch (RejectedExecutionException stopping) {
                    // the phone is stopping and ends every call itself
                }
            }
            end(call, why, javax.sip.message.Response.NOT_ACCEPTABLE_HERE);
        }
    };

    /**
     * Whether {@code e} may be the far end's doing as seen from here, unverified: an alert during the handshake, or a
     * handshake that never finished. Only then may its SIP answer say why (after our own code). Bouncy Castle's DTLS
     * reports a received fatal alert as a plain {@code TlsFatalAlert} (its TLS as {@code TlsFatalAlertReceived});
     * our own refusals of the far end's certificate are subclasses with a reason of their own, and are not this.
     */
    static boolean farEndAborted(io.tpmphone.tls.DtlsSrtpException e) {
        return e.reason() == io.tpmphone.tls.DtlsSrtpException.Reason.HANDSHAKE_TIMEOUT
                || e.reason() == io.tpmphone.tls.DtlsSrtpException.Reason.HANDSHAKE_FAILED
                && e.getCause() != null && (e.getCause() instanceof org.bouncycastle.tls.TlsFatalAlertReceived
                || e.getCause().getClass() == org.bouncycastle.tls.TlsFatalAlert.class);
    }

    /**
     * The far end announced DTLS-SRTP and no association with it came about: whatever the policy would accept, there
     * are no keys, so the call is refused — and recorded, once per call, as a decision on the far end.
     */
    private void recordNoAssociation(Call call, String code, String message) {
        recordNoAssociation(call, code, message, io.tpmphone.attestation.IntegrityLevel.FAILED);
    }

    private void recordNoAssociation(Call call, String code, String message,
                                     io.tpmphone.attestation.IntegrityLevel level) {
        if (!call.claimNoAssociation()) {
            return;
        }
        String shown = UntrustedText.forTerminal(message, 500);
        PeerAttestation farEnd = new PeerAttestation(level,
                Optional.empty(), "no DTLS-SRTP association: " + code, Optional.empty(), java.time.Instant.now(),
                shown);
        CallPolicy.Decision policyWould = policy.decideEndToEnd(call.direction(), call.peerUri(), farEnd, "");
        CallPolicy.Decision d = new CallPolicy.Decision(CallPolicy.Action.REJECT, farEnd.level(),
                policyWould.requiredLevel(), policyWould.rule(), "no DTLS-SRTP association with the far end: "
                + shown, CallPolicy.END_TO_END, "");
        call.farEnd(farEnd, d);
        LOG.info("call {} {}: no DTLS-SRTP association with the far end: {}",
                UntrustedText.forTerminal(call.callId(), 200), call.direction(), shown);
        listener.decided(call, d);
    }

    /** How long a call being set up whose association ended waits for the far end's SIP to say why. */
    static final Duration GRACE = Duration.ofSeconds(2);

    /**
     * Ends a call whose DTLS-SRTP media failed or whose far end refused it: CANCEL before the far end's 2xx (with a
     * {@code Reason} header, RFC 3326), BYE once confirmed, {@code status} (488, or 403 for a refusal) with a
     * {@code Warning} as callee. The reason is escaped; it names both levels for a refusal.
     */
    private void end(Call call, String why, int status) {
        if (call.state() == Call.State.ENDED || call.state() == Call.State.REFUSED) {
            return;
        }
        String shown = UntrustedText.forTerminal(why, 500);
        Optional<javax.sip.Dialog> dialog = call.dialog();
        boolean confirmed = dialog.isPresent() && dialog.get().getState() == javax.sip.DialogState.CONFIRMED;
        try {
            if (!confirmed && call.direction() == CallPolicy.Direction.OUT && call.inviteClient().isPresent()) {
                if (call.claimCancel()) { // else cancelled already
                    javax.sip.message.Request cancel = call.inviteClient().get().createCancel();
                    Signalling.addReason(sip, cancel, status, shown);
                    sip.provider.getNewClientTransaction(cancel).sendRequest();
                }
            } else if (!confirmed && call.direction() == CallPolicy.Direction.IN
                    && call.inviteTransaction().isPresent()) {
                if (call.claimFinalAnswer()) { // else answered already (the setup deadline, a CANCEL, our 200)
                    javax.sip.ServerTransaction st = call.inviteTransaction().get();
                    javax.sip.message.Response r = sip.messages.createResponse(status, st.getRequest());
                    r.addHeader(sip.headers.createWarningHeader(config.host(),
                            javax.sip.header.WarningHeader.MISCELLANEOUS_WARNING, shown.replace('"', '\'')));
                    if (dialog.isPresent() && dialog.get().getLocalTag() != null) {
                        ((javax.sip.header.ToHeader) r.getHeader(javax.sip.header.ToHeader.NAME))
                                .setTag(dialog.get().getLocalTag());
                    }
                    Signalling.sendFinal(st, r);
                }
            } else {
                sip.bye(dialog);
            }
        } catch (javax.sip.SipException | java.text.ParseException | javax.sip.InvalidArgumentException
                 | RuntimeException e) {
            LOG.debug("call {}: ending it in SIP failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                    e.toString());
        }
        // refused before it was set up, as by a 403; the user is told once (a CANCEL may have ended it meanwhile)
        if (status == javax.sip.message.Response.FORBIDDEN && !confirmed ? call.refused(shown) : call.ended(shown)) {
            listener.ended(call);
        }
    }

    /** DTLS threads busy now (for the bounds tests). */
    int busy() {
        return threads.getActiveCount();
    }

    @Override
    public void close() {
        threads.shutdownNow();
    }
}
