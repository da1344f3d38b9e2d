package io.tpmphone.agent;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmTransportException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.util.io.pem.PemObject;
import org.bouncycastle.util.io.pem.PemReader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host agent: sole owner of the TPM connection. {@link #start()} enrolls the host (once; the enrollment is kept
 * in the state directory), reconciles the measurement log with the TPM, starts the broker, launches the measured
 * softphone core and has it appraised. It re-attests on every new measurement and every {@code interval}, and when
 * the TPM rebooted (its reset or restart count changed) it starts a new log, relaunches and re-attests, so the
 * level recovers. A child that exited is measured as TERMINATED before anything is attested again; if that extend
 * fails, the agent reports no level ({@link Status#NOT_APPRAISED}) and retries on its next round. Failures are
 * {@link AgentException}s whose {@link AgentException.Reason reason} says what failed. Thread-safe; one agent per TPM.
 */
public final class Agent implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Agent.class);
    /** A passport that expires sooner than this is renewed before it is handed out. */
    private static final Duration PASSPORT_MARGIN = Duration.ofSeconds(60);
    /** Files in the state directory that earlier versions wrote readable by others (their own parts restrict the rest). */
    private static final List<String> STATE_FILES = List.of("status.json", "status.json.tmp", "enrollment",
            "softphone.properties", "device-cert.pem", "device-cert.pem.tmp", "device-ca.pem", "device-ca.pem.tmp",
            "launch/child.log");

    /**
     * What the agent reports ({@code tpmphone agent status --json}, from {@link #toJson()}). {@code level} is the
     * level the server gave the current state, or empty when the agent has none for it (the softphone core exited and
     * its end could not be measured, so nothing is attested until it is); {@code failedCheck} and {@code reasons}
     * then say why. {@code softphone} is where the measured softphone is in its life ({@link SoftphoneState});
     * {@code softphoneDetail} says what it serves as when READY, and why it ended when EXITED (its exit status and the
     * errors it logged). Immutable.
     */
    public record Status(String host, String akId, Optional<IntegrityLevel> level, String failedCheck,
                         List<String> reasons, Instant appraisedAt, String expiresAt, String logState,
                         int measurements, Long childPid, boolean childAlive, boolean keysApproved,
                         String keyApprovalRefused, SoftphoneState softphone, String softphoneDetail) {
        /** What {@link #levelName()} and the status file say when there is no level: not one of the levels. */
        public static final String NOT_APPRAISED = "NOT_APPRAISED";

        public Status {
            Objects.requireNonNull(level, "level");
            reasons = List.copyOf(reasons);
        }

        /** The level's name, or {@link #NOT_APPRAISED} when there is none. */
        public String levelName() {
            return level.map(IntegrityLevel::name).orElse(NOT_APPRAISED);
        }

        /** Whether the server appraised the current state at exactly {@code wanted}. */
        public boolean is(IntegrityLevel wanted) {
            return level.equals(Optional.of(Objects.requireNonNull(wanted, "wanted")));
        }

        /**
         * The status file's JSON object (docs/operations.md): the components by name, in order, {@code level} as
         * {@link #levelName()} and the instant as ISO-8601 text; absent values are JSON null.
         */
        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("host", host);
            m.put("akId", akId);
            m.put("level", levelName());
            m.put("failedCheck", failedCheck);
            m.put("reasons", reasons);
            m.put("appraisedAt", appraisedAt == null ? null : appraisedAt.toString());
            m.put("expiresAt", expiresAt);
            m.put("logState", logState);
            m.put("measurements", measurements);
            m.put("childPid", childPid);
            m.put("childAlive", childAlive);
            m.put("keysApproved", keysApproved);
            m.put("keyApprovalRefused", keyApprovalRefused);
            m.put("softphone", softphone);
            m.put("softphoneDetail", softphoneDetail);
            return m;
        }

        Status withSoftphone(Softphone s) {
            return new Status(host, akId, level, failedCheck, reasons, appraisedAt, expiresAt, logState, measurements,
                    childPid, childAlive && !s.state().isFinal(), keysApproved, keyApprovalRefused,
                    s.state(), s.detail());
        }
    }

    /** Where the measured softphone of the current launch is. STOPPED and EXITED are final. */
    public enum SoftphoneState {
        /** launched; it has not said it serves yet */
        STARTING,
        /** it told the broker it serves (SIP and its control socket are up) */
        READY,
        /** the agent stopped it (agent stopping, TPM reboot) */
        STOPPED,
        /** it ended by itself, or could not be launched: the detail says why */
        EXITED;

        boolean isFinal() {
            return this == STOPPED || this == EXITED;
        }
    }

    /** The current launch's softphone: its state and what to tell a person about it. */
    public record Softphone(SoftphoneState state, String detail) {
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
    private HostKeys keys;
    private Broker broker;
    private MeasuredLauncher.Launched child;
    private String akId;
    private String bootId;
    private volatile Status status;
    private volatile HostAttestation.Verdict lastVerdict;
    private volatile boolean closed;
    private final java.util.concurrent.atomic.AtomicBoolean attestSoonPending =
            new java.util.concurrent.atomic.AtomicBoolean();
    /** The service for brokers not tied to a launch (in-process phones, tests): a READY through it changes nothing. */
    private final ChildService childService = new ChildService(null);
    private final AttestationClient server;
    private volatile byte[] resultKey;
    private String enrollmentToken;
    /** The current launch's softphone; replaced on every launch, completed by READY or by the child's exit. */
    private volatile Launch launch;
    /** A phrase to seal at start ({@link #withPhrase}); null once sealed or when none was given. */
    private volatile String phraseToSeal;
    /** Where the grant directories for sound servers run as a desktop user are made (root's, 0711). */
    public static final Path SOUND_GRANTS = Path.of("/run/tpmphone/sound");
    /** The softphone's per-call sound server socket; null without a sound server. */
    private volatile SoundGrant soundGrant;

    /**
     * One launch's softphone life: STARTING, then READY and/or a final state. {@code settled} completes with the first
     * of READY or a final state. Transitions happen under the agent's status lock.
     */
    private static final class Launch {
        final CompletableFuture<Softphone> settled = new CompletableFuture<>();
        volatile Softphone current = new Softphone(SoftphoneState.STARTING, "launched; not serving yet");
    }

    public Agent(TpmClient tpm, AttestationClient server, Path stateDirectory, String host, int measurementPcr,
                 LaunchSpec spec, Duration interval, Clock clock) {
        this.tpm = Objects.requireNonNull(tpm, "tpm");
        this.attestation = new HostAttestation(tpm, server, clock);
        this.server = server;
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

    /**
     * The person's ring-screen phrase, sealed into the keystore at {@link #start()} under the keystore's policy: the
     * agent gives it only to its measured child, and the TPM unseals it only in the approved measured state. Call
     * before {@link #start()}.
     */
    public synchronized Agent withPhrase(String phrase) {
        this.phraseToSeal = java.util.Objects.requireNonNull(phrase, "phrase");
        return this;
    }

    /**
     * The host's sound server ({@code unix:/PATH} of its native protocol, as the agent reaches it): an isolated
     * softphone is granted a socket into it while it has a call ({@link SoundGrant}). Call before {@link #start()}.
     */
    public synchronized Agent withSoundServer(String adminServer) {
        this.soundGrant = new SoundGrant(adminServer, stateDirectory.resolve("launch").resolve("sound"));
        return this;
    }

    /**
     * As {@link #withSoundServer(String)} for a sound server run as {@code serverUser} (the desktop user's
     * PulseAudio): it must make the per-call socket itself, so the grant directory is that user's (child's group,
     * 0750) under {@link #SOUND_GRANTS} (root's, 0711), outside this agent's owner-only state tree. Call before
     * {@link #start()}.
     */
    public synchronized Agent withSoundServer(String adminServer, String serverUser) throws IOException {
        SoundGrant.Owner owner = SoundGrant.Owner.of(serverUser);
        Path base = SOUND_GRANTS;
        // /run/tpmphone and /run/tpmphone/sound: root's real directories, 0711 whatever the umask, or refused
        for (Path d : List.of(base.getParent(), base)) {
            if (!Files.exists(d, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                try {
                    Files.createDirectory(d, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                            java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
                } catch (java.nio.file.FileAlreadyExistsException raced) {
                    // made meanwhile: checked below like any other
                }
            }
            if (!Files.isDirectory(d, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                    || (Integer) Files.getAttribute(d, "unix:uid", java.nio.file.LinkOption.NOFOLLOW_LINKS) != 0) {
                throw new IOException(d + " must be a directory of root's, not a link or another user's");
            }
            Files.setPosixFilePermissions(d, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
        }
        String name;
        try {
            // one directory per agent (state directory), so agents of a test machine do not share one
            name = "agent-" + HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(
                    stateDirectory.toAbsolutePath().normalize().toString().getBytes(StandardCharsets.UTF_8)), 0, 8);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("no SHA-256", e);
        }
        this.soundGrant = new SoundGrant(adminServer, base.resolve(name), Optional.of(owner),
                SoundGrant.DEFAULT_BOUND);
        return this;
    }

    /**
     * Why a launch with this spec and sound grant would not appraise as its release, or null when they agree: the
     * launcher stages and measures pulse-client.conf exactly when an isolated child is granted a sound server, and the
     * release approves its digest exactly when {@link LaunchSpec#soundClient()}; were they to disagree, every launch
     * would appraise at most IDENTIFIED for a reason the operator could not see.
     */
    static String soundClientMismatch(LaunchSpec spec, boolean soundServerGranted) {
        boolean staged = soundServerGranted && spec.isolate();
        if (staged == spec.soundClient()) {
            return null;
        }
        return staged
                ? "a sound server is granted (--sound-server) but the softphone is not a sound client of it (its"
                        + " configuration's media.audio is not pulseaudio): set media.audio=pulseaudio or drop"
                        + " --sound-server"
                : "the softphone is a sound client (media.audio=pulseaudio, isolated) but no sound server is granted:"
                        + " give the agent --sound-server, or set media.audio=tone";
    }

    /**
     * The operator's enrollment token for this host's first enrollment (see {@code tpmphone enrollment-token});
     * not needed once enrolled. Call before {@link #start()}.
     */
    public synchronized Agent withEnrollmentToken(String token) {
        this.enrollmentToken = token;
        return this;
    }

    /**
     * Enrolls if needed, measures and launches the child, attests; then keeps watching. The state directory is made
     * owner-only (0700, tightened if it exists): nothing in it is for anyone else, and the child reaches what it needs
     * (broker, control socket) through bind mounts.
     *
     * @return the status after the first appraisal, whatever level it brought
     * @throws AgentException if a step failed: its reason says what failed (the state directory, the TPM, the server,
     *                        the keystore, the launch), its cause the typed failure
     */
    public synchronized Status start() throws AgentException {
        SoundGrant grant = soundGrant;
        String mismatch = soundClientMismatch(spec, grant != null);
        if (mismatch != null) {
            throw new AgentException(AgentException.Reason.LAUNCH, mismatch, null);
        }
        step("making the state directory " + stateDirectory + " owner-only", AgentException.Reason.STATE, () -> {
            // 0700 before anything is created in it. An existing state directory open to others is tightened rather
            // than refused: earlier versions made it 0755, and tightening is what the operator would have to do.
            OwnerOnlyFiles.createPrivateDirectories(stateDirectory);
            for (String name : STATE_FILES) {
                OwnerOnlyFiles.restrict(stateDirectory.resolve(name)); // written world-readable by earlier versions
            }
            return null;
        });
        // A previous agent killed in the middle of an operation (a key release: policy session and sealed object
        // loaded) left them in the TPM, which has no resource manager to drop them; we are its only client now.
        List<Integer> leftovers = step("flushing what a previous agent left loaded in the TPM",
                AgentException.Reason.STATE, tpm::flushLeftovers);
        if (!leftovers.isEmpty()) {
            LOG.warn("flushed {} transient object(s) and session(s) a previous agent left loaded in the TPM (it ended"
                    + " in the middle of an operation): {}", leftovers.size(), leftovers.stream()
                    .map(h -> String.format(java.util.Locale.ROOT, "0x%08x", h)).toList());
        }
        akId = enrollOnce();
        keys = step("opening the sealed keystore in " + stateDirectory.resolve("keystore"),
                AgentException.Reason.STATE, () -> HostKeys.open(tpm, stateDirectory,
                        PcrSelection.parse("sha256:0-7," + pcr), attestation.keystoreAuthority(),
                        tpm.ensureEndorsementKey(io.tpmphone.tpm.EkType.RSA_2048).name(), clock));
        String newPhrase = phraseToSeal;
        if (newPhrase != null) {
            step("sealing the ring-screen phrase in the keystore", AgentException.Reason.STATE, () -> {
                keys.keystore().sealPhrase(newPhrase);
                return null;
            });
            phraseToSeal = null;
        }
        keys.attester(new HostKeys.Attester() {
            @Override
            public void attestNow() throws AgentException {
                Agent.this.attestNow();
            }

            @Override
            public void attestSoon() {
                // Coalesced: one pending round reports everything recorded until it runs.
                if (closed || !attestSoonPending.compareAndSet(false, true)) {
                    return;
                }
                try {
                    scheduler.execute(() -> {
                        attestSoonPending.set(false);
                        tick();
                    });
                } catch (java.util.concurrent.RejectedExecutionException e) {
                    attestSoonPending.set(false);
                    LOG.debug("agent closing; key events stay pending");
                }
            }

            @Override
            public void attestAfter(Duration delay) {
                if (delay.isZero() || delay.isNegative()) {
                    attestSoon();
                    return;
                }
                try {
                    scheduler.schedule(this::attestSoon, delay.toMillis(), TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.RejectedExecutionException e) {
                    LOG.debug("agent closing; key events stay pending");
                }
            }
        });
        store = step("opening the measurement log in " + stateDirectory.resolve("log"), AgentException.Reason.STATE,
                () -> MeasurementLogStore.open(stateDirectory.resolve("log"), tpm, pcr));
        bootId = step("reading the TPM's clock", AgentException.Reason.STATE, () -> bootId(tpm.readClock()));
        step("ending the softphone core an earlier agent launched", AgentException.Reason.STATE, () -> {
            closeOrphanedLaunch();
            return null;
        });
        step("launching the softphone core", AgentException.Reason.LAUNCH, () -> {
            launchChild();
            return null;
        });
        Status s = attestNow();
        scheduler.scheduleWithFixedDelay(this::tick, interval.toMillis(), interval.toMillis(), TimeUnit.MILLISECONDS);
        return s;
    }

    public Status status() {
        return status;
    }

    /** The user the softphone runs as when isolated. */
    public String childUser() {
        return spec.childUser();
    }

    /** Where this agent keeps the softphone's control socket ({@code STATE/control/control.sock}). */
    public static Path controlSocket(Path stateDirectory) {
        return stateDirectory.resolve("control").resolve(MeasuredLauncher.CONTROL_SOCKET);
    }

    /** The current launch's softphone as it is now. */
    public Softphone softphone() {
        Launch l = launch;
        return l == null ? new Softphone(SoftphoneState.EXITED, "not launched") : l.current;
    }

    /**
     * Waits until the current launch's softphone says it serves (READY) or exits (EXITED), at most {@code timeout};
     * STARTING if neither happened by then.
     */
    public Softphone awaitSoftphone(Duration timeout) throws InterruptedException {
        Launch l = launch;
        if (l == null) {
            return softphone();
        }
        try {
            return l.settled.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            return l.current;
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
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

    /**
     * What the broker serves the measured child (quote, SRTP keys, TIK signatures, certificates, the latest signed
     * result); for in-process embedding and tests of the child's side.
     */
    public Broker.Service childService() {
        return childService;
    }

    /** The host's keys (the sealed keystore, the latest approval, the identity key); null before {@link #start}. */
    public HostKeys keys() {
        return keys;
    }

    /** One round of watching: reboot check, then re-attestation. Runs on the agent's thread. */
    private void tick() {
        try {
            checkForReboot();
            attestNow();
        } catch (AgentException e) {
            // The message may quote the server.
            LOG.warn("re-attestation failed: {}", UntrustedText.forTerminal(e.getMessage()));
        } catch (RuntimeException e) {
            // Not only logged: an exception out of a scheduled task would end the re-attestation rounds.
            LOG.warn("re-attestation failed: {}", UntrustedText.forTerminal(e.toString()));
        }
    }

    /**
     * If the TPM rebooted, start a new log, relaunch the child and re-attest. Returns whether it had.
     *
     * @throws AgentException if reading the TPM, the log, the relaunch or the appraisal failed
     */
    public synchronized boolean checkForReboot() throws AgentException {
        ClockInfo clock = step("reading the TPM's clock", AgentException.Reason.STATE, () -> {
            try {
                return tpm.readClock();
            } catch (TpmTransportException e) {
                // A rebooted swtpm dropped our connection; the client reconnects on the next command.
                return tpm.readClock();
            }
        });
        String now = bootId(clock);
        if (now.equals(bootId)) {
            return false;
        }
        if (!step("checking the measurement log against the TPM", AgentException.Reason.STATE,
                () -> store.tpmRebooted())) {
            // Only the restart count moved and the PCR still holds the log: a TPM Resume, PCRs kept.
            LOG.info("the TPM resumed (boot {} -> {}); the measured state is intact", bootId, now);
            bootId = now;
            step("reconciling the measurement log", AgentException.Reason.STATE, () -> store.reconcile());
            return false;
        }
        LOG.warn("the TPM rebooted (boot {} -> {}): measuring and launching again", bootId, now);
        bootId = now;
        // The old child's PCR value is gone and its log is archived by reconcile: its end is not measured, since a
        // TERMINATED now would be extended into the new boot's PCR ahead of the new log.
        stopChild(false);
        step("starting a new measurement log for the new TPM boot", AgentException.Reason.STATE,
                () -> store.reconcile());
        step("launching the softphone core again", AgentException.Reason.LAUNCH, () -> {
            launchChild();
            return null;
        });
        attestNow();
        return true;
    }

    /** A step of start-up or attestation, with the typed failures it can have. */
    @FunctionalInterface
    private interface Step<T> {
        T run() throws IOException, TpmException, AttestationClientException, KeystoreException;
    }

    /**
     * Runs {@code step}; a failure becomes an {@link AgentException} saying that {@code doing} failed, with the reason
     * the cause's type gives ({@code io} for an {@link IOException}: which files it concerns).
     */
    private static <T> T step(String doing, AgentException.Reason io, Step<T> step) throws AgentException {
        try {
            return step.run();
        } catch (IOException e) {
            throw new AgentException(io, doing + " failed: " + text(e), e);
        } catch (TpmException e) {
            throw new AgentException(AgentException.Reason.TPM, doing + " failed: " + text(e), e);
        } catch (AttestationClientException e) {
            throw new AgentException(AgentException.Reason.SERVER, doing + " failed: " + text(e), e);
        } catch (KeystoreException e) {
            throw new AgentException(AgentException.Reason.KEYSTORE, doing + " failed: " + text(e), e);
        }
    }

    private static String text(Exception e) {
        return e.getMessage() == null || e.getMessage().isBlank() ? e.getClass().getSimpleName() : e.getMessage();
    }

    /**
     * Gets a fresh appraisal of the current state.
     *
     * @return the new status, whatever level the server gave
     * @throws AgentException {@link AgentException.Reason#TERMINATION_NOT_MEASURED} if the softphone core exited and
     *                        its end could not be measured (the status then has no level), {@code SERVER} or
     *                        {@code TPM} if the appraisal failed
     * @throws IllegalStateException if the agent is closed
     */
    public synchronized Status attestNow() throws AgentException {
        if (closed) {
            throw new IllegalStateException("the agent is closed");
        }
        MeasuredLauncher.Launched exited = child;
        if (exited != null && exited.terminationPending()) {
            // Never let a quote present the launch-time PCR value of a child that is gone: cap the PCR first.
            try {
                exited.recordTermination();
            } catch (IOException | TpmException | RuntimeException e) {
                keys.approvalReceived(Optional.empty(), Optional.of("the softphone core's end is not measured"));
                synchronized (statusLock) {
                    Softphone sp = softphone();
                    status = new Status(host, akId, Optional.empty(), "runtime", List.of("the softphone core (pid "
                            + exited.process().pid() + ") exited but its end could not be measured: " + e
                            + "; not attesting until it is (retried every interval)"), clock.instant(), null,
                            store.state().name(), store.log().size(), exited.process().pid(), false, false,
                            "not attested", sp.state(), sp.detail());
                    writeStatus(status);
                }
                throw new AgentException(AgentException.Reason.TERMINATION_NOT_MEASURED, "the softphone core (pid "
                        + exited.process().pid() + ") exited but its TERMINATED measurement failed: " + e
                        + "; not attesting until it is recorded (retried every interval)", e);
            }
        }
        Optional<HostKeys.Report> report = keys.pendingReport();
        HostAttestation.Verdict v;
        try {
            v = appraise(report);
        } catch (AgentException e) {
            if (report.isEmpty() || !e.serverRefusal().map(HostAttestation::keyEventsRefused).orElse(false)) {
                throw e;
            }
            // A report the server cannot take must not stop attestation: drop it (counted) and attest without.
            keys.refused(report.get());
            report = Optional.empty();
            v = appraise(report);
        }
        report.ifPresent(keys::reported);
        lastVerdict = v;
        keys.approvalReceived(v.keyApproval(), v.keyApprovalRefused());
        if (keys.approved() && keys.certificateDue()) {
            try {
                keys.storeCertificate(attestation.requestDeviceCertificate(akId, keys.keystore()));
                LOG.info("the attestation server issued the device certificate for the TLS identity key");
            } catch (Exception e) {
                LOG.warn("requesting the device certificate failed (retried next round): {}", e.toString());
            }
        }
        LOG.info("appraised: {}{}", v.level(), v.failedCheck() == null ? ""
                : " (" + UntrustedText.forTerminal(v.failedCheck(), 100) + ")");
        MeasuredLauncher.Launched c = child;
        synchronized (statusLock) {
            Softphone sp = softphone();
            status = new Status(host, akId, Optional.of(v.level()), v.failedCheck(), v.reasons(), clock.instant(),
                    v.expiresAt(), store.state().name(), store.log().size(), c == null ? null : c.process().pid(),
                    c != null && c.process().isAlive() && !sp.state().isFinal(), keys.approved(),
                    v.keyApprovalRefused().orElse(null), sp.state(), sp.detail());
            writeStatus(status);
            return status;
        }
    }

    /** The server's appraisal of the current state, with {@code report} (key events) if present. */
    private HostAttestation.Verdict appraise(Optional<HostKeys.Report> report) throws AgentException {
        return step("having this host appraised", AgentException.Reason.STATE, () -> attestation.attest(akId, store,
                Optional.of(keys.pcrs()), report.map(HostKeys.Report::json).orElse(null)));
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
                orphan(events.get(i).dataAsString()).ifPresent(p -> {
                    LOG.info("ending the orphaned softphone core (pid {})", p.pid());
                    p.destroyForcibly();
                });
                String status = "agent restarted; child of event " + i + " ended";
                store.measure(io.tpmphone.attestation.EventType.TERMINATED, io.tpmphone.attestation.HashAlgorithm
                        .SHA256.digest(status.getBytes(StandardCharsets.US_ASCII)), status);
                LOG.info("recorded the end of the softphone launched before this agent started (event {})", i);
                return;
            }
        }
    }

    /**
     * The process a LAUNCH event's data ({@code pid N start INSTANT}) names, if it still runs: a live process with
     * that pid AND that start time. A pid alone may have been reused by an unrelated process since.
     */
    static Optional<ProcessHandle> orphan(String launchData) {
        String[] f = launchData.split(" ");
        if (f.length != 4 || !f[0].equals("pid") || !f[2].equals("start") || f[3].equals("unknown")) {
            return Optional.empty();
        }
        long pid;
        Instant start;
        try {
            pid = Long.parseLong(f[1]);
            start = Instant.parse(f[3]);
        } catch (RuntimeException e) {
            return Optional.empty();
        }
        return ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                .filter(p -> p.info().startInstant().map(start::equals).orElse(false));
    }

    /** The status file {@code tpmphone agent status} reads; replaced atomically after every appraisal. */
    public static Path statusFile(Path stateDirectory) {
        return stateDirectory.resolve("status.json");
    }

    /**
     * Records where launch {@code l}'s softphone is (a final state is never left), and rewrites the status file with
     * it when {@code l} is the current launch (between appraisals too).
     */
    private void softphoneChanged(Launch l, Softphone s) {
        synchronized (statusLock) {
            if (l.current.state().isFinal()) {
                return;
            }
            l.current = s;
            l.settled.complete(s);
            Status now = status;
            if (l == launch && now != null) {
                status = now.withSoftphone(s);
                writeStatus(status);
            }
        }
    }

    private final Object statusLock = new Object();

    private static final com.fasterxml.jackson.databind.ObjectWriter STATUS_JSON =
            new com.fasterxml.jackson.databind.ObjectMapper().writerWithDefaultPrettyPrinter();

    private void writeStatus(Status s) {
        try {
            OwnerOnlyFiles.replace(statusFile(stateDirectory), STATUS_JSON.writeValueAsBytes(s.toJson()));
        } catch (IOException e) {
            LOG.warn("cannot write {}: {}", statusFile(stateDirectory), e.toString());
        }
    }

    private String enrollOnce() throws AgentException {
        Path file = stateDirectory.resolve("enrollment");
        Optional<String> kept = step("reading " + file, AgentException.Reason.STATE, () -> {
            if (Files.exists(file)) {
                List<String> lines = Files.readAllLines(file, StandardCharsets.US_ASCII);
                if (lines.size() == 2 && lines.get(0).equals(host)) {
                    return Optional.of(lines.get(1));
                }
            }
            return Optional.empty();
        });
        if (kept.isPresent()) {
            return kept.get();
        }
        HostAttestation.Enrollment e = step("enrolling " + host + " with the attestation server",
                AgentException.Reason.STATE, () -> attestation.enroll(host, enrollmentToken));
        step("writing " + file, AgentException.Reason.STATE, () -> {
            OwnerOnlyFiles.replace(file, (e.host() + "\n" + e.akId() + "\n").getBytes(StandardCharsets.US_ASCII));
            return null;
        });
        LOG.info("enrolled as {} (AK {})", e.host(), e.akId());
        return e.akId();
    }

    private void launchChild() throws IOException, TpmException {
        Launch l = new Launch();
        launch = l;
        try {
            broker = Broker.start(stateDirectory.resolve("broker"), new ChildService(l));
            SoundGrant sound = soundGrant;
            child = new MeasuredLauncher(store, stateDirectory.resolve("launch")).launch(spec, broker,
                    controlSocket(stateDirectory).getParent(), sound != null && spec.isolate() ? sound : null);
        } catch (IOException | TpmException | RuntimeException e) {
            softphoneChanged(l, new Softphone(SoftphoneState.EXITED, "could not be launched: " + e));
            if (broker != null) {
                try {
                    broker.close();
                } catch (IOException closing) {
                    e.addSuppressed(closing);
                }
                broker = null;
            }
            throw e;
        }
        MeasuredLauncher.Launched launched = child;
        // An unexpected exit is re-appraised at once (which also retries a failed TERMINATED); a child the agent
        // stopped itself is not.
        launched.process().onExit().thenRun(() -> {
            SoundGrant sound = soundGrant;
            if (sound != null) {
                sound.close(); // no call outlives its softphone: its sound server socket goes with it
            }
            boolean unexpected = child == launched;
            softphoneChanged(l, new Softphone(unexpected ? SoftphoneState.EXITED : SoftphoneState.STOPPED,
                    exitDetail(launched, unexpected)));
            if (unexpected) {
                LOG.warn("the softphone core exited: {}",
                        io.tpmphone.attestation.UntrustedText.forTerminal(l.current.detail()));
            }
            if (unexpected && !scheduler.isShutdown()) {
                try {
                    scheduler.execute(this::tick);
                } catch (java.util.concurrent.RejectedExecutionException closing) {
                    LOG.debug("agent closing; not re-appraising");
                }
            }
        });
    }

    /** Why a child ended, for a person: its exit status and, if it ended by itself, the errors it logged. */
    private static String exitDetail(MeasuredLauncher.Launched launched, boolean unexpected) {
        String exit = "exit status " + launched.process().exitValue();
        if (!unexpected) {
            return "stopped by the agent (" + exit + ")";
        }
        List<String> errors = launched.errorLines(3);
        return exit + (errors.isEmpty() ? ", no error logged" : ": " + String.join(" | ", errors)) + " (see "
                + launched.logFile() + ")";
    }

    /** What the broker does for the measured child of {@code launch} (null: a broker not tied to a launch). */
    private final class ChildService implements Broker.Service {
        private final Launch launch;

        ChildService(Launch launch) {
            this.launch = launch;
        }

        @Override
        public String quote(byte[] binder) throws TpmException {
            return quoteForChild(binder);
        }

        @Override
        public io.tpmphone.keystore.SrtpKeys srtpKey(String callId, io.tpmphone.keystore.SrtpSuite suite)
                throws io.tpmphone.keystore.KeystoreException {
            return keys.srtpKey(callId, suite);
        }

        @Override
        public void checkOffered(byte[] fingerprint, String callId) throws io.tpmphone.keystore.KeystoreException {
            keys.checkOffered(fingerprint, callId);
        }

        @Override
        public byte[] sign(byte[] digest) throws io.tpmphone.keystore.KeystoreException {
            return keys.sign(digest);
        }

        @Override
        public List<byte[]> certificateChain() throws IOException, GeneralSecurityException {
            return keys.certificateChain();
        }

        @Override
        public void callDecision(String direction, String action, String peerUri, String peerLevel,
                                 String requiredLevel, String callId, String reason) {
            keys.recordCallDecision(direction, action, peerUri, peerLevel, requiredLevel, callId, reason);
            SoundGrant sound = soundGrant;
            if (sound != null) {
                sound.decided(action, callId); // the only way the agent learns of a call
            }
        }

        @Override
        public void callDecision(String direction, String action, String peerUri, String peerLevel,
                                 String requiredLevel, String callId, String reason, Broker.DecisionFields fields) {
            keys.recordCallDecision(direction, action, peerUri, peerLevel, requiredLevel, callId, reason, fields);
            SoundGrant sound = soundGrant;
            if (sound != null) {
                sound.decided(action, callId); // the only way the agent learns of a call, in either DECISION form
            }
        }

        @Override
        public String passport() throws AgentException {
            HostAttestation.Verdict v = lastVerdict;
            if (v == null || v.result() == null || Instant.parse(v.expiresAt()).isBefore(
                    clock.instant().plus(PASSPORT_MARGIN))) {
                // A passport the peer would find expired (or nearly): attest now for a fresh one.
                attestNow();
                v = lastVerdict;
            }
            if (v == null || v.result() == null) {
                throw new IllegalStateException("no attestation result");
            }
            return v.result();
        }

        @Override
        public Optional<String> phrase() throws io.tpmphone.keystore.KeystoreException {
            return keys.phrase();
        }

        @Override
        public void sound(boolean open, String callId) throws IOException {
            SoundGrant sound = soundGrant;
            if (sound == null || !spec.isolate()) {
                throw new IllegalStateException("no sound server is granted to this softphone (agent run"
                        + " --sound-server, isolated launches only)");
            }
            if (open) {
                sound.open(callId);
            } else {
                sound.close(callId);
            }
        }

        @Override
        public void ready(String uri) {
            Launch l = launch;
            if (l != null && l.current.state() == SoftphoneState.STARTING) {
                softphoneChanged(l, new Softphone(SoftphoneState.READY, "serving " + uri + ", control socket "
                        + controlSocket(stateDirectory)));
                LOG.info("the softphone core serves {}", io.tpmphone.attestation.UntrustedText.forTerminal(uri));
            }
        }

        @Override
        public byte[] resultVerificationKey() throws AttestationClientException, GeneralSecurityException {
            byte[] k = resultKey;
            if (k == null) {
                // parsed once: a server answering garbage fails here, not in the child
                k = resultKeyFromPem(server.get("/v1/server", null).path("resultSigningKey").asText(""));
                resultKey = k;
            }
            return k.clone();
        }
    }

    /**
     * The DER SubjectPublicKeyInfo of the server's result key, from the PEM {@code PUBLIC KEY} that {@code GET
     * /v1/server} publishes as {@code resultSigningKey} (read by Bouncy Castle's {@link PemReader}); it must be an EC
     * key.
     *
     * @throws GeneralSecurityException if the text holds no PEM public key, or not an EC one
     */
    static byte[] resultKeyFromPem(String pem) throws GeneralSecurityException {
        PemObject object;
        try (PemReader reader = new PemReader(new java.io.StringReader(pem))) {
            object = reader.readPemObject();
        } catch (IOException e) {
            throw new GeneralSecurityException("the server's resultSigningKey is not readable as PEM: "
                    + e.getMessage(), e);
        }
        if (object == null || !object.getType().equals("PUBLIC KEY")) {
            throw new GeneralSecurityException("the server's resultSigningKey is not a PEM \"PUBLIC KEY\" block: "
                    + (object == null ? "no PEM block" : object.getType()));
        }
        byte[] der = object.getContent();
        java.security.KeyFactory.getInstance("EC").generatePublic(new java.security.spec.X509EncodedKeySpec(der));
        return der;
    }

    /** The broker's quote for the child: the measured state over the child's binder. */
    private String quoteForChild(byte[] binder) throws TpmException {
        PcrSelection selection = PcrSelection.parse("sha256:0-7," + pcr);
        MeasurementLog log;
        TpmQuote q;
        synchronized (store) { // no measurement between the log and the quote (see HostAttestation.attest)
            log = store.log();
            q = tpm.quote(HostAttestation.AK, selection, binder);
        }
        Base64.Encoder b64 = Base64.getEncoder();
        List<String> values = new ArrayList<>();
        for (byte[] v : q.pcrValues().values()) {
            values.add(HexFormat.of().formatHex(v));
        }
        Map<String, String> f = new LinkedHashMap<>();
        f.put("akId", akId);
        f.put("ak", b64.encodeToString(akPublic()));
        f.put("attest", b64.encodeToString(q.attest()));
        f.put("signature", b64.encodeToString(q.signature()));
        f.put("pcrs", selection.toString());
        f.put("values", String.join(",", values));
        f.put("log", b64.encodeToString(log.encode()));
        StringBuilder s = new StringBuilder();
        f.forEach((k, v) -> s.append(s.length() == 0 ? "" : " ").append(k).append('=').append(v));
        return s.toString();
    }

    private volatile byte[] akPublicArea;

    private byte[] akPublic() throws TpmException {
        if (akPublicArea == null) {
            akPublicArea = tpm.readPublic(HostAttestation.AK).orElseThrow(() -> new TpmException(
                    "the AK at " + HostAttestation.AK + " is gone")).encoded();
        }
        return akPublicArea;
    }

    /** Stops the child; {@code measured}: record TERMINATED (false only when its TPM boot is over). */
    private void stopChild(boolean measured) {
        MeasuredLauncher.Launched c = child;
        child = null;
        if (c != null) {
            if (!measured) {
                c.stopUnmeasured(Duration.ofSeconds(5));
            } else {
                c.stop(Duration.ofSeconds(5));
                try {
                    c.recordTermination();
                } catch (IOException | TpmException | RuntimeException e) {
                    LOG.warn("measuring the end of the softphone core: {}", e.toString());
                }
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
        return MeasurementLogStore.bootId(c);
    }

    /**
     * Reports pending key and call events (one last attestation, if there are any), then stops watching and the
     * child (which measures TERMINATED). Does not close the TPM client.
     */
    @Override
    public synchronized void close() {
        // Key releases and accepted calls ride on the next attestation; they live only in memory until then. Report
        // them before stopping, so an agent restart (an upgrade, a relaunch) loses no audit event. Best effort: if
        // the server cannot be reached they are lost, as the log line says.
        if (!closed && keys != null && keys.pendingReport().isPresent()) {
            try {
                attestNow();
            } catch (AgentException | RuntimeException e) {
                LOG.warn("stopping with unreported key and call events (the server did not take them): {}",
                        UntrustedText.forTerminal(e.getMessage()));
            }
        }
        closed = true;
        scheduler.shutdownNow();
        stopChild(true);
        SoundGrant sound = soundGrant;
        if (sound != null) {
            sound.shutdown();
        }
        if (keys != null) {
            keys.close();
        }
        if (store != null) {
            try {
                store.close();
            } catch (IOException e) {
                LOG.debug("releasing the measurement log: {}", e.toString());
            }
        }
    }
}
