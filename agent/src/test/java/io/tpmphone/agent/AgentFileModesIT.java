package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.FileCreationTrace;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The review's finding 6 (and 2 for the keystore) on the agent: an agent in its own JVM under umask 000, traced by
 * strace, enrolls, measures and launches its child. Its state — status, enrollment, the measurement log that made
 * cloning a TPM easy, the child's log, the sealed keystore — must be owner-only from creation, its directories 0700.
 * Exempt by design: the staged code the child user reads ({@code launch/code-*}, 0755/0644, mounted read-only) and
 * the broker directory (0711, so the child can reach its 0600 socket).
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
class AgentFileModesIT {
    @Test
    void agentState_isOwnerOnlyFromCreation_evenUnderUmask000(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        // An integration test fails, never skips, when its tool is missing: ./tpmphone test installs strace.
        assertTrue(FileCreationTrace.available(), () -> "strace is needed to see the mode files are created with; "
                + "'strace -f true' did not succeed here (not installed, or ptrace not allowed); PATH "
                + System.getenv("PATH"));
        Path jar = Fixture.softphoneJar(dir);
        Path config = Fixture.config(dir, "sip.port=5061\n");
        LaunchSpec spec = Fixture.spec(jar, config, List.of());
        Path state = dir.resolve("var/lib/tpmphone-agent");
        try (AttestationServer server = Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec),
                Clock.systemUTC())) {
            Path pem = dir.resolve("server.pem");
            Files.writeString(pem, "-----BEGIN CERTIFICATE-----\n" + java.util.Base64.getMimeEncoder()
                    .encodeToString(server.tlsCertificate().getEncoded()) + "\n-----END CERTIFICATE-----\n");
            List<FileCreationTrace.Creation> creations;
            try (FileCreationTrace agent = FileCreationTrace.start(Files.createDirectory(dir.resolve("trace")),
                    AgentProcessMain.class.getName(), List.of(), swtpm.tpmUri(), server.uri().toString(),
                    pem.toString(), state.toString(), "host-a", jar.toString(), config.toString(),
                    Fixture.enrollmentToken(Fixture.client(server), "host-a"))) {
                assertEquals("LEVEL MEASURED", agent.awaitLine("LEVEL"), () -> "the traced agent's level; its stderr: "
                        + agent.stderr());
                creations = agent.assertOwnerOnly(state, p -> p.equals(state.resolve("broker"))
                        || (p.getParent().equals(state.resolve("launch"))
                        && p.getFileName().toString().startsWith("code-")));
            }
            Set<String> created = creations.stream().filter(c -> !c.directory())
                    .map(c -> state.relativize(c.path()).toString()).collect(Collectors.toSet());
            for (String file : List.of("launch/child.log", "log/lock", "keystore/fingerprints.log")) {
                assertTrue(created.contains(file), "the trace saw no creation of " + file + "; it saw " + created);
            }
            for (String file : List.of("status.json", "enrollment", "device-cert.pem", "log/measurements.log", "log/boot",
                    "launch/child.log", "keystore/root.sealed", "keystore/keystore.properties",
                    "keystore/fingerprints.log")) {
                assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(
                        state.resolve(file))), () -> "mode of " + file + "; the trace saw it created as "
                        + creations.stream().filter(c -> c.path().equals(state.resolve(file))).toList());
            }
            for (String directory : List.of("", "log", "launch", "keystore")) {
                assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(
                        state.resolve(directory))), () -> "mode of the directory " + state.resolve(directory)
                        + "; the trace saw it created as " + creations.stream()
                        .filter(c -> c.path().equals(state.resolve(directory))).toList());
            }
        }
    }
}
