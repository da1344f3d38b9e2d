package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.AuthorityKey;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ring screen's phrase is sealed under the keystore's own policy: sealed at set-up without any approval, it
 * unseals in the approved measured state only — not after another measurement (a tampered or ended softphone, which is
 * what any program outside the measured softphone has), not with an approval of an earlier state — and its file does
 * not hold it in clear.
 */
@WithSwtpm(perMethod = true)
class SealedPhraseIT {
    private static final String PHRASE = "purple elephant 42 — ünïcode";
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

    private void measure(String what) throws Exception {
        tpm.pcrExtend(14, HashAlgorithm.SHA256.digest(what.getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void thePhrase_unsealsInTheApprovedState_only() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        measure("softphone 1.0");
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.empty())) {
            PolicyApproval approved = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            assertEquals(Optional.empty(), ks.unsealPhrase(Unlock.approved(approved)), "no phrase before set-up");
            ks.sealPhrase(PHRASE);
            byte[] file = Files.readAllBytes(dir.resolve("phrase.sealed"));
            assertFalse(new String(file, StandardCharsets.ISO_8859_1).contains("elephant"),
                    "the sealed file does not hold the phrase in clear");
            assertEquals(Optional.of(PHRASE), ks.unsealPhrase(Unlock.approved(approved)),
                    "the measured, approved softphone gets the phrase");

            measure("another program's code");
            KeystoreException refused = assertThrows(KeystoreException.class,
                    () -> ks.unsealPhrase(Unlock.approved(approved)));
            assertTrue(Set.of(KeystoreException.Reason.POLICY_FAIL, KeystoreException.Reason.NOT_APPROVED)
                    .contains(refused.reason()), "a state that is not the approved one cannot unseal the phrase: "
                    + refused.reason() + ": " + refused.getMessage());
            assertTrue(refused.tpmResponseCode().isPresent(), "the TPM refused it: " + refused.getMessage());
        }
        // the phrase survives reopening, and still only for an approval of the current state
        try (SealedKeystore ks = SealedKeystore.open(tpm, dir)) {
            PolicyApproval now = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            assertEquals(Optional.of(PHRASE), ks.unsealPhrase(Unlock.approved(now)),
                    "an approval of the state now (what the server gives only a MEASURED softphone) unseals it");
        }
    }

    @Test
    void pcrOnly_thePhraseUnsealsInTheSealedState_andNotAfterAnExtend() throws Exception {
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.empty())) {
            ks.sealPhrase("blue");
            assertEquals(Optional.of("blue"), ks.unsealPhrase(Unlock.measuredState()));
            measure("terminated");
            KeystoreException refused = assertThrows(KeystoreException.class,
                    () -> ks.unsealPhrase(Unlock.measuredState()));
            assertEquals(KeystoreException.Reason.POLICY_FAIL, refused.reason(), refused.getMessage());
        }
    }

    @Test
    void aPhraseWithControlCharactersOrTooLong_isRefused() throws Exception {
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.empty())) {
            for (String bad : new String[] {"", "   ", "red\u001b[32mMEASURED", "a\nb", "x".repeat(65)}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ks.sealPhrase(bad),
                        "refused: " + bad);
                assertTrue(e.getMessage().contains("1..64 bytes"), e.getMessage());
            }
            assertFalse(Files.exists(dir.resolve("phrase.sealed")), "nothing sealed");
        }
    }
}
