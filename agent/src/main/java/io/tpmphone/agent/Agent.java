package io.tpmphone.agent;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmQuote;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host agent: sole owner of the TPM connection. {@link #start()} enrolls the host (once; the enrollment is kept
 * in the state directory), reconciles the measurement log with the TPM, starts the broker, launches the measured
 * softphone core and has it appraised. It re-attests on every new measurement and every {@code interval}, and when
 * the TPM rebooted (its reset or restart count changed) it starts a new log, relaunches and re-attests, so the
 * level recovers. Thread-safe; one agent per TPM.
 */
public final class Agent implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Agent.class);

    /** What the agent reports (tpmphone agent status --json). */
    public record Status(String host, String akId, String level, String failedCheck, List<String> reasons,
                         Instant appraisedAt, String expiresAt, String logState, int measurements,
                         Long childPid, boolean childAlive) {
    }

    private final TpmClient tpm;
    private final HostAttestation attestation;
    private final Path stateDirectory;
    private final String host;
    private final int pcr;
    private final LaunchSpec spec;
    private final Duration interval;
    private final Clock clock;
    private final ScheduledExecutorService scheduler;

    private MeasurementLogStore store;
    private Broker broker;
    private MeasuredLauncher.Launched child;
    private String akId;
    private String bootId;
    private volatile Status status;

    public Agent(TpmClient tpm, AttestationClient server, Path stateDirectory, String host, int measurementPcr,
                 LaunchSpec spec, Duration interval, Clock clock) {
        this.tpm = Objects.requireNonNull(tpm, "tpm");
        this.attestation = new HostAttestation(tpm, server);
        this.stateDirectory = stateDirectory;
        this.host = host;
        this.pcr = measurementPcr;
        this.spec = spec;
        this.interval = interval;
        this.clock = clock;
        this.scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "agent");
            t.setDaemon(true);
            return t;
        });
    }

    /** Enrolls if needed, measures and launches the child, attests; then keeps watching. */
    public synchronized Status start() throws Exception {
        Files.createDirectories(stateDirectory);
        akId = enrollOnce();
        store = MeasurementLogStore.open(stateDirectory.resolve("log"), tpm, pcr);
        bootId = bootId(tpm.readClock());
        closeOrphanedLaunch();
        launchChild();
        Status s = attestNow();
        scheduler.scheduleWithFixedDelay(this::tick, interval.toMillis(), interval.toMillis(), TimeUnit.MILLISECONDS);
        return s;
    }

    public Status status() {
        return status;
    }

    public MeasurementLogStore store() {
        return store;
    }

    public Optional<Process> child() {
        MeasuredLauncher.Launched c = child;
        return c == null ? Optional.empty() : Optional.of(c.process());
    }

    public Broker broker() {
        return broker;
    }

    /** One round of watching: reboot check, then re-attestation. Runs on the agent's thread. */
    private void tick() {
        try {
            checkForReboot();
            attestNow();
        } catch (Exception e) {
            LOG.warn("re-attestation failed: {}", e.toString());
        }
    }

    /** If the TPM rebooted, start a new log, relaunch the child and re-attest. Returns whether it had. */
    public synchronized boolean checkForReboot() throws Exception {
        ClockInfo clock;
        try {
            clock = tpm.readClock();
        } catch (io.tpmphone.tpm.TpmTransportException e) {
            // A rebooted swtpm dropped our connection; the client reconnects on the next command.
            clock = tpm.readClock();
        }
        String now = bootId(clock);
        if (now.equals(bootId)) {
            return false;
        }
        LOG.warn("the TPM rebooted (boot {} -> {}): measuring and launching again", bootId, now);
        bootId = now;
        stopChild();
        store.reconcile();
        launchChild();
        attestNow();
        return true;
    }

    /** Gets a fresh appraisal of the current state. */
    public synchronized Status attestNow() throws Exception {
        HostAttestation.Verdict v = attestation.attest(akId, store.log());
        MeasuredLauncher.Launched c = child;
        status = new Status(host, akId, v.level(), v.failedCheck(), v.reasons(), clock.instant(), v.expiresAt(),
                store.state().name(), store.log().size(), c == null ? null : c.process().pid(),
                c != null && c.process().isAlive());
        LOG.info("appraised: {}{}", v.level(), v.failedCheck() == null ? "" : " (" + v.failedCheck() + ")");
        writeStatus(status);
        return status;
    }

    /**
     * After an agent restart in the same boot, the log may end with a launch whose child lost its agent: end that
     * child if it still runs and record TERMINATED, so the relaunch that follows is a clean one.
     */
    private void closeOrphanedLaunch() throws IOException, TpmException {
        List<io.tpmphone.attestation.MeasurementEvent> events = store.log().events();
        for (int i = events.size() - 1; i >= 0; i--) {
            io.tpmphone.attestation.EventType t = events.get(i).type();
            if (t == io.tpmphone.attestation.EventType.TERMINATED) {
                return;
            }
            if (t == io.tpmphone.attestation.EventType.LAUNCH) {
                String data = events.get(i).dataAsString();
                if (data.startsWith("pid ")) {
                    ProcessHandle.of(Long.parseLong(data.substring(4))).ifPresent(ProcessHandle::destroyForcibly);
                }
                String status = "agent restarted; child of event " + i + " ended";
                store.measure(io.tpmphone.attestation.EventType.TERMINATED, io.tpmphone.attestation.HashAlgorithm
                        .SHA256.digest(status.getBytes(StandardCharsets.US_ASCII)), status);
                LOG.info("recorded the end of the softphone launched before this agent started (event {})", i);
                return;
            }
        }
    }

    /** The status file {@code tpmphone agent status} reads; replaced atomically after every appraisal. */
    public static Path statusFile(Path stateDirectory) {
        return stateDirectory.resolve("status.json");
    }

    private void writeStatus(Status s) {
        try {
            Path tmp = stateDirectory.resolve("status.json.tmp");
            Files.writeString(tmp, new com.fasterxml.jackson.databind.ObjectMapper()
                    .registerModule(new com.fasterxml.jackson.databind.module.SimpleModule()
                            .addSerializer(Instant.class, new com.fasterxml.jackson.databind.ser.std.ToStringSerializer()))
                    .writerWithDefaultPrettyPrinter().writeValueAsString(s));
            Files.move(tmp, statusFile(stateDirectory), java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            LOG.warn("cannot write {}: {}", statusFile(stateDirectory), e.toString());
        }
    }

    private String enrollOnce() throws Exception {
        Path file = stateDirectory.resolve("enrollment");
        if (Files.exists(file)) {
            List<String> lines = Files.readAllLines(file, StandardCharsets.US_ASCII);
            if (lines.size() == 2 && lines.get(0).equals(host)) {
                return lines.get(1);
            }
        }
        HostAttestation.Enrollment e = attestation.enroll(host);
        Files.writeString(file, e.host() + "\n" + e.akId() + "\n", StandardCharsets.US_ASCII);
        LOG.info("enrolled as {} (AK {})", e.host(), e.akId());
        return e.akId();
    }

    private void launchChild() throws IOException, TpmException {
        broker = Broker.start(stateDirectory.resolve("broker"), this::quoteForChild);
        child = new MeasuredLauncher(store, stateDirectory.resolve("launch")).launch(spec,
                Map.of("TPMPHONE_BROKER", broker.socketPath().toString()));
        OutputStream stdin = child.process().getOutputStream();
        stdin.write((broker.token() + "\n").getBytes(StandardCharsets.US_ASCII));
        stdin.flush();
        MeasuredLauncher.Launched launched = child;
        // An unexpected exit is re-appraised at once; a child the agent stopped itself is not.
        launched.terminated().thenRun(() -> {
            if (child == launched && !scheduler.isShutdown()) {
                scheduler.execute(this::tick);
            }
        });
    }

    /** The broker's quote for the child: the measured state over the child's binder. */
    private String quoteForChild(byte[] binder) throws TpmException {
        MeasurementLog log = store.log();
        PcrSelection selection = PcrSelection.parse("sha256:0-7," + pcr);
        TpmQuote q = tpm.quote(HostAttestation.AK, selection, binder);
        Base64.Encoder b64 = Base64.getEncoder();
        List<String> values = new ArrayList<>();
        for (byte[] v : q.pcrValues().values()) {
            values.add(HexFormat.of().formatHex(v));
        }
        Map<String, String> f = new LinkedHashMap<>();
        f.put("akId", akId);
        f.put("attest", b64.encodeToString(q.attest()));
        f.put("signature", b64.encodeToString(q.signature()));
        f.put("pcrs", selection.toString());
        f.put("values", String.join(",", values));
        f.put("log", b64.encodeToString(log.encode()));
        StringBuilder s = new StringBuilder();
        f.forEach((k, v) -> s.append(s.length() == 0 ? "" : " ").append(k).append('=').append(v));
        return s.toString();
    }

    private void stopChild() {
        MeasuredLauncher.Launched c = child;
        child = null;
        if (c != null) {
            try {
                c.process().getOutputStream().close();
            } catch (IOException ignored) {
                // the child is gone already
            }
            try {
                if (!c.process().waitFor(5, TimeUnit.SECONDS)) {
                    c.process().destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
                c.terminated().get(5, TimeUnit.SECONDS);
            } catch (Exception e) {
                LOG.warn("stopping the softphone core: {}", e.toString());
            }
        }
        try {
            if (broker != null) {
                broker.close();
            }
        } catch (IOException e) {
            LOG.debug("closing the broker: {}", e.toString());
        }
    }

    private static String bootId(ClockInfo c) {
        return c.resetCount() + "." + c.restartCount();
    }

    /** Stops watching and the child (which measures TERMINATED). Does not close the TPM client. */
    @Override
    public synchronized void close() {
        scheduler.shutdownNow();
        stopChild();
        if (store != null) {
            try {
                store.close();
            } catch (IOException e) {
                LOG.debug("releasing the measurement log: {}", e.toString());
            }
        }
    }
}
