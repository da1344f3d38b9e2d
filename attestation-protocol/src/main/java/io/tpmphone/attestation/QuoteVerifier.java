package io.tpmphone.attestation;

import io.tpmphone.attestation.VerificationException.Check;
import io.tpmphone.attestation.internal.AttestationChecks;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Objects;

/**
 * Verifies a TPM2_Quote (TPM 2.0 Part 3 §18.4) against an attestation key, the expected nonce and claimed PCR
 * values. Stateless and thread-safe.
 *
 * <p>Checks, in order (the first failure throws with its {@link Check}):
 * <ol>
 *   <li>{@link Check#KEY}: the signing key is an ECC or RSA (≥ 2048 bits) key with restricted, sign and
 *       fixedTPM set and decrypt clear, and a valid public point / modulus;</li>
 *   <li>{@link Check#SIGNATURE_ALGORITHM}: ECDSA with SHA-256/384 on ECC, RSASSA/RSAPSS with SHA-256/384/512 on
 *       RSA; if the key fixes a scheme the signature uses exactly that scheme and hash;</li>
 *   <li>{@link Check#SIGNATURE}: the signature verifies over the attestation bytes (ECDSA r, s in [1, n-1]);</li>
 *   <li>{@link Check#STRUCTURE}, {@link Check#MAGIC}, {@link Check#TYPE}: strict parse, TPM_GENERATED_VALUE,
 *       type quote;</li>
 *   <li>{@link Check#QUALIFYING_DATA}: extraData equals the expected nonce (constant-time);</li>
 *   <li>{@link Check#PCR_SELECTION}: the quoted selection equals {@code pcrValues.selection()};</li>
 *   <li>{@link Check#PCR_DIGEST}: pcrDigest equals {@code pcrValues.compositeDigest(h)}, with h the signature's
 *       hash (the TPM computes pcrDigest with the signing scheme's hash).</li>
 * </ol>
 *
 * <p>Not checked here: that the signing key belongs to a genuine TPM (bind it first, e.g. by credential
 * activation against a certified EK), clock/reset monotonicity, and whether the PCR values are good.
 */
public final class QuoteVerifier {
    private QuoteVerifier() {
    }

    /**
     * @param attest the marshalled {@code TPMS_ATTEST} ({@code quoted} of TPM2_Quote)
     * @param signature the marshalled {@code TPMT_SIGNATURE}
     * @param signingKey the attestation key's public area
     * @param expectedQualifyingData the nonce the verifier issued
     * @param pcrValues the PCR values the attester claims (e.g. from TPM2_PCR_Read or an event log replay)
     */
    public static VerifiedQuote verify(byte[] attest, byte[] signature, TpmtPublic signingKey,
            byte[] expectedQualifyingData, PcrValues pcrValues) throws VerificationException {
        Objects.requireNonNull(attest, "attest");
        Objects.requireNonNull(signature, "signature");
        Objects.requireNonNull(signingKey, "signingKey");
        Objects.requireNonNull(expectedQualifyingData, "expectedQualifyingData");
        AttestationChecks.requireUsableNonce(expectedQualifyingData);
        Objects.requireNonNull(pcrValues, "pcrValues");
        byte[] attestCopy = attest.clone();
        TpmtSignature sig = AttestationChecks.verifySignature(attestCopy, signature, signingKey);
        TpmsAttest parsed = AttestationChecks.parse(attestCopy, AttestType.QUOTE);
        AttestationChecks.checkQualifyingData(parsed, expectedQualifyingData);
        QuoteInfo info = parsed.quoteInfo().orElseThrow();
        if (!info.selection().equals(pcrValues.selection())) {
            throw new VerificationException(Check.PCR_SELECTION, "the quote covers " + info.selection()
                    + " but the PCR values given are for " + pcrValues.selection());
        }
        byte[] expectedDigest = pcrValues.compositeDigest(sig.hash());
        byte[] actualDigest = info.pcrDigest();
        if (!MessageDigest.isEqual(expectedDigest, actualDigest)) {
            throw new VerificationException(Check.PCR_DIGEST, "the quoted pcrDigest "
                    + HexFormat.of().formatHex(actualDigest) + " differs from the " + sig.hash().tpmName()
                    + " digest of the given PCR values " + HexFormat.of().formatHex(expectedDigest)
                    + " (the PCRs changed, or the values offered are not the quoted ones)");
        }
        return new VerifiedQuote(parsed, pcrValues, signingKey);
    }

    /**
     * Verifies a quote against a PCR digest known from elsewhere — e.g. a signed attestation result that appraised
     * the same state (a passport) — instead of PCR values: the same checks up to QUALIFYING_DATA, then
     * {@link Check#PCR_DIGEST}: pcrDigest equals {@code expectedPcrDigest}. Returns the parsed attestation.
     */
    public static TpmsAttest verifyDigest(byte[] attest, byte[] signature, TpmtPublic signingKey,
            byte[] expectedQualifyingData, byte[] expectedPcrDigest) throws VerificationException {
        Objects.requireNonNull(attest, "attest");
        Objects.requireNonNull(signature, "signature");
        Objects.requireNonNull(signingKey, "signingKey");
        Objects.requireNonNull(expectedQualifyingData, "expectedQualifyingData");
        Objects.requireNonNull(expectedPcrDigest, "expectedPcrDigest");
        AttestationChecks.requireUsableNonce(expectedQualifyingData);
        byte[] attestCopy = attest.clone();
        AttestationChecks.verifySignature(attestCopy, signature, signingKey);
        TpmsAttest parsed = AttestationChecks.parse(attestCopy, AttestType.QUOTE);
        AttestationChecks.checkQualifyingData(parsed, expectedQualifyingData);
        byte[] actualDigest = parsed.quoteInfo().orElseThrow().pcrDigest();
        if (!MessageDigest.isEqual(expectedPcrDigest, actualDigest)) {
            throw new VerificationException(Check.PCR_DIGEST, "the quoted pcrDigest "
                    + HexFormat.of().formatHex(actualDigest) + " is not the appraised "
                    + HexFormat.of().formatHex(expectedPcrDigest) + " (the state changed since it was appraised)");
        }
        return parsed;
    }
}
