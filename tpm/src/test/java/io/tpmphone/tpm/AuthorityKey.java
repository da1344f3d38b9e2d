package io.tpmphone.tpm;

import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;

/** A policy authority in software (the attestation server's role): signs PolicyAuthorize approvals. Shared with other modules' tests through tpm's test-jar. */
public final class AuthorityKey {
    private final KeyPair pair;
    private final TpmtPublic publicArea;

    public AuthorityKey() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        pair = g.generateKeyPair();
        publicArea = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256)
                .attributes(ObjectAttribute.SIGN_ENCRYPT, ObjectAttribute.USER_WITH_AUTH)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(pair.getPublic()).build();
    }

    public TpmtPublic publicArea() {
        return publicArea;
    }

    /** An approval of {@code approvedPolicy}: ECDSA over {@code SHA256(approvedPolicy || policyRef)}. */
    public PolicyApproval approve(byte[] approvedPolicy, byte[] policyRef) throws Exception {
        return sign(approvedPolicy, policyRef, java.util.Optional.empty());
    }

    /**
     * An approval of {@code PolicyPCR(pcrPolicy)} then {@code PolicyCounterTimer(resetCount == resetCount)} and
     * {@code PolicyCounterTimer(clock < clockBefore)}.
     */
    public PolicyApproval approveUntil(byte[] pcrPolicy, long resetCount, long clockBefore, byte[] policyRef)
            throws Exception {
        byte[] approved = io.tpmphone.attestation.PolicyDigest.of(HashAlgorithm.SHA256, pcrPolicy)
                .policyValidWithin(resetCount, clockBefore).value();
        return sign(approved, policyRef, java.util.Optional.of(new PolicyApproval.Limit(resetCount, clockBefore)));
    }

    private PolicyApproval sign(byte[] approvedPolicy, byte[] policyRef,
                                java.util.Optional<PolicyApproval.Limit> limit)
            throws Exception {
        byte[] aHash = HashAlgorithm.SHA256.digest(approvedPolicy, policyRef);
        Signature ecdsa = Signature.getInstance("NONEwithECDSA");
        ecdsa.initSign(pair.getPrivate());
        ecdsa.update(aHash);
        return new PolicyApproval(approvedPolicy, policyRef,
                TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, ecdsa.sign(), EccCurve.NIST_P256).encoded(),
                publicArea.encoded(), limit);
    }
}
