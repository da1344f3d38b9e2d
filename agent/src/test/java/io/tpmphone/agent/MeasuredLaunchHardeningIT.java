package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmUri;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The measured launch's review findings, each against a real swtpm and the real softphone child: the child runs
 * unprivileged, a silent broker client keeps nobody out, orphans are killed by pid AND start time, a reboot does not
 * extend TERMINATED into the new boot, and a failed TERMINATED extend is retried.
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
class MeasuredLaunchHardeningIT {

    @Test
    void theIsolatedChild_runsUnprivileged_onReadOnlyCode_andStillReachesTheBroker(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
             Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00 pcrs=sha256:14")) {
            // A silent same-host client connects first: the child must still get in (HELLO deadline).
            SocketChannel silent = SocketChannel.open(StandardProtocolFamily.UNIX);
            silent.connect(UnixDomainSocketAddress.of(broker.socketPath()));
            long started = System.nanoTime();
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec, broker);
            try {
                ProcessHandle jvm = childJvm(child.process());
                Map<String, String> status = procStatus(jvm.pid());
                assertNotEquals("0", status.get("Uid").split("\\s+")[0], "the child does not run as root: " + status);
                assertFalse(List.of(status.get("Uid").split("\\s+")).contains("0"), "no uid 0 at all: " + status);
                assertEquals("1", status.get("NoNewPrivs"), () -> "no_new_privs is set: " + status);
                for (String caps : List.of("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")) {
                    assertEquals("0000000000000000", status.get(caps), () -> caps + " is empty: " + status);
                }
                assertTrue(status.get("Groups").isBlank() || !List.of(status.get("Groups").split("\\s+"))
                        .contains("0"), "no root group: " + status.get("Groups"));

                Await.until("the unprivileged child to connect to the broker", Duration.ofSeconds(15),
                        broker::childConnected, () -> "not connected; child.log: " + read(dir.resolve("launch/child.log")));
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
                Await.until("the child to log that it attested through the agent broker", Duration.ofSeconds(10),
                        () -> read(dir.resolve("launch/child.log")), log -> log.contains("attested through the agent"
                                + " broker"));
                System.err.println("child connected through the broker " + ms + " ms after launch");

                // Code: readable by the child, owned by the agent, mounted read-only in the child.
                Path code = child.codeDirectory();
                assertEquals("rwxr-xr-x", PosixFilePermissions.toString(Files.getPosixFilePermissions(code)),
                        () -> "mode of the staged code directory " + code);
                assertEquals("rw-r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(
                        code.resolve("softphone-core.jar"))), () -> "mode of " + code.resolve("softphone-core.jar"));
                assertEquals(0, Files.getAttribute(code, "unix:uid"), () -> "owner uid of " + code);
                String cwd = Files.readSymbolicLink(Path.of("/proc/" + jvm.pid() + "/cwd")).toString();
                assertEquals(MeasuredLauncher.CHILD_CODE_MOUNT.toString(), cwd,
                        () -> "the child JVM " + jvm.pid() + " runs in the code mount: " + jvm.info());
                assertEquals(Files.readAttributes(code, "unix:ino").get("ino"), Files.readAttributes(
                        Path.of("/proc/" + jvm.pid() + "/cwd"), "unix:ino").get("ino"), "the view is the staged code");
                List<String> mountinfo = Files.readAllLines(Path.of("/proc/" + jvm.pid() + "/mountinfo"));
                assertTrue(mountinfo.stream()
                        .map(l -> l.split(" ")).anyMatch(f -> f[4].equals(cwd)
                                && List.of(f[5].split(",")).contains("ro")), () -> "the code directory " + cwd
                                + " is mounted read-only; its mountinfo lines: " + mountinfo.stream()
                                .filter(l -> l.contains(" " + cwd + " ")).toList());
                // As the child's user, with its mounts, writing the code directory fails.
                String uid = status.get("Uid").split("\\s+")[0];
                Process write = new ProcessBuilder("nsenter", "-t", Long.toString(jvm.pid()), "-m", "-p",
                        "setpriv", "--reuid=" + uid, "--regid=" + status.get("Gid").split("\\s+")[0],
                        "--clear-groups", "/bin/sh", "-c", "touch '" + cwd + "/evil.jar'").redirectErrorStream(true)
                        .start();
                assertTrue(write.waitFor(10, TimeUnit.SECONDS), () -> "nsenter as the child's user (" + write.info()
                        .commandLine().orElse("?") + ") did not exit within 10 s");
                String out = new String(write.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertNotEquals(0, write.exitValue(), "the child's user could write its code: " + out);
                assertTrue(out.contains("Read-only") || out.contains("Permission denied"),
                        () -> "the write fails read-only or permission denied; exit code " + write.exitValue()
                                + ", output: " + out);
                assertFalse(Files.exists(code.resolve("evil.jar")), "no evil.jar in " + code + " after: " + out);

                // The ISOLATION event says what was applied.
                MeasurementEvent isolation = store.log().events().stream()
                        .filter(e -> e.type() == EventType.ISOLATION).findFirst().orElseThrow();
                String data = isolation.dataAsString();
                for (String applied : List.of("--pid", "--mount", "--ipc", "ro-bind", "setpriv uid " + uid,
                        "no_new_privs", "bounding-set -all", "no capabilities")) {
                    assertTrue(data.contains(applied), "ISOLATION names " + applied + ": " + data);
                }
                // One JVM event, for the whole java.home.
                List<MeasurementEvent> jvmEvents = store.log().events().stream()
                        .filter(e -> e.type() == EventType.JVM).toList();
                assertEquals(1, jvmEvents.size(), () -> "one JVM event: " + jvmEvents);
                assertEquals(spec.javaHome().toRealPath().toString(), jvmEvents.get(0).dataAsString(),
                        () -> "the JVM event names the real java.home: " + jvmEvents.get(0));
                assertArrayEquals(MeasuredLauncher.jvmDigest(spec).digest(), jvmEvents.get(0).contentDigest(),
                        () -> "the JVM event's digest is java.home's " + jvmDigestHex(spec) + ": " + jvmEvents.get(0));
                // LAUNCH names the pid and its start time.
                String launch = child.events().get(child.events().size() - 1).dataAsString();
                assertEquals("pid " + child.process().pid() + " start "
                        + child.process().toHandle().info().startInstant().orElseThrow(), launch,
                        () -> "the last launch event names the pid and start time: " + child.events());
            } finally {
                child.process().getOutputStream().close();
                child.terminated().get(15, TimeUnit.SECONDS);
                silent.close();
            }
            assertEquals(EventType.TERMINATED, store.log().event(store.log().size() - 1).type(),
                    () -> "the log ends with TERMINATED: " + store.log().events());
        }
    }

    @Test
    void aFailedTerminatedExtend_isRetried_andRecordedOnce(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
             Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00")) {
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec, broker);
            Await.until("the child to connect to the broker", Duration.ofSeconds(15), broker::childConnected,
                    () -> "not connected; child.log: " + read(dir.resolve("launch/child.log")));
            store.failNextExtend(new TpmException("injected: TPM unreachable"));
            child.process().getOutputStream().close();
            Await.event("the child to exit after its stdin closed", Duration.ofSeconds(15), child.process().onExit(),
                    () -> "still running; child.log: " + read(dir.resolve("launch/child.log")));
            Await.until("the exit handler to try, and fail, to extend TERMINATED", Duration.ofSeconds(5),
                    store::extendPending, () -> "no extend pending; the child: " + child.process());
            assertTrue(child.terminationPending(), () -> "dead, TERMINATED not yet in the PCR; process "
                    + child.process() + " alive " + child.process().isAlive() + ", log " + store.log().events());
            assertFalse(child.terminated().isDone(), () -> "the termination waits for the retried extend; it is "
                    + child.terminated() + ", log " + store.log().events());

            Optional<MeasurementEvent> recorded = child.recordTermination();
            assertEquals(EventType.TERMINATED, recorded.orElseThrow().type(),
                    () -> "recordTermination() recorded TERMINATED: " + recorded);
            assertFalse(child.terminationPending(), () -> "recorded " + recorded + ", nothing pending any more");
            assertFalse(store.extendPending(), () -> "recorded " + recorded + ", no extend pending; log "
                    + store.log().events());
            MeasurementLog log = store.log();
            assertEquals(1, log.events().stream().filter(e -> e.type() == EventType.TERMINATED).count(),
                    () -> "TERMINATED once: " + log.events());
            byte[] replayed = log.replay(Fixture.PCR).value();
            byte[] inTpm = pcr(tpm);
            assertArrayEquals(replayed, inTpm, () -> "the log replays to the PCR: replayed "
                    + java.util.HexFormat.of().formatHex(replayed) + ", PCR " + Fixture.PCR + " "
                    + java.util.HexFormat.of().formatHex(inTpm) + "; log " + log.events());
            assertEquals(recorded, child.recordTermination(), "idempotent");
        }
    }

    @Test
    void anOrphanedLaunch_whosePidNowBelongsToAnotherProcess_isNotKilled_butEnded(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        ProcessHandle self = ProcessHandle.current();
        Instant selfStart = self.info().startInstant().orElseThrow();
        String reused = "pid " + self.pid() + " start " + selfStart.minusSeconds(3600);
        Optional<ProcessHandle> reusedOrphan = Agent.orphan(reused);
        assertTrue(reusedOrphan.isEmpty(), () -> "same pid, other start time: not our child; found "
                + reusedOrphan.map(h -> h.pid() + " " + h.info()));
        assertEquals(Optional.of(self.pid()), Agent.orphan("pid " + self.pid() + " start " + selfStart)
                .map(ProcessHandle::pid), "pid and start time match: the orphan");
        Optional<ProcessHandle> pidOnly = Agent.orphan("pid " + self.pid());
        assertTrue(pidOnly.isEmpty(), () -> "a pid alone is never enough; found "
                + pidOnly.map(h -> h.pid() + " " + h.info()));

        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            try (MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("agent/log"), tpm, Fixture.PCR)) {
                store.measure(EventType.LAUNCH, HashAlgorithm.SHA256.digest(reused.getBytes(StandardCharsets.US_ASCII)),
                        reused);
            }
            try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                    Clock.systemUTC());
                 Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-o", Fixture.PCR,
                         spec, Duration.ofHours(1), Clock.systemUTC())) {
                enroll(server, tpm, dir.resolve("agent"), "host-o");
                agent.start();
                assertTrue(self.isAlive(), "this JVM (the pid in the LAUNCH) was not killed");
                List<MeasurementEvent> events = agent.store().log().events();
                assertEquals(EventType.LAUNCH, events.get(1).type(), () -> "the stored LAUNCH comes first: "
                        + events);
                assertEquals(EventType.TERMINATED, events.get(2).type(),
                        () -> "the orphaned launch is still ended: " + events);
                assertTrue(events.get(2).dataAsString().startsWith("agent restarted"),
                        () -> "TERMINATED says the agent restarted: " + events.get(2));
            }
        }
    }

    @Test
    void aTpmReboot_stopsTheOldChildWithoutExtendingTheNewBoot_thenRelaunches(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        TpmUri uri = TpmUri.parse(swtpm.tpmUri());
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC());
             TpmClient tpm = TpmClient.open(uri);
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-r", Fixture.PCR, spec,
                     Duration.ofHours(1), Clock.systemUTC())) {
            enroll(server, tpm, dir.resolve("agent"), "host-r");
            Agent.Status started = agent.start();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), started.level(),
                    () -> "the agent starts MEASURED: " + started);
            Process first = agent.child().orElseThrow();
            String oldBoot = Files.readString(dir.resolve("agent/log/boot")).trim();
            tpm.disconnect();
            swtpm.restart();
            assertTrue(agent.checkForReboot(), () -> "the agent notices the swtpm restart; boot before " + oldBoot
                    + ", status " + agent.status());
            assertFalse(first.isAlive(), () -> "the old child was stopped; pid " + first.pid() + " is alive: "
                    + first.info());

            MeasurementLog archived = MeasurementLog.parse(Files.readAllBytes(
                    dir.resolve("agent/log/measurements-boot-" + oldBoot + ".log")));
            assertEquals(EventType.LAUNCH, archived.event(archived.size() - 1).type(),
                    () -> "the old boot's log ends at its LAUNCH: no TERMINATED was measured for it: "
                            + archived.events());
            MeasurementLog fresh = agent.store().log();
            assertArrayEquals(new byte[32], fresh.event(0).contentDigest(),
                    () -> "the new log starts from the reset PCR value: nothing was extended before it began; it "
                            + "starts with " + fresh.event(0));
            assertEquals(0, fresh.events().stream().filter(e -> e.type() == EventType.TERMINATED).count(),
                    () -> "no TERMINATED in the new boot's log: " + fresh.events());
            assertEquals(Optional.of(IntegrityLevel.MEASURED), agent.status().level(),
                    () -> "reasons: " + agent.status().reasons());
            assertTrue(agent.status().childAlive(), () -> "the relaunched child is alive: " + agent.status());
        }
    }

    @Test
    void aTpmRestart_startsANewLog_andAnUnchangedBoot_continues(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR)) {
            store.measure(EventType.CONFIGURATION, HashAlgorithm.SHA256.digest(new byte[] {1}), "x");
            assertEquals(MeasurementLogStore.State.CONTINUED, store.reconcile(),
                    () -> "an unchanged boot continues the log: " + store.log().events());
            assertFalse(store.tpmRebooted(), () -> "no reboot before the restart; PCR " + Fixture.PCR + " "
                    + pcrHex(tpm) + ", log " + store.log().events());
            tpm.disconnect();
            swtpm.restart();
            assertTrue(store.tpmRebooted(), () -> "swtpm restart changed the reset count and reset the PCR; PCR "
                    + Fixture.PCR + " " + pcrHex(tpm) + ", swtpm " + swtpm);
            assertEquals(MeasurementLogStore.State.NEW_BOOT, store.reconcile(),
                    () -> "after the restart the log starts anew: " + store.log().events());
        }
    }

    // ---------------------------------------------------------------------------------------------------- helpers

    /**
     * Enrolls {@code host} with an operator's enrollment token (the server now requires one for a new host name) and
     * leaves the enrollment where the agent finds it, so {@link Agent#start()} does not enroll again.
     */
    private static void enroll(AttestationServer server, TpmClient tpm, Path state, String host) throws Exception {
        AttestationClient client = Fixture.client(server);
        String token = client.post("/v1/enrollment-tokens", Map.of("host", host), Fixture.ADMIN_TOKEN)
                .get("enrollmentToken").asText();
        TpmtPublic ek = tpm.ensureEndorsementKey(EkType.RSA_2048);
        byte[] certificate = tpm.readEndorsementCertificate(EkType.RSA_2048).orElseThrow();
        TpmtPublic ak = tpm.readPublic(HostAttestation.AK).isPresent() ? tpm.readPublic(HostAttestation.AK).get()
                : tpm.createAttestationKey(EkType.RSA_2048.defaultHandle(), HostAttestation.AK);
        Base64.Encoder b64 = Base64.getEncoder();
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("host", host);
        request.put("ekPublic", b64.encodeToString(ek.encoded()));
        request.put("ekCertificate", b64.encodeToString(certificate));
        request.put("akPublic", b64.encodeToString(ak.encoded()));
        request.put("enrollmentToken", token);
        JsonNode challenge = client.post("/v1/enrollments", request, null);
        JsonNode credential = challenge.get("credential");
        Base64.Decoder d = Base64.getDecoder();
        SecretBytes secret = tpm.activateCredential(HostAttestation.AK, EkType.RSA_2048.defaultHandle(),
                d.decode(credential.get("integrityHmac").asText()), d.decode(credential.get("encIdentity").asText()),
                d.decode(credential.get("encryptedSecret").asText()));
        JsonNode done = client.post("/v1/enrollments/" + challenge.get("enrollmentId").asText() + "/activation",
                Map.of("secret", b64.encodeToString(secret.reveal())), null);
        secret.destroy();
        Files.createDirectories(state);
        Files.writeString(state.resolve("enrollment"), host + "\n" + done.get("akId").asText() + "\n",
                StandardCharsets.US_ASCII);
    }

    private static byte[] pcr(TpmClient tpm) throws Exception {
        return tpm.pcrRead(PcrSelection.of(HashAlgorithm.SHA256, Fixture.PCR)).value(Fixture.PCR);
    }

    /** The PCR's value in hex, or why it could not be read (for assertion messages). */
    private static String pcrHex(TpmClient tpm) {
        try {
            return java.util.HexFormat.of().formatHex(pcr(tpm));
        } catch (Exception e) {
            return "unreadable (" + e + ")";
        }
    }

    private static String jvmDigestHex(LaunchSpec spec) {
        try {
            return MeasuredLauncher.jvmDigest(spec).digestHex();
        } catch (java.io.IOException e) {
            return "unknown (" + e + ")";
        }
    }

    /**
     * The JVM's exec is set-gid-like (real gid apart from effective), which clears a parent-death signal, so it cannot
     * hold one: the wrapper shell stays as the PID namespace's init and holds unshare's {@code --kill-child}. Killing
     * {@code unshare} (as an agent that dies hard does not, but an operator or the OOM killer may) must still end it.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "wrapper run by {0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"/bin/sh", "/bin/bash"})
    @org.junit.jupiter.api.Timeout(120)
    void theJvm_endsWhenTheLaunchWrapperIsKilled(String shell, SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        // bash, unlike Debian's dash, execs a script's last command in place of the shell: the wrapper must not end
        // with setpriv, or the JVM takes the shell's place and outlives unshare (seen on bash before the fix).
        // A child that ignores its stdin (which closes when unshare dies): only the wrapper can end it.
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")),
                List.of(Fixture.jarOf(dir, IdleProbe.class)), Fixture.config(dir, "a=1\n"), IdleProbe.class.getName(),
                List.of(), List.of(), true);
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR)) {
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch"), shell).launch(spec,
                    Map.of());
            ProcessHandle jvm = childJvm(child.process());
            Await.until("the child to run", Duration.ofSeconds(30), () -> read(dir.resolve("launch/child.log")),
                    l -> l.contains("probe ready"));
            child.process().destroyForcibly(); // SIGKILL to unshare: no handler of its own runs
            Await.event("the JVM " + jvm.pid() + " to end with its wrapper", Duration.ofSeconds(15), jvm.onExit(),
                    () -> "still running: " + jvm.info() + "; child.log: " + read(dir.resolve("launch/child.log")));
            Await.event("the wrapper's end to be measured", Duration.ofSeconds(15), child.terminated(),
                    () -> "not measured; log " + store.log().events());
        }
    }

    private static ProcessHandle childJvm(Process wrapper) throws Exception {
        return Await.until("a JVM under the wrapper " + wrapper.pid(), Duration.ofSeconds(15),
                () -> wrapper.toHandle().descendants().filter(h -> h.info().command().map(c -> c.endsWith("/java"))
                        .orElse(false)).findFirst(), Optional::isPresent).orElseThrow();
    }

    private static Map<String, String> procStatus(long pid) throws Exception {
        return Files.readAllLines(Path.of("/proc/" + pid + "/status")).stream().filter(l -> l.contains(":"))
                .collect(Collectors.toMap(l -> l.substring(0, l.indexOf(':')), l -> l.substring(l.indexOf(':') + 1)
                        .trim(), (a, b) -> a));
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

}
