package io.tpmphone.attestation;

import java.util.Objects;

/** A nonce request whose signature {@link NonceRequestVerifier} verified with {@code signingKey}. */
public record VerifiedNonceRequest(NonceRequest request, TpmtPublic signingKey, TpmtSignature signature) {
    public VerifiedNonceRequest {
        Objects.requireNonNull(request, "request");
        Objects.requireNonNull(signingKey, "signingKey");
        Objects.requireNonNull(signature, "signature");
    }
}
