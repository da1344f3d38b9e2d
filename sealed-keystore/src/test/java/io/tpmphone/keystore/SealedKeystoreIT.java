package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.AuthorityKey;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@WithSwtpm(perMethod = true)
class SealedKeystoreIT {
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

    private static String hex(SecretBytes s) {
        return HexFormat.of().formatHex(s.reveal());
    }

    @Test
    void approvedState_releasesKeys_anotherMeasurementIsRefused_andANewApprovalWorksWithoutResealing()
            throws Exception {
        AuthorityKey authority = new AuthorityKey();
        measure("softphone 1.0");
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.empty())) {
            PolicyApproval v10 = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            SrtpKeys keys = ks.srtpKey("call-1@example.org", SrtpSuite.AES_CM_128_HMAC_SHA1_80, v10);
            assertEquals(16, keys.masterKey().length());
            assertEquals(14, keys.masterSalt().length());

            measure("softphone terminated");
            KeystoreException refused = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("call-2", SrtpSuite.AES_CM_128_HMAC_SHA1_80, v10));
            assertTrue(Set.of(KeystoreException.Reason.POLICY_FAIL, KeystoreException.Reason.NOT_APPROVED)
                    .contains(refused.reason()), refused.getMessage());
            assertTrue(refused.tpmResponseCode().isPresent(), () -> "the refusal came from the TPM: " + refused.reason()
                    + ": " + refused.getMessage());

            byte[] sealedPolicyBefore = ks.sealedPolicy().value();
            PolicyApproval v11 = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            SrtpKeys again = ks.srtpKey("call-3", SrtpSuite.AES_CM_128_HMAC_SHA1_80, v11);
            assertFalse(keys.masterKey().equalsConstantTime(again.masterKey()),
                    "call-3 gets a new master key, not call-1's again");
            assertArrayEquals(sealedPolicyBefore, ks.sealedPolicy().value(), "not re-sealed");
        }
        assertEquals(List.of(), tpm.handles(TpmClient.HandleType.TRANSIENT));
        assertEquals(List.of(), tpm.handles(TpmClient.HandleType.LOADED_SESSION));
    }

    @Test
    void approvalOfAnEarlierState_isNotApproved() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.empty())) {
            PolicyApproval old = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            measure("tampered softphone jar");
            KeystoreException e = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, old));
            // TPM2_PolicyAuthorize: approvedPolicy != the session's PolicyPCR digest -> TPM_RC_VALUE.
            assertEquals(KeystoreException.Reason.NOT_APPROVED, e.reason(), e.getMessage());
            assertEquals(Optional.of("VALUE"), e.tpmResponseCode());
        }
    }

    @Test
    void clockLimitedApproval_expiresInTpmTime_andAFreshOneWorksWithoutResealing() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        measure("softphone 1.0");
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.empty())) {
            io.tpmphone.attestation.ClockInfo ci = tpm.readClock();
            long now = ci.clock();
            PolicyApproval approval = authority.approveUntil(ks.currentStatePolicy().value(), ci.resetCount(),
                    now + 300_000, Protection.policyRef());
            ks.srtpKey("before-expiry", SrtpSuite.AES_CM_128_HMAC_SHA1_80, approval).destroy();

            tpm.clockSet(SecretBytes.copyOf(new byte[0]), now + 300_000);
            KeystoreException expired = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("after-expiry", SrtpSuite.AES_CM_128_HMAC_SHA1_80, approval));
            assertEquals(KeystoreException.Reason.APPROVAL_EXPIRED, expired.reason(), expired.getMessage());
            assertEquals(Optional.of("POLICY"), expired.tpmResponseCode());

            PolicyApproval fresh = authority.approveUntil(ks.currentStatePolicy().value(), ci.resetCount(),
                    tpm.readClock().clock() + 300_000, Protection.policyRef());
            ks.srtpKey("fresh", SrtpSuite.AES_CM_128_HMAC_SHA1_80, fresh).destroy();
        }
    }

    @Test
    void approvalSignedByAnotherKey_isBadApproval() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        AuthorityKey impostor = new AuthorityKey();
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.empty())) {
            PolicyApproval forged = impostor.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            KeystoreException otherKey = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, forged));
            assertEquals(KeystoreException.Reason.BAD_APPROVAL, otherKey.reason(), otherKey.getMessage());

            PolicyApproval forgedUnderRealName = new PolicyApproval(forged.approvedPolicy(), forged.policyRef(),
                    forged.signature(), authority.publicArea().encoded());
            KeystoreException badSignature = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, forgedUnderRealName));
            assertEquals(KeystoreException.Reason.BAD_APPROVAL, badSignature.reason(), badSignature.getMessage());
            assertEquals(Optional.of("SIGNATURE"), badSignature.tpmResponseCode(), badSignature.getMessage());

            PolicyApproval good = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            PolicyApproval wrongRef = new PolicyApproval(good.approvedPolicy(), new byte[] {1}, good.signature(),
                    good.authorityPublic());
            assertEquals(KeystoreException.Reason.BAD_APPROVAL, assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, wrongRef)).reason());
            ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, good).destroy();
        }
    }

    @Test
    void pcrOnly_releasesInTheSealedState_andRefusesAfterOneExtend() throws Exception {
        measure("softphone");
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.empty())) {
            SrtpKeys k = ks.srtpKey("call", SrtpSuite.AES_CM_128_HMAC_SHA1_32);
            assertEquals("SrtpKeys[AES_CM_128_HMAC_SHA1_32]", k.toString());
            assertEquals(14, k.masterSalt().length());
            k.destroy();
            assertTrue(k.isDestroyed(), () -> "destroy() destroyed the keys: " + k);
            assertThrows(IllegalStateException.class, () -> k.masterKey().reveal());

            measure("softphone exited");
            KeystoreException e = assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("call", SrtpSuite.AES_CM_128_HMAC_SHA1_80));
            assertEquals(KeystoreException.Reason.POLICY_FAIL, e.reason(), e.getMessage());
            assertEquals(Optional.of("POLICY_FAIL"), e.tpmResponseCode(), e.getMessage());
        }
        assertEquals(List.of(), tpm.handles(TpmClient.HandleType.TRANSIENT));
    }

    @Test
    void unlockOfTheWrongKind_isAnArgumentError() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir,
                Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea()), Optional.empty())) {
            assertThrows(IllegalArgumentException.class, () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80));
            PolicyApproval a = authority.approve(ks.currentStatePolicy().value(), Protection.policyRef());
            assertThrows(IllegalArgumentException.class, () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80,
                    Unlock.approved(a).withPin(SecretBytes.copyOf(new byte[] {'1'}))));
            assertThrows(IllegalArgumentException.class, () -> ks.srtpKey("", SrtpSuite.AES_CM_128_HMAC_SHA1_80, a));
        }
    }

    @Test
    void keysDiffer_perCall_andForTheSameCallId() throws Exception {
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.empty())) {
            Set<String> seen = new HashSet<>();
            for (int i = 0; i < 20; i++) {
                SrtpKeys k = ks.srtpKey(i % 2 == 0 ? "same-call" : "call-" + i, SrtpSuite.AES_CM_128_HMAC_SHA1_80);
                int key = i;
                assertTrue(seen.add(hex(k.masterKey())), () -> "key " + key + "'s master key repeats one of the "
                        + seen.size() + " values issued before");
                assertTrue(seen.add(hex(k.masterSalt())), () -> "key " + key + "'s master salt repeats one of the "
                        + seen.size() + " values issued before");
            }
            assertEquals(20, ks.fingerprintCount());
        }
    }

    @Test
    void checkOffered_refusesIssuedAndOfferedKeys_alsoAfterReopening() throws Exception {
        SecretBytes issuedKey;
        SecretBytes issuedSalt;
        SecretBytes offeredKey = SecretBytes.copyOf(tpm.getRandom(16));
        SecretBytes offeredSalt = SecretBytes.copyOf(tpm.getRandom(14));
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.empty())) {
            SrtpKeys issued = ks.srtpKey("call", SrtpSuite.AES_CM_128_HMAC_SHA1_80);
            issuedKey = SecretBytes.copyOf(issued.masterKey().reveal());
            issuedSalt = SecretBytes.copyOf(issued.masterSalt().reveal());
            KeystoreException replayOfIssued = assertThrows(KeystoreException.class,
                    () -> ks.checkOffered(issuedKey, issuedSalt));
            assertEquals(KeystoreException.Reason.SEEN_BEFORE, replayOfIssued.reason(), replayOfIssued.getMessage());

            ks.checkOffered(offeredKey, offeredSalt);
            assertEquals(KeystoreException.Reason.SEEN_BEFORE,
                    assertThrows(KeystoreException.class, () -> ks.checkOffered(offeredKey, offeredSalt)).reason());
        }
        try (SealedKeystore reopened = SealedKeystore.open(tpm, dir)) {
            assertEquals(2, reopened.fingerprintCount());
            assertEquals(KeystoreException.Reason.SEEN_BEFORE, assertThrows(KeystoreException.class,
                    () -> reopened.checkOffered(offeredKey, offeredSalt)).reason());
            assertEquals(KeystoreException.Reason.SEEN_BEFORE, assertThrows(KeystoreException.class,
                    () -> reopened.checkOffered(issuedKey, issuedSalt)).reason());
            reopened.checkOffered(SecretBytes.copyOf(tpm.getRandom(16)), offeredSalt);
            reopened.srtpKey("after reopening", SrtpSuite.AES_CM_128_HMAC_SHA1_80).destroy();
        }
    }

    @Test
    void reopenedAuthorizedKeystore_releasesWithTheSameAuthority_andCreateRefusesAnExistingOne() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        Protection protection = Protection.authorized(Protection.DEFAULT_PCRS, authority.publicArea());
        SealedKeystore.create(tpm, dir, protection, Optional.empty()).close();
        KeystoreException exists = assertThrows(KeystoreException.class,
                () -> SealedKeystore.create(tpm, dir, protection, Optional.empty()));
        assertEquals(KeystoreException.Reason.STORAGE, exists.reason(), exists.getMessage());
        try (SealedKeystore ks = SealedKeystore.open(tpm, dir)) {
            assertEquals(protection, ks.protection());
            ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80, authority.approve(ks.currentStatePolicy().value(), Protection.policyRef())).destroy();
        }
        assertEquals(KeystoreException.Reason.STORAGE, assertThrows(KeystoreException.class,
                () -> SealedKeystore.open(tpm, dir.resolve("nothing-here"))).reason());
    }

    @Test
    void tpmGone_isTpmUnavailable(SwtpmProcess swtpm) throws Exception {
        try (SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                Optional.empty())) {
            swtpm.kill();
            assertEquals(KeystoreException.Reason.TPM_UNAVAILABLE, assertThrows(KeystoreException.class,
                    () -> ks.srtpKey("c", SrtpSuite.AES_CM_128_HMAC_SHA1_80)).reason());
        }
    }
}
