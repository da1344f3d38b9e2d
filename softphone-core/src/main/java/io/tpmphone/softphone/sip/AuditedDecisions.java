package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.AgentBroker;
import java.io.IOException;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link SipPhone.Listener} that records every call decision in the attestation server's audit log, through the
 * agent broker (the agent reports it bound to its next quote), then passes every event on to the user's listener.
 */
public final class AuditedDecisions implements SipPhone.Listener {
    private static final Logger LOG = LoggerFactory.getLogger(AuditedDecisions.class);
    private final AgentBroker broker;
    private final SipPhone.Listener next;

    public AuditedDecisions(AgentBroker broker, SipPhone.Listener next) {
        this.broker = Objects.requireNonNull(broker, "broker");
        this.next = Objects.requireNonNull(next, "next");
    }

    @Override
    public void decided(Call call, CallPolicy.Decision d) {
        try {
            broker.reportDecision(call.direction().name(), d.action().name(), d.peerLevel().name(),
                    d.requiredLevel().name(), call.callId(), call.peerUri().replace(' ', '_'), d.endToEnd(),
                    d.evidenceDigest(), resultAgeSeconds(call, d), message(d));
        } catch (IOException | IllegalArgumentException e) {
            LOG.warn("call {}: the decision could not be handed to the agent for the audit log: {}",
                    UntrustedText.forTerminal(call.callId(), 200), UntrustedText.forTerminal(e.getMessage(), 300));
        }
        next.decided(call, d);
    }

    /**
     * How old the attestation result behind the decided level was when this side verified it (the far end's, end to
     * end; the connection's peer's, one hop), in whole seconds; -1 when there was none (no passport, refused
     * evidence).
     */
    static long resultAgeSeconds(Call call, CallPolicy.Decision d) {
        java.util.Optional<io.tpmphone.tls.PeerAttestation> p = d.endToEnd() ? call.farEnd() : call.peer();
        return p.flatMap(io.tpmphone.tls.PeerAttestation::freshness).map(f -> Math.max(0, f.toSeconds()))
                .orElse(-1L);
    }

    /**
     * The record's message: how the level was established first (it survives the message's length limit), then, end to
     * end, the digest of both sides' evidence — the same in both sides' records of the call — then the reason:
     * {@code "end-to-end DTLS, evidence sha256:HEX: far end level MEASURED meets …"} or
     * {@code "one hop: peer level UNATTESTED is below …"}.
     */
    static String message(CallPolicy.Decision d) {
        return d.established() + (d.evidenceDigest().isEmpty() ? "" : ", evidence sha256:" + d.evidenceDigest())
                + ": " + d.reason();
    }

    @Override
    public void ringing(Call call) {
        next.ringing(call);
    }

    @Override
    public void remoteRinging(Call call) {
        next.remoteRinging(call);
    }

    @Override
    public void ended(Call call) {
        next.ended(call);
    }

    @Override
    public void registration(Registration registration) {
        next.registration(registration);
    }
}
