package io.tpmphone.attestation;

import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/** Builds TPM-shaped evidence in software with JCA keys, for the verifier tests. */
final class Evidence {
    static final Set<ObjectAttribute> AK_ATTRIBUTES = EnumSet.of(ObjectAttribute.FIXED_TPM,
            ObjectAttribute.FIXED_PARENT, ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
            ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT);
    static final Set<ObjectAttribute> EK_ATTRIBUTES = EnumSet.of(ObjectAttribute.FIXED_TPM,
            ObjectAttribute.FIXED_PARENT, ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.ADMIN_WITH_POLICY,
            ObjectAttribute.RESTRICTED, ObjectAttribute.DECRYPT);
    /** TCG EK policy: PolicySecret(TPM_RH_ENDORSEMENT). */
    static final byte[] EK_POLICY = hex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
    static final ClockInfo CLOCK = new ClockInfo(123_456_789L, 7, 3, true);
    static final long FIRMWARE = 0x2019_0712_0000_0001L;
    static final SecureRandom RANDOM = new SecureRandom();

    private static KeyPair rsa2048;

    private Evidence() {
    }

    static byte[] hex(String s) {
        return java.util.HexFormat.of().parseHex(s);
    }

    static KeyPair ecKeyPair(EccCurve curve) throws GeneralSecurityException {
        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC");
        kpg.initialize(new ECGenParameterSpec(curve.jcaName()), RANDOM);
        return kpg.generateKeyPair();
    }

    static synchronized KeyPair rsaKeyPair() throws GeneralSecurityException {
        if (rsa2048 == null) {
            rsa2048 = freshRsaKeyPair();
        }
        return rsa2048;
    }

    static KeyPair freshRsaKeyPair() throws GeneralSecurityException {
        KeyPairGenerator kpg = KeyPairGenerator.getInstance("RSA");
        kpg.initialize(2048, RANDOM);
        return kpg.generateKeyPair();
    }

    static TpmtPublic eccAk(KeyPair kp, HashAlgorithm schemeHash) {
        return TpmtPublic.builder(KeyType.ECC).attributes(AK_ATTRIBUTES)
                .scheme(SchemeAlgorithm.ECDSA, schemeHash).publicKey(kp.getPublic()).build();
    }

    static TpmtPublic rsaAk(KeyPair kp, SchemeAlgorithm scheme, HashAlgorithm schemeHash) {
        return TpmtPublic.builder(KeyType.RSA).attributes(AK_ATTRIBUTES)
                .scheme(scheme, schemeHash).publicKey(kp.getPublic()).build();
    }

    static PcrValues pcrValues(String selection) {
        PcrSelection sel = PcrSelection.parse(selection);
        List<byte[]> values = new ArrayList<>();
        for (int pcr : sel.indices()) {
            byte[] v = new byte[sel.bank().digestLength()];
            Arrays.fill(v, (byte) (pcr * 17 + 1));
            values.add(v);
        }
        return PcrValues.of(sel, values);
    }

    static byte[] quote(byte[] nonce, PcrValues values, HashAlgorithm signatureHash) {
        return TpmsAttest.encodeQuote(hex("000b" + "11".repeat(32)), nonce, CLOCK, FIRMWARE, values.selection(),
                values.compositeDigest(signatureHash));
    }

    static byte[] nonce() {
        byte[] n = new byte[32];
        RANDOM.nextBytes(n);
        return n;
    }

    static byte[] signEcdsa(PrivateKey key, HashAlgorithm hash, EccCurve curve, byte[] data)
            throws GeneralSecurityException {
        Signature s = Signature.getInstance(hash.jcaName().replace("-", "") + "withECDSA");
        s.initSign(key, RANDOM);
        s.update(data);
        return TpmtSignature.ecdsaFromDer(hash, s.sign(), curve).encoded();
    }

    static byte[] signRsassa(PrivateKey key, HashAlgorithm hash, byte[] data) throws GeneralSecurityException {
        Signature s = Signature.getInstance(hash.jcaName().replace("-", "") + "withRSA");
        s.initSign(key);
        s.update(data);
        return TpmtSignature.rsassa(hash, s.sign()).encoded();
    }

    static byte[] signRsapss(PrivateKey key, HashAlgorithm hash, byte[] data) throws GeneralSecurityException {
        Signature s = Signature.getInstance("RSASSA-PSS");
        s.setParameter(new PSSParameterSpec(hash.jcaName(), "MGF1", new MGF1ParameterSpec(hash.jcaName()),
                hash.digestLength(), 1));
        s.initSign(key, RANDOM);
        s.update(data);
        return TpmtSignature.rsapss(hash, s.sign()).encoded();
    }

    static byte[] flipBit(byte[] data, int offset, int bit) {
        byte[] copy = data.clone();
        copy[offset] ^= (byte) (1 << bit);
        return copy;
    }
}
