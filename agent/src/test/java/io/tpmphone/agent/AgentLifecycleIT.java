package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.nimbusds.jose.crypto.ECDSAVerifier;
import com.nimbusds.jwt.SignedJWT;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.file.Path;
import java.security.interfaces.ECPublicKey;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The agent over its life: enrollment to MEASURED, TPM reboot, agent restart, server restart. */
@WithSwtpm(ekCertificate = true, perMethod = true)
class AgentLifecycleIT {

    @Test
    void cleanHost_enrollsAndReachesMeasured_withAResultSignedByTheServerThatExpires(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        Path jar = Fixture.softphoneJar(dir);
        LaunchSpec spec = Fixture.spec(jar, Fixture.config(dir, "sip.port=5061\n"), List.of());
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC());
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-a", Fixture.PCR, spec,
                     Duration.ofHours(1), Clock.systemUTC())
                     .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-a"))) {
            Agent.Status status = agent.start();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), status.level(), () -> "reasons: " + status.reasons());
            Await.until("the measured child to connect to the broker", Duration.ofSeconds(10),
                    () -> agent.broker().childConnected(), () -> "not connected; the child: " + agent.child());
            assertChildIsolated(agent.child().orElseThrow());

            SignedJWT jwt = SignedJWT.parse(new HostAttestation(tpm, Fixture.client(server)).attest(status.akId(),
                    agent.store().log()).result());
            assertTrue(jwt.verify(new ECDSAVerifier((ECPublicKey) server.resultVerificationKey())),
                    () -> "the result verifies with the server's result key; header " + jwt.getHeader()
                            + ", claims " + claims(jwt));
            assertEquals("MEASURED", jwt.getJWTClaimsSet().getStringClaim("level"), () -> "claims " + claims(jwt));
            assertEquals("host-a", jwt.getJWTClaimsSet().getSubject(), () -> "claims " + claims(jwt));
            Instant iat = jwt.getJWTClaimsSet().getIssueTime().toInstant();
            Instant exp = jwt.getJWTClaimsSet().getExpirationTime().toInstant();
            assertTrue(exp.isAfter(Instant.now()) && Duration.between(iat, exp).compareTo(Duration.ofMinutes(5)) <= 0,
                    "expires within 5 minutes: " + iat + " .. " + exp);
        }
    }

    @Test
    void tpmReboot_isNoticed_andTheLevelRecovers(SwtpmProcess swtpm, @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        TpmUri uri = TpmUri.parse(swtpm.tpmUri());
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC());
             TpmClient tpm = TpmClient.open(uri);
             Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-b", Fixture.PCR, spec,
                     Duration.ofHours(1), Clock.systemUTC())
                     .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-b"))) {
            Agent.Status started = agent.start();
            assertEquals(Optional.of(IntegrityLevel.MEASURED), started.level(),
                    () -> "the agent starts MEASURED: " + started);
            assertFalse(agent.checkForReboot(), () -> "no reboot yet; status " + agent.status());
            swtpm.restart();
            assertEquals(uri.socketPath().orElseThrow(), swtpm.serverSocket(),
                    () -> "swtpm came back on its socket: " + swtpm);
            assertTrue(agent.checkForReboot(), () -> "the agent noticed the reboot; status " + agent.status()
                    + ", swtpm " + swtpm);
            Agent.Status recovered = agent.status();
            assertEquals("NEW_BOOT", recovered.logState(), () -> "a rebooted TPM starts a new log: " + recovered);
            assertEquals(Optional.of(IntegrityLevel.MEASURED), recovered.level(),
                    () -> "reasons: " + recovered.reasons());
            assertTrue(recovered.childAlive(), () -> "the softphone core was launched again: " + recovered);
        }
    }

    @Test
    void agentRestartWithoutReboot_keepsTheLog_andTheLevel(SwtpmProcess swtpm, @TempDir Path dir) throws Exception {
        Path jar = Fixture.softphoneJar(dir);
        Path config = Fixture.config(dir, "a=1\n");
        LaunchSpec spec = Fixture.spec(jar, config, List.of());
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC())) {
            Path pem = dir.resolve("server.pem");
            java.nio.file.Files.writeString(pem, "-----BEGIN CERTIFICATE-----\n" + java.util.Base64.getMimeEncoder()
                    .encodeToString(server.tlsCertificate().getEncoded()) + "\n-----END CERTIFICATE-----\n");
            Process first = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), AgentProcessMain.class.getName(), swtpm.tpmUri(),
                    server.uri().toString(), pem.toString(), dir.resolve("agent").toString(), "host-c",
                    jar.toString(), config.toString(), Fixture.enrollmentToken(Fixture.client(server), "host-c"))
                    .redirectError(dir.resolve("first-agent.log").toFile()).start();
            try {
                String line = new java.io.BufferedReader(new java.io.InputStreamReader(first.getInputStream(),
                        java.nio.charset.StandardCharsets.US_ASCII)).readLine();
                assertEquals("LEVEL MEASURED", line, () -> "first agent: " + read(dir.resolve("first-agent.log")));
            } finally {
                first.destroyForcibly().waitFor(10, TimeUnit.SECONDS); // a crash: no TERMINATED, no cleanup
            }
            try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
                 Agent second = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-c", Fixture.PCR,
                         spec, Duration.ofHours(1), Clock.systemUTC())
                         .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-c"))) {
                Agent.Status after = second.start();
                assertEquals("CONTINUED", after.logState(), () -> "the log of this boot was kept: " + after);
                assertEquals(Optional.of(IntegrityLevel.MEASURED), after.level(), () -> "reasons: " + after.reasons());
                assertTrue(second.store().log().events().stream()
                        .anyMatch(e -> e.dataAsString().startsWith("agent restarted")),
                        () -> "the orphaned launch ended: " + second.store().log().events());
                java.io.IOException locked = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                        () -> MeasurementLogStore.open(dir.resolve("agent").resolve("log"), tpm, Fixture.PCR));
                assertTrue(locked.getMessage().contains("another agent"),
                        () -> "the second open names the other agent's lock: " + locked);
            }
        }
    }

    /** The JWT's claims (a signed result, no secret), or why they could not be read. */
    private static String claims(SignedJWT jwt) {
        try {
            return jwt.getJWTClaimsSet().toString();
        } catch (java.text.ParseException e) {
            return "unparseable (" + e + ")";
        }
    }

    private static String read(Path p) {
        try {
            return java.nio.file.Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    @Test
    void serverRestart_losesNothing_andTheAuditLogVerifies(SwtpmProcess swtpm, @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        Path serverState = dir.resolve("server");
        String akId;
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            try (AttestationServer server = Fixture.server(serverState, swtpm, Fixture.policy(1, spec),
                    Clock.systemUTC());
                 Agent agent = new Agent(tpm, Fixture.client(server), dir.resolve("agent"), "host-d", Fixture.PCR,
                         spec, Duration.ofHours(1), Clock.systemUTC())
                         .withEnrollmentToken(Fixture.enrollmentToken(Fixture.client(server), "host-d"))) {
                akId = agent.start().akId();
            }
            try (AttestationServer restarted = Fixture.server(serverState, swtpm, Fixture.policy(1, spec),
                    Clock.systemUTC());
                 Agent agent = new Agent(tpm, Fixture.client(restarted), dir.resolve("agent"), "host-d",
                         Fixture.PCR, spec, Duration.ofHours(1), Clock.systemUTC())) {
                Agent.Status s = agent.start();
                assertEquals(akId, s.akId(), () -> "the restarted server knows the enrolled AK: " + s);
                assertEquals(Optional.of(IntegrityLevel.MEASURED), s.level(), () -> "reasons: " + s.reasons());
                var hostD = Fixture.client(restarted).get("/v1/hosts/host-d", Fixture.ADMIN_TOKEN);
                assertNotNull(hostD
                        .get("lastAppraisal"), () -> "the restarted server shows host-d's last appraisal: " + hostD);
            }
        }
        VerificationReport report = AuditVerifier.verify(serverState.resolve("audit.db"), Optional.empty());
        assertTrue(report.intact(), report.summary());
        assertTrue(report.recordsChecked() >= 4, "enrollment, policy and appraisals recorded: " + report.summary());
    }

    /** The JVM under unshare runs in other PID/mount/IPC namespaces, with its code directory mounted read-only. */
    private static void assertChildIsolated(Process wrapper) throws Exception {
        ProcessHandle jvm = Await.until("the softphone JVM to run under the wrapper " + wrapper.pid(),
                Duration.ofSeconds(10), () -> wrapper.toHandle().descendants().filter(h -> h.info().command()
                        .map(c -> c.endsWith("/java")).orElse(false)).findFirst(), Optional::isPresent).orElseThrow();
        assertNotNull(jvm, "the softphone JVM runs under the wrapper");
        for (String ns : List.of("pid", "mnt", "ipc")) {
            Path mine = java.nio.file.Files.readSymbolicLink(Path.of("/proc/self/ns/" + ns));
            assertFalse(mine.equals(
                    java.nio.file.Files.readSymbolicLink(Path.of("/proc/" + jvm.pid() + "/ns/" + ns))),
                    () -> "the child has its own " + ns + " namespace; the child JVM " + jvm.pid() + " shares ours: "
                            + mine);
        }
        String cwd = java.nio.file.Files.readSymbolicLink(Path.of("/proc/" + jvm.pid() + "/cwd")).toString();
        List<String> mountinfo = java.nio.file.Files.readAllLines(Path.of("/proc/" + jvm.pid() + "/mountinfo"));
        boolean readOnly = mountinfo.stream()
                .map(l -> l.split(" "))
                .anyMatch(f -> f.length > 5 && f[4].equals(cwd) && List.of(f[5].split(",")).contains("ro"));
        assertTrue(readOnly, () -> "the code directory " + cwd + " is mounted read-only in the child; its mountinfo "
                + "lines: " + mountinfo.stream().filter(l -> l.contains(" " + cwd + " ")).toList());
        List<String> args = List.of(jvm.info().arguments().orElse(new String[0]));
        assertTrue(args.contains("-XX:+DisableAttachMechanism"), "no attach mechanism: " + args);
        String environ = new String(java.nio.file.Files.readAllBytes(Path.of("/proc/" + jvm.pid() + "/environ")),
                java.nio.charset.StandardCharsets.UTF_8);
        assertFalse(environ.contains("JAVA_TOOL_OPTIONS") || environ.contains("_JAVA_OPTIONS"),
                () -> "no JAVA_TOOL_OPTIONS or _JAVA_OPTIONS in the child's environment: "
                        + environ.replace('\0', ' '));
    }
}
