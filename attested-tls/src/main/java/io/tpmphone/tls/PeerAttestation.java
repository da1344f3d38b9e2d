package io.tpmphone.tls;

import io.tpmphone.attestation.IntegrityLevel;
import java.time.Duration;
import java.time.Instant;
import java.util.Objects;
import java.util.Optional;

/**
 * What this side established about the peer of one handshake: its integrity level, the host name the evidence and
 * the device certificate agree on (empty when unverified), a one-line summary for the user, when the attestation
 * server appraised the peer's state (the passport's issue time) and when this side verified it, and why the level is
 * what it is. Immutable.
 */
public record PeerAttestation(IntegrityLevel level, Optional<String> host, String summary,
                              Optional<Instant> appraisedAt, Instant verifiedAt, String reason) {
    public PeerAttestation {
        Objects.requireNonNull(level, "level");
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(summary, "summary");
        Objects.requireNonNull(appraisedAt, "appraisedAt");
        Objects.requireNonNull(verifiedAt, "verifiedAt");
        Objects.requireNonNull(reason, "reason");
    }

    /** A peer that offered no evidence (an ordinary TLS peer, or the extension stripped). */
    public static PeerAttestation unattested(Optional<String> host, Instant now, String reason) {
        return new PeerAttestation(IntegrityLevel.UNATTESTED, host, "no attestation: " + reason, Optional.empty(),
                now, reason);
    }

    /**
     * Evidence that did not verify: FAILED, with a summary naming the check and the reason {@code "CHECK: what
     * failed"} (for a quote, {@code "QUOTE: QUALIFYING_DATA: ..."}).
     */
    public static PeerAttestation failed(Optional<String> host, Instant now, PassportException refusal) {
        return new PeerAttestation(IntegrityLevel.FAILED, host, "evidence refused at " + refusal.check(),
                Optional.empty(), now, refusal.getMessage());
    }

    /** How old the appraisal behind the level is, at verification time. */
    public Optional<Duration> freshness() {
        return appraisedAt.map(a -> Duration.between(a, verifiedAt));
    }

    /** One line for the user: level, host, summary and freshness. */
    public String display() {
        return level + " " + host.orElse("(unverified peer)") + " — " + summary
                + freshness().map(f -> ", appraised " + f.toSeconds() + " s ago").orElse("");
    }
}
