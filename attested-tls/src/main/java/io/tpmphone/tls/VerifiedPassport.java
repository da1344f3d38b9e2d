package io.tpmphone.tls;

import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.TpmtPublic;
import java.time.Instant;
import java.util.Objects;

/**
 * A peer's evidence that {@link PassportVerifier#verify} accepted: the host its device certificate and its passport
 * agree on, the attestation server's signed result, the AK that made the fresh quote over this handshake's binder,
 * and when this side checked it. Immutable.
 */
public record VerifiedPassport(String host, AttestationResult result, TpmtPublic ak, Instant verifiedAt) {
    public VerifiedPassport {
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(result, "result");
        Objects.requireNonNull(ak, "ak");
        Objects.requireNonNull(verifiedAt, "verifiedAt");
    }

    /** The level the attestation server rated the peer's state, which the fresh quote shows it is still in. */
    public IntegrityLevel level() {
        return result.level();
    }
}
