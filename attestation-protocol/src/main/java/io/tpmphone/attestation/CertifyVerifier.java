package io.tpmphone.attestation;

import io.tpmphone.attestation.VerificationException.Check;
import io.tpmphone.attestation.internal.AttestationChecks;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Objects;

/**
 * Verifies a TPM2_Certify (TPM 2.0 Part 3 §18.2): the attestation key vouches that the TPM holds an object of
 * the given public area. Stateless and thread-safe.
 *
 * <p>Applies the key, signature-algorithm and signature checks of {@link QuoteVerifier}, then
 * {@link Check#STRUCTURE}/{@link Check#MAGIC}/{@link Check#TYPE} (type certify), {@link Check#QUALIFYING_DATA},
 * and {@link Check#CERTIFIED_NAME}: {@code certifyInfo.name} equals {@code certifiedObject.name()}. The qualified
 * name is not checked (it depends on the object's parents, which a remote verifier does not know).
 */
public final class CertifyVerifier {
    private CertifyVerifier() {
    }

    public static VerifiedCertify verify(byte[] attest, byte[] signature, TpmtPublic signingKey,
            byte[] expectedQualifyingData, TpmtPublic certifiedObject) throws VerificationException {
        Objects.requireNonNull(attest, "attest");
        Objects.requireNonNull(signature, "signature");
        Objects.requireNonNull(signingKey, "signingKey");
        Objects.requireNonNull(expectedQualifyingData, "expectedQualifyingData");
        AttestationChecks.requireUsableNonce(expectedQualifyingData);
        Objects.requireNonNull(certifiedObject, "certifiedObject");
        byte[] attestCopy = attest.clone();
        AttestationChecks.verifySignature(attestCopy, signature, signingKey);
        TpmsAttest parsed = AttestationChecks.parse(attestCopy, AttestType.CERTIFY);
        AttestationChecks.checkQualifyingData(parsed, expectedQualifyingData);
        byte[] certifiedName = parsed.certifyInfo().orElseThrow().name();
        byte[] expectedName = certifiedObject.name();
        if (!MessageDigest.isEqual(certifiedName, expectedName)) {
            throw new VerificationException(Check.CERTIFIED_NAME, "the certified name "
                    + HexFormat.of().formatHex(certifiedName) + " differs from the name of the given object "
                    + HexFormat.of().formatHex(expectedName));
        }
        return new VerifiedCertify(parsed, certifiedObject, signingKey);
    }
}
