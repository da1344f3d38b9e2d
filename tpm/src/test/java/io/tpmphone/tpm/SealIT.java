package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PolicyDigest;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.charset.StandardCharsets;
import java.security.Signature;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

@WithSwtpm(perMethod = true)
class SealIT {
    private static final PcrSelection MEASURED = PcrSelection.parse("sha256:0,1,2,3,14");
    private static final byte[] POLICY_REF = "tpmphone-keystore".getBytes(StandardCharsets.US_ASCII);

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

    private void measure(String what) throws TpmException {
        client.pcrExtend(14, HashAlgorithm.SHA256.digest(what.getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void pcrSealed_unsealsInTheSealedState_andFailsWithPolicyFailAfterOneExtend() throws Exception {
        measure("approved softphone");
        SecretBytes secret = SecretBytes.copyOf(client.getRandom(32));
        byte[] policy = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(client.pcrRead(MEASURED)).value();
        TpmObjectBlob sealed = client.seal(PersistentHandle.SRK_ECC, secret, policy);

        SecretBytes unsealed = client.unsealWithPcrPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED);
        assertTrue(secret.equalsConstantTime(unsealed), () -> "unsealing in the measured state gives back the sealed "
                + secret.length() + " bytes; got " + unsealed.length() + " other bytes");

        measure("terminated");
        TpmResponseException e = assertThrows(TpmResponseException.class,
                () -> client.unsealWithPcrPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED));
        assertEquals("POLICY_FAIL", e.responseCodeName(), e.getMessage());
        assertTrue(e.getMessage().contains("POLICY_FAIL"),
                () -> "the message names the response code: " + e.getMessage());
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
        assertEquals(List.of(), client.handles(TpmClient.HandleType.LOADED_SESSION));
    }

    @Test
    void authorizedPolicy_unsealsOnlyForStatesTheAuthoritySigned() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] authPolicy = PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyAuthorize(authority.publicArea().name(), POLICY_REF).value();
        SecretBytes root = SecretBytes.copyOf(client.getRandom(32));
        TpmObjectBlob sealed = client.seal(PersistentHandle.SRK_ECC, root, authPolicy);

