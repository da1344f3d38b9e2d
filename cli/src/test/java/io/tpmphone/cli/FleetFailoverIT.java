package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.agent.Agent;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.AttestationClientException;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.cli.internal.Pem;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.swtpm.testing.PostgresServer;
import io.tpmphone.swtpm.testing.TestCertificateAuthority;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmUri;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fleet's failover, each part the real thing in its own process: one PostgreSQL, two {@code tpmphone server}
 * instances with certificates from one private CA ({@code --tls-cert}), two {@code tpmphone agent run} hosts on their
 * own swtpm that know both instances and trust the CA ({@code --server-ca}), and a load host appraising as fast as it
 * can. The instance the first host starts at is killed with SIGKILL in the middle of that load: every appraisal it
 * acknowledged is in the shared audit chain, every agent is re-attested through the other instance within one
 * interval, the load goes on there, and {@code tpmphone audit verify} finds one intact chain with signed checkpoints.
 */
@Timeout(600)
class FleetFailoverIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int INTERVAL = 6;
    /** What "within one interval" may add: the re-attestation's own appraisal and the client's back-off. */
    private static final Duration APPRAISAL_SLACK = Duration.ofSeconds(3);
    private static final Duration WAIT = Duration.ofSeconds(120);
    private static final List<String> HOSTS = List.of("fleet1", "fleet2");

    @TempDir
    Path dir;

    private Path home;
    private final List<Process> processes = new ArrayList<>();

    private ProcessBuilder tpmphone(Path log, String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dtpmphone.home=" + home, "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectError(log.toFile());
    }

    private String run(String... args) throws Exception {
        Path log = Files.createTempFile(dir, "cmd-", ".log");
        Process p = tpmphone(log, args).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), () -> "tpmphone " + String.join(" ", args)
                + " finished within 120 s; stderr: " + read(log));
        assertEquals(0, p.exitValue(), () -> "tpmphone " + String.join(" ", args) + " failed: " + read(log) + out);
        return out;
    }

    /**
     * Runs commands that do not depend on each other at once, each a JVM of its own (most of a command's time is its
     * JVM starting, which two cores do two at a time), and returns their outputs in order; each must exit 0.
     */
    private List<String> runAll(List<String[]> commands) throws Exception {
        List<Process> started = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        List<Path> outs = new ArrayList<>();
        try {
            for (String[] args : commands) {
                Path log = Files.createTempFile(dir, "cmd-", ".log");
                Path out = Files.createTempFile(dir, "out-", ".txt");
                logs.add(log);
                outs.add(out);
                started.add(tpmphone(log, args).redirectOutput(out.toFile()).start());
            }
            List<String> outputs = new ArrayList<>();
            for (int i = 0; i < started.size(); i++) {
                Process p = started.get(i);
                String command = String.join(" ", commands.get(i));
                Path log = logs.get(i);
                assertTrue(p.waitFor(120, TimeUnit.SECONDS), () -> "tpmphone " + command
                        + " finished within 120 s; stderr: " + read(log));
                String out = Files.readString(outs.get(i));
                assertEquals(0, p.exitValue(), () -> "tpmphone " + command + " failed: " + read(log) + out);
                outputs.add(out);
            }
            return outputs;
        } finally {
            for (Process p : started) {
                p.destroyForcibly(); // only those still running after a failed assertion
            }
        }
    }

    /** Starts a long-running command and waits for a stdout line starting with {@code prefix}. */
    private Process start(String prefix, Path log, String... args) throws Exception {
        return awaitFirstLine(launch(log, args), prefix, log, args);
    }

    private Process launch(Path log, String... args) throws Exception {
        Process p = tpmphone(log, args).start();
        processes.add(p);
        return p;
    }

    /** Waits for {@code p}'s first stdout line, which must start with {@code prefix}, then drains the rest. */
    private static Process awaitFirstLine(Process p, String prefix, Path log, String... args) throws Exception {
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line = out.readLine();
        assertTrue(line != null && line.startsWith(prefix), () -> "expected '" + prefix + "…' from tpmphone "
                + String.join(" ", args) + ", got '" + line + "'; stderr: " + read(log));
        Thread drain = new Thread(() -> {
            try {
                out.transferTo(java.io.Writer.nullWriter());
            } catch (java.io.IOException ignored) {
                // the process ended
            }
        }, "drain-" + p.pid());
        drain.setDaemon(true);
        drain.start();
        return p;
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    /** The agent's last appraisal time, from its status file, or null before the first. */
    private static Instant appraisedAt(Path agentState) {
        try {
            JsonNode s = JSON.readTree(Agent.statusFile(agentState).toFile());
            return s.hasNonNull("appraisedAt") ? Instant.parse(s.get("appraisedAt").asText()) : null;
        } catch (java.io.IOException e) {
            return null; // not written yet, or being replaced
        }
    }

    private static String level(Path agentState) throws Exception {
        return JSON.readTree(Agent.statusFile(agentState).toFile()).path("level").asText();
    }

    @Test
    void aSigkilledInstanceUnderLoad_losesNoAcknowledgedAppraisal_andEveryAgentIsReattestedThroughTheOther()
            throws Exception {
        home = dir.resolve("home");
        String database = PostgresServer.shared().createDatabase("fleet_failover");
        TestCertificateAuthority ca = TestCertificateAuthority.create(dir.resolve("ca"), "tpmphone fleet CA");
        List<String> ekCas = new ArrayList<>();
        Map<String, String> tpmUris = new java.util.LinkedHashMap<>();
        List<String> tpmHosts = List.of(HOSTS.get(0), HOSTS.get(1), "fleetload");
        List<String> tpmsStarted = runAll(tpmHosts.stream().map(h -> new String[] {"swtpm", "start", "--name", h,
                "--ek-cert", "--json"}).toList());
        for (int t = 0; t < tpmHosts.size(); t++) {
            String h = tpmHosts.get(t);
            JsonNode tpm = JSON.readTree(tpmsStarted.get(t));
            tpmUris.put(h, tpm.get("tpmUri").asText());
            for (String f : List.of("caCertificate", "rootCertificate")) {
                if (!ekCas.contains(tpm.get(f).asText())) {
                    ekCas.add(tpm.get(f).asText());
                }
            }
        }
        AtomicBoolean loading = new AtomicBoolean(true);
        Thread load = null;
        try {
            // Each host's softphone on a port of its own; each configuration is a release of the policy.
            List<String> releases = new ArrayList<>();
            Map<String, Path> configs = new java.util.LinkedHashMap<>();
            List<String[]> approvals = new ArrayList<>();
            for (String h : HOSTS) {
                Path cfg = Files.createDirectories(dir.resolve("etc")).resolve(h + ".properties");
                Files.writeString(cfg, "sip.user=" + h + "\nsip.host=" + h + "\nsip.address=127.0.0.1\n"
                        + "sip.tls.port=" + FreePorts.tcp() + "\npolicy.1=default MEASURED reject\n");
                configs.put(h, cfg);
                approvals.add(new String[] {"policy", "approve", "--name", h, "--config", cfg.toString()});
            }
            runAll(approvals).forEach(release -> releases.add(release.trim()));
            Path policy = dir.resolve("policy.json");
            Files.writeString(policy, "{\"version\":1,\"measurementPcr\":14,\"pcrBank\":\"sha256\",\"bootPcrs\":"
                    + "[0,1,2,3,4,5,6,7],\"releases\":[" + String.join(",", releases) + "],\"requireIsolation\":true,"
                    + "\"nonceTtlSeconds\":30,\"resultTtlSeconds\":300}");

            Path adminToken = dir.resolve("admin.token");
            List<URI> urls = new ArrayList<>();
            List<Process> servers = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                Path state = dir.resolve("server-" + i);
                if (i == 1) {
                    copyKeys(dir.resolve("server-0"), state); // every instance needs the same keys
                }
                int port = FreePorts.tcp();
                TestCertificateAuthority.Issued tls = ca.issue("127.0.0.1");
                List<String> args = new ArrayList<>(List.of("server", "--state", state.toString(), "--listen",
                        "127.0.0.1:" + port, "--admin-token-file", adminToken.toString(), "--generate-admin-token",
                        "--policy", policy.toString(), "--database", database, "--tls-cert", tls.chain().toString(),
                        "--tls-key", tls.key().toString(), "--audit-signer-lease", "2", "--audit-writer-lease", "4"));
                for (String c : ekCas) {
                    args.addAll(List.of("--ek-ca", c));
                }
                servers.add(start("attestation server on https://127.0.0.1:" + port, dir.resolve("server-" + i
                        + ".log"), args.toArray(String[]::new)));
                urls.add(URI.create("https://127.0.0.1:" + port));
            }
            String serverList = urls.get(0) + "," + urls.get(1);
            int victim = AttestationClient.startIndex(HOSTS.get(0), 2);
            int survivor = 1 - victim;

            // Enrollment tokens for the three hosts, the load host's from the other instance.
            Path loadToken = dir.resolve("fleetload.token");
            List<String[]> tokens = new ArrayList<>();
            for (String h : HOSTS) {
                tokens.add(new String[] {"enrollment-token", "--host", h, "--out", dir.resolve(h + ".token")
                        .toString(), "--server", urls.get(0).toString(), "--server-cert", dir.resolve("ca")
                        .resolve("server-1.pem").toString(), "--admin-token-file", adminToken.toString()});
            }
            tokens.add(new String[] {"enrollment-token", "--host", "fleetload", "--out", loadToken.toString(),
                    "--server", urls.get(1).toString(), "--server-cert", dir.resolve("ca").resolve("server-2.pem")
                    .toString(), "--admin-token-file", adminToken.toString()});
            runAll(tokens);
            Map<String, Path> agentStates = new java.util.LinkedHashMap<>();
            Map<String, Process> agents = new java.util.LinkedHashMap<>();
            Map<String, String[]> agentArgs = new java.util.LinkedHashMap<>();
            for (String h : HOSTS) { // both agents start at once; each must report MEASURED
                Path state = dir.resolve("agent-" + h);
                agentStates.put(h, state);
                String[] args = {"agent", "run", "--enrollment-token-file", dir.resolve(h + ".token").toString(),
                        "--tpm", tpmUris.get(h), "--server", serverList, "--server-ca", ca.certificate().toString(),
                        "--state", state.toString(), "--host", h, "--interval", Integer.toString(INTERVAL),
                        "--config", configs.get(h).toString()};
                agentArgs.put(h, args);
                agents.put(h, launch(dir.resolve("agent-" + h + ".log"), args));
            }
            for (String h : HOSTS) {
                awaitFirstLine(agents.get(h), "agent for " + h + ": MEASURED", dir.resolve("agent-" + h + ".log"),
                        agentArgs.get(h));
            }

            // The load host: appraisals back to back through a client that starts at the victim.
            AttestationClient loadClient = AttestationClient.builder().servers(urls)
                    .trustedCa(Pem.certificates(ca.certificate())).preferenceKey(HOSTS.get(0))
                    .timeout(Duration.ofSeconds(10)).build();
            TpmClient loadTpm = TpmClient.open(TpmUri.parse(tpmUris.get("fleetload")));
            HostAttestation loadHost = new HostAttestation(loadTpm, loadClient);
            String loadAk = loadHost.enroll("fleetload", Files.readString(loadToken).trim()).akId();
            ConcurrentLinkedQueue<String> acknowledged = new ConcurrentLinkedQueue<>();
            ConcurrentLinkedQueue<Instant> acknowledgedAt = new ConcurrentLinkedQueue<>();
            ConcurrentLinkedQueue<String> loadErrors = new ConcurrentLinkedQueue<>();
            AtomicInteger attempts = new AtomicInteger();
            load = new Thread(() -> {
                MeasurementLog empty = MeasurementLog.empty();
                while (loading.get()) {
                    attempts.incrementAndGet();
                    try {
                        HostAttestation.Grant grant = loadHost.requestNonce(loadAk);
                        TpmQuote quote = loadTpm.quote(HostAttestation.AK, grant.pcrSelection(), grant.nonce());
                        Map<String, Object> request = HostAttestation.appraisalRequest(loadAk, grant.nonce(), quote,
                                empty);
                        loadHost.appraise(request);
                        acknowledged.add(evidenceSha256(request));
                        acknowledgedAt.add(Instant.now());
                    } catch (AttestationClientException e) {
                        // The nonce of an appraisal whose answer died with the instance is used up: a refusal.
                        loadErrors.add(e.status() + " " + e.check().orElse("") + " " + e.getMessage());
                    } catch (Exception e) {
                        loadErrors.add(e.toString());
                    }
                }
            }, "load-host");
            load.setDaemon(true);
            load.start();

            Map<String, Instant> before = new java.util.LinkedHashMap<>();
            for (String h : HOSTS) {
                Instant first = Await.until(h + " appraised", WAIT, () -> appraisedAt(agentStates.get(h)),
                        java.util.Objects::nonNull);
                // one scheduled re-attestation too, so the agent is in its interval rhythm
                Await.until(h + " re-attested once on its interval", WAIT, () -> appraisedAt(agentStates.get(h)),
                        t -> t != null && t.isAfter(first));
            }
            Await.until("the load host has 20 acknowledged appraisals", WAIT, () -> acknowledged.size() >= 20,
                    () -> acknowledged.size() + " acknowledged; load errors: " + loadErrors);

            Process killed = servers.get(victim);
            killed.destroyForcibly(); // SIGKILL
            Instant killedAt = Instant.now();
            assertTrue(killed.waitFor(30, TimeUnit.SECONDS), "the killed instance is gone");
            int acknowledgedAtKill = acknowledged.size();

            Map<String, Duration> reattestedAfter = new java.util.LinkedHashMap<>();
            for (String h : HOSTS) {
                Instant next = Await.until(h + " re-attested after the kill", Duration.ofSeconds(INTERVAL)
                                .plus(APPRAISAL_SLACK).plusSeconds(10), () -> appraisedAt(agentStates.get(h)),
                        t -> t != null && t.isAfter(killedAt));
                reattestedAfter.put(h, Duration.between(killedAt, next));
                assertEquals("MEASURED", level(agentStates.get(h)), h + " is MEASURED through the survivor");
            }
            for (Map.Entry<String, Duration> e : reattestedAfter.entrySet()) {
                assertTrue(e.getValue().compareTo(Duration.ofSeconds(INTERVAL).plus(APPRAISAL_SLACK)) <= 0,
                        "every agent is re-attested within one interval (" + INTERVAL + " s, plus the appraisal's "
                                + APPRAISAL_SLACK.toSeconds() + " s) of the kill: " + reattestedAfter);
            }
            Await.until("the load goes on at the survivor", WAIT,
                    () -> acknowledged.size() >= acknowledgedAtKill + 10,
                    () -> acknowledged.size() + " acknowledged; load errors: " + loadErrors);
            loading.set(false);
            load.join(30_000);
            loadTpm.close();
            assertTrue(loadClient.server().equals(urls.get(survivor)), "the load client moved to the survivor: "
                    + loadClient.server());
            // At most the appraisals cut off by the kill failed (their nonce then refused once each).
            assertTrue(loadErrors.size() <= 3, "at most the requests cut off by the kill failed, saw "
                    + loadErrors.size() + " of " + attempts.get() + ": " + loadErrors);

            // A killed instance counts as an audit writer until its lease runs out (4 s without renewal here, 10 s by
            // default; docs/audit.md "Several instances"); an instance that stops before then signs a plain
            // checkpoint, not the closing one. So the survivor is stopped once it is the only writer left, as an
            // operator's would be.
            int writers = Await.until("the killed instance's audit writer lease ran out", WAIT,
                    () -> liveAuditWriters(database), n -> n == 1);
            assertEquals(1, writers, "only the survivor holds an audit writer lease");
            for (Process p : processes) {
                if (p != killed && p.isAlive()) {
                    p.destroy(); // SIGTERM: agents end their softphones, the survivor signs the closing checkpoint
                    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "process " + p.pid() + " ended on SIGTERM");
                }
            }

            Path resultKey = dir.resolve("server-0").resolve("keys").resolve("result-signing-cert.pem");
            String verified = run("audit", "verify", "--database", database, "--public-key", resultKey.toString());
            assertTrue(verified.startsWith("OK ") && !verified.contains("NOT checked"),
                    "audit verify finds one intact chain: " + verified);
            Path export = dir.resolve("audit.json");
            run("audit", "export", "--database", database, "--json", "--out", export.toString());
            JsonNode exported = JSON.readTree(export.toFile());
            assertTrue(exported.path("checkpoints").size() >= 2, "signed checkpoints in the chain: "
                    + exported.path("checkpoints").size());
            Set<String> recorded = new LinkedHashSet<>();
            for (JsonNode r : exported.path("records")) {
                if (r.path("type").asText().equals("APPRAISAL")) {
                    JsonNode detail = JSON.readTree(r.path("detail").asText());
                    recorded.add(detail.path("evidenceSha256").asText());
                }
            }
            List<String> lost = new ArrayList<>();
            for (String h : acknowledged) {
                if (!recorded.contains(h)) {
                    lost.add(h);
                }
            }
            assertTrue(lost.isEmpty(), "every acknowledged appraisal is in the audit chain: " + lost.size() + " of "
                    + acknowledged.size() + " missing: " + lost);
            System.err.println("FleetFailoverIT: " + acknowledged.size() + " acknowledged load appraisals ("
                    + acknowledgedAtKill + " before the kill), " + loadErrors.size() + " failed: " + loadErrors
                    + "; re-attested after the kill: " + reattestedAfter);
        } finally {
            loading.set(false);
            for (Process p : processes) {
                if (p.isAlive()) {
                    p.destroy();
                    if (!p.waitFor(60, TimeUnit.SECONDS)) {
                        p.destroyForcibly();
                    }
                }
            }
            runAll(tpmUris.keySet().stream().map(h -> new String[] {"swtpm", "stop", "--name", h, "--purge"})
                    .toList());
        }
    }

    /** Instances holding an unexpired audit writer lease in the shared database (the database's clock decides). */
    private static int liveAuditWriters(String database) throws Exception {
        try (java.sql.Connection c = java.sql.DriverManager.getConnection(database);
             java.sql.Statement st = c.createStatement();
             java.sql.ResultSet rs = st.executeQuery("SELECT count(*) FROM audit_writer"
                     + " WHERE lease_until > clock_timestamp()")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    /** What the server's APPRAISAL record names: SHA-256 of attest, signature, PCR selection and values, log. */
    private static String evidenceSha256(Map<String, Object> request) throws Exception {
        Base64.Decoder b64 = Base64.getDecoder();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(b64.decode((String) request.get("attest")));
        out.writeBytes(b64.decode((String) request.get("signature")));
        out.writeBytes(((String) request.get("pcrSelection")).getBytes(StandardCharsets.US_ASCII));
        for (Object v : (List<?>) request.get("pcrValues")) {
            out.writeBytes(HexFormat.of().parseHex((String) v));
        }
        out.writeBytes(b64.decode((String) request.get("eventLog")));
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(out.toByteArray()));
    }

    private static void copyKeys(Path from, Path to) throws Exception {
        Path keys = Files.createDirectories(to.resolve("keys"));
        Files.setPosixFilePermissions(to, PosixFilePermissions.fromString("rwx------"));
        Files.setPosixFilePermissions(keys, PosixFilePermissions.fromString("rwx------"));
        try (var files = Files.list(from.resolve("keys"))) {
            for (Path f : files.toList()) {
                Files.copy(f, keys.resolve(f.getFileName()), java.nio.file.StandardCopyOption.COPY_ATTRIBUTES);
            }
        }
    }
}
