package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.KeyPair;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class MakeCredentialTest {
    private static final byte[] CREDENTIAL = "a 32-byte credential for the AK!".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] AK_NAME = hex("000b" + "5a".repeat(32));

    static TpmtPublic rsaEk(KeyPair kp) {
        return TpmtPublic.builder(KeyType.RSA).attributes(Evidence.EK_ATTRIBUTES).authPolicy(Evidence.EK_POLICY)
                .symmetric(SymmetricDefinition.AES_128_CFB).publicKey(kp.getPublic()).build();
    }

    static TpmtPublic eccEk(KeyPair kp, HashAlgorithm nameAlg, SymmetricDefinition sym) {
        return TpmtPublic.builder(KeyType.ECC).nameAlg(nameAlg).attributes(Evidence.EK_ATTRIBUTES)
                .authPolicy(new byte[nameAlg.digestLength()]).symmetric(sym).publicKey(kp.getPublic()).build();
    }

    /** The software TPM2_ActivateCredential of main code: what the round trips check it against. */
    static byte[] activate(CredentialBlob blob, TpmtPublic ek, PrivateKey ekPrivate, byte[] objectName)
            throws GeneralSecurityException {
        return MakeCredential.activateInSoftware(blob, ek, ekPrivate, objectName);
    }

    @Test
    void rsaEk_roundTripsThroughSoftwareActivateCredential() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        TpmtPublic ek = rsaEk(kp);
        CredentialBlob blob = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        assertEquals(256, blob.encryptedSecret().length);
        assertEquals(32, blob.integrityHmac().length);
        assertEquals(2 + CREDENTIAL.length, blob.encIdentity().length);
        assertArrayEquals(CREDENTIAL, activate(blob, ek, kp.getPrivate(), AK_NAME));
    }

    @Test
    void eccP256Ek_roundTripsThroughSoftwareActivateCredential() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P256);
        TpmtPublic ek = eccEk(kp, HashAlgorithm.SHA256, SymmetricDefinition.AES_128_CFB);
        CredentialBlob blob = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        assertEquals(2 + 32 + 2 + 32, blob.encryptedSecret().length);
        assertArrayEquals(CREDENTIAL, activate(blob, ek, kp.getPrivate(), AK_NAME));
    }

    @Test
    void eccP384EkWithSha384AndAes256_roundTrips() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P384);
        TpmtPublic ek = eccEk(kp, HashAlgorithm.SHA384, new SymmetricDefinition(256, SymmetricMode.CFB));
        byte[] credential = new byte[48];
        Evidence.RANDOM.nextBytes(credential);
        CredentialBlob blob = MakeCredential.make(ek, AK_NAME, credential, Evidence.RANDOM);
        assertEquals(48, blob.integrityHmac().length);
        assertArrayEquals(credential, activate(blob, ek, kp.getPrivate(), AK_NAME));
    }

    @Test
    void activationForAnotherName_failsIntegrity() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P256);
        TpmtPublic ek = eccEk(kp, HashAlgorithm.SHA256, SymmetricDefinition.AES_128_CFB);
        CredentialBlob blob = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        byte[] otherName = AK_NAME.clone();
        otherName[33] ^= 1;
        GeneralSecurityException e = assertThrows(GeneralSecurityException.class,
                () -> activate(blob, ek, kp.getPrivate(), otherName));
        assertEquals("TPM_RC_INTEGRITY", e.getMessage());
    }

    @Test
    void activationWithAnotherEcEk_failsIntegrity() throws Exception {
        KeyPair kp = Evidence.ecKeyPair(EccCurve.NIST_P256);
        KeyPair other = Evidence.ecKeyPair(EccCurve.NIST_P256);
        TpmtPublic ek = eccEk(kp, HashAlgorithm.SHA256, SymmetricDefinition.AES_128_CFB);
        CredentialBlob blob = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        GeneralSecurityException e = assertThrows(GeneralSecurityException.class,
                () -> activate(blob, eccEk(other, HashAlgorithm.SHA256, SymmetricDefinition.AES_128_CFB),
                        other.getPrivate(), AK_NAME));
        assertEquals("TPM_RC_INTEGRITY", e.getMessage());
    }

    @Test
    void activationWithAnotherRsaEk_fails() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        CredentialBlob blob = MakeCredential.make(rsaEk(kp), AK_NAME, CREDENTIAL, Evidence.RANDOM);
        KeyPair other = Evidence.freshRsaKeyPair();
        assertThrows(GeneralSecurityException.class, () -> activate(blob, rsaEk(other), other.getPrivate(), AK_NAME));
    }

    @Test
    void tamperedEncIdentity_failsIntegrity() throws Exception {
        KeyPair kp = Evidence.rsaKeyPair();
        TpmtPublic ek = rsaEk(kp);
        CredentialBlob blob = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        byte[] enc = blob.encIdentity();
        enc[0] ^= 1;
        CredentialBlob tampered = new CredentialBlob(blob.integrityHmac(), enc, blob.encryptedSecret());
        assertThrows(GeneralSecurityException.class, () -> activate(tampered, ek, kp.getPrivate(), AK_NAME));
    }

    @Test
    void eachCallUsesAFreshSeed() throws Exception {
        TpmtPublic ek = rsaEk(Evidence.rsaKeyPair());
        CredentialBlob a = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        CredentialBlob b = MakeCredential.make(ek, AK_NAME, CREDENTIAL, Evidence.RANDOM);
        assertFalse(Arrays.equals(a.encIdentity(), b.encIdentity()));
    }

    @Test
    void signingKeyAsEk_isRejected() throws Exception {
        TpmtPublic ak = Evidence.eccAk(Evidence.ecKeyPair(EccCurve.NIST_P256), HashAlgorithm.SHA256);
        InvalidKeyException e = assertThrows(InvalidKeyException.class,
                () -> MakeCredential.make(ak, AK_NAME, CREDENTIAL, Evidence.RANDOM));
        assertTrue(e.getMessage().contains("restricted decryption key"), e.getMessage());
    }

    @Test
    void credentialLongerThanDigest_orBadName_isRejected() throws Exception {
        TpmtPublic ek = rsaEk(Evidence.rsaKeyPair());
        assertThrows(IllegalArgumentException.class,
                () -> MakeCredential.make(ek, AK_NAME, new byte[33], Evidence.RANDOM));
        assertThrows(IllegalArgumentException.class,
                () -> MakeCredential.make(ek, AK_NAME, new byte[0], Evidence.RANDOM));
        assertThrows(IllegalArgumentException.class,
                () -> MakeCredential.make(ek, hex("000b0102"), CREDENTIAL, Evidence.RANDOM));
        assertThrows(IllegalArgumentException.class,
                () -> MakeCredential.make(ek, hex("0010" + "00".repeat(32)), CREDENTIAL, Evidence.RANDOM));
    }

    @Test
    void blobEncodings_followTpm2bLayout() {
        CredentialBlob blob = new CredentialBlob(hex("aa".repeat(32)), hex("bbbb"), hex("cc"));
        assertArrayEquals(hex("0020" + "aa".repeat(32) + "bbbb"), blob.idObject());
        assertArrayEquals(hex("0024" + "0020" + "aa".repeat(32) + "bbbb"), blob.credentialBlobTpm2b());
        assertArrayEquals(hex("0001cc"), blob.encryptedSecretTpm2b());
        assertArrayEquals(hex("badcc0de00000001" + "0024" + "0020" + "aa".repeat(32) + "bbbb" + "0001cc"),
                blob.toTpm2ToolsFormat());
    }
}
