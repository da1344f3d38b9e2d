package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.security.InvalidKeyException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.PublicKey;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import org.junit.jupiter.api.Test;

class TpmtPublicTest {
    private static final String G_X = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
    private static final String G_Y = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
    /** ECC P-256 AK (fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign, ECDSA-SHA256), point G. */
    private static final byte[] HAND_ECC_AK = hex("0023" + "000b" + "00050072" + "0000" + "0010" + "0018000b"
            + "0003" + "0010" + "0020" + G_X + "0020" + G_Y);
    /** 000b || SHA-256(HAND_ECC_AK), computed outside Java. */
    private static final byte[] HAND_ECC_AK_NAME =
            hex("000b62854727bebcef250a3a01b5aab872a2da174687ffeab8ee08fdbc80c86d6c04");

    @Test
    void handAssembledEccAk_parsesEveryField() throws Exception {
        TpmtPublic p = TpmtPublic.parse(HAND_ECC_AK);
        assertEquals(KeyType.ECC, p.type());
        assertEquals(HashAlgorithm.SHA256, p.nameAlg());
        assertEquals(Evidence.AK_ATTRIBUTES, p.attributes());
        assertTrue(p.has(ObjectAttribute.RESTRICTED));
        assertFalse(p.has(ObjectAttribute.DECRYPT));
        assertEquals(0, p.authPolicy().length);
        assertFalse(p.symmetric().isPresent());
        assertEquals(SchemeAlgorithm.ECDSA, p.scheme());
        assertEquals(HashAlgorithm.SHA256, p.schemeHash().orElseThrow());
        assertEquals(EccCurve.NIST_P256, p.curve().orElseThrow());
        assertArrayEquals(hex(G_X), p.eccX());
        assertArrayEquals(hex(G_Y), p.eccY());
    }

    @Test
    void name_isNameAlgThenDigestOfPublicArea() throws Exception {
        assertArrayEquals(HAND_ECC_AK_NAME, TpmtPublic.parse(HAND_ECC_AK).name());
    }

