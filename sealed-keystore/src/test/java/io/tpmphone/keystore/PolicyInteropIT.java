package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.Tpm2Tools;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** tpm2-tools compute the same PolicyPCR digest the PCR_ONLY root is sealed to. */
@WithSwtpm(perMethod = true)
class PolicyInteropIT {
    @TempDir
    Path dir;

    /**
     * tpm2_createpolicy reads the live values and runs a trial session. tpm2-tools 5.4 handles at most 8 PCRs in a
     * PCR policy (a TPML_DIGEST holds 8), so the default 9-PCR selection cannot be cross-checked with it; for that
     * one the TPM itself is the witness (a real PolicyPCR session unseals the root, see SealedKeystoreIT).
     */
    @Test
    void pcrOnlyAuthPolicy_equalsTpm2CreatePolicy_overTheLivePcrs(SwtpmProcess swtpm) throws Exception {
        byte[] sealedPolicy = sealPcrOnly(swtpm, PcrSelection.parse("sha256:0,1,2,3,4,5,6,14"), null);
        Path fromTpm = dir.resolve("policy-from-tpm");
        Tpm2Tools.run(swtpm, "tpm2_createpolicy", "--policy-pcr", "-l", "sha256:0,1,2,3,4,5,6,14",
                "-L", fromTpm.toString()).requireSuccess();
        assertArrayEquals(sealedPolicy, Files.readAllBytes(fromTpm));
    }

    /**
     * From a file of PCR values ({@code -f}), as a verifier would; tpm2-tools 5.4 accepts at most 8 PCRs with
     * {@code -f} ("Number of PCR is limited to 8"), so this uses an 8-PCR selection.
     */
    @Test
    void pcrOnlyAuthPolicy_equalsTpm2CreatePolicy_fromAPcrValuesFile(SwtpmProcess swtpm) throws Exception {
        Path pcrFile = dir.resolve("pcrs.bin");
        PcrSelection eight = PcrSelection.parse("sha256:0,1,2,3,4,5,7,14");
        byte[] sealedPolicy = sealPcrOnly(swtpm, eight, pcrFile);
        Path fromFile = dir.resolve("policy-from-file");
        Tpm2Tools.run(swtpm, "tpm2_createpolicy", "--policy-pcr", "-l", "sha256:0,1,2,3,4,5,7,14",
                "-f", pcrFile.toString(), "-L", fromFile.toString()).requireSuccess();
        assertArrayEquals(sealedPolicy, Files.readAllBytes(fromFile));
    }

    private byte[] sealPcrOnly(SwtpmProcess swtpm, PcrSelection pcrs, Path pcrFile) throws Exception {
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            tpm.pcrExtend(14, HashAlgorithm.SHA256.digest("softphone".getBytes(StandardCharsets.UTF_8)));
            byte[] sealedPolicy;
            try (SealedKeystore ks = SealedKeystore.create(tpm, dir.resolve("ks"), Protection.pcrOnly(pcrs),
                    Optional.empty())) {
                sealedPolicy = ks.sealedPolicy().value();
            }
            if (pcrFile != null) {
                ByteArrayOutputStream values = new ByteArrayOutputStream();
                for (byte[] v : tpm.pcrRead(pcrs).values()) {
                    values.write(v);
                }
                Files.write(pcrFile, values.toByteArray());
            }
            tpm.disconnect(); // swtpm serves one connection: let tpm2-tools in
            return sealedPolicy;
        }
    }
}
