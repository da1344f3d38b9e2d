package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.Tpm2Tools;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** What {@code tpmphone tpm quote} writes, tpm2-tools accepts (and rejects once tampered with). */
@WithSwtpm
class TpmQuoteCommandIT {

    @ParameterizedTest
    @ValueSource(strings = {"sha256:0,1,16", "sha256:0-9,14,16,23"})
    void tpm2Checkquote_acceptsWhatTpmQuoteWrites(String pcrs, SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        Run extend = tpmphone("tpm", "extend", "--tpm", swtpm.tpmUri(), "--pcr", "16", "--digest",
                "00".repeat(31) + "01");
        assertEquals(0, extend.exit(), extend::toString);
        Run quote = tpmphone("tpm", "quote", "--tpm", swtpm.tpmUri(), "--pcrs", pcrs, "--nonce", "c0ffee01",
                "--out", dir.toString());
        assertEquals(0, quote.exit(), quote::toString);
        for (String f : List.of("quote.msg", "quote.sig", "pcrs.bin", "ak.pub.pem")) {
            assertTrue(Files.size(dir.resolve(f)) > 0, f + " is not empty; the output directory holds "
                    + java.util.Arrays.toString(dir.toFile().list()));
        }
        Tpm2Tools.Result ok = checkquote(dir, "c0ffee01");
        assertEquals(0, ok.exitCode(), () -> "tpm2_checkquote accepts the quote of " + pcrs + ": " + ok.stderr()
                + ok.stdout());

        Tpm2Tools.Result wrongNonce = checkquote(dir, "c0ffee02");
        assertNotEquals(0, wrongNonce.exitCode(), "another nonce must fail: " + wrongNonce.stderr() + wrongNonce.stdout());

        byte[] pcrFile = Files.readAllBytes(dir.resolve("pcrs.bin"));
        byte[] tamperedPcrs = pcrFile.clone();
        tamperedPcrs[132 + 4 + 4 + 2] ^= 0x01; // first byte of the first PCR value
        Files.write(dir.resolve("pcrs.bin"), tamperedPcrs);
        Tpm2Tools.Result badPcr = checkquote(dir, "c0ffee01");
        assertNotEquals(0, badPcr.exitCode(), "a changed PCR value must fail: " + badPcr.stderr() + badPcr.stdout());
        Files.write(dir.resolve("pcrs.bin"), pcrFile);

        byte[] msg = Files.readAllBytes(dir.resolve("quote.msg"));
        msg[msg.length - 1] ^= 0x01; // last byte of the quoted PCR digest
        Files.write(dir.resolve("quote.msg"), msg);
        Tpm2Tools.Result badMsg = checkquote(dir, "c0ffee01");
        assertNotEquals(0, badMsg.exitCode(), "a tampered attestation must fail: " + badMsg.stderr() + badMsg.stdout());
    }

    @Test
    void badArguments_exitWithUsageErrorAndSayWhatToDo(SwtpmProcess swtpm, @TempDir Path dir) {
        Run badNonce = tpmphone("tpm", "quote", "--tpm", swtpm.tpmUri(), "--pcrs", "sha256:0", "--nonce", "xyz",
                "--out", dir.toString());
        assertEquals(2, badNonce.exit(), () -> "a nonce that is not hex is a usage error: " + badNonce);
        Run badUri = tpmphone("tpm", "quote", "--tpm", "swtpm:port=nope", "--pcrs", "sha256:0", "--nonce",
                "00", "--out", dir.toString());
        assertEquals(2, badUri.exit(), () -> "a port that is no number is a usage error: " + badUri);
        Run badPcr = tpmphone("tpm", "pcrread", "--tpm", swtpm.tpmUri(), "--pcrs", "sha256:99");
        assertEquals(2, badPcr.exit(), () -> "PCR 99 is a usage error: " + badPcr);
        Run nobody = tpmphone("tpm", "info", "--tpm", "swtpm:host=127.0.0.1,port=1,timeout=500");
        assertEquals(1, nobody.exit(),
                () -> "nothing listens on port 1: an operation failure, not a usage error: " + nobody);
    }

    /** What a command wrote and its exit code (the output is echoed to this JVM's console, as before). */
    private record Run(int exit, String out, String err) {
        @Override
        public String toString() {
            return "exit code " + exit + ", stderr: " + err + ", stdout: " + out;
        }
    }

    private static Run tpmphone(String... args) {
        java.io.StringWriter out = new java.io.StringWriter();
        java.io.StringWriter err = new java.io.StringWriter();
        int exit = Main.run(new java.io.PrintWriter(out, true), new java.io.PrintWriter(err, true), args);
        System.out.print(out);
        System.err.print(err);
        return new Run(exit, out.toString(), err.toString());
    }

    private static Tpm2Tools.Result checkquote(Path dir, String nonce) {
        return Tpm2Tools.runOffline("tpm2_checkquote", "-u", dir.resolve("ak.pub.pem").toString(),
                "-m", dir.resolve("quote.msg").toString(), "-s", dir.resolve("quote.sig").toString(),
                "-f", dir.resolve("pcrs.bin").toString(), "-g", "sha256", "-q", nonce);
    }
}
