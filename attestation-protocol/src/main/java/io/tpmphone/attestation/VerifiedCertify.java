package io.tpmphone.attestation;

import java.util.Objects;

/**
 * A certification that {@link CertifyVerifier} verified: {@code signingKey} attested that the TPM holds an
 * object whose name is that of {@code certifiedObject}, with the expected qualifying data.
 */
public record VerifiedCertify(TpmsAttest attest, TpmtPublic certifiedObject, TpmtPublic signingKey) {
    public VerifiedCertify {
        Objects.requireNonNull(attest, "attest");
        Objects.requireNonNull(certifiedObject, "certifiedObject");
        Objects.requireNonNull(signingKey, "signingKey");
    }
}
