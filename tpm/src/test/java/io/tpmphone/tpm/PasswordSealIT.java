package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

@WithSwtpm(perMethod = true)
class PasswordSealIT {
    private static final SecretBytes NO_LOCKOUT_AUTH = SecretBytes.copyOf(new byte[0]);

    private TpmClient client;

    @BeforeEach
    void open(SwtpmProcess swtpm) throws Exception {
        client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
        client.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
    }

    @AfterEach
    void close() {
        client.close();
    }

    private static SecretBytes pin(String pin) {
        return SecretBytes.copyOf(pin.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void passwordSealed_isDaProtected_andOpensOnlyWithItsPassword() throws Exception {
        SecretBytes secret = SecretBytes.copyOf(client.getRandom(32));
        TpmObjectBlob sealed = client.sealWithPassword(PersistentHandle.SRK_ECC, secret, pin("1234"));
        TpmtPublic pub = TpmtPublic.parse(sealed.publicArea());
        assertTrue(pub.has(ObjectAttribute.USER_WITH_AUTH),
                () -> "a password authorizes it; attributes " + pub.attributes());
        assertFalse(pub.has(ObjectAttribute.NO_DA),
                () -> "dictionary-attack protected; attributes " + pub.attributes());

        SecretBytes unsealed = client.unsealWithPassword(PersistentHandle.SRK_ECC, sealed, pin("1234"));
        assertTrue(secret.equalsConstantTime(unsealed), () -> "the right password unseals the sealed " + secret.length()
                + " bytes; got " + unsealed.length() + " other bytes");
        TpmResponseException wrong = assertThrows(TpmResponseException.class,
                () -> client.unsealWithPassword(PersistentHandle.SRK_ECC, sealed, pin("4321")));
        assertTrue(Set.of("AUTH_FAIL", "BAD_AUTH").contains(wrong.responseCodeName()), wrong.getMessage());
        DictionaryAttackState afterWrong = client.readDictionaryAttackState();
        assertEquals(1, afterWrong.failedTries(), () -> "one wrong password counts one failure: " + afterWrong);
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
    }

    @Test
    void wrongPasswords_lockTheTpmOut_untilTheLockoutReset() throws Exception {
        client.dictionaryAttackParameters(NO_LOCKOUT_AUTH, 3, 3600, 0);
        DictionaryAttackState fresh = client.readDictionaryAttackState();
        assertEquals(new DictionaryAttackState(0, 3, 3600, 0, false), fresh);
        SecretBytes secret = SecretBytes.copyOf(client.getRandom(32));
        TpmObjectBlob sealed = client.sealWithPassword(PersistentHandle.SRK_ECC, secret, pin("1234"));

        for (int i = 0; i < 3; i++) {
            assertThrows(TpmResponseException.class,
                    () -> client.unsealWithPassword(PersistentHandle.SRK_ECC, sealed, pin("0000")));
        }
        DictionaryAttackState afterThree = client.readDictionaryAttackState();
        assertTrue(afterThree.inLockout(),
                () -> "three wrong passwords of three allowed lock the TPM out: " + afterThree);
        TpmResponseException locked = assertThrows(TpmResponseException.class,
                () -> client.unsealWithPassword(PersistentHandle.SRK_ECC, sealed, pin("1234")));
        assertEquals("LOCKOUT", locked.responseCodeName(), locked.getMessage());

        client.dictionaryAttackLockReset(NO_LOCKOUT_AUTH);
        DictionaryAttackState reset = client.readDictionaryAttackState();
        assertFalse(reset.inLockout(), () -> "the lockout reset ends the lockout: " + reset);
        assertEquals(0, reset.failedTries(), () -> "the lockout reset clears the failures: " + reset);
        SecretBytes again = client.unsealWithPassword(PersistentHandle.SRK_ECC, sealed, pin("1234"));
        assertTrue(secret.equalsConstantTime(again), () -> "after the reset the right password unseals the sealed "
                + secret.length() + " bytes; got " + again.length() + " other bytes");
    }

    @Test
    void passwordsOutsideOneToThirtyTwoBytes_areArgumentErrors() throws Exception {
        SecretBytes secret = SecretBytes.copyOf(new byte[] {1});
        assertThrows(IllegalArgumentException.class,
                () -> client.sealWithPassword(PersistentHandle.SRK_ECC, secret, SecretBytes.copyOf(new byte[0])));
        assertThrows(IllegalArgumentException.class,
                () -> client.sealWithPassword(PersistentHandle.SRK_ECC, secret, SecretBytes.copyOf(new byte[33])));
        assertThrows(IllegalArgumentException.class,
                () -> client.dictionaryAttackParameters(NO_LOCKOUT_AUTH, 0, 1, 1));
    }

    @Test
    void lockResetWithAWrongLockoutAuth_failsWithAuthFail() throws Exception {
        TpmResponseException e = assertThrows(TpmResponseException.class,
                () -> client.dictionaryAttackLockReset(SecretBytes.copyOf(new byte[] {'x'})));
        assertTrue(Set.of("AUTH_FAIL", "BAD_AUTH").contains(e.responseCodeName()), e.getMessage());
    }

    @Test
    void destroyedPassword_isRefusedBeforeAnythingIsLoaded() throws Exception {
        TpmObjectBlob sealed = client.sealWithPassword(PersistentHandle.SRK_ECC, SecretBytes.copyOf(new byte[] {1}),
                pin("1234"));
        SecretBytes gone = pin("1234");
        gone.destroy();
        assertThrows(IllegalStateException.class,
                () -> client.unsealWithPassword(PersistentHandle.SRK_ECC, sealed, gone));
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
    }
}
