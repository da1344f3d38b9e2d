package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PolicyDigest;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Known answers: our policy-digest calculator against what a TPM trial session computes. */
@WithSwtpm
class PolicyDigestIT {

    @ParameterizedTest
    @ValueSource(strings = {"sha256:0", "sha256:16", "sha256:0-7", "sha256:0,1,2,3,14", "sha256:0-23",
        "sha1:0,1,2"})
    void policyPcr_equalsTrialSession(String selection, SwtpmProcess swtpm) throws Exception {
        PcrSelection sel = PcrSelection.parse(selection);
        byte[] pcrDigest = HashAlgorithm.SHA256.digest(selection.getBytes(StandardCharsets.US_ASCII));
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            byte[] tpm = client.trialPolicyPcr(sel, pcrDigest);
            byte[] ours = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(sel, pcrDigest).value();
            assertArrayEquals(tpm, ours, selection);
        }
    }

    @Test
    void policyPcrOfCurrentValues_equalsTrialSession(SwtpmProcess swtpm) throws Exception {
        PcrSelection sel = PcrSelection.parse("sha256:0-7,14");
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            client.pcrExtend(14, HashAlgorithm.SHA256.digest(new byte[] {42}));
            var values = client.pcrRead(sel);
            byte[] tpm = client.trialPolicyPcr(sel, values.compositeDigest(HashAlgorithm.SHA256));
            assertArrayEquals(tpm, PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(values).value());
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {0L, 1L, 600_000L, 0x7FFF_FFFF_FFFF_FFFFL, -1L})
    void policyPcrThenClockBefore_equalsTrialSession(long clockBefore, SwtpmProcess swtpm) throws Exception {
        PcrSelection sel = PcrSelection.parse("sha256:0-7,14");
        byte[] pcrDigest = HashAlgorithm.SHA256.digest(new byte[] {7});
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            long resetCount = clockBefore == -1L ? 0xFFFF_FFFFL : clockBefore & 0xFFFF_FFFFL;
            byte[] tpm = client.trialPolicyPcrWithin(sel, pcrDigest, new PolicyApproval.Limit(resetCount,
                    clockBefore));
            byte[] ours = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(sel, pcrDigest)
                    .policyValidWithin(resetCount, clockBefore).value();
            assertArrayEquals(tpm, ours, Long.toUnsignedString(clockBefore));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "tpmphone-keystore-v1"})
    void policyAuthorize_equalsTrialSession(String policyRef, SwtpmProcess swtpm) throws Exception {
        AuthorityKey authority = new AuthorityKey();
        byte[] ref = policyRef.getBytes(StandardCharsets.US_ASCII);
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            byte[] tpm = client.trialPolicyAuthorize(authority.publicArea().name(), ref);
            byte[] ours = PolicyDigest.initial(HashAlgorithm.SHA256)
                    .policyAuthorize(authority.publicArea().name(), ref).value();
            assertArrayEquals(tpm, ours);
        }
    }
}
