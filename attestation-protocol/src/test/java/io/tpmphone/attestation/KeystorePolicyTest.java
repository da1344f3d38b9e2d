package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Known answers for the keystore policy contract, version 1. Every sealed keystore and every TIK on every host carries
 * these digests, so a change here orphans them all: if one of these tests fails, the refactoring changed the bytes.
 * Fix the code, do not update the vectors (a new contract needs a new version and a new label).
 *
 * <p>The vectors were computed with tpm2-tools 5 against swtpm (trial sessions): {@code tpm2_policypcr -l
 * sha256:0,7,14 -f pcrs.bin}, {@code tpm2_policycountertimer --eq resets=3}, {@code tpm2_policycountertimer --ult
 * clock=1234567890}, and {@code tpm2_policyauthorize -q <ref> -n <name>}, with the inputs below.
 */
@Timeout(10)
class KeystorePolicyTest {
    /** A TPM name: TPM_ALG_SHA256 || 32 bytes of 0xA1. */
    private static final byte[] AUTHORITY_NAME = name(0xA1);
    /** The EK name of the host: TPM_ALG_SHA256 || 32 bytes of 0x11. */
    private static final byte[] EK_NAME = name(0x11);
    /** PCRs 0, 7 and 14 of the sha256 bank holding 32 bytes of 0x00, 0x07 and 0x0e. */
    private static final PcrValues STATE = PcrValues.of(PcrSelection.parse("sha256:0,7,14"),
            List.of(fill(0), fill(7), fill(14)));
    private static final long RESET_COUNT = 3;
    private static final long CLOCK_BEFORE = 1_234_567_890L;

    @Test
    void version1_isTheOnlyVersion() {
        assertEquals(1, KeystorePolicy.VERSION);
        assertEquals("tpmphone-keystore-v1", KeystorePolicy.POLICY_REF);
    }

    @Test
    void hostPolicyRef_isSha256OfLabelAndEkName_knownAnswer() {
        assertEquals("e1467f500a4d57d15b664b5ab2a4c80fc473fbc6757aac52ca95fbf9d1607b18",
                HexFormat.of().formatHex(KeystorePolicy.hostPolicyRef(EK_NAME)));
    }

    @Test
    void sealingPolicyOfAHost_knownAnswer() {
        assertEquals("sha256:b32daa84414247f305296f9f31e99eda741116ece5497d961271d539ee88cd27",
                KeystorePolicy.sealingPolicy(AUTHORITY_NAME, KeystorePolicy.hostPolicyRef(EK_NAME)).toString());
    }

    @Test
    void sealingPolicyWithTheGenericRef_knownAnswer() {
        assertEquals("sha256:3d8faa3b350ca242a3f74e0def5b812cea605f27234ea42a0826c2c78febf486",
                KeystorePolicy.sealingPolicy(AUTHORITY_NAME, KeystorePolicy.genericPolicyRef()).toString());
    }

    @Test
    void approvedPolicyWithoutLifetime_isPolicyPcr_knownAnswer() {
        assertEquals("sha256:2ec14a7c49c1b56cf4968937e47f75a32c33fcbfca5bfa6deaa210f8d1428620",
                KeystorePolicy.approvedPolicy(STATE).toString());
    }

    @Test
    void approvedPolicyWithLifetime_knownAnswer() {
        String expected = "sha256:bf7f358f638c8416265a2ad85deaffd2537b37bc9cafb7c60d81e0085da47fa8";
        assertEquals(expected, KeystorePolicy.approvedPolicy(STATE, RESET_COUNT, CLOCK_BEFORE).toString());
        // the same from the PolicyPCR digest an approval carries
        assertEquals(expected, KeystorePolicy.approvedPolicy(KeystorePolicy.approvedPolicy(STATE), RESET_COUNT,
                CLOCK_BEFORE).toString());
    }

    @Test
    void approvalDigest_knownAnswer() {
        PolicyDigest approved = KeystorePolicy.approvedPolicy(STATE, RESET_COUNT, CLOCK_BEFORE);
        assertEquals("59ce6de213d78bb5c2732a5c87610ed8fc4d566e5ca96bf494f280b3bcc68bfb", HexFormat.of().formatHex(
                KeystorePolicy.approvalDigest(approved, KeystorePolicy.hostPolicyRef(EK_NAME))));
    }

    @Test
    void approvedPolicySteps_arePcrThenResetCountThenClock() {
        List<PolicyStep> steps = KeystorePolicy.approvedPolicySteps(STATE.selection(), RESET_COUNT, CLOCK_BEFORE);
        assertEquals(List.of(new PolicyStep.Pcr(STATE.selection()),
                new PolicyStep.CounterTimer(hex("00000003"), 16, PolicyDigest.TPM_EO_EQ),
                new PolicyStep.CounterTimer(hex("00000000499602d2"), 8, PolicyDigest.TPM_EO_UNSIGNED_LT)), steps);
        assertEquals(List.of(new PolicyStep.Pcr(STATE.selection())),
                KeystorePolicy.approvedPolicySteps(STATE.selection()));
    }

    @Test
    void anotherHostsEkName_givesAnotherPolicyRef() {
        assertFalse(Arrays.equals(KeystorePolicy.hostPolicyRef(EK_NAME), KeystorePolicy.hostPolicyRef(name(0x12))));
    }

    @Test
    void policyRefLongerThan32Bytes_isRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KeystorePolicy.sealingPolicy(AUTHORITY_NAME, new byte[33]));
        assertEquals("a policyRef is at most 32 bytes, got 33", e.getMessage());
    }

    private static byte[] name(int fill) {
        byte[] n = new byte[34];
        n[1] = 0x0b;
        Arrays.fill(n, 2, 34, (byte) fill);
        return n;
    }

    private static byte[] fill(int v) {
        byte[] b = new byte[32];
        Arrays.fill(b, (byte) v);
        return b;
    }
}
