package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.AuthorityKey;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@WithSwtpm(perMethod = true)
class PinIT {
    private static final SecretBytes EMPTY_LOCKOUT_AUTH = SecretBytes.copyOf(new byte[0]);

    @TempDir
    Path dir;

    private TpmClient tpm;

    @BeforeEach
    void open(SwtpmProcess swtpm) throws Exception {
        tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
    }

    @AfterEach
    void close() {
        tpm.close();
    }

    private static SecretBytes pin(String s) {
        return SecretBytes.copyOf(s.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void keystoreWithPin_needsThePin_andCountsWrongOnes() throws Exception {
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.of(pin("2468")))) {
            assertTrue(ks.hasPin(), "created with a PIN, the keystore says it has one");
            ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, Unlock.measuredState().withPin(pin("2468"))).destroy();
            assertEquals(KeystoreException.Reason.PIN_REQUIRED, assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80)).reason());
            KeystoreException wrong = assertThrows(KeystoreException.class, () -> ks.srtpKey("c",
                    SrtpSuite.AES_CM_128_HMAC_SHA1_80, Unlock.measuredState().withPin(pin("1357"))));
            assertEquals(KeystoreException.Reason.PIN_WRONG, wrong.reason(), wrong.getMessage());
            var afterWrong = tpm.readDictionaryAttackState();
            assertEquals(1, afterWrong.failedTries(), () -> "one wrong PIN counts one TPM failure: " + afterWrong);
        }
        try (SealedKeystore reopened = SealedKeystore.open(tpm, dir)) {
            assertTrue(reopened.hasPin(), () -> "reopened from " + dir + ", the keystore still has its PIN");
            reopened.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, Unlock.measuredState().withPin(pin("2468")))
                    .destroy();
        }
    }

    @Test
    void wrongPinThreeTimes_locksOut_theCorrectPinIsRefused_untilResetLockout() throws Exception {
        tpm.dictionaryAttackParameters(EMPTY_LOCKOUT_AUTH, 3, 3600, 0);
        AuthorityKey authority = new AuthorityKey();
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.of(pin("2468")))) {
            PolicyApproval approval = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            Unlock right = Unlock.approved(approval).withPin(pin("2468"));
            Unlock wrong = Unlock.approved(approval).withPin(pin("0000"));
            for (int i = 0; i < 3; i++) {
                assertEquals(KeystoreException.Reason.PIN_WRONG, assertThrows(KeystoreException.class,
                        () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, wrong)).reason());
            }
            var afterThree = tpm.readDictionaryAttackState();
            assertTrue(afterThree.inLockout(), () -> "three wrong PINs lock the TPM out: " + afterThree);
            KeystoreException locked = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, right));
            assertEquals(KeystoreException.Reason.LOCKED_OUT, locked.reason(), locked.getMessage());
            assertEquals(KeystoreException.Reason.LOCKED_OUT, assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, wrong)).reason());

            ks.resetLockout();
            var afterReset = tpm.readDictionaryAttackState();
            assertFalse(afterReset.inLockout(), () -> "resetLockout() ends the lockout: " + afterReset);
            ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, right).destroy();
        }
        assertEquals(List.of(), tpm.handles(TpmClient.HandleType.TRANSIENT));
    }
}
