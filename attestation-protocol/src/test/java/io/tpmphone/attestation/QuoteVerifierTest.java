package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.flipBit;
import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.VerificationException.Check;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.interfaces.ECPublicKey;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class QuoteVerifierTest {
    private KeyPair ecKeys;
    private TpmtPublic ecAk;
    private byte[] nonce;
    private PcrValues pcrs;
    private byte[] attest;
    private byte[] signature;

    @BeforeEach
    void makeEvidence() throws GeneralSecurityException {
        ecKeys = Evidence.ecKeyPair(EccCurve.NIST_P256);
        ecAk = Evidence.eccAk(ecKeys, HashAlgorithm.SHA256);
        nonce = Evidence.nonce();
        pcrs = Evidence.pcrValues("sha256:0,1,2,7,16");
        attest = Evidence.quote(nonce, pcrs, HashAlgorithm.SHA256);
        signature = sign(attest);
    }

    private byte[] sign(byte[] data) throws GeneralSecurityException {
        return Evidence.signEcdsa(ecKeys.getPrivate(), HashAlgorithm.SHA256, EccCurve.NIST_P256, data);
    }

    private Check failure(byte[] attest, byte[] signature, TpmtPublic key, byte[] nonce, PcrValues values) {
        return assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, signature, key, nonce, values)).check();
    }

    @Test
    void softwareEcdsaQuote_verifies() throws Exception {
        VerifiedQuote q = QuoteVerifier.verify(attest, signature, ecAk, nonce, pcrs);
        assertArrayEquals(attest, q.attest().encoded());
        assertArrayEquals(nonce, q.attest().extraData());
        assertEquals(pcrs, q.pcrValues());
        assertEquals(ecAk, q.signingKey());
        assertEquals(Evidence.CLOCK, q.attest().clockInfo());
    }

    @Test
    void quoteSignedWithSha384_usesSha384PcrDigest() throws Exception {
        TpmtPublic ak = TpmtPublic.builder(KeyType.ECC).attributes(Evidence.AK_ATTRIBUTES)
                .publicKey(ecKeys.getPublic()).build(); // scheme NULL: the signer chooses the hash
        byte[] a384 = Evidence.quote(nonce, pcrs, HashAlgorithm.SHA384);
        byte[] s384 = Evidence.signEcdsa(ecKeys.getPrivate(), HashAlgorithm.SHA384, EccCurve.NIST_P256, a384);
        QuoteVerifier.verify(a384, s384, ak, nonce, pcrs);
        byte[] aWrongHash = Evidence.quote(nonce, pcrs, HashAlgorithm.SHA256);
        byte[] sWrongHash = Evidence.signEcdsa(ecKeys.getPrivate(), HashAlgorithm.SHA384, EccCurve.NIST_P256,
                aWrongHash);
        assertEquals(Check.PCR_DIGEST, failure(aWrongHash, sWrongHash, ak, nonce, pcrs));
    }

    @Test
    void p384Quote_verifies() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P384);
        TpmtPublic ak = Evidence.eccAk(kp, HashAlgorithm.SHA384);
        byte[] a = Evidence.quote(nonce, pcrs, HashAlgorithm.SHA384);
        QuoteVerifier.verify(a, Evidence.signEcdsa(kp.getPrivate(), HashAlgorithm.SHA384, EccCurve.NIST_P384, a),
                ak, nonce, pcrs);
    }

    @Test
    void rsassaQuote_verifies() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        TpmtPublic ak = Evidence.rsaAk(kp, SchemeAlgorithm.RSASSA, HashAlgorithm.SHA256);
        byte[] sig = Evidence.signRsassa(kp.getPrivate(), HashAlgorithm.SHA256, attest);
        QuoteVerifier.verify(attest, sig, ak, nonce, pcrs);
        assertEquals(Check.SIGNATURE, failure(flipBit(attest, 20, 0), sig, ak, nonce, pcrs));
        byte[] badSig = flipBit(sig, sig.length - 1, 0);
        assertEquals(Check.SIGNATURE, failure(attest, badSig, ak, nonce, pcrs));
    }

    @Test
    void rsapssQuote_verifies() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        TpmtPublic ak = Evidence.rsaAk(kp, SchemeAlgorithm.RSAPSS, HashAlgorithm.SHA256);
        byte[] sig = Evidence.signRsapss(kp.getPrivate(), HashAlgorithm.SHA256, attest);
        QuoteVerifier.verify(attest, sig, ak, nonce, pcrs);
        assertEquals(Check.SIGNATURE, failure(flipBit(attest, 3, 7), sig, ak, nonce, pcrs));
    }

    @Test
    void rsassaSignatureOnPssKey_isRejected() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        TpmtPublic ak = Evidence.rsaAk(kp, SchemeAlgorithm.RSAPSS, HashAlgorithm.SHA256);
        byte[] sig = Evidence.signRsassa(kp.getPrivate(), HashAlgorithm.SHA256, attest);
        assertEquals(Check.SIGNATURE_ALGORITHM, failure(attest, sig, ak, nonce, pcrs));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3, 4, 5, 6, 8, 40, 60, 80, 90, 100, 110})
    void attestWithOneBitFlipped_failsSignature(int offset) {
        int at = Math.min(offset, attest.length - 1);
        assertEquals(Check.SIGNATURE, failure(flipBit(attest, at, at % 8), signature, ecAk, nonce, pcrs));
    }

    @Test
    void attestWithLastBitFlipped_failsSignature() {
        assertEquals(Check.SIGNATURE, failure(flipBit(attest, attest.length - 1, 0), signature, ecAk, nonce, pcrs));
    }

    @Test
    void signatureWithRorSFlipped_failsSignature() {
        TpmtSignature sig = assertDoesNotThrowParse(signature);
        byte[] r = sig.r();
        byte[] s = sig.s();
        byte[] badR = TpmtSignature.ecdsa(HashAlgorithm.SHA256, flipBit(r, 10, 3), s).encoded();
        byte[] badS = TpmtSignature.ecdsa(HashAlgorithm.SHA256, r, flipBit(s, 31, 0)).encoded();
        assertEquals(Check.SIGNATURE, failure(attest, badR, ecAk, nonce, pcrs));
        assertEquals(Check.SIGNATURE, failure(attest, badS, ecAk, nonce, pcrs));
    }

    @Test
    void allZeroSignature_isRejected() {
        byte[] zeros = TpmtSignature.ecdsa(HashAlgorithm.SHA256, new byte[32], new byte[32]).encoded();
        VerificationException e = assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, zeros, ecAk, nonce, pcrs));
        assertEquals(Check.SIGNATURE, e.check());
        assertTrue(e.getMessage().contains("[1, n-1]"), e.getMessage());
    }

    @Test
    void signatureWithRequalToOrder_isRejected() {
        byte[] n = ((ECPublicKey) ecKeys.getPublic()).getParams().getOrder().toByteArray();
        byte[] n32 = java.util.Arrays.copyOfRange(n, n.length - 32, n.length);
        byte[] sig = TpmtSignature.ecdsa(HashAlgorithm.SHA256, n32, assertDoesNotThrowParse(signature).s())
                .encoded();
        assertEquals(Check.SIGNATURE, failure(attest, sig, ecAk, nonce, pcrs));
    }

    @Test
    void signatureByAnotherKey_failsSignature() throws Exception {
        KeyPair other = Evidence.ecKeyPair(EccCurve.NIST_P256);
        byte[] sig = Evidence.signEcdsa(other.getPrivate(), HashAlgorithm.SHA256, EccCurve.NIST_P256, attest);
        assertEquals(Check.SIGNATURE, failure(attest, sig, ecAk, nonce, pcrs));
    }

    @Test
    void keyWithFlippedX_isRejected() {
        byte[] x = flipBit(ecAk.eccX(), 5, 2);
        TpmtPublic tampered = TpmtPublic.builder(KeyType.ECC).attributes(Evidence.AK_ATTRIBUTES)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).ecc(EccCurve.NIST_P256, x, ecAk.eccY()).build();
        // Almost surely off the curve: an invalid point is a KEY failure, never a passing signature.
        assertEquals(Check.KEY, failure(attest, signature, tampered, nonce, pcrs));
    }

    @Test
    void nonRestrictedKey_isRejected() {
        Set<ObjectAttribute> attrs = EnumSet.copyOf(Evidence.AK_ATTRIBUTES);
        attrs.remove(ObjectAttribute.RESTRICTED);
        TpmtPublic key = TpmtPublic.builder(KeyType.ECC).attributes(attrs)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(ecKeys.getPublic()).build();
        VerificationException e = assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, signature, key, nonce, pcrs));
        assertEquals(Check.KEY, e.check());
        assertTrue(e.getMessage().contains("RESTRICTED"), e.getMessage());
    }

    @Test
    void keyThatAlsoDecrypts_isRejected() {
        Set<ObjectAttribute> attrs = EnumSet.copyOf(Evidence.AK_ATTRIBUTES);
        attrs.add(ObjectAttribute.DECRYPT);
        TpmtPublic key = TpmtPublic.builder(KeyType.ECC).attributes(attrs).publicKey(ecKeys.getPublic()).build();
        assertEquals(Check.KEY, failure(attest, signature, key, nonce, pcrs));
    }

    @Test
    void keyWithoutFixedTpm_isRejected() {
        Set<ObjectAttribute> attrs = EnumSet.copyOf(Evidence.AK_ATTRIBUTES);
        attrs.remove(ObjectAttribute.FIXED_TPM);
        TpmtPublic key = TpmtPublic.builder(KeyType.ECC).attributes(attrs).publicKey(ecKeys.getPublic()).build();
        assertEquals(Check.KEY, failure(attest, signature, key, nonce, pcrs));
    }

    @Test
    void sha1Signature_isRejected() throws Exception {
        TpmtPublic ak = TpmtPublic.builder(KeyType.ECC).attributes(Evidence.AK_ATTRIBUTES)
                .publicKey(ecKeys.getPublic()).build();
        byte[] a = Evidence.quote(nonce, pcrs, HashAlgorithm.SHA1);
        byte[] sig = Evidence.signEcdsa(ecKeys.getPrivate(), HashAlgorithm.SHA1, EccCurve.NIST_P256, a);
        assertEquals(Check.SIGNATURE_ALGORITHM, failure(a, sig, ak, nonce, pcrs));
    }

    @Test
    void signatureHashDifferentFromKeyScheme_isRejected() throws Exception {
        byte[] a = Evidence.quote(nonce, pcrs, HashAlgorithm.SHA384);
        byte[] sig = Evidence.signEcdsa(ecKeys.getPrivate(), HashAlgorithm.SHA384, EccCurve.NIST_P256, a);
        assertEquals(Check.SIGNATURE_ALGORITHM, failure(a, sig, ecAk, nonce, pcrs));
    }

    @Test
    void rsaSignatureOnEccKey_isRejected() throws Exception {
        byte[] sig = Evidence.signRsassa(Evidence.rsaKeyPair().getPrivate(), HashAlgorithm.SHA256, attest);
        assertEquals(Check.SIGNATURE_ALGORITHM, failure(attest, sig, ecAk, nonce, pcrs));
    }

    @Test
    void unknownSignatureAlgorithm_isRejected() {
        byte[] hmacSig = hex("0005000b0020" + "00".repeat(32));
        assertEquals(Check.SIGNATURE_ALGORITHM, failure(attest, hmacSig, ecAk, nonce, pcrs));
    }

    @Test
    void signatureWithTrailingByte_isRejected() {
        byte[] longer = java.util.Arrays.copyOf(signature, signature.length + 1);
        assertEquals(Check.SIGNATURE, failure(attest, longer, ecAk, nonce, pcrs));
    }

    @Test
    void wrongNonce_isRejected() {
        VerificationException e = assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, signature, ecAk, flipBit(nonce, 0, 0), pcrs));
        assertEquals(Check.QUALIFYING_DATA, e.check());
    }

    @Test
    void tamperedPcrValue_isRejected() {
        PcrValues tampered = pcrs.withValue(7, flipBit(pcrs.value(7), 0, 0));
        assertEquals(Check.PCR_DIGEST, failure(attest, signature, ecAk, nonce, tampered));
    }

    @Test
    void valuesForAnotherSelection_areRejected() {
        PcrValues other = Evidence.pcrValues("sha256:0,1,2,7");
        assertEquals(Check.PCR_SELECTION, failure(attest, signature, ecAk, nonce, other));
    }

    @Test
    void signedAttestWithWrongMagic_isRejected() throws Exception {
        byte[] bad = attest.clone();
        bad[0] = 0x00;
        assertEquals(Check.MAGIC, failure(bad, sign(bad), ecAk, nonce, pcrs));
    }

    @Test
    void signedCertifyGivenAsQuote_isRejected() throws Exception {
        byte[] certify = TpmsAttest.encodeCertify(new byte[0], nonce, Evidence.CLOCK, 1, ecAk.name(), ecAk.name());
        assertEquals(Check.TYPE, failure(certify, sign(certify), ecAk, nonce, pcrs));
    }

    @Test
    void signedUnsupportedType_isRejected() throws Exception {
        byte[] bad = TpmsAttest.encode(TpmsAttest.MAGIC_TPM_GENERATED, 0x8014, new byte[0], nonce, Evidence.CLOCK,
                1, new byte[0]);
        VerificationException e = assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(bad, sign(bad), ecAk, nonce, pcrs));
        assertEquals(Check.TYPE, e.check());
        assertTrue(e.getMessage().contains("0x8014"), e.getMessage());
    }

    @Test
    void signedAttestWithTrailingByte_isRejected() throws Exception {
        byte[] bad = java.util.Arrays.copyOf(attest, attest.length + 1);
        assertEquals(Check.STRUCTURE, failure(bad, sign(bad), ecAk, nonce, pcrs));
    }

    @Test
    void signedMultiBankSelection_isRejected() throws Exception {
        byte[] body = hex("00000002000b03010000000403010000" + "0020" + "00".repeat(32));
        byte[] bad = TpmsAttest.encode(TpmsAttest.MAGIC_TPM_GENERATED, AttestType.QUOTE.tag(), new byte[0], nonce,
                Evidence.CLOCK, 1, body);
        assertEquals(Check.PCR_SELECTION, failure(bad, sign(bad), ecAk, nonce, pcrs));
    }

    @Test
    void callerArraysAreNotRetained() throws Exception {
        byte[] a = attest.clone();
        VerifiedQuote q = QuoteVerifier.verify(a, signature, ecAk, nonce, pcrs);
        a[10] ^= 1;
        assertArrayEquals(attest, q.attest().encoded());
    }

    private static TpmtSignature assertDoesNotThrowParse(byte[] sig) {
        try {
            return TpmtSignature.parse(sig);
        } catch (MalformedStructureException e) {
            throw new AssertionError(e);
        }
    }
}
