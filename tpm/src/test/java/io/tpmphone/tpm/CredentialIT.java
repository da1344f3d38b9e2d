package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.MakeCredential;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.SwtpmExtension;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.Tpm2Tools;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Our MakeCredential output activates on the TPM that holds the EK, and on no other. */
class CredentialIT {
    @RegisterExtension
    static final SwtpmExtension HOST_A = SwtpmExtension.builder().build();
    @RegisterExtension
    static final SwtpmExtension HOST_B = SwtpmExtension.builder().build();

    @ParameterizedTest
    @EnumSource(EkType.class)
    void credentialMadeForThisEkAndAk_isReleasedByThisTpm(EkType type) throws Exception {
        try (TpmClient a = TpmClient.open(TpmUri.parse(HOST_A.process().tpmUri()))) {
            TpmtPublic ek = a.ensureEndorsementKey(type);
            PersistentHandle akHandle = new PersistentHandle(PersistentHandle.AK.value() + type.ordinal() + 1);
            a.evict(akHandle);
            TpmtPublic ak = a.createAttestationKey(type.defaultHandle(), akHandle);
            byte[] secret = new byte[32];
            new SecureRandom().nextBytes(secret);
            CredentialBlob blob = MakeCredential.make(ek, ak.name(), secret, new SecureRandom());
            assertArrayEquals(secret, a.activateCredential(akHandle, type.defaultHandle(), blob.integrityHmac(),
                    blob.encIdentity(), blob.encryptedSecret()).reveal());
        }
    }

    @Test
    void credentialForAnotherTpmsEk_cannotBeActivated() throws Exception {
        TpmtPublic ekA;
        TpmtPublic akA;
        try (TpmClient a = TpmClient.open(TpmUri.parse(HOST_A.process().tpmUri()))) {
            ekA = a.ensureEndorsementKey(EkType.RSA_2048);
            a.evict(PersistentHandle.AK);
            akA = a.createAttestationKey(PersistentHandle.EK_RSA, PersistentHandle.AK);
        }
        CredentialBlob blob = MakeCredential.make(ekA, akA.name(), new byte[] {1, 2, 3, 4},
                new SecureRandom());
        try (TpmClient b = TpmClient.open(TpmUri.parse(HOST_B.process().tpmUri()))) {
            b.ensureEndorsementKey(EkType.RSA_2048);
            b.evict(PersistentHandle.AK);
            b.createAttestationKey(PersistentHandle.EK_RSA, PersistentHandle.AK);
            assertThrows(TpmResponseException.class, () -> b.activateCredential(PersistentHandle.AK,
                    PersistentHandle.EK_RSA, blob.integrityHmac(), blob.encIdentity(), blob.encryptedSecret()));
        }
        try (TpmClient a = TpmClient.open(TpmUri.parse(HOST_A.process().tpmUri()))) {
            a.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
            TpmtPublic otherAk = TpmtPublic.parse(
                    a.createSigningKey(PersistentHandle.SRK_ECC, java.util.Optional.empty()).publicArea());
            CredentialBlob forOtherName = MakeCredential.make(ekA, otherAk.name(), new byte[] {9},
                    new SecureRandom());
            assertThrows(TpmResponseException.class, () -> a.activateCredential(PersistentHandle.AK,
                    PersistentHandle.EK_RSA, forOtherName.integrityHmac(), forOtherName.encIdentity(),
                    forOtherName.encryptedSecret()), "bound to another key's name");
        }
    }

    @Test
    void tpm2ToolsFormat_isAcceptedByTpm2Activatecredential(@TempDir Path dir) throws Exception {
        SwtpmProcess swtpm = HOST_B.process();
        TpmtPublic ek;
        TpmtPublic ak;
        try (TpmClient b = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            ek = b.ensureEndorsementKey(EkType.RSA_2048);
            b.evict(PersistentHandle.AK);
            ak = b.createAttestationKey(PersistentHandle.EK_RSA, PersistentHandle.AK);
        }
        byte[] secret = "tpm2-tools interop".getBytes(StandardCharsets.US_ASCII);
        Path blob = dir.resolve("cred.blob");
        Files.write(blob, MakeCredential.make(ek, ak.name(), secret, new SecureRandom()).toTpm2ToolsFormat());
        Path session = dir.resolve("session.ctx");
        Tpm2Tools.run(swtpm, "tpm2_startauthsession", "--policy-session", "-S", session.toString()).requireSuccess();
        try {
            Tpm2Tools.run(swtpm, "tpm2_policysecret", "-S", session.toString(), "-c", "e").requireSuccess();
            Path out = dir.resolve("secret.out");
            Tpm2Tools.run(swtpm, "tpm2_activatecredential", "-c", PersistentHandle.AK.toString(), "-C",
                    PersistentHandle.EK_RSA.toString(), "-i", blob.toString(), "-o", out.toString(), "-P",
                    "session:" + session).requireSuccess();
            assertArrayEquals(secret, Files.readAllBytes(out));
        } finally {
            Tpm2Tools.run(swtpm, "tpm2_flushcontext", session.toString());
        }
    }
}
