package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The commands an operator runs, each in its own process: a swtpm, a policy approving the release the agent will
 * launch, the server, the agent, its status, then the audit log verified offline — intact, and with one row
 * modified, naming that row.
 */
class OperatorFlowIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static ProcessBuilder tpmphone(Path home, Path log, String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dtpmphone.home=" + home, "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectError(log.toFile());
    }

    private static String run(Path home, Path dir, String... args) throws Exception {
        Path log = Files.createTempFile(dir, "cmd-", ".log");
        Process p = tpmphone(home, log, args).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), () -> "tpmphone " + String.join(" ", args)
                + " finished within 60 s; stderr so far: " + read(log) + "; stdout: " + out);
        assertEquals(0, p.exitValue(), () -> String.join(" ", args) + " failed: " + read(log) + out);
        return out;
    }

    /** Runs a command that must fail; returns its stderr. */
    private static String runFailing(Path home, Path dir, String... args) throws Exception {
        Path log = Files.createTempFile(dir, "cmd-", ".log");
        Process p = tpmphone(home, log, args).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), () -> String.join(" ", args) + " did not end: " + out);
        assertEquals(1, p.exitValue(), () -> String.join(" ", args) + " should fail with 1; out: " + out + " err: "
                + read(log));
        return read(log);
    }

    /** Reads {@code p}'s stderr until a line contains {@code what}; then drains the rest in the background. */
    private static String awaitError(Process p, String what) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        for (String line; (line = r.readLine()) != null; ) {
            seen.append(line).append('\n');
            if (line.contains(what)) {
                Thread drain = new Thread(() -> {
                    try {
                        r.transferTo(java.io.Writer.nullWriter());
                    } catch (java.io.IOException ignored) {
                        // the process ended
                    }
                }, "drain-stderr");
                drain.setDaemon(true);
                drain.start();
                return line;
            }
        }
        throw new AssertionError("the process ended without printing '" + what + "'; its stderr: " + seen);
    }

    private static void stop(Process p) throws Exception {
        p.destroy(); // SIGTERM: agent stops its child, server writes its final checkpoint
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), () -> "the process " + p.pid() + " ended within 30 s of SIGTERM;"
                + " it still runs: " + p.info() + ", its children " + p.descendants().map(h -> h.pid() + " "
                + h.info().commandLine().orElse("?")).toList());
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    private static String awaitLine(Process p, String prefix, Path log) throws Exception {
        return awaitLine(new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)),
                prefix, log);
    }

    private static String awaitLine(BufferedReader r, String prefix, Path log) throws Exception {
        String line = r.readLine();
        assertTrue(line != null && line.startsWith(prefix), () -> "expected '" + prefix + "...', got '" + line
                + "': " + read(log));
        return line;
    }

    /**
     * Also what a newcomer meets next: the state directory is private (JUnit's 0700 temporary directory, as
     * {@code mktemp -d} makes), and the child runs as another user; a hand-written configuration whose port is taken
     * makes the softphone fail, which {@code agent run} and {@code agent status} say; the same configuration works once
     * the port is free; and a wrong configuration is refused, naming the line, by {@code policy approve} and
     * {@code agent run}.
     */
    @Test
    void swtpmPolicyServerAgentStatusAndAudit(@TempDir Path dir) throws Exception {
        assertEquals("rwx------", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(dir)), "the agent's state lies in a private directory, as in production");
        Path home = dir.resolve("home");
        Path guide = DocCommands.documents().stream().filter(d -> d.endsWith("operations.md")).findFirst()
                .orElseThrow();
        JsonNode tpm = JSON.readTree(run(home, dir, DocCommands.find(guide, "swtpm start").substitute(Map.of(),
                Map.of())));
        int port = io.tpmphone.swtpm.testing.FreePorts.tcp();
        Path serverState = dir.resolve("server");
        Path agentState = dir.resolve("agent");
        // The guide's example paths and ports, and this run's.
        Map<String, String> files = Map.of("issuer-cert.pem", tpm.get("caCertificate").asText(),
                "root-cert.pem", tpm.get("rootCertificate").asText(), "policy.json", dir.resolve("policy.json")
                        .toString(), "host1.token", dir.resolve("host1.token").toString(), "audit.json",
                dir.resolve("audit.json").toString(), "result-signing-cert.pem",
                serverState.resolve("keys/result-signing-cert.pem").toString());
        Map<String, String> parts = new java.util.LinkedHashMap<>();
        parts.put("/var/lib/tpmphone-server", serverState.toString());
        parts.put("/var/lib/tpmphone-agent", agentState.toString());
        parts.put("/etc/tpmphone/admin.token", dir.resolve("admin.token").toString());
        parts.put("127.0.0.1:8443", "127.0.0.1:" + port);
        parts.put("swtpm:socket=S", tpm.get("tpmUri").asText());
        Process server = null;
        Process agent = null;
        ServerSocket takenPort = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        try {
            String release = run(home, dir, DocCommands.find(guide, "policy approve --name softphone-dev")
                    .substitute(files, parts));
            // A configuration written by hand, elsewhere, for a port that is taken at first.
            Path handWritten = Files.createDirectories(dir.resolve("etc")).resolve("phone.properties");
            Files.writeString(handWritten, "sip.user=host1\nsip.host=host1\nsip.tls.port=" + takenPort.getLocalPort()
                    + "\npolicy.1=default MEASURED reject\n");
            String handRelease = run(home, dir, "policy", "approve", "--name", "hand-written", "--config",
                    handWritten.toString());
            // A wrong one is refused where it is approved, naming the line.
            Path wrong = dir.resolve("etc").resolve("wrong.properties");
            Files.writeString(wrong, "sip.user=host1\nsip.tls.port=5999\npolicy.1=default MEASURD reject\n");
            String refused = runFailing(home, dir, "policy", "approve", "--name", "wrong", "--config",
                    wrong.toString());
            assertTrue(refused.contains(wrong + " is not valid: policy.1=default MEASURD reject: ")
                    && refused.contains("unknown level"), "policy approve names the file and the line: " + refused);
            Files.writeString(dir.resolve("policy.json"), "{\"version\":1,\"measurementPcr\":14,\"pcrBank\":"
                    + "\"sha256\",\"bootPcrs\":[0,1,2,3,4,5,6,7],\"releases\":[" + release.trim() + ","
                    + handRelease.trim() + "],"
                    + "\"requireIsolation\":true,\"nonceTtlSeconds\":30,\"resultTtlSeconds\":300}");

            Path serverLog = dir.resolve("server.log");
            server = tpmphone(home, serverLog, DocCommands.find(guide, "server").substitute(files, parts)).start();
            awaitLine(server, "attestation server on https://127.0.0.1:" + port, serverLog);

            run(home, dir, DocCommands.find(guide, "enrollment-token").substitute(files, parts));
            Path agentLog = dir.resolve("agent.log");
            String[] agentRun = DocCommands.find(guide, "agent run").substitute(files, parts);
            agent = tpmphone(home, agentLog, agentRun).start();
            BufferedReader agentOut = new BufferedReader(new InputStreamReader(agent.getInputStream(),
                    StandardCharsets.UTF_8));
            awaitLine(agentOut, "agent for host1: MEASURED", agentLog);
            Path control = agentState.resolve("control").resolve("control.sock");
            String ready = awaitLine(agentOut, "softphone: serving sips:host1@host1", agentLog);
            assertTrue(ready.contains("control socket " + control), "agent run names the control socket: " + ready);

            JsonNode status = JSON.readTree(run(home, dir, DocCommands.find(guide, "agent status")
                    .substitute(files, parts)));
            assertEquals("MEASURED", status.get("level").asText(), () -> status + "\nagent log: " + read(agentLog));
            assertEquals("READY", status.path("softphone").asText(), () -> status + "\nagent log: " + read(agentLog));
            assertTrue(status.get("childAlive").asBoolean(), () -> "agent status says the child is alive: " + status);
            String phone = run(home, dir, "phone", "--control", control.toString());
            assertTrue(phone.startsWith("sips:host1@host1 on TLS port 5061, 0 call(s)"),
                    "the operator reaches the softphone through its control socket: " + phone);
            assertTrue(status.get("keysApproved").asBoolean(), "the server approved the keystore: " + status);
            String statusText = run(home, dir, "agent", "status", "--state", agentState.toString());
            assertTrue(statusText
                    .contains("keystore: approved by the server"), () -> "agent status says the keystore is approved: "
                    + statusText);
            assertTrue(Files.exists(agentState.resolve("device-cert.pem")), () -> "the TIK's device certificate; "
                    + agentState + " holds " + java.util.Arrays.toString(agentState.toFile().list()) + "; status "
                    + status);

            JsonNode shown = JSON.readTree(run(home, dir, DocCommands.find(guide, "policy show")
                    .substitute(files, parts)));
            assertEquals(1, shown.get("version").asInt(), shown.toString());
            assertEquals("softphone-dev", shown.at("/releases/0/name").asText(), shown.toString());
            stop(agent);

            // The hand-written configuration: its port is taken, so the softphone cannot start, and both commands
            // say why.
            List<String> handRun = new ArrayList<>(List.of(agentRun));
            handRun.addAll(List.of("--config", handWritten.toString()));
            agent = tpmphone(home, agentLog, handRun.toArray(String[]::new))
                    .redirectError(ProcessBuilder.Redirect.PIPE).start();
            String failed = awaitError(agent, "the softphone core did not start");
            assertTrue(failed.contains("TLS port " + takenPort.getLocalPort()) && failed.contains("failed: ")
                    && failed.contains("exit status 2"), "agent run says what failed: " + failed);
            String shownStatus = run(home, dir, "agent", "status", "--state", agentState.toString());
            assertTrue(shownStatus.contains("softphone: exited, exit status 2: ")
                    && shownStatus.contains("TLS port " + takenPort.getLocalPort()),
                    "agent status names the failure: " + shownStatus);
            stop(agent);

            // The same configuration once the port is free: the child finds what it needs although nobody
            // prepared anything for it by hand.
            takenPort.close();
            agent = tpmphone(home, agentLog, handRun.toArray(String[]::new)).start();
            agentOut = new BufferedReader(new InputStreamReader(agent.getInputStream(), StandardCharsets.UTF_8));
            awaitLine(agentOut, "agent for host1: MEASURED", agentLog);
            awaitLine(agentOut, "softphone: serving sips:host1@host1", agentLog);
            String handPhone = run(home, dir, "phone", "--control", control.toString());
            assertTrue(handPhone.startsWith("sips:host1@host1 on TLS port " + takenPort.getLocalPort()),
                    "the hand-configured softphone answers on its control socket: " + handPhone);
            stop(agent);

            // A wrong configuration stops the agent before it launches anything, naming the line.
            List<String> wrongRun = new ArrayList<>(List.of(agentRun));
            wrongRun.addAll(List.of("--config", wrong.toString()));
            String agentRefused = runFailing(home, dir, wrongRun.toArray(String[]::new));
            assertTrue(agentRefused.contains("policy.1=default MEASURD reject: "),
                    "agent run names the line: " + agentRefused);
        } finally {
            takenPort.close();
            for (Process p : new Process[] {agent, server}) {
                if (p != null) {
                    stop(p);
                }
            }
            run(home, dir, "swtpm", "stop", "--name", "host1", "--purge");
        }

        Path db = serverState.resolve("audit.db");
        Path key = serverState.resolve("keys").resolve("result-signing-cert.pem");
        String intact = run(home, dir, DocCommands.find(guide, "audit verify --db").substitute(files, parts));
        assertTrue(intact.startsWith("OK ") && !intact.contains("NOT checked"),
                () -> "audit verify says OK and checked everything: " + intact);
        String tail = run(home, dir, DocCommands.find(guide, "audit tail").substitute(files, parts));
        assertTrue(tail.contains("APPRAISAL"), "the last records include the appraisal: " + tail);
        run(home, dir, DocCommands.find(guide, "audit export").substitute(files, parts));
        String exportOk = run(home, dir, DocCommands.find(guide, "audit verify --export").substitute(files, parts));
        assertTrue(exportOk.startsWith("OK "), () -> "audit verify --export says OK: " + exportOk);

        // The attack of finding 3 on a copy: every checkpoint deleted, so a rewrite of the records would be
        // unprovable. The signed head still counts them: exit 1, naming the problem.
        Path stripped = dir.resolve("stripped.db");
        Files.copy(db, stripped);
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + stripped);
             Statement s = c.createStatement()) {
            for (String t : List.of("audit_checkpoint_no_delete", "audit_checkpoint_no_update")) {
                s.execute("DROP TRIGGER " + t);
            }
            s.execute("DELETE FROM audit_checkpoint");
        }
        Path strippedLog = dir.resolve("verify-stripped.log");
        Process strippedVerify = tpmphone(home, strippedLog, "audit", "verify", "--db", stripped.toString(),
                "--public-key", key.toString()).start();
        String strippedOut = new String(strippedVerify.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(strippedVerify.waitFor(60, TimeUnit.SECONDS), () -> "audit verify of the stripped log ended within"
                + " 60 s; it printed " + strippedOut + read(strippedLog));
        assertEquals(1, strippedVerify.exitValue(), "a log without its checkpoints must be refused: " + strippedOut
                + read(strippedLog));
        assertTrue(strippedOut.contains("SIGNED_HEAD_MISMATCH") && strippedOut.contains("but the log has 0: "
                + "checkpoints were removed"), "names the problem: " + strippedOut);

        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db);
             Statement s = c.createStatement()) {
            List<String> triggers = new ArrayList<>();
            try (var rs = s.executeQuery("SELECT name FROM sqlite_master WHERE type = 'trigger'")) {
                while (rs.next()) {
                    triggers.add(rs.getString(1));
                }
            }
            for (String t : triggers) {
                s.execute("DROP TRIGGER " + t);
            }
            s.execute("UPDATE audit_record SET outcome = 'MEASURED' WHERE seq = 2");
        }
        Path log = dir.resolve("verify.log");
        Process verify = tpmphone(home, log, "audit", "verify", "--db", db.toString(), "--public-key",
                key.toString()).start();
        String out = new String(verify.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(verify.waitFor(60, TimeUnit.SECONDS), () -> "tpmphone audit verify finished within 60 s; "
                + "stderr so far: " + read(log) + "; stdout: " + out);
        assertEquals(1, verify.exitValue(), () -> "the modified row fails the verification: " + out + read(log));
        assertTrue((out + read(log)).contains("record 2"), () -> "the verification names record 2: " + out
                + read(log));
    }
}
