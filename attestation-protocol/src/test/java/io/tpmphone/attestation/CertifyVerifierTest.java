package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.flipBit;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.tpmphone.attestation.VerificationException.Check;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class CertifyVerifierTest {
    private KeyPair akKeys;
    private TpmtPublic ak;
    private TpmtPublic certified;
    private byte[] nonce;
    private byte[] attest;
    private byte[] signature;

    @BeforeEach
    void makeEvidence() throws GeneralSecurityException {
        akKeys = Evidence.ecKeyPair(EccCurve.NIST_P256);
        ak = Evidence.eccAk(akKeys, HashAlgorithm.SHA256);
        certified = TpmtPublic.builder(KeyType.ECC)
                .attributes(ObjectAttribute.FIXED_TPM, ObjectAttribute.FIXED_PARENT,
                        ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
                        ObjectAttribute.SIGN_ENCRYPT)
                .publicKey(Evidence.ecKeyPair(EccCurve.NIST_P256).getPublic()).build();
        nonce = Evidence.nonce();
        attest = TpmsAttest.encodeCertify(ak.name(), nonce, Evidence.CLOCK, Evidence.FIRMWARE, certified.name(),
                Evidence.hex("000b" + "22".repeat(32)));
        signature = sign(attest);
    }

    private byte[] sign(byte[] data) throws GeneralSecurityException {
        return Evidence.signEcdsa(akKeys.getPrivate(), HashAlgorithm.SHA256, EccCurve.NIST_P256, data);
    }

    private Check failure(byte[] a, byte[] s, byte[] n, TpmtPublic object) {
        return assertThrows(VerificationException.class, () -> CertifyVerifier.verify(a, s, ak, n, object)).check();
    }

    @Test
    void softwareCertify_verifies() throws Exception {
        VerifiedCertify v = CertifyVerifier.verify(attest, signature, ak, nonce, certified);
        assertArrayEquals(certified.name(), v.attest().certifyInfo().orElseThrow().name());
        assertEquals(certified, v.certifiedObject());
    }

    @Test
    void certifyOfAnotherObject_isRejected() throws Exception {
        TpmtPublic other = TpmtPublic.builder(KeyType.ECC).attributes(ObjectAttribute.SIGN_ENCRYPT)
                .publicKey(Evidence.ecKeyPair(EccCurve.NIST_P256).getPublic()).build();
        assertEquals(Check.CERTIFIED_NAME, failure(attest, signature, nonce, other));
    }

    @Test
    void wrongNonce_isRejected() {
        assertEquals(Check.QUALIFYING_DATA, failure(attest, signature, flipBit(nonce, 31, 7), certified));
    }

    @Test
    void tamperedAttest_failsSignature() {
        assertEquals(Check.SIGNATURE, failure(flipBit(attest, attest.length - 5, 1), signature, nonce, certified));
    }

    @Test
    void quoteGivenAsCertify_isRejected() throws Exception {
        byte[] quote = Evidence.quote(nonce, Evidence.pcrValues("sha256:0"), HashAlgorithm.SHA256);
        assertEquals(Check.TYPE, failure(quote, sign(quote), nonce, certified));
    }
}
