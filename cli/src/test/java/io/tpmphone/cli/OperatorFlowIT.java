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
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), () -> String.join(" ", args) + " failed: " + read(log) + out);
        return out;
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    private static String awaitLine(Process p, String prefix, Path log) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line = r.readLine();
        assertTrue(line != null && line.startsWith(prefix), () -> "expected '" + prefix + "...', got '" + line
                + "': " + read(log));
        return line;
    }

    @Test
    void swtpmPolicyServerAgentStatusAndAudit(@TempDir Path dir) throws Exception {
        Path home = dir.resolve("home");
        Path guide = DocCommands.documents().stream().filter(d -> d.endsWith("operations.md")).findFirst()
                .orElseThrow();
        JsonNode tpm = JSON.readTree(run(home, dir, DocCommands.find(guide, "swtpm start").substitute(Map.of(),
                Map.of())));
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
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
        parts.put("swtpm:host=127.0.0.1,port=P", tpm.get("tpmUri").asText());
        Process server = null;
        Process agent = null;
        try {
            String release = run(home, dir, DocCommands.find(guide, "policy approve --name softphone-dev")
                    .substitute(files, parts));
            Files.writeString(dir.resolve("policy.json"), "{\"version\":1,\"measurementPcr\":14,\"pcrBank\":"
                    + "\"sha256\",\"bootPcrs\":[0,1,2,3,4,5,6,7],\"releases\":[" + release.trim() + "],"
                    + "\"requireIsolation\":true,\"nonceTtlSeconds\":30,\"resultTtlSeconds\":300}");

            Path serverLog = dir.resolve("server.log");
            server = tpmphone(home, serverLog, DocCommands.find(guide, "server").substitute(files, parts)).start();
            awaitLine(server, "attestation server on https://127.0.0.1:" + port, serverLog);

            run(home, dir, DocCommands.find(guide, "enrollment-token").substitute(files, parts));
            Path agentLog = dir.resolve("agent.log");
            agent = tpmphone(home, agentLog, DocCommands.find(guide, "agent run").substitute(files, parts)).start();
            awaitLine(agent, "agent for host1: MEASURED", agentLog);

            JsonNode status = JSON.readTree(run(home, dir, DocCommands.find(guide, "agent status")
                    .substitute(files, parts)));
            assertEquals("MEASURED", status.get("level").asText());
            assertTrue(status.get("childAlive").asBoolean(), status.toString());
            assertTrue(status.get("keysApproved").asBoolean(), "the server approved the keystore: " + status);
            assertTrue(run(home, dir, "agent", "status", "--state", agentState.toString())
                    .contains("keystore: approved by the server"));
            assertTrue(Files.exists(agentState.resolve("device-cert.pem")), "the TIK's device certificate");

            JsonNode shown = JSON.readTree(run(home, dir, DocCommands.find(guide, "policy show")
                    .substitute(files, parts)));
            assertEquals(1, shown.get("version").asInt());
            assertEquals("softphone-dev", shown.at("/releases/0/name").asText());
        } finally {
            for (Process p : new Process[] {agent, server}) {
                if (p != null) {
                    p.destroy(); // SIGTERM: agent stops its child, server writes its final checkpoint
                    assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                }
            }
            run(home, dir, "swtpm", "stop", "--name", "host1", "--purge");
        }

        Path db = serverState.resolve("audit.db");
        Path key = serverState.resolve("keys").resolve("result-signing-cert.pem");
        String intact = run(home, dir, DocCommands.find(guide, "audit verify --db").substitute(files, parts));
        assertTrue(intact.startsWith("OK ") && !intact.contains("NOT checked"), intact);
        String tail = run(home, dir, DocCommands.find(guide, "audit tail").substitute(files, parts));
        assertTrue(tail.contains("APPRAISAL"), "the last records include the appraisal: " + tail);
        run(home, dir, DocCommands.find(guide, "audit export").substitute(files, parts));
        String exportOk = run(home, dir, DocCommands.find(guide, "audit verify --export").substitute(files, parts));
        assertTrue(exportOk.startsWith("OK "), exportOk);

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
        assertTrue(verify.waitFor(60, TimeUnit.SECONDS));
        assertEquals(1, verify.exitValue(), out + read(log));
        assertTrue((out + read(log)).contains("record 2"), out + read(log));
    }
}
