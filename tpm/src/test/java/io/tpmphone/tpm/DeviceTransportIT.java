package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code device:} transport against a real character device: a pseudo-terminal in raw mode that socat bridges
 * to swtpm's data port. CI machines have no {@code /dev/tpmrm0}; this runs the same code path (FileChannel on a
 * character device, timeout on a private I/O thread) against a real TPM.
 */
@WithSwtpm(perMethod = true)
class DeviceTransportIT {
    private Process socat;
    private Path device;

    @BeforeEach
    void bridge(SwtpmProcess swtpm, @TempDir Path dir) throws Exception {
        device = dir.resolve("tpm0");
        socat = new ProcessBuilder("socat", "PTY,link=" + device + ",rawer",
                "UNIX-CONNECT:" + swtpm.serverSocket()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("socat.log").toFile()).start();
        Instant deadline = Instant.now().plusSeconds(10);
        while (!Files.exists(device)) {
            assertTrue(socat.isAlive(), () -> "socat exited: " + read(dir.resolve("socat.log")));
            assertTrue(Instant.now().isBefore(deadline), "socat made no pty within 10 s");
            socat.waitFor(5, TimeUnit.MILLISECONDS);
        }
    }

    @AfterEach
    void stopBridge() throws Exception {
        socat.destroy();
        if (!socat.waitFor(5, TimeUnit.SECONDS)) {
            socat.destroyForcibly();
        }
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    @Test
    void deviceTransport_runsRealCommands(SwtpmProcess swtpm) throws Exception {
        try (TpmClient client = TpmClient.open(TpmUri.parse("device:" + device))) {
            assertEquals(48, client.getRandom(48).length);
            client.ensureEndorsementKey(EkType.ECC_P256);
            TpmtPublic ak = client.createAttestationKey(PersistentHandle.EK_ECC, PersistentHandle.AK);
            byte[] nonce = client.getRandom(32);
            TpmQuote q = client.quote(PersistentHandle.AK, PcrSelection.parse("sha256:0-9"), nonce);
            QuoteVerifier.verify(q.attest(), q.signature(), ak, nonce, q.pcrValues());
        }
    }

    @Test
    void silentDevice_timesOutAndIsClosed(SwtpmProcess swtpm) throws Exception {
        try (TpmClient client = TpmClient.open(TpmUri.parse("device:" + device + ",timeout=400"))) {
            Process stop = new ProcessBuilder("kill", "-STOP", Long.toString(swtpm.pid())).start();
            assertTrue(stop.waitFor(5, TimeUnit.SECONDS) && stop.exitValue() == 0,
                    () -> "kill -STOP " + swtpm.pid() + " finished with exit code 0 within 5 s; it is "
                            + (stop.isAlive() ? "still running" : "done with exit code " + stop.exitValue()));
            try {
                TpmTransportException e = assertTimeoutPreemptively(Duration.ofSeconds(5),
                        () -> assertThrows(TpmTransportException.class, () -> client.getRandom(8)));
                assertTrue(e.getMessage().contains("within 400 ms"), e.getMessage());
            } finally {
                new ProcessBuilder("kill", "-CONT", Long.toString(swtpm.pid())).start().waitFor(5, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void missingDevice_saysWhatToCheck() {
        TpmTransportException e = assertThrows(TpmTransportException.class,
                () -> TpmClient.open(TpmUri.parse("device:" + device.resolveSibling("no-such-tpm"))));
        assertTrue(e.getMessage().contains("cannot open TPM device"), e.getMessage());
    }
}
