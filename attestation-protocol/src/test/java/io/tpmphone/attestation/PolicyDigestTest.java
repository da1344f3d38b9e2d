package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class PolicyDigestTest {
    @Test
    void initial_isAllZeros() {
        assertArrayEquals(new byte[48], PolicyDigest.initial(HashAlgorithm.SHA384).value());
    }

    /** H(0^32 || 0000017F || 00000001 000B 03 010000 || SHA256(0^32)), computed outside Java. */
    @Test
    void policyPcrOfZeroPcr0_matchesKnownDigest() {
        PcrValues zero = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA256, 0), List.of(new byte[32]));
        PolicyDigest expected = PolicyDigest.of(HashAlgorithm.SHA256,
                hex("093ceb41181d47808862d7946268ee6a17a10e3d1b79b32351bc56e4beaceff0"));
        assertEquals(expected, PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(zero));
        assertEquals(expected, PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(zero.selection(),
                hex("66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925")));
    }

    /** The TCG EK Credential Profile's default EK authPolicy: PolicySecret(TPM_RH_ENDORSEMENT). */
    @Test
    void policySecretOfEndorsementHierarchy_isTheTcgEkPolicy() {
        assertArrayEquals(Evidence.EK_POLICY, PolicyDigest.initial(HashAlgorithm.SHA256)
                .policySecret(hex("4000000b"), new byte[0]).value());
    }

    @Test
    void policyAuthValue_matchesKnownDigest() {
        assertArrayEquals(hex("8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e"),
                PolicyDigest.initial(HashAlgorithm.SHA256).policyAuthValue().value());
    }

    @Test
    void policyAuthorize_resetsThenHashesNameAndRef() {
        byte[] keyName = hex("000b8f76fd501bb68ef71f4e276bc28f29bce1003b0c2c9d9478de81b5bfc0cde1e9");
        byte[] ref = "ref".getBytes(StandardCharsets.US_ASCII);
        byte[] expected = hex("5166dd8228ef142d00199701ace7d8f5c63aae9d924d43697d72817505f6d24d");
        assertArrayEquals(expected, PolicyDigest.initial(HashAlgorithm.SHA256).policyAuthorize(keyName, ref).value());
        // the digest before PolicyAuthorize does not matter: the TPM resets it
        PolicyDigest afterPcr = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(Evidence.pcrValues("sha256:7"));
        assertArrayEquals(expected, afterPcr.policyAuthorize(keyName, ref).value());
    }

    @Test
    void approvalDigest_isHashOfPolicyAndRef() {
        byte[] policy = hex("11".repeat(32));
        assertArrayEquals(HashAlgorithm.SHA256.digest(hex("11".repeat(32) + "7265")),
                PolicyDigest.approvalDigest(HashAlgorithm.SHA256, policy, hex("7265")));
    }

    @Test
    void policyOr_needsTwoToEightBranchesOfSameHash() {
        PolicyDigest a = PolicyDigest.initial(HashAlgorithm.SHA256).policyAuthValue();
        PolicyDigest b = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(Evidence.pcrValues("sha256:0"));
        PolicyDigest or = PolicyDigest.initial(HashAlgorithm.SHA256).policyOr(List.of(a, b));
        assertArrayEquals(HashAlgorithm.SHA256.digest(new byte[32], hex("00000171"), a.value(), b.value()),
                or.value());
        assertNotEquals(or, PolicyDigest.initial(HashAlgorithm.SHA256).policyOr(List.of(b, a)));
        assertThrows(IllegalArgumentException.class,
                () -> PolicyDigest.initial(HashAlgorithm.SHA256).policyOr(List.of(a)));
        assertThrows(IllegalArgumentException.class, () -> PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyOr(List.of(a, PolicyDigest.initial(HashAlgorithm.SHA1))));
    }

    @Test
    void pcrDigestOfWrongLength_isRejected() {
        assertThrows(IllegalArgumentException.class, () -> PolicyDigest.initial(HashAlgorithm.SHA256)
                .policyPcr(PcrSelection.of(HashAlgorithm.SHA256, 0), new byte[20]));
    }
}