    @Test
    void builder_producesTheHandAssembledBytes() {
        TpmtPublic built = TpmtPublic.builder(KeyType.ECC).attributes(Evidence.AK_ATTRIBUTES)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).ecc(EccCurve.NIST_P256, hex(G_X), hex(G_Y))
                .build();
        assertArrayEquals(HAND_ECC_AK, built.encoded());
    }

    @Test
    void parseTpm2b_requiresExactSize() throws Exception {
        byte[] tpm2b = TpmtPublic.parse(HAND_ECC_AK).encodedTpm2b();
        assertArrayEquals(HAND_ECC_AK, TpmtPublic.parseTpm2b(tpm2b).encoded());
        assertThrows(MalformedStructureException.class,
                () -> TpmtPublic.parseTpm2b(Arrays.copyOf(tpm2b, tpm2b.length + 1)));
        assertThrows(MalformedStructureException.class, () -> TpmtPublic.parse(tpm2b));
    }

    @Test
    void eccToPublicKey_matchesJcaKey() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P256);
        TpmtPublic p = Evidence.eccAk(kp, HashAlgorithm.SHA256);
        TpmtPublic reparsed = TpmtPublic.parse(p.encoded());
        assertArrayEquals(p.encoded(), reparsed.encoded());
        PublicKey key = reparsed.toPublicKey();
        assertEquals(((ECPublicKey) kp.getPublic()).getW(), ((ECPublicKey) key).getW());
        assertArrayEquals(kp.getPublic().getEncoded(), p.subjectPublicKeyInfo());
    }

    @Test
    void p384ToPublicKey_matchesJcaKey() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P384);
        TpmtPublic p = Evidence.eccAk(kp, HashAlgorithm.SHA384);
        assertEquals(EccCurve.NIST_P384, p.curve().orElseThrow());
        assertEquals(48, p.eccX().length);
        assertArrayEquals(kp.getPublic().getEncoded(), p.subjectPublicKeyInfo());
    }

    @Test
    void rsaToPublicKey_matchesJcaKey_andExponentZeroMeans65537() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        TpmtPublic p = Evidence.rsaAk(kp, SchemeAlgorithm.RSASSA, HashAlgorithm.SHA256);
        assertEquals(2048, p.rsaKeyBits());
        byte[] enc = p.encoded();
        // exponent field (u32 right before the 2-byte size and 256-byte modulus) is written as 0 like a TPM
        assertArrayEquals(new byte[4], Arrays.copyOfRange(enc, enc.length - 262, enc.length - 258));
        assertEquals(BigInteger.valueOf(65537), p.rsaExponent());
        RSAPublicKey key = (RSAPublicKey) TpmtPublic.parse(enc).toPublicKey();
        assertEquals(((RSAPublicKey) kp.getPublic()).getModulus(), key.getModulus());
        assertArrayEquals(kp.getPublic().getEncoded(), p.subjectPublicKeyInfo());
    }

    @Test
    void pem_isParseableSpki() throws Exception {
        TpmtPublic p = TpmtPublic.parse(HAND_ECC_AK);
        String pem = p.toPem();
        assertTrue(pem.startsWith("-----BEGIN PUBLIC KEY-----\n"), pem);
        assertTrue(pem.strip().endsWith("-----END PUBLIC KEY-----"), pem);
        assertTrue(pem.lines().allMatch(l -> l.length() <= 64), "RFC 7468: lines of at most 64 characters: " + pem);
        String body = pem.replaceAll("-----[A-Z ]+-----", "").replace("\n", "");
        PublicKey key = KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(
                Base64.getDecoder().decode(body)));
        assertEquals(p.toPublicKey(), key);
        // named-curve OID 1.2.840.10045.3.1.7 is in the SPKI, not explicit parameters
        assertTrue(java.util.HexFormat.of().formatHex(p.subjectPublicKeyInfo()).contains("06082a8648ce3d030107"));
    }

    @Test
    void pointOffTheCurve_isRejectedByToPublicKey() throws Exception {
        byte[] bad = HAND_ECC_AK.clone();
        bad[bad.length - 1] ^= 1;
        TpmtPublic p = TpmtPublic.parse(bad);
        InvalidKeyException e = assertThrows(InvalidKeyException.class, p::toPublicKey);
        assertTrue(e.getMessage().contains("not on the curve"), e.getMessage());
    }

    @Test
    void template_parsesButHasNoPublicKey() throws Exception {
        TpmtPublic t = TpmtPublic.builder(KeyType.RSA).attributes(Evidence.EK_ATTRIBUTES).authPolicy(Evidence.EK_POLICY)
                .symmetric(SymmetricDefinition.AES_128_CFB).rsa(2048, 0, new byte[0]).build();
        assertEquals(0, t.rsaModulus().length);
        assertThrows(InvalidKeyException.class, t::toPublicKey);
    }

    @Test
    void publicAreaTruncatedAtEveryLength_isRejected() {
        for (int len = 0; len < HAND_ECC_AK.length; len++) {
            byte[] cut = Arrays.copyOf(HAND_ECC_AK, len);
            assertThrows(MalformedStructureException.class, () -> TpmtPublic.parse(cut), "length " + len);
        }
    }

    @Test
    void publicAreaWithTrailingByte_isRejected() {
        assertThrows(MalformedStructureException.class,
                () -> TpmtPublic.parse(Arrays.copyOf(HAND_ECC_AK, HAND_ECC_AK.length + 1)));
    }

    @Test
    void unknownTypeCurveKdfOrReservedBits_areRejected() {
        assertField("type", patch(HAND_ECC_AK, 0, "0024"));
        assertField("nameAlg", patch(HAND_ECC_AK, 2, "0010"));
        assertField("objectAttributes", patch(HAND_ECC_AK, 4, "00050073"));
        assertField("parameters.eccDetail.scheme.scheme", patch(HAND_ECC_AK, 12, "001a"));
        assertField("parameters.eccDetail.curveID", patch(HAND_ECC_AK, 16, "0005"));
        assertField("parameters.eccDetail.kdf.scheme", patch(HAND_ECC_AK, 18, "0020"));
    }

    @Test
    void authPolicyOfWrongLength_isRejected() {
        byte[] bad = TpmtPublic.builder(KeyType.ECC).authPolicy(new byte[31]).ecc(EccCurve.NIST_P256, hex(G_X),
                hex(G_Y)).encode();
        assertField("authPolicy", bad);
    }

    @Test
    void rsaModulusOfWrongLength_isRejected() {
        byte[] bad = TpmtPublic.builder(KeyType.RSA).rsa(2048, 0, new byte[255]).encode();
        assertField("unique.rsa", bad);
    }

    @Test
    void keyedHashObject_parses() throws Exception {
        TpmtPublic sealed = TpmtPublic.builder(KeyType.KEYEDHASH).attributes(ObjectAttribute.FIXED_TPM,
                ObjectAttribute.FIXED_PARENT).authPolicy(new byte[32]).unique(new byte[32]).build();
        assertEquals(KeyType.KEYEDHASH, sealed.type());
        assertEquals(SchemeAlgorithm.NULL, sealed.scheme());
        assertArrayEquals(sealed.encoded(), TpmtPublic.parse(sealed.encoded()).encoded());
        assertThrows(InvalidKeyException.class, sealed::toPublicKey);
    }

    private static byte[] patch(byte[] base, int offset, String hexBytes) {
        byte[] out = base.clone();
        byte[] p = hex(hexBytes);
        System.arraycopy(p, 0, out, offset, p.length);
        return out;
    }

    private static void assertField(String field, byte[] bad) {
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> TpmtPublic.parse(bad));
        assertEquals(field, e.field(), e.getMessage());
    }
}
