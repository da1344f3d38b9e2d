package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The softphone's socket into the sound server exists only while a call the agent saw accepted holds it: granted by
 * loading a native-protocol module on a real PulseAudio server, refused for a call without an accepted decision,
 * withdrawn (socket gone, connections ended) when the last call gives it back, when the call is rejected, or when its
 * bound runs out; and an isolated child sees it, at {@code sound/native} in its own mount namespace, only then — also
 * when the sound server runs as a desktop user of its own, not root.
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
                SoundGrant.NotAcceptedException refused = assertThrows(SoundGrant.NotAcceptedException.class,
                        () -> grant.open("call-1"), "no grant for a call the agent never saw accepted");
                assertTrue(refused.getMessage().contains("no accepted decision"), refused.getMessage());
                assertFalse(Files.exists(native_(granted)), "a refused open makes no socket");
                grant.accepted("call-1");
                grant.accepted("call-2");
                grant.open("call-1" + SoundGrant.RING_SUFFIX); // its ringing, before it is answered
                grant.close("call-1" + SoundGrant.RING_SUFFIX);
                assertThrows(SoundGrant.NotAcceptedException.class, () -> grant.open("call-3#ring"),
                        "a ringing of a call never accepted is refused too");
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
    @Timeout(120)
    void anExpiredCallsConnections_areCut_evenWhileAnotherCallHoldsTheSocket_andAnEndedCallIsNeverGrantedAgain(
            @TempDir Path dir) throws Exception {
        try (SoundServer server = SoundServer.start(dir.resolve("pulse"))) {
            server.speaker("spk");
            Path granted = Files.createDirectory(dir.resolve("sound"));
            try (SoundGrant grant = new SoundGrant(server.address(), granted, java.util.Optional.empty(),
                    Duration.ofSeconds(3))) {
                grant.accepted("call-1");
                grant.accepted("call-2", Duration.ofHours(1));
                grant.open("call-1");
                grant.open("call-2");
                // a (compromised) child keeps a recording opened under call-1 past call-1's bound
                Process recorder = new ProcessBuilder("pacat", "--record", "-s", "unix:" + native_(granted), "-d",
                        "spk.monitor", "--raw").redirectErrorStream(true).redirectOutput(
                        ProcessBuilder.Redirect.DISCARD).start();
                try {
                    Await.until("the recorder to connect", Duration.ofSeconds(10),
                            () -> server.pactl("list", "short", "source-outputs").lines().count() == 1,
                            () -> server.pactl("list", "short", "source-outputs"));
                    assertTrue(recorder.waitFor(20, TimeUnit.SECONDS), "a connection opened under call-1 is cut"
                            + " when call-1's bound runs out, though call-2 holds the socket; source outputs: "
                            + server.pactl("list", "short", "source-outputs"));
                } finally {
                    recorder.destroyForcibly();
                }
                assertTrue(grant.granted(), "call-2 still holds the sound server");
                assertTrue(reachable(native_(granted)), "call-2's socket works again after the cut");
                assertThrows(SoundGrant.NotAcceptedException.class, () -> grant.open("call-1"),
                        "the expired call is refused");
                grant.accepted("call-1"); // the child reports a fresh ACCEPT for the same call
                assertThrows(SoundGrant.NotAcceptedException.class, () -> grant.open("call-1"),
                        "an expired call accepted again is still refused (no fresh bound)");
                grant.close("call-2"); // SOUND CLOSE of the call: the call is over
                assertFalse(grant.granted(), "nothing granted after call-2 gave it back");
                grant.accepted("call-2");
                assertThrows(SoundGrant.NotAcceptedException.class, () -> grant.open("call-2"),
                        "a call given back cannot be opened again without a new call");
            }
        }
    }

    @Test
    @Timeout(120)
    void aCallsGrant_endsWhenItIsRejected_orWhenItsBoundRunsOut_evenIfTheChildKeepsIt(@TempDir Path dir)
            throws Exception {
        try (SoundServer server = SoundServer.start(dir.resolve("pulse"))) {
            Path granted = Files.createDirectory(dir.resolve("sound"));
            Duration bound = Duration.ofSeconds(3);
            try (SoundGrant grant = new SoundGrant(server.address(), granted, java.util.Optional.empty(), bound)) {
                grant.accepted("call-1");
                grant.open("call-1" + SoundGrant.RING_SUFFIX);
                assertTrue(reachable(native_(granted)), "the ringing of an accepted call is granted");
                grant.ended("call-1"); // the decision said REJECT (the person declined, or policy refused)
                assertFalse(grant.granted(), "a rejected call's ringing grant ends at once");
                assertThrows(SoundGrant.NotAcceptedException.class, () -> grant.open("call-1"),
                        "a rejected call cannot be granted");

                long start = System.nanoTime();
                grant.accepted("call-2");
                grant.open("call-2"); // and the (compromised) child never gives it back
                assertTrue(reachable(native_(granted)), "the accepted call is granted");
                Await.until("the grant to end at its bound", Duration.ofSeconds(20), () -> !grant.granted(),
                        () -> "still granted; modules " + server.pactl("list", "short", "modules"));
                Duration held = Duration.ofNanos(System.nanoTime() - start);
                assertTrue(held.compareTo(bound) >= 0, "withdrawn no earlier than its bound: held " + held);
                assertFalse(Files.exists(native_(granted)), "the socket is gone at the bound");
                assertFalse(reachable(native_(granted)), "no way in after the bound");
                SoundGrant.NotAcceptedException late = assertThrows(SoundGrant.NotAcceptedException.class,
                        () -> grant.open("call-2"), "re-opening after the bound is refused");
                assertTrue(late.getMessage().contains("no accepted decision"), late.getMessage());
            }
        }
    }

    @Test
    @Timeout(180)
    void anIsolatedChild_seesTheSoundSocket_onlyDuringACall_ofASoundServerRunAsItsOwnUser(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")),
                List.of(Fixture.jarOf(dir, IdleProbe.class)), Fixture.config(dir, "a=1\n"), IdleProbe.class.getName(),
                List.of(), List.of(), true).withSoundClient(true);
        // A desktop user's sound server: its own non-root user, who may enter the test's directory but not the
        // agent's state tree; it must make the per-call socket itself.
        String desktop = "tpsnd" + Long.toHexString(System.nanoTime() & 0xffffffL);
        run("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", desktop);
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
        Path grants = Files.createDirectory(dir.resolve("grants"));
        Files.setPosixFilePermissions(grants, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
        SoundGrant.Owner owner = SoundGrant.Owner.of(desktop);
        try (SoundServer server = SoundServer.start(dir.resolve("pulse"), desktop);
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
             Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00 pcrs=sha256:14");
             SoundGrant grant = new SoundGrant(server.address(), grants.resolve("sound"), java.util.Optional.of(owner),
                     SoundGrant.DEFAULT_BOUND);
             SoundGrant hidden = new SoundGrant(server.address(), dir.resolve("launch/private/sound"),
                     java.util.Optional.of(owner), SoundGrant.DEFAULT_BOUND)) {
            String serverUid = Files.readAllLines(Path.of("/proc/" + server.pid() + "/status")).stream()
                    .filter(l -> l.startsWith("Uid:")).findFirst().orElseThrow().split("\\s+")[1];
            assertEquals(Integer.toString(owner.uid()), serverUid, "the sound server runs as the desktop user");
            Files.createDirectories(dir.resolve("launch/private"));
            Files.setPosixFilePermissions(dir.resolve("launch/private"),
                    java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
            java.io.IOException unreachable = assertThrows(java.io.IOException.class, () -> hidden.prepare(null),
                    "a grant directory the sound server's user cannot reach is refused up front");
            assertTrue(unreachable.getMessage().contains("cannot reach"), unreachable.getMessage());

            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec, broker,
                    dir.resolve("launch/control"), grant);
            try {
                Await.until("the child to run", Duration.ofSeconds(30),
                        () -> Files.readString(dir.resolve("launch/child.log")), l -> l.contains("probe ready"));
                long jvm = child.process().toHandle().descendants().filter(h -> h.info().command()
                        .map(c -> c.endsWith("/java")).orElse(false)).findFirst().orElseThrow().pid();
                String view = MeasuredLauncher.CHILD_CODE_MOUNT + "/" + MeasuredLauncher.SOUND_MOUNT;
                assertEquals(owner.uid() + ":" + "rwxr-x---", run("stat", "-c", "%u:%A", grant.directory().toString())
                        .strip().replace("drwxr-x---", "rwxr-x---"), "the grant directory is the sound server user's,"
                        + " 0750");
                assertEquals("", inChild(jvm, "ls -A " + view), "the child's sound directory is empty between calls");
                grant.accepted("call-1");
                grant.open("call-1");
                assertEquals("socket", inChild(jvm, "test -S " + view + "/native && echo socket"),
                        "the child sees the socket the desktop user's server made during a call; server log: "
                                + server.logTail());
                String info = inChild(jvm, asChild(jvm) + " pactl -s unix:" + view + "/native info");
                assertTrue(info.contains("Server Name"), "the child, as its own user, reaches the sound server"
                        + " through the granted socket: " + info);
                grant.close("call-1");
                assertEquals("", inChild(jvm, "ls -A " + view), "the socket is gone from the child's view after the"
                        + " call");
                String isolation = store.log().events().stream()
                        .filter(e -> e.type() == io.tpmphone.attestation.EventType.ISOLATION).findFirst()
                        .orElseThrow().dataAsString();
                assertTrue(isolation.contains("sound dir bind at sound/"), "the measured isolation names the sound"
                        + " directory: " + isolation);
                // the child's PulseAudio client configuration: a file of its measured code tree, named by
                // PULSE_CLIENTCONFIG, pointing at the granted socket, its digest in the measured ISOLATION event
                String confPath = MeasuredLauncher.CHILD_CODE_MOUNT + "/" + MeasuredLauncher.PULSE_CLIENT_CONFIG;
                String conf = inChild(jvm, "cat " + confPath);
                assertTrue(conf.contains("default-server = unix:" + view + "/native") && conf.contains(
                        "autospawn = no"), "the client configuration points at the granted socket: " + conf);
                String environ = new String(Files.readAllBytes(Path.of("/proc/" + jvm + "/environ")),
                        StandardCharsets.UTF_8).replace('\0', '\n');
                assertTrue(environ.lines().anyMatch(l -> l.equals("PULSE_CLIENTCONFIG=" + confPath)),
                        "libpulse in the child reads it, not /etc/pulse/client.conf: " + environ);
                byte[] read = inChild(jvm, "cat " + confPath + " | base64 -w0").transform(
                        java.util.Base64.getDecoder()::decode);
                assertEquals(new String(MeasuredLauncher.pulseClientConfig(), StandardCharsets.UTF_8),
                        new String(read, StandardCharsets.UTF_8), "the child reads the bytes the launcher wrote");
                String digest = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                        .digest(read));
                assertTrue(isolation.contains("PulseAudio client configuration pulse-client.conf sha256:" + digest),
                        "the measured launch names the digest of the file the child reads (" + digest + "): "
                                + isolation);

                // ... and it is measured as configuration, which the release approves like every other file: the
                // approved one passes, another (or none approved) makes the appraisal name the file
                io.tpmphone.attestation.MeasurementLog log = store.log();
                assertTrue(log.events().stream().anyMatch(e -> e.type() == io.tpmphone.attestation.EventType
                        .CONFIGURATION && e.dataAsString().equals(MeasuredLauncher.PULSE_CLIENT_CONFIG)
                        && e.contentDigestHex().equals(digest)), "a CONFIGURATION event"
                        + " for " + MeasuredLauncher.PULSE_CLIENT_CONFIG + " with the digest of what the child reads");
                io.tpmphone.attestation.Appraisal approved = appraise(log, spec, null);
                assertEquals(io.tpmphone.attestation.ClaimStatus.AFFIRMING, approved.claims().status(
                        io.tpmphone.attestation.ClaimName.CONFIGURATION), "the release that approves the client"
                        + " configuration: " + approved.reasons());
                io.tpmphone.attestation.Appraisal changed = appraise(log, spec,
                        "default-server = unix:/tmp/elsewhere/native\nautospawn = no\n");
                assertEquals(io.tpmphone.attestation.ClaimStatus.WARNING, changed.claims().status(
                        io.tpmphone.attestation.ClaimName.CONFIGURATION), "a client configuration other than the"
                        + " approved one: " + changed.reasons());
                assertTrue(changed.reasons().stream().anyMatch(r -> r.contains("configuration "
                        + MeasuredLauncher.PULSE_CLIENT_CONFIG + ": digest")), "the appraisal names the file: "
                        + changed.reasons());
                assertFalse(changed.level().atLeast(io.tpmphone.attestation.IntegrityLevel.MEASURED),
                        "not MEASURED: " + changed.level());
                io.tpmphone.attestation.Appraisal unexpected = appraise(log, spec.withSoundClient(false), null);
                assertTrue(unexpected.reasons().stream().anyMatch(r -> r.contains(
                        MeasuredLauncher.PULSE_CLIENT_CONFIG + ": not an approved configuration file")),
                        "a release that expects no client configuration names the one measured: "
                                + unexpected.reasons());
            } finally {
                child.process().destroyForcibly();
                child.terminated().get(15, TimeUnit.SECONDS);
            }
        } finally {
            run("userdel", desktop);
        }
    }

    /**
     * {@code log} appraised (its quote taken as verified, PCR 14 its replay) under a policy approving {@code spec}'s
     * release, with the client configuration's approved digest that of {@code otherClientConfig} when non-null.
     */
    private static io.tpmphone.attestation.Appraisal appraise(io.tpmphone.attestation.MeasurementLog log,
            LaunchSpec spec, String otherClientConfig) throws Exception {
        Map<String, Object> release = new java.util.LinkedHashMap<>(ReleaseManifest.of("softphone-sound", spec));
        if (otherClientConfig != null) {
            @SuppressWarnings("unchecked")
            Map<String, String> configuration = new java.util.LinkedHashMap<>(
                    (Map<String, String>) release.get("configuration"));
            configuration.put(MeasuredLauncher.PULSE_CLIENT_CONFIG, java.util.HexFormat.of().formatHex(
                    io.tpmphone.attestation.HashAlgorithm.SHA256.digest(otherClientConfig.getBytes(
                            StandardCharsets.UTF_8))));
            release.put("configuration", configuration);
        }
        Map<String, Object> p = new java.util.LinkedHashMap<>();
        p.put("version", 1);
        p.put("measurementPcr", Fixture.PCR);
        p.put("measurementPcrBaselines", List.of(java.util.HexFormat.of().formatHex(
                log.replay(Fixture.PCR).initialValue())));
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of());
        p.put("releases", List.of(release));
        p.put("requireIsolation", true);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", 300);
        io.tpmphone.attestation.AttestationPolicy policy = io.tpmphone.attestation.AttestationPolicy.parse(
                new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(p));
        io.tpmphone.attestation.PcrValues quoted = io.tpmphone.attestation.PcrValues.of(
                io.tpmphone.attestation.PcrSelection.of(io.tpmphone.attestation.HashAlgorithm.SHA256, Fixture.PCR),
                List.of(log.replay(Fixture.PCR).value()));
        return io.tpmphone.attestation.Appraiser.appraise(policy, log, quoted,
                io.tpmphone.attestation.AppraisalContext.builder().quoteVerified(true).build());
    }

    /** setpriv to the uid and effective gid {@code pid} runs with (as the launcher drops the child). */
    private static String asChild(long pid) throws Exception {
        List<String> status = Files.readAllLines(Path.of("/proc/" + pid + "/status"));
        String uid = status.stream().filter(l -> l.startsWith("Uid:")).findFirst().orElseThrow().split("\\s+")[1];
        String gid = status.stream().filter(l -> l.startsWith("Gid:")).findFirst().orElseThrow().split("\\s+")[2];
        return "setpriv --reuid=" + uid + " --regid=" + gid + " --clear-groups";
    }

    private static String run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), String.join(" ", command) + " did not finish");
        assertEquals(0, p.exitValue(), String.join(" ", command) + ": " + out);
        return out;
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
