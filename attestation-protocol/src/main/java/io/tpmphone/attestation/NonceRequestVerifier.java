package io.tpmphone.attestation;

import io.tpmphone.attestation.VerificationException.Check;
import io.tpmphone.attestation.internal.AttestationChecks;
import java.util.HexFormat;
import java.util.Objects;

/**
 * Verifies that a {@link NonceRequest} was signed by an attestation key. Stateless and thread-safe.
 *
 * <p>Checks, in order (the first failure throws with its {@link Check}):
 * <ol>
 *   <li>{@link Check#KEY}: as for quotes, a restricted, fixedTPM, sign-only ECC or RSA (≥ 2048 bits) key — and the
 *       request names this key: {@code akId} is the hex of its name;</li>
 *   <li>{@link Check#SIGNATURE_ALGORITHM}: as for quotes (ECDSA on ECC, RSASSA/RSAPSS on RSA, the key's scheme);</li>
 *   <li>{@link Check#SIGNATURE}: the signature verifies over {@link NonceRequest#encoded()}.</li>
 * </ol>
 * The same code path verifies quote signatures ({@link QuoteVerifier}); only the signed bytes differ.
 *
 * <p>Not checked here: that the key is enrolled, and that the request is fresh (the server's job).
 */
public final class NonceRequestVerifier {
    private NonceRequestVerifier() {
    }

    /**
     * @param request the request as the server rebuilt it from the fields it received
     * @param signature the marshalled {@code TPMT_SIGNATURE} the host sent
     * @param signingKey the enrolled attestation key's public area
     */
    public static VerifiedNonceRequest verify(NonceRequest request, byte[] signature, TpmtPublic signingKey)
            throws VerificationException {
        Objects.requireNonNull(request, "request");
        Objects.requireNonNull(signature, "signature");
        Objects.requireNonNull(signingKey, "signingKey");
        String keyId = HexFormat.of().formatHex(signingKey.name());
        if (!keyId.equals(request.akId())) {
            throw new VerificationException(Check.KEY, "the request names AK " + abbreviate(request.akId())
                    + " but the signing key's name is " + abbreviate(keyId));
        }
        TpmtSignature sig = AttestationChecks.verifySignature(request.encoded(), signature.clone(), signingKey);
        return new VerifiedNonceRequest(request, signingKey, sig);
    }

    private static String abbreviate(String id) {
        return id.length() > 20 ? id.substring(0, 20) + "…" : id;
    }
}
