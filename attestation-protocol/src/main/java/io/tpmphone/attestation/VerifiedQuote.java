package io.tpmphone.attestation;

import java.util.Objects;

/**
 * A quote that {@link QuoteVerifier} verified: the attestation was signed by {@code signingKey}, carries the
 * expected qualifying data, and its PCR digest matches {@code pcrValues}.
 */
public record VerifiedQuote(TpmsAttest attest, PcrValues pcrValues, TpmtPublic signingKey) {
    public VerifiedQuote {
        Objects.requireNonNull(attest, "attest");
        Objects.requireNonNull(pcrValues, "pcrValues");
        Objects.requireNonNull(signingKey, "signingKey");
    }
}
