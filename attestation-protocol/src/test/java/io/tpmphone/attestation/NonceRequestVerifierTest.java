package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.VerificationException.Check;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Nonce-request signatures: a known-answer vector made by swtpm 0.7.1 (our ECC P-256 AK template, TPM2_Hash ticket
 * then TPM2_Sign), then one tamper per checked field.
 */
class NonceRequestVerifierTest {
    /** The AK's TPMT_PUBLIC as swtpm created it from our template. */
    private static final byte[] AK = Evidence.hex("0023000b00050472000000100018000b0003001000203937922ee83aee5d22772b"
            + "6996edbc9eba5d642d523402c01cff5e4b56f43be80020b694552ed052521e3aa29b56ed02c59dfa092768895ef62f2b5367eb55"
            + "2fb32e");
    private static final long REQUESTED_AT = 1_700_000_000_123L;
    /** TPMT_SIGNATURE (ECDSA, SHA-256) over the encoding of (akId of AK, REQUESTED_AT). */
    private static final byte[] SIGNATURE = Evidence.hex("0018000b002002f5148852cc9a6b3cc8904b6c9987675dffb86f4f4ded56c"
            + "154c17f8865a08c0020de818ccb1df54db123ed604d557b4f2f41a131b32eb4ed50352403e35a6a1011");

    private static TpmtPublic ak() throws MalformedStructureException {
        return TpmtPublic.parse(AK);
    }

    private static NonceRequest request() throws MalformedStructureException {
        return new NonceRequest(HexFormat.of().formatHex(ak().name()), REQUESTED_AT);
    }

    @Test
    void encoding_isTheLabelTheAkIdAndTheTime() {
        NonceRequest r = new NonceRequest("000b01", 0x0102030405060708L);
        byte[] expected = Evidence.hex(HexFormat.of().formatHex("tpmphone-nonce-request-v1".getBytes(
                StandardCharsets.US_ASCII)) + "00" + "0006" + "303030623031" + "0102030405060708");
        assertArrayEquals(expected, r.encoded(), "canonical encoding: " + HexFormat.of().formatHex(r.encoded()));
        assertTrue((r.encoded()[0] & 0xff) != 0xff, "never starts like TPM_GENERATED_VALUE");
    }

    @Test
    void swtpmVector_verifies() throws Exception {
        VerifiedNonceRequest v = NonceRequestVerifier.verify(request(), SIGNATURE, ak());
        assertEquals(request(), v.request());
        assertEquals(SchemeAlgorithm.ECDSA, v.signature().algorithm());
        assertEquals(HashAlgorithm.SHA256, v.signature().hash());
    }

    @Test
    void anotherTime_isRejectedAtTheSignature() throws Exception {
        NonceRequest later = new NonceRequest(request().akId(), REQUESTED_AT + 1);
        expect(Check.SIGNATURE, later, SIGNATURE, ak());
    }

    @Test
    void aFlippedSignatureBit_isRejected() throws Exception {
        expect(Check.SIGNATURE, request(), Evidence.flipBit(SIGNATURE, SIGNATURE.length - 1, 0), ak());
        expect(Check.SIGNATURE, request(), Evidence.flipBit(SIGNATURE, 10, 3), ak());
    }

    @Test
    void aRequestNamingAnotherAk_isRejectedAtTheKey() throws Exception {
        String other = "000b" + "22".repeat(32);
        expect(Check.KEY, new NonceRequest(other, REQUESTED_AT), SIGNATURE, ak());
    }

    @Test
    void anotherAksSignature_isRejectedAtTheSignature() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P256);
        TpmtPublic other = Evidence.eccAk(kp, HashAlgorithm.SHA256);
        NonceRequest forOther = new NonceRequest(HexFormat.of().formatHex(other.name()), REQUESTED_AT);
        // The other key's name in the request, the enrolled key's signature: does not verify.
        expect(Check.SIGNATURE, forOther, SIGNATURE, other);
        // And a signature the other key made is no proof for the enrolled AK.
        byte[] otherSig = Evidence.signEcdsa(kp.getPrivate(), HashAlgorithm.SHA256, EccCurve.NIST_P256,
                request().encoded());
        expect(Check.SIGNATURE, request(), otherSig, ak());
        // The software key signs its own request fine: the same code path as for quotes.
        byte[] own = Evidence.signEcdsa(kp.getPrivate(), HashAlgorithm.SHA256, EccCurve.NIST_P256, forOther.encoded());
        assertEquals(forOther, NonceRequestVerifier.verify(forOther, own, other).request());
    }

    @Test
    void anUnrestrictedKey_isRejectedAtTheKey() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P256);
        Set<ObjectAttribute> attrs = EnumSet.copyOf(Evidence.AK_ATTRIBUTES);
        attrs.remove(ObjectAttribute.RESTRICTED);
        TpmtPublic unrestricted = TpmtPublic.builder(KeyType.ECC).attributes(attrs)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(kp.getPublic()).build();
        NonceRequest r = new NonceRequest(HexFormat.of().formatHex(unrestricted.name()), REQUESTED_AT);
        byte[] sig = Evidence.signEcdsa(kp.getPrivate(), HashAlgorithm.SHA256, EccCurve.NIST_P256, r.encoded());
        expect(Check.KEY, r, sig, unrestricted);
    }

    @Test
    void aSignatureOfAnotherAlgorithm_isRejected() throws Exception {
        byte[] rsassa = TpmtSignature.rsassa(HashAlgorithm.SHA256, new byte[256]).encoded();
        expect(Check.SIGNATURE_ALGORITHM, request(), rsassa, ak());
        byte[] sha384 = SIGNATURE.clone();
        sha384[3] = 0x0c; // TPM_ALG_SHA384: the AK's scheme is ECDSA-SHA256
        expect(Check.SIGNATURE_ALGORITHM, request(), sha384, ak());
    }

    @Test
    void malformedRequests_areRefusedAtConstruction() {
        assertThrows(IllegalArgumentException.class, () -> new NonceRequest("", 1));
        assertThrows(IllegalArgumentException.class, () -> new NonceRequest("a".repeat(201), 1));
        assertThrows(IllegalArgumentException.class, () -> new NonceRequest("ak id", 1));
        assertThrows(IllegalArgumentException.class, () -> new NonceRequest("ak", -1));
    }

    private static void expect(Check check, NonceRequest request, byte[] signature, TpmtPublic key) {
        VerificationException e = assertThrows(VerificationException.class,
                () -> NonceRequestVerifier.verify(request, signature, key), "expected " + check);
        assertEquals(check, e.check(), e.getMessage());
    }
}