        measure("softphone release 1.0");
        PolicyApproval approvedV1 = authority.approve(currentPcrPolicy(), POLICY_REF);
        assertTrue(root.equalsConstantTime(
                client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approvedV1)),
                "the approved state v1 unseals the sealed root (the unsealed bytes differ)");

        measure("softphone release 1.1");
        TpmResponseException stale = assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approvedV1));
        assertTrue(Set.of("VALUE", "POLICY_FAIL").contains(stale.responseCodeName()), stale.getMessage());

        AuthorityKey impostor = new AuthorityKey();
        PolicyApproval forged = impostor.approve(currentPcrPolicy(), POLICY_REF);
        PolicyApproval forgedWithRealKeyName = new PolicyApproval(forged.approvedPolicy(), forged.policyRef(),
                forged.signature(), authority.publicArea().encoded());
        TpmResponseException badSig = assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED,
                        forgedWithRealKeyName));
        assertEquals("SIGNATURE", badSig.responseCodeName(), badSig.getMessage());
        assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, forged),
                "an approval by another authority does not satisfy the sealed policy");

        PolicyApproval approvedV11 = authority.approve(currentPcrPolicy(), POLICY_REF);
        assertTrue(root.equalsConstantTime(
                client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approvedV11)),
                "no re-sealing needed for a newly approved state");
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
    }

    @Test
    void clockLimitedApproval_unsealsUntilTheTpmClockPassesItsLimit_thenFailsInPolicyCounterTimer() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] authPolicy = PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyAuthorize(authority.publicArea().name(), POLICY_REF).value();
        SecretBytes root = SecretBytes.copyOf(client.getRandom(32));
        TpmObjectBlob sealed = client.seal(PersistentHandle.SRK_ECC, root, authPolicy);
        measure("softphone release 1.0");
        io.tpmphone.attestation.ClockInfo ci = client.readClock();
        long now = ci.clock();
        PolicyApproval approval = authority.approveUntil(currentPcrPolicy(), ci.resetCount(), now + 600_000,
                POLICY_REF);
        assertTrue(root.equalsConstantTime(
                client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approval)),
                "the approval unseals the sealed root (the unsealed bytes differ)");

        // An approval whose clock step is dropped no longer matches what the authority signed.
        PolicyApproval stripped = new PolicyApproval(approval.approvedPolicy(), approval.policyRef(),
                approval.signature(), approval.authorityPublic());
        TpmResponseException strippedFails = assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, stripped));
        assertEquals("VALUE", strippedFails.responseCodeName(), strippedFails.getMessage());

        client.clockSet(SecretBytes.copyOf(new byte[0]), now + 600_001);
        TpmResponseException expired = assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approval));
        assertEquals("POLICY", expired.responseCodeName(), expired.getMessage());
        assertEquals("PolicyCounterTimer", expired.command(), expired.getMessage());
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
        assertEquals(List.of(), client.handles(TpmClient.HandleType.LOADED_SESSION));
    }

    @Test
    void anExpiredApproval_staysDead_afterAPowerLossTurnsTheClockBack(SwtpmProcess swtpm) throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] authPolicy = PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyAuthorize(authority.publicArea().name(), POLICY_REF).value();
        SecretBytes root = SecretBytes.copyOf(client.getRandom(32));
        TpmObjectBlob sealed = client.seal(PersistentHandle.SRK_ECC, root, authPolicy);
        measure("softphone 1.0");
        io.tpmphone.attestation.ClockInfo before = client.readClock();
        PolicyApproval approval = authority.approveUntil(currentPcrPolicy(), before.resetCount(),
                before.clock() + 60_000, POLICY_REF);
        client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approval).destroy();
        client.clockSet(SecretBytes.copyOf(new byte[0]), before.clock() + 600_000);
        assertEquals("POLICY", assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approval))
                .responseCodeName());

        // Power loss: no TPM2_Shutdown, so the clock restarts from its last NV save (on swtpm, near zero).
        client.disconnect();
        swtpm.kill();
        swtpm.restart();
        client.close();
        client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
        measure("softphone 1.0");
        io.tpmphone.attestation.ClockInfo after = client.readClock();
        assertTrue(after.clock() < before.clock() + 60_000, "the clock went back: " + after.clock());
        assertTrue(after.resetCount() > before.resetCount(), () -> "the restart raised the reset count: before "
                + before.resetCount() + ", after " + after.resetCount());
        TpmResponseException e = assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, approval));
        assertEquals("POLICY", e.responseCodeName(), "the reset count no longer matches: " + e.getMessage());
    }

    @Test
    void anApprovalForOneHostsPolicyRef_opensNothingSealedForAnother() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] hostA = io.tpmphone.attestation.KeystorePolicy.hostPolicyRef(new byte[] {0, 11, 1, 2, 3});
        byte[] hostB = io.tpmphone.attestation.KeystorePolicy.hostPolicyRef(new byte[] {0, 11, 4, 5, 6});
        SecretBytes root = SecretBytes.copyOf(client.getRandom(32));
        TpmObjectBlob sealedForB = client.seal(PersistentHandle.SRK_ECC, root, PolicyDigest.initial(
                HashAlgorithm.SHA256).policyAuthorize(authority.publicArea().name(), hostB).value());
        measure("same release on both hosts");
        io.tpmphone.attestation.ClockInfo ci = client.readClock();
        PolicyApproval forA = authority.approveUntil(currentPcrPolicy(), ci.resetCount(), ci.clock() + 60_000, hostA);
        assertThrows(TpmResponseException.class,
                () -> client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealedForB, MEASURED, forA));
        PolicyApproval forB = authority.approveUntil(currentPcrPolicy(), ci.resetCount(), ci.clock() + 60_000, hostB);
        assertTrue(root.equalsConstantTime(
                client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealedForB, MEASURED, forB)),
                "B's approval unseals the root sealed for B (the unsealed bytes differ)");
    }

    private byte[] currentPcrPolicy() throws TpmException {
        return PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(client.pcrRead(MEASURED)).value();
    }

    @Test
    void sealedBlob_survivesSerialization() throws Exception {
        SecretBytes secret = SecretBytes.copyOf("a 25-byte keystore secret".getBytes(StandardCharsets.US_ASCII));
        byte[] policy = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(client.pcrRead(MEASURED)).value();
        TpmObjectBlob sealed = TpmObjectBlob.fromBytes(client.seal(PersistentHandle.SRK_ECC, secret, policy)
                .toBytes());
        assertArrayEquals(secret.reveal(), client.unsealWithPcrPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED)
                .reveal());
    }

    @ParameterizedTest
    @EnumSource(TpmClient.StorageKeyType.class)
    void sealing_worksUnderEitherStorageRootKey(TpmClient.StorageKeyType type) throws Exception {
        TpmtPublic srk = client.ensureStorageRootKey(type);
        PersistentHandle handle = type == TpmClient.StorageKeyType.RSA_2048 ? PersistentHandle.SRK_RSA
                : PersistentHandle.SRK_ECC;
        assertTrue(srk.has(ObjectAttribute.RESTRICTED) && srk.has(ObjectAttribute.DECRYPT),
                () -> "a storage key is restricted and decrypts; attributes " + srk.attributes());
        SecretBytes secret = SecretBytes.copyOf(client.getRandom(32));
        byte[] policy = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(client.pcrRead(MEASURED)).value();
        TpmObjectBlob sealed = client.seal(handle, secret, policy);
        assertTrue(secret.equalsConstantTime(client.unsealWithPcrPolicy(handle, sealed, MEASURED)),
                "the PCR policy unseals the secret under this storage key (the unsealed bytes differ)");
    }

    @Test
    void pcrBoundSigningKey_signsOnlyInTheMeasuredState() throws Exception {
        measure("approved softphone");
        byte[] policy = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(client.pcrRead(MEASURED)).value();
        TpmObjectBlob tik = client.createSigningKey(PersistentHandle.SRK_ECC, Optional.of(policy));
        TpmtPublic tikPublic = TpmtPublic.parse(tik.publicArea());
        assertTrue(!tikPublic.has(ObjectAttribute.USER_WITH_AUTH) && !tikPublic.has(ObjectAttribute.RESTRICTED),
                () -> "neither userWithAuth nor restricted; attributes " + tikPublic.attributes());
        client.persist(PersistentHandle.SRK_ECC, tik, PersistentHandle.TIK);

        byte[] digest = HashAlgorithm.SHA256.digest(new byte[] {1, 2, 3});
        TpmtSignature sig = TpmtSignature.parse(client.sign(PersistentHandle.TIK, digest, Optional.of(MEASURED)));
        Signature ecdsa = Signature.getInstance("NONEwithECDSA");
        ecdsa.initVerify(tikPublic.toPublicKey());
        ecdsa.update(digest);
        assertTrue(ecdsa.verify(sig.toDer()), () -> "the TPM's signature verifies with the public key; DER "
                + java.util.HexFormat.of().formatHex(sig.toDer()));

        TpmResponseException noPolicy = assertThrows(TpmResponseException.class,
                () -> client.sign(PersistentHandle.TIK, digest, Optional.empty()));
        assertEquals("AUTH_UNAVAILABLE", noPolicy.responseCodeName(), "a password cannot authorize it");
        measure("terminated");
        TpmResponseException after = assertThrows(TpmResponseException.class,
                () -> client.sign(PersistentHandle.TIK, digest, Optional.of(MEASURED)));
        assertEquals("POLICY_FAIL", after.responseCodeName(), after.getMessage());
    }

    @Test
    void authorizedSigningKey_signsOnlyWithAFreshApprovalOfTheCurrentState() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] authPolicy = PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyAuthorize(authority.publicArea().name(), POLICY_REF).value();
        TpmObjectBlob tik = client.createSigningKey(PersistentHandle.SRK_ECC, Optional.of(authPolicy));
        TpmtPublic tikPublic = TpmtPublic.parse(tik.publicArea());
        client.persist(PersistentHandle.SRK_ECC, tik, PersistentHandle.TIK);
        measure("approved softphone");
        io.tpmphone.attestation.ClockInfo ci = client.readClock();
        long now = ci.clock();
        PolicyApproval approval = authority.approveUntil(currentPcrPolicy(), ci.resetCount(), now + 60_000,
                POLICY_REF);

        byte[] digest = HashAlgorithm.SHA256.digest(new byte[] {4, 5, 6});
        TpmtSignature sig = TpmtSignature.parse(
                client.signWithAuthorizedPolicy(PersistentHandle.TIK, digest, MEASURED, approval));
        Signature ecdsa = Signature.getInstance("NONEwithECDSA");
        ecdsa.initVerify(tikPublic.toPublicKey());
        ecdsa.update(digest);
        assertTrue(ecdsa.verify(sig.toDer()), () -> "the TPM's signature verifies with the public key; DER "
                + java.util.HexFormat.of().formatHex(sig.toDer()));
        assertEquals("AUTH_UNAVAILABLE", assertThrows(TpmResponseException.class,
                () -> client.sign(PersistentHandle.TIK, digest, Optional.empty())).responseCodeName());

        measure("tampered softphone");
        assertEquals("VALUE", assertThrows(TpmResponseException.class,
                () -> client.signWithAuthorizedPolicy(PersistentHandle.TIK, digest, MEASURED, approval))
                .responseCodeName(), "an approval of another state does not sign");
        PolicyApproval second = authority.approveUntil(currentPcrPolicy(), ci.resetCount(), now + 60_000,
                POLICY_REF);
        client.signWithAuthorizedPolicy(PersistentHandle.TIK, digest, MEASURED, second);
        client.clockSet(SecretBytes.copyOf(new byte[0]), now + 60_000);
        assertEquals("POLICY", assertThrows(TpmResponseException.class,
                () -> client.signWithAuthorizedPolicy(PersistentHandle.TIK, digest, MEASURED, second))
                .responseCodeName(), "an expired approval does not sign");
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
        assertEquals(List.of(), client.handles(TpmClient.HandleType.LOADED_SESSION));
    }

    @Test
    void malformedApprovals_areArgumentErrors_andLoadNothing() throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] authPolicy = PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyAuthorize(authority.publicArea().name(), POLICY_REF).value();
        TpmObjectBlob sealed = client.seal(PersistentHandle.SRK_ECC, SecretBytes.copyOf(new byte[] {1}), authPolicy);
        PolicyApproval good = authority.approve(currentPcrPolicy(), POLICY_REF);
        List<PolicyApproval> bad = List.of(
                new PolicyApproval(good.approvedPolicy(), POLICY_REF, new byte[0], good.authorityPublic()),
                new PolicyApproval(good.approvedPolicy(), POLICY_REF, new byte[] {0x12, 0x34, 0, 0},
                        good.authorityPublic()),
                new PolicyApproval(good.approvedPolicy(), POLICY_REF, good.signature(), new byte[] {0, 0x23}),
                new PolicyApproval(new byte[5], POLICY_REF, good.signature(), good.authorityPublic()));
        for (int round = 0; round < 3; round++) {
            for (PolicyApproval approval : bad) {
                assertThrows(IllegalArgumentException.class, () -> client.unsealWithAuthorizedPolicy(
                        PersistentHandle.SRK_ECC, sealed, MEASURED, approval));
            }
        }
        assertThrows(IllegalArgumentException.class, () -> client.unsealWithPcrPolicy(PersistentHandle.SRK_ECC,
                new TpmObjectBlob(new byte[] {1, 2, 3}, new byte[] {4}), MEASURED));
        assertEquals(List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
        assertEquals(1, client.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, MEASURED, good).length(),
                "the TPM's slots are all free: the good approval still works");
    }
}
