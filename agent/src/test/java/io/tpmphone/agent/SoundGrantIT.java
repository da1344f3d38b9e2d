package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.SoundServer;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The softphone's socket into the sound server exists only while a call holds it: granted by loading a
 * native-protocol module on a real PulseAudio server, withdrawn (socket gone, connections ended) when the last call
 * gives it back; and an isolated child sees it, at {@code sound/native} in its own mount namespace, only then.
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
class SoundGrantIT {

    private static Path native_(Path dir) {
        return dir.resolve(SoundGrant.SOCKET);
    }

    /** Whether a client can talk to the sound server through {@code socket} (pactl info through it). */
    private static boolean reachable(Path socket) throws Exception {
        Process p = new ProcessBuilder("pactl", "-s", "unix:" + socket, "info").redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(15, TimeUnit.SECONDS), "pactl through " + socket + " did not finish");
        return p.exitValue() == 0;
    }

    @Test
    @Timeout(120)
    void theSocket_existsOnlyWhileACallHoldsIt_andItsClientsEndWithIt(@TempDir Path dir) throws Exception {
        try (SoundServer server = SoundServer.start(dir.resolve("pulse"))) {
            server.speaker("spk");
            Path granted = Files.createDirectory(dir.resolve("sound"));
            try (SoundGrant grant = new SoundGrant(server.address(), granted)) {
                assertFalse(Files.exists(native_(granted)), "no socket before any call: " + List.of(granted.toFile()
                        .list()));
                assertFalse(reachable(native_(granted)), "no way into the sound server before any call");
                grant.open("call-1");
                grant.open("call-2");
                assertTrue(reachable(native_(granted)), "a call's socket reaches the sound server; server log: "
                        + server.logTail());
                long modules = server.pactl("list", "short", "modules").lines()
                        .filter(l -> l.contains("module-native-protocol-unix") && l.contains(granted.toString()))
                        .count();
                assertEquals(1, modules, "one socket for both calls: " + server.pactl("list", "short", "modules"));
                Process recorder = new ProcessBuilder("pacat", "--record", "-s", "unix:" + native_(granted), "-d",
                        "spk.monitor", "--raw").redirectErrorStream(true).start();
                Await.until("the recorder to connect through the granted socket", Duration.ofSeconds(10),
                        () -> server.pactl("list", "short", "source-outputs").lines().count() == 1,
                        () -> server.pactl("list", "short", "source-outputs"));
                grant.close("call-1");
                assertTrue(reachable(native_(granted)), "the socket stays while call-2 holds it");
                grant.close("call-2");
                assertFalse(Files.exists(native_(granted)), "the socket is gone once no call holds it");
                assertFalse(reachable(native_(granted)), "no way into the sound server after the calls");
                try {
                    assertTrue(recorder.waitFor(10, TimeUnit.SECONDS), "a client connected through the granted"
                            + " socket is disconnected when it is withdrawn; still running: " + recorder.info());
                } finally {
                    recorder.destroyForcibly();
                }
                assertFalse(grant.granted(), "nothing granted");
            }
        }
    }

    @Test
    @Timeout(180)
    void anIsolatedChild_seesTheSoundSocket_onlyDuringACall(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")),
                List.of(Fixture.jarOf(dir, IdleProbe.class)), Fixture.config(dir, "a=1\n"), IdleProbe.class.getName(),
                List.of(), List.of(), true);
        try (SoundServer server = SoundServer.start(dir.resolve("pulse"));
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
             Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00 pcrs=sha256:14");
             SoundGrant grant = new SoundGrant(server.address(), dir.resolve("launch/sound"))) {
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec, broker,
                    dir.resolve("launch/control"), grant.directory());
            try {
                Await.until("the child to run", Duration.ofSeconds(30),
                        () -> Files.readString(dir.resolve("launch/child.log")), l -> l.contains("probe ready"));
                long jvm = child.process().toHandle().descendants().filter(h -> h.info().command()
                        .map(c -> c.endsWith("/java")).orElse(false)).findFirst().orElseThrow().pid();
                String view = MeasuredLauncher.CHILD_CODE_MOUNT + "/" + MeasuredLauncher.SOUND_MOUNT;
                assertEquals("", inChild(jvm, "ls -A " + view), "the child's sound directory is empty between calls");
                grant.open("call-1");
                assertEquals("socket", inChild(jvm, "test -S " + view + "/native && echo socket"),
                        "the child sees the socket during a call");
                grant.close("call-1");
                assertEquals("", inChild(jvm, "ls -A " + view), "the socket is gone from the child's view after the"
                        + " call");
                String isolation = store.log().events().stream()
                        .filter(e -> e.type() == io.tpmphone.attestation.EventType.ISOLATION).findFirst()
                        .orElseThrow().dataAsString();
                assertTrue(isolation.contains("sound dir bind at sound/"), "the measured isolation names the sound"
                        + " directory: " + isolation);
            } finally {
                child.process().destroyForcibly();
                child.terminated().get(15, TimeUnit.SECONDS);
            }
        }
    }

    /** Runs {@code command} in the child's mount namespace, as root; returns its trimmed output. */
    private static String inChild(long pid, String command) throws Exception {
        Process p = new ProcessBuilder("nsenter", "-t", Long.toString(pid), "-m", "/bin/sh", "-c", command)
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS), "nsenter into " + pid + " did not finish");
        return out;
    }
}
