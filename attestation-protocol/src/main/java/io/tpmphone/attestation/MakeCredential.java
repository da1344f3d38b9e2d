package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.EcCurves;
import io.tpmphone.attestation.internal.Kdf;
import io.tpmphone.attestation.internal.TpmWriter;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.interfaces.ECPublicKey;
import java.security.spec.ECParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.util.Arrays;
import java.util.Objects;
import javax.crypto.Cipher;
import javax.crypto.KeyAgreement;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;
import javax.crypto.spec.SecretKeySpec;

/**
 * The verifier side of credential activation (TPM 2.0 Part 1 §24, Part 3 §12.6 TPM2_MakeCredential), in
 * software: protects a credential so that only the TPM holding the endorsement key, and only for the object of
 * the given name, can recover it with TPM2_ActivateCredential. Stateless and thread-safe.
 *
 * <p>Seed: RSA EK — random, {@code nameAlg} digest size, RSA-OAEP(nameAlg, MGF1-nameAlg, label "IDENTITY\0");
 * ECC EK — ephemeral ECDH on the EK's curve, {@code seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, ek.x)}.
 * Then {@code symKey = KDFa(nameAlg, seed, "STORAGE", objectName, "", symBits)},
 * {@code encIdentity = AES-CFB(symKey, IV 0, u16 size || credential)},
 * {@code hmacKey = KDFa(nameAlg, seed, "INTEGRITY", "", "", digestBits)},
 * {@code integrityHMAC = HMAC(hmacKey, encIdentity || objectName)}. Transient keys are wiped after use.
 */
public final class MakeCredential {
    private static final int AES_BLOCK = 16;

    private MakeCredential() {
    }

