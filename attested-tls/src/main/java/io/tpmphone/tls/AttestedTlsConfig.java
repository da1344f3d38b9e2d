package io.tpmphone.tls;

import io.tpmphone.attestation.IntegrityLevel;
import java.time.Clock;
import java.util.Objects;
import java.util.Optional;

/**
 * How one side of an attested connection behaves: the identity it presents (none for a relying party that does not
 * attest itself), how it verifies the peer, the level it asks the peer for in its {@code attestation_request}, and the
 * level below which it ends the handshake itself ({@code access_denied}). With {@code FAILED} as that floor the TLS
 * layer only reports the peer's level and the call policy above it decides (a SIP 403 with the reason is more useful
 * to a user than a TLS alert). Immutable.
 */
public record AttestedTlsConfig(Optional<HostIdentity> identity, PassportVerifier verifier,
                                IntegrityLevel requestedLevel, IntegrityLevel handshakeFloor, Clock clock,
                                boolean attest) {
    public AttestedTlsConfig {
        Objects.requireNonNull(identity, "identity");
        Objects.requireNonNull(verifier, "verifier");
        Objects.requireNonNull(requestedLevel, "requestedLevel");
        Objects.requireNonNull(handshakeFloor, "handshakeFloor");
        Objects.requireNonNull(clock, "clock");
    }

    /** A host that attests itself and reports the peer's level, asking for at least MEASURED. */
    public static AttestedTlsConfig of(HostIdentity identity, PassportVerifier verifier, Clock clock) {
        return new AttestedTlsConfig(Optional.of(identity), verifier, IntegrityLevel.MEASURED, IntegrityLevel.FAILED,
                clock, true);
    }

    public AttestedTlsConfig withHandshakeFloor(IntegrityLevel floor) {
        return new AttestedTlsConfig(identity, verifier, requestedLevel, floor, clock, attest);
    }

    /**
     * The same TLS 1.3 without attestation: no {@code attestation_request} is sent, so neither side produces evidence
     * (the baseline the call-setup benchmark compares against, and how an ordinary TLS peer is treated).
     */
    public AttestedTlsConfig withoutAttestation() {
        return new AttestedTlsConfig(identity, verifier, requestedLevel, handshakeFloor, clock, false);
    }
}
