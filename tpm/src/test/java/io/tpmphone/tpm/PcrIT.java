package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.Tpm2Tools;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Locale;
import org.junit.jupiter.api.Test;

@WithSwtpm
class PcrIT {

    @Test
    void pcrExtend_isWhatTpm2PcrreadShows(SwtpmProcess swtpm) throws Exception {
        byte[] event = HashAlgorithm.SHA256.digest("softphone-core.jar".getBytes(StandardCharsets.UTF_8));
        byte[] expected;
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            byte[] before = client.pcrRead(PcrSelection.of(HashAlgorithm.SHA256, 14)).value(14);
            client.pcrExtend(14, event);
            expected = HashAlgorithm.SHA256.digest(before, event);
            assertArrayEquals(expected, client.pcrRead(PcrSelection.of(HashAlgorithm.SHA256, 14)).value(14));
        }
        Tpm2Tools.Result r = Tpm2Tools.run(swtpm, "tpm2_pcrread", "sha256:14").requireSuccess();
        String hex = HexFormat.of().formatHex(expected).toUpperCase(Locale.ROOT);
        assertTrue(r.stdout().contains("0x" + hex), "tpm2_pcrread printed:\n" + r.stdout() + "\nexpected " + hex);
    }

    @Test
    void pcrRead_ofAllTwentyFourPcrs_takesSeveralReadsAndKeepsOrder(SwtpmProcess swtpm) throws Exception {
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            client.pcrExtend(23, new byte[32]);
            PcrValues all = client.pcrRead(PcrSelection.parse("sha256:0-23"));
            assertEquals(24, all.values().size());
            assertArrayEquals(client.pcrRead(PcrSelection.of(HashAlgorithm.SHA256, 23)).value(23), all.value(23));
            assertFalse(Arrays.equals(new byte[32], all.value(23)), "PCR 23 was extended");
            assertArrayEquals(new byte[32], all.value(16), "PCR 16 untouched stays zero");
            byte[] ones = new byte[32];
            Arrays.fill(ones, (byte) 0xff);
            assertArrayEquals(ones, all.value(20), "PCRs 17-22 (DRTM) start at all ones");
        }
    }
}