    /**
     * @param ekPublic the endorsement key (a restricted decryption RSA or ECC key with an AES symmetric definition)
     * @param objectName the TPM name of the object (e.g. the attestation key) the credential is bound to
     * @param credential the secret, 1 to {@code nameAlg} digest size bytes
     * @param rng the randomness source
     * @throws InvalidKeyException if {@code ekPublic} is not a usable restricted decryption key
     * @throws IllegalArgumentException if the name is malformed or the credential too long
     */
    public static CredentialBlob make(TpmtPublic ekPublic, byte[] objectName, byte[] credential, SecureRandom rng)
            throws InvalidKeyException {
        Objects.requireNonNull(ekPublic, "ekPublic");
        Objects.requireNonNull(objectName, "objectName");
        Objects.requireNonNull(credential, "credential");
        Objects.requireNonNull(rng, "rng");
        SymmetricDefinition sym = checkEk(ekPublic);
        HashAlgorithm h = ekPublic.nameAlg();
        checkName(objectName);
        if (credential.length == 0 || credential.length > h.digestLength()) {
            throw new IllegalArgumentException("credential is " + credential.length + " bytes; expected 1.."
                    + h.digestLength() + " (the EK's " + h.tpmName() + " digest size)");
        }
        if (sym.mode() != SymmetricMode.CFB) {
            throw new InvalidKeyException("the EK's symmetric mode is " + sym.mode() + "; expected CFB");
        }
        PublicKey ekKey = ekPublic.toPublicKey();
        byte[] seed = null;
        byte[] symKey = null;
        byte[] hmacKey = null;
        byte[] plaintext = null;
        try {
            byte[] encryptedSecret;
            if (ekPublic.type() == KeyType.RSA) {
                seed = new byte[h.digestLength()];
                rng.nextBytes(seed);
                encryptedSecret = rsaOaep(ekKey, h, seed, rng);
            } else {
                EccCurve curve = ekPublic.curve().orElseThrow();
                ECParameterSpec params = EcCurves.parameters(curve);
                KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC");
                kpg.initialize(params, rng);
                KeyPair ephemeral = kpg.generateKeyPair();
                KeyAgreement ka = KeyAgreement.getInstance("ECDH");
                ka.init(ephemeral.getPrivate());
                ka.doPhase(ekKey, true);
                byte[] z = ka.generateSecret();
                int len = curve.coordinateLength();
                ECPublicKey ephemeralPublic = (ECPublicKey) ephemeral.getPublic();
                byte[] ex = EcCurves.fixedLength(ephemeralPublic.getW().getAffineX(), len);
                byte[] ey = EcCurves.fixedLength(ephemeralPublic.getW().getAffineY(), len);
                try {
                    seed = Kdf.kdfe(h, z, "IDENTITY", ex, ekPublic.eccX(), h.digestLength() * 8);
                } finally {
                    Arrays.fill(z, (byte) 0);
                }
                encryptedSecret = new TpmWriter().tpm2b(ex).tpm2b(ey).toByteArray();
            }
            symKey = Kdf.kdfa(h, seed, "STORAGE", objectName, new byte[0], sym.keyBits());
            plaintext = new TpmWriter().tpm2b(credential).toByteArray();
            Cipher aes = Cipher.getInstance("AES/CFB/NoPadding");
            aes.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(symKey, "AES"), new IvParameterSpec(new byte[AES_BLOCK]));
            byte[] encIdentity = aes.doFinal(plaintext);
            hmacKey = Kdf.kdfa(h, seed, "INTEGRITY", new byte[0], new byte[0], h.digestLength() * 8);
            byte[] integrityHmac = h.hmac(hmacKey, encIdentity, objectName);
            return new CredentialBlob(integrityHmac, encIdentity, encryptedSecret);
        } catch (InvalidKeyException e) {
            throw e;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("the JCA failed during MakeCredential: " + e.getMessage(), e);
        } finally {
            wipe(seed);
            wipe(symKey);
            wipe(hmacKey);
            wipe(plaintext);
        }
    }

    private static byte[] rsaOaep(PublicKey ek, HashAlgorithm h, byte[] seed, SecureRandom rng)
            throws GeneralSecurityException {
        byte[] label = "IDENTITY\0".getBytes(StandardCharsets.US_ASCII);
        Cipher oaep = Cipher.getInstance("RSA/ECB/OAEPPadding");
        oaep.init(Cipher.ENCRYPT_MODE, ek, new OAEPParameterSpec(h.jcaName(), "MGF1",
                new MGF1ParameterSpec(h.jcaName()), new PSource.PSpecified(label)), rng);
        return oaep.doFinal(seed);
    }

    private static SymmetricDefinition checkEk(TpmtPublic ek) throws InvalidKeyException {
        if (ek.type() != KeyType.RSA && ek.type() != KeyType.ECC) {
            throw new InvalidKeyException("the EK is a " + ek.type() + " object; expected an RSA or ECC key");
        }
        if (!ek.has(ObjectAttribute.RESTRICTED) || !ek.has(ObjectAttribute.DECRYPT)
                || ek.has(ObjectAttribute.SIGN_ENCRYPT)) {
            throw new InvalidKeyException("the EK must be a restricted decryption key (restricted and decrypt set, "
                    + "sign clear); its attributes are " + ek.attributes());
        }
        return ek.symmetric().orElseThrow(() -> new InvalidKeyException(
                "the EK has no symmetric algorithm; a restricted decryption key needs one (e.g. AES-128-CFB)"));
    }

    /**
     * TPM2_ActivateCredential (TPM 2.0 Part 3 §12.5) in software, with the EK's private key in hand: recovers the
     * credential {@link #make} protected, after checking its integrity HMAC over {@code objectName}. For hosts that
     * simulate a TPM (the fleet benchmark's software hosts, tests); a real host's EK never leaves its TPM.
     *
     * @throws GeneralSecurityException if the blob was not made for this EK and name ({@code TPM_RC_INTEGRITY}), or
     *     does not decrypt
     */
    public static byte[] activateInSoftware(CredentialBlob blob, TpmtPublic ek, java.security.PrivateKey ekPrivate,
                                            byte[] objectName) throws GeneralSecurityException {
        HashAlgorithm h = ek.nameAlg();
        byte[] seed;
        if (ek.type() == KeyType.RSA) {
            Cipher oaep = Cipher.getInstance("RSA/ECB/OAEPPadding");
            oaep.init(Cipher.DECRYPT_MODE, ekPrivate, new OAEPParameterSpec(h.jcaName(), "MGF1",
                    new MGF1ParameterSpec(h.jcaName()),
                    new PSource.PSpecified("IDENTITY\0".getBytes(StandardCharsets.US_ASCII))));
            seed = oaep.doFinal(blob.encryptedSecret());
        } else {
            byte[] x;
            byte[] y;
            try {
                io.tpmphone.attestation.internal.TpmReader r = new io.tpmphone.attestation.internal.TpmReader(
                        blob.encryptedSecret(), "TPMS_ECC_POINT");
                x = r.tpm2b("x", 66);
                y = r.tpm2b("y", 66);
                r.requireEnd();
            } catch (MalformedStructureException e) {
                throw new GeneralSecurityException("the encrypted seed is not a TPMS_ECC_POINT: " + e.getMessage(), e);
            }
            PublicKey ephemeral = java.security.KeyFactory.getInstance("EC").generatePublic(
                    new java.security.spec.ECPublicKeySpec(new java.security.spec.ECPoint(new java.math.BigInteger(1, x),
                            new java.math.BigInteger(1, y)), ((java.security.interfaces.ECPrivateKey) ekPrivate)
                            .getParams()));
            KeyAgreement ka = KeyAgreement.getInstance("ECDH");
            ka.init(ekPrivate);
            ka.doPhase(ephemeral, true);
            seed = Kdf.kdfe(h, ka.generateSecret(), "IDENTITY", x, ek.eccX(), h.digestLength() * 8);
        }
        byte[] hmacKey = Kdf.kdfa(h, seed, "INTEGRITY", new byte[0], new byte[0], h.digestLength() * 8);
        try {
            if (!java.security.MessageDigest.isEqual(blob.integrityHmac(), h.hmac(hmacKey, blob.encIdentity(),
                    objectName))) {
                throw new GeneralSecurityException("TPM_RC_INTEGRITY"); // what a TPM answers
            }
            byte[] symKey = Kdf.kdfa(h, seed, "STORAGE", objectName, new byte[0],
                    ek.symmetric().orElseThrow().keyBits());
            try {
                Cipher cfb = Cipher.getInstance("AES/CFB/NoPadding");
                cfb.init(Cipher.DECRYPT_MODE, new SecretKeySpec(symKey, "AES"), new IvParameterSpec(
                        new byte[AES_BLOCK]));
                io.tpmphone.attestation.internal.TpmReader r = new io.tpmphone.attestation.internal.TpmReader(
                        cfb.doFinal(blob.encIdentity()), "TPM2B_DIGEST");
                byte[] credential = r.tpm2b("credential", 64);
                r.requireEnd();
                return credential;
            } catch (MalformedStructureException e) {
                throw new GeneralSecurityException("the decrypted credential is not a TPM2B_DIGEST", e);
            } finally {
                wipe(symKey);
            }
        } finally {
            wipe(seed);
            wipe(hmacKey);
        }
    }

    private static void checkName(byte[] name) {
        if (name.length < 2) {
            throw new IllegalArgumentException("object name is " + name.length + " bytes; expected nameAlg || digest");
        }
        int alg = ((name[0] & 0xFF) << 8) | (name[1] & 0xFF);
        HashAlgorithm h;
        try {
            h = HashAlgorithm.fromTpmId(alg);
        } catch (MalformedStructureException e) {
            throw new IllegalArgumentException("object name starts with an unsupported algorithm: "
                    + e.getMessage(), e);
        }
        if (name.length != 2 + h.digestLength()) {
            throw new IllegalArgumentException("object name is " + name.length + " bytes; a " + h.tpmName()
                    + " name is " + (2 + h.digestLength()));
        }
    }

    private static void wipe(byte[] b) {
        if (b != null) {
            Arrays.fill(b, (byte) 0);
        }
    }
}
