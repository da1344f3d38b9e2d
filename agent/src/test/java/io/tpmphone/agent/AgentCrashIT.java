package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.TpmCommandTap;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * SIGKILL of the agent, and of swtpm, in the middle of a key release and of a quote, at a point a {@link
 * TpmCommandTap} between them makes exact: right before {@code TPM2_Unseal} (the policy session and the sealed
 * object loaded) or {@code TPM2_Quote}. Afterwards the TPM holds no transient object or session the crash left, the
 * keystore and the measurement log open as they were (nothing half-written), and the host recovers on its own: the
 * next agent start (or, after a TPM crash, the running agent) attests MEASURED and releases keys.
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class AgentCrashIT {
    /** Not the shared default user: the agent refuses a child user that still runs processes. */
    private static final String CHILD_USER = "tpmphone-crashit";
    private static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;
    private final List<AgentProcess> agents = new ArrayList<>();

    /**
     * Ends the agents that still run the way an operator would (their stdin closes: the agent stops its softphone and
     * waits for everything under it), so the child user has no processes left for the next test.
     */
    @AfterEach
    void stopAgents() throws Exception {
        for (AgentProcess a : agents) {
            if (a.process.isAlive()) {
                a.in.close();
                if (!a.process.waitFor(60, TimeUnit.SECONDS)) {
                    a.process.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
                }
            }
        }
    }

    @Test
    void agentKilledInTheMiddleOfAKeyRelease_leaksNoTpmHandle_andTheNextStartReleasesKeys(SwtpmProcess swtpm)
            throws Exception {
        try (AttestationServer server = server(swtpm); TpmCommandTap tap = tap(swtpm)) {
            AgentProcess first = agent(tap, server, true);
            assertEquals("RELEASED", first.ask("release"), "a key release before the crash: " + first.log());
            CompletableFuture<Integer> killed = tap.stopAt(TpmCommandTap.TPM_CC_UNSEAL, first::kill);
            first.send("release");
            Await.event("the tap to kill the agent at TPM2_Unseal", WAIT, killed, first::log);
            assertEquals(137, first.process.exitValue(), "the agent died of SIGKILL: " + first.log());

            AgentProcess second = agent(tap, server, false);
            assertEquals("STARTED MEASURED CONTINUED", second.started, "the restarted agent continues the log of"
                    + " this boot and attests: " + second.log());
            assertTrue(second.stderr().contains("a previous agent left loaded in the TPM"), "the killed agent had"
                    + " left the sealed object and its policy session loaded, and the next start flushed them: "
                    + second.log());
            assertEquals("HANDLES 0 0", second.ask("handles"), "the TPM holds no object or session the killed"
                    + " agent had loaded: " + second.log());
            assertEquals("RELEASED", second.ask("release"), "the restarted agent releases keys: " + second.log());
            assertEquals("HANDLES 0 0", second.ask("handles"), "and flushes what it loads: " + second.log());
        }
    }

    @Test
    void agentKilledInTheMiddleOfAQuote_restartsMeasured_andReleasesKeys(SwtpmProcess swtpm) throws Exception {
        try (AttestationServer server = server(swtpm); TpmCommandTap tap = tap(swtpm)) {
            AgentProcess first = agent(tap, server, true);
            CompletableFuture<Integer> killed = tap.stopAt(TpmCommandTap.TPM_CC_QUOTE, first::kill);
            first.send("attest");
            Await.event("the tap to kill the agent at TPM2_Quote", WAIT, killed, first::log);

            AgentProcess second = agent(tap, server, false);
            assertEquals("STARTED MEASURED CONTINUED", second.started, "restarted after the crash: " + second.log());
            assertEquals("RELEASED", second.ask("release"), "keys after the crash: " + second.log());
            assertEquals("HANDLES 0 0", second.ask("handles"), "nothing left loaded: " + second.log());
        }
    }

    @Test
    void agentKilledBetweenWritingAMeasurementAndExtendingIt_theNextStartReconcilesTheLog(SwtpmProcess swtpm)
            throws Exception {
        try (AttestationServer server = server(swtpm); TpmCommandTap tap = tap(swtpm)) {
            AgentProcess first = agent(tap, server, true);
            first.kill();
            // The next start measures (the orphaned launch's end, the new launch): killed at its first extend, with
            // the event already in the log (written ahead) and not in the PCR.
            CompletableFuture<Integer> killed = new CompletableFuture<>();
            AgentProcess[] second = new AgentProcess[1];
            tap.stopAt(TpmCommandTap.TPM_CC_PCR_EXTEND, () -> {
                Await.until("the second agent to exist", WAIT, () -> second[0] != null, () -> "not launched");
                second[0].kill();
            }).whenComplete((code, failure) -> {
                if (failure != null) {
                    killed.completeExceptionally(failure);
                } else {
                    killed.complete(code);
                }
            });
            second[0] = launch(tap, server, false);
            Await.event("the tap to kill the agent at TPM2_PCR_Extend", WAIT, killed, second[0]::log);

            AgentProcess third = agent(tap, server, false);
            assertEquals("STARTED MEASURED RECOVERED", third.started, "the third start completes the extend of the"
                    + " event written ahead of it (log state RECOVERED) and attests: " + third.log());
            assertEquals("RELEASED", third.ask("release"), "keys after the crash: " + third.log());
            assertEquals("HANDLES 0 0", third.ask("handles"), "nothing left loaded: " + third.log());
        }
    }

    @Test
    void swtpmKilledInTheMiddleOfAKeyRelease_theRunningAgentRecovers_onTheNewBoot(SwtpmProcess swtpm)
            throws Exception {
        try (AttestationServer server = server(swtpm); TpmCommandTap tap = tap(swtpm)) {
            AgentProcess agent = agent(tap, server, true);
            // Power loss at TPM2_Unseal: swtpm dies and comes back (a new boot, PCRs reset, nothing loaded).
            CompletableFuture<Integer> crashed = tap.stopAt(TpmCommandTap.TPM_CC_UNSEAL, () -> {
                swtpm.kill();
                swtpm.restart();
            });
            agent.send("release");
            Await.event("the tap to crash swtpm at TPM2_Unseal", WAIT, crashed, agent::log);
            String refused = agent.next();
            assertTrue(refused.startsWith("REFUSED"), "the release in progress failed: " + refused + "; "
                    + agent.log());
            // The refusal makes the agent re-attest at once: it finds the new boot, measures and launches again.
            String status = Await.until("the agent to recover on the new TPM boot", WAIT,
                    () -> agent.ask("status"), s -> s.equals("STATUS MEASURED NEW_BOOT"));
            assertEquals("STATUS MEASURED NEW_BOOT", status, agent.log());
            assertEquals("RELEASED", agent.ask("release"), "keys on the new boot: " + agent.log());
            assertEquals("HANDLES 0 0", agent.ask("handles"), "nothing left loaded: " + agent.log());
        }
    }

    @Test
    void swtpmKilledInTheMiddleOfAQuote_theNextAgentStartAttestsOnTheNewBoot(SwtpmProcess swtpm) throws Exception {
        try (AttestationServer server = server(swtpm); TpmCommandTap tap = tap(swtpm)) {
            AgentProcess first = agent(tap, server, true);
            CompletableFuture<Integer> crashed = tap.stopAt(TpmCommandTap.TPM_CC_QUOTE, () -> {
                first.kill(); // host power loss: the agent and the TPM go down together
                swtpm.kill();
                swtpm.restart();
            });
            first.send("attest");
            Await.event("the tap to crash the host at TPM2_Quote", WAIT, crashed, first::log);

            AgentProcess second = agent(tap, server, false);
            assertEquals("STARTED MEASURED NEW_BOOT", second.started, "the next start begins a new log for the new"
                    + " boot and attests: " + second.log());
            assertEquals("RELEASED", second.ask("release"), "keys on the new boot: " + second.log());
            assertEquals("HANDLES 0 0", second.ask("handles"), "nothing left loaded: " + second.log());
        }
    }

    // ---------------------------------------------------------------------------------------------- fixtures

    private AttestationServer server(SwtpmProcess swtpm) throws Exception {
        return Fixture.server(dir.resolve("server"), swtpm, Fixture.policy(1, spec()), Clock.systemUTC());
    }

    private LaunchSpec spec() throws IOException {
        Path jar = dir.resolve("softphone-core.jar");
        return Fixture.spec(Files.exists(jar) ? jar : Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"),
                List.of()).withChildUser(CHILD_USER);
    }

    private TpmCommandTap tap(SwtpmProcess swtpm) throws IOException {
        return TpmCommandTap.start(swtpm.serverSocket(), dir.resolve("tap.sock"));
    }

    /** An agent process through the tap; waits for its STARTED line. */
    private AgentProcess agent(TpmCommandTap tap, AttestationServer server, boolean enroll) throws Exception {
        AgentProcess a = launch(tap, server, enroll);
        a.started = a.next();
        assertTrue(a.started.startsWith("STARTED MEASURED"), "the agent started MEASURED: " + a.started + "; "
                + a.log());
        return a;
    }

    /** An agent process through the tap, starting. */
    private AgentProcess launch(TpmCommandTap tap, AttestationServer server, boolean enroll) throws Exception {
        Path pem = dir.resolve("server.pem");
        Files.writeString(pem, "-----BEGIN CERTIFICATE-----\n" + Base64.getMimeEncoder().encodeToString(
                server.tlsCertificate().getEncoded()) + "\n-----END CERTIFICATE-----\n");
        LaunchSpec spec = spec();
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-cp", System.getProperty("java.class.path"), AgentCrashMain.class.getName(),
                tap.tpmUri(), server.uri().toString(), pem.toString(), dir.resolve("agent").toString(), "host-k",
                spec.classPath().get(0).toString(), spec.configFile().toString(), CHILD_USER));
        if (enroll) {
            command.add(Fixture.enrollmentToken(Fixture.client(server), "host-k"));
        }
        Path log = dir.resolve("agent-" + agents.size() + ".log");
        AgentProcess a = new AgentProcess(new ProcessBuilder(command).redirectError(log.toFile()).start(), log);
        agents.add(a);
        return a;
    }

    /** An {@link AgentCrashMain} process: commands on its stdin, one answer line each on its stdout. */
    private static final class AgentProcess {
        final Process process;
        final Path log;
        final PrintStream in;
        final LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
        String started;

        AgentProcess(Process process, Path log) {
            this.process = process;
            this.log = log;
            this.in = new PrintStream(process.getOutputStream(), true, StandardCharsets.US_ASCII);
            Thread reader = new Thread(() -> {
                try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                        StandardCharsets.US_ASCII))) {
                    for (String line = out.readLine(); line != null; line = out.readLine()) {
                        lines.add(line);
                    }
                } catch (IOException e) {
                    lines.add("READ FAILED " + e);
                }
                lines.add("EOF exit " + process.onExit().join().exitValue());
            }, "agent-stdout");
            reader.setDaemon(true);
            reader.start();
        }

        void send(String command) {
            in.println(command);
        }

        String next() throws InterruptedException {
            String line = lines.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
            return line == null ? "(no answer within " + WAIT + ")" : line;
        }

        String ask(String command) throws InterruptedException {
            send(command);
            return next();
        }

        /** SIGKILL, and waits until it is gone. */
        void kill() {
            process.destroyForcibly();
            try {
                if (!process.waitFor(30, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("the agent did not die of SIGKILL");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }

        String stderr() {
            try {
                return Files.readString(log);
            } catch (IOException e) {
                return "(no agent log: " + e + ")";
            }
        }

        String log() {
            try {
                List<String> all = Files.readAllLines(log);
                return "agent stderr: " + String.join("\n", all.subList(Math.max(0, all.size() - 30), all.size()));
            } catch (IOException e) {
                return "(no agent log: " + e + ")";
            }
        }
    }
}
