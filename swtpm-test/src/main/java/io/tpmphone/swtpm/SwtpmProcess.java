package io.tpmphone.swtpm;

import io.tpmphone.swtpm.internal.Directories;
import io.tpmphone.swtpm.internal.Executables;
import io.tpmphone.swtpm.internal.JvmExitCleanup;
import io.tpmphone.swtpm.internal.LocalCertificateAuthority;
import io.tpmphone.swtpm.internal.LogTail;
import io.tpmphone.swtpm.internal.LoopbackPorts;
import io.tpmphone.swtpm.internal.TpmWire;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real software TPM 2.0 ({@code swtpm socket --tpm2}) for tests, listening on 127.0.0.1 on two consecutive free
 * ports: the <em>data port</em> P for TPM commands (raw or MS-simulator framing) and the <em>control port</em> P+1
 * for swtpm's own control protocol. It is started with {@code --flags not-need-init,startup-clear}: it takes
 * commands at once, as after {@code TPM2_Startup(TPM_SU_CLEAR)}.
 *
 * <pre>{@code
 * try (SwtpmProcess tpm = SwtpmProcess.builder().withEkCertificate(true).start()) {
 *     connect(tpm.host(), tpm.port());
 *     tpm.restart();                       // a reboot: PCRs reset, NV indices and persistent objects kept
 * }                                        // stopped and its private directories deleted
 * }</pre>
 *
 * <h2>Guarantees</h2>
 * <ul>
 *   <li>{@link Builder#start()} returns only once the TPM answers on the data port (or throws
 *       {@link SwtpmException} with the tail of swtpm's log after the start timeout, 10 s by default). Taken ports
 *       are retried with new ones.</li>
 *   <li>{@link #stop()} and {@link #restart()} are <em>orderly</em>: {@code TPM2_Shutdown(TPM_SU_CLEAR)} is sent
 *       before SIGTERM. An unorderly shutdown (SIGTERM or swtpm's control-channel shutdown alone, or
 *       {@link #kill()}) makes the TPM count one dictionary-attack failure at the next start if an auth value with
 *       DA protection was used since the last start; three of them lock the TPM out (libtpms default: 3 tries,
 *       1000 s recovery). NV indices and persistent objects survive either way (libtpms writes NV at once).</li>
 *   <li>{@link #close()} stops swtpm and deletes every private directory (also after {@link #kill()} or a failed
 *       start). A state directory given with {@link Builder#stateDirectory(Path)} is kept.</li>
 *   <li>A JVM shutdown hook kills instances still running at exit and deletes their directories. A JVM killed with
 *       SIGKILL runs no hooks and leaves its swtpm processes behind.</li>
 * </ul>
 *
 * <h2>EK certificates</h2>
 * With {@link Builder#withEkCertificate(boolean)} the TPM is manufactured by {@code swtpm_setup} before its first
 * start, with a fresh endorsement seed per instance: an RSA-2048 EK certificate at NV 0x01C00002
 * ({@link #EK_CERTIFICATE_RSA_2048_NV_INDEX}) and an ECC NIST P-384 one at 0x01C00016
 * ({@link #EK_CERTIFICATE_ECC_P384_NV_INDEX}); swtpm 0.7 makes no P-256 EK certificate. swtpm_setup also leaves the
 * two EKs persistent at 0x81010001 (RSA) and 0x81010016 (ECC), so two of the TPM's seven persistent slots are
 * taken. The certificates are signed by a test CA ({@code swtpm_localca}, never the machine-wide one under
 * {@code /var/lib}): EK certificate ← {@link #caCertificate()} ← {@link #rootCertificate()}. By default one CA is
 * shared by all instances of a JVM (its first use costs ~0.7 s more) and deleted at JVM exit; with
 * {@link Builder#privateCertificateAuthority(boolean)} an instance gets its own, deleted on {@link #close()}. All PCR
 * banks (SHA-1, SHA-256, SHA-384, SHA-512) stay active in both modes, as on an unmanufactured swtpm.
 *
 * <h2>Thread-safety</h2>
 * Thread-safe: lifecycle methods ({@code restart}, {@code stop}, {@code kill}, {@code close}) are serialized; the
 * accessors may be read from any thread and reflect the latest start. swtpm itself serves one client connection at a
 * time and has no resource manager: one owner should talk to it.
 */
public final class SwtpmProcess implements AutoCloseable {
    /** The NV index of the RSA-2048 EK certificate (TCG EK Credential Profile, low range). */
    public static final int EK_CERTIFICATE_RSA_2048_NV_INDEX = 0x01C00002;
    /** The NV index of the ECC NIST P-384 EK certificate written by swtpm_setup. */
    public static final int EK_CERTIFICATE_ECC_P384_NV_INDEX = 0x01C00016;
    /** The NV index of the platform certificate ({@link Builder#withPlatformCertificate(boolean)}). */
    public static final int PLATFORM_CERTIFICATE_NV_INDEX = 0x01C08000;

    private static final Logger LOG = LoggerFactory.getLogger(SwtpmProcess.class);
    private static final String HOST = "127.0.0.1";
    private static final String STATE_FILE = "tpm2-00.permall";
    private static final int MAX_START_ATTEMPTS = 5;
    private static final int LOG_TAIL_LINES = 20;
    private static final Duration DEFAULT_START_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration PROBE_TIMEOUT = Duration.ofMillis(250);
    private static final long POLL_STEP_MILLIS = 5;
    private static final Duration SHUTDOWN_COMMAND_TIMEOUT = Duration.ofSeconds(1);
    private static final Duration TERMINATE_TIMEOUT = Duration.ofSeconds(5);
    private static final Duration SETUP_TIMEOUT = Duration.ofSeconds(60);

    private final Path swtpm;
    private final Path workDirectory;
    private final Path stateDirectory;
    private final Duration startTimeout;
    private final LocalCertificateAuthority certificateAuthority;
    private final JvmExitCleanup.Registration exitCleanup;

    private volatile Process process;
    private volatile int port;
    private volatile int controlPort;
    private volatile boolean certificatesCreated;
    private boolean closed; // guarded by this

    private SwtpmProcess(Builder builder, Path swtpm, Path workDirectory) {
        this.swtpm = swtpm;
        this.workDirectory = workDirectory;
        this.stateDirectory = builder.stateDirectory != null
                ? builder.stateDirectory.toAbsolutePath()
                : workDirectory.resolve("state");
        this.startTimeout = builder.startTimeout;
        boolean certificates = builder.ekCertificate || builder.platformCertificate;
        this.certificateAuthority = !certificates ? null
                : builder.privateCertificateAuthority
                        ? LocalCertificateAuthority.inDirectory(workDirectory.resolve("ca"))
                        : LocalCertificateAuthority.shared();
        // Registered before anything is started, so a crash between here and close() still cleans up.
        this.exitCleanup = JvmExitCleanup.register(this::cleanUpAtJvmExit);
    }

    /** A builder for an instance without EK certificates in a private temporary state directory. */
    public static Builder builder() {
        return new Builder();
    }

    /** {@code "127.0.0.1"}: swtpm listens on loopback only. */
    public String host() {
        return HOST;
    }

    /** The data port (TPM commands). May change on {@link #restart()} if the old port was taken meanwhile. */
    public int port() {
        return port;
    }

    /**
     * The control port, always {@link #port()} + 1: clients derive it (tpm2-tss's swtpm TCTI sets the locality
     * there, TSS.Java's {@code TpmDeviceTcp} sends platform signals there). It speaks swtpm's control protocol
     * ({@code swtpm_ioctl --tcp 127.0.0.1:PORT}), not TPM commands.
     */
    public int controlPort() {
        return controlPort;
    }

    /** {@code swtpm:host=127.0.0.1,port=P}: the TPM's address as a URI-like string for our configuration. */
    public String tpmUri() {
        return "swtpm:host=" + HOST + ",port=" + port;
    }

    /** {@code swtpm:host=127.0.0.1,port=P}: the TCTI for tpm2-tools' {@code -T} option or {@code TPM2TOOLS_TCTI}. */
    public String tctiString() {
        return "swtpm:host=" + HOST + ",port=" + port;
    }

    /** The directory holding the TPM's state ({@code tpm2-00.permall}). */
    public Path stateDirectory() {
        return stateDirectory;
    }

    /** swtpm's log file ({@code --log}); deleted on {@link #close()}. */
    public Path logFile() {
        return workDirectory.resolve("swtpm.log");
    }

    /** The process id of the current swtpm process (changes on {@link #restart()}). */
    public long pid() {
        return process.pid();
    }

    /** Whether the current swtpm process is running. */
    public boolean isAlive() {
        Process current = process;
        return current != null && current.isAlive();
    }

    /** Whether this instance's TPM carries EK certificates made by {@link #caCertificate()}. */
    public boolean hasEkCertificates() {
        return certificatesCreated;
    }

    /**
     * The certificate (PEM) of the CA that issued this TPM's EK certificates: swtpm-localca's {@code issuercert.pem},
     * an intermediate under {@link #rootCertificate()}.
     *
     * @throws IllegalStateException if this instance was not started with EK certificates, or its state directory
     *     already held a TPM (whose certificates, if any, were issued by some other CA)
     */
    public Path caCertificate() {
        return requireCertificateAuthority().issuerCertificate();
    }

    /**
     * The self-signed root certificate (PEM) above {@link #caCertificate()}: the trust anchor for chain validation.
     *
     * @throws IllegalStateException as {@link #caCertificate()}
     */
    public Path rootCertificate() {
        return requireCertificateAuthority().rootCertificate();
    }

    /**
     * Reboots the TPM: an orderly {@link #stop()} (or none if it is not running, e.g. after {@link #kill()}), then a
     * start on the same state and, if still free, the same ports. PCRs and transient objects are reset; NV indices,
     * persistent objects and hierarchy settings are kept. Re-read {@link #port()} afterwards.
     *
     * @throws IllegalStateException if closed
     * @throws SwtpmException if swtpm does not come up again
     */
    public synchronized void restart() {
        requireOpen();
        int oldPort = port;
        long startedAt = System.nanoTime();
        stop();
        launch(oldPort);
        LOG.debug("swtpm restarted in {} ms (pid {}, data port {})", elapsedMillis(startedAt), pid(), port);
    }

    /**
     * Stops swtpm in an orderly way: {@code TPM2_Shutdown(TPM_SU_CLEAR)} on the data port (1 s timeout; skipped with a
     * warning if a client holds the port), then SIGTERM, then SIGKILL after 5 s. Does nothing if it is not running.
     * The state directory is kept; {@link #restart()} starts it again.
     *
     * @throws SwtpmException if the process cannot be ended
     */
    public synchronized void stop() {
        Process current = process;
        if (current == null || !current.isAlive()) {
            return;
        }
        sendOrderlyShutdown();
        terminate(current, true);
    }

    /**
     * Kills swtpm with SIGKILL at once, with no orderly shutdown: a power loss, e.g. to test a client whose TPM
     * disappears mid-command. Waits (5 s at most) until the process is gone. {@link #restart()} brings it back.
     *
     * @throws SwtpmException if the process cannot be ended
     */
    public synchronized void kill() {
        Process current = process;
        if (current != null) {
            terminate(current, false);
        }
    }

    /** Stops swtpm ({@link #stop()}) and deletes the private directories. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            stop();
        } finally {
            Process current = process;
            if (current != null && current.isAlive()) {
                killTree(current);
            }
            Directories.deleteRecursively(workDirectory);
            exitCleanup.unregister();
        }
    }

    /**
     * Leaves swtpm running beyond this object and this JVM (for {@code tpmphone swtpm start}): no JVM-exit cleanup,
     * and the private work directory (swtpm's log and output) is kept. This object can no longer control the process;
     * stop it with {@link #stopDetached(long, String, int)} and delete the returned directory afterwards.
     *
     * @return the private work directory to delete once the detached swtpm is stopped
     * @throws IllegalStateException if closed or not running
     */
    public synchronized Path detach() {
        requireOpen();
        if (!isAlive()) {
            throw new IllegalStateException("swtpm is not running: nothing to detach");
        }
        closed = true;
        exitCleanup.unregister();
        LOG.debug("detached swtpm pid {} ({})", pid(), tpmUri());
        return workDirectory;
    }

    /**
     * Stops a swtpm left running by {@link #detach()}: {@code TPM2_Shutdown(CLEAR)} on its data port (so the reboot is
     * orderly and does not count against dictionary-attack lockout), then SIGTERM, then SIGKILL after 5 s. Does
     * nothing if the process is already gone.
     *
     * @throws SwtpmException if the process does not end
     */
    public static void stopDetached(long pid, String host, int port) {
        Optional<ProcessHandle> handle = ProcessHandle.of(pid);
        if (handle.isEmpty() || !handle.get().isAlive()) {
            return;
        }
        if (!handle.get().info().command().map(c -> c.endsWith("swtpm")).orElse(true)) {
            throw new SwtpmException("pid " + pid + " is " + handle.get().info().command().orElse("?")
                    + ", not swtpm: refusing to stop it (stale instance file?)");
        }
        try {
            TpmWire.execute(host, port, TpmWire.shutdownClearCommand(), SHUTDOWN_COMMAND_TIMEOUT);
        } catch (IOException e) {
            LOG.warn("TPM2_Shutdown(CLEAR) not delivered to {}:{} ({}); stopping without an orderly shutdown", host,
                    port, e.toString());
        }
        handle.get().destroy();
        try {
            handle.get().onExit().get(TERMINATE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            handle.get().destroyForcibly();
            try {
                handle.get().onExit().get(TERMINATE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e2) {
                throw new SwtpmException("swtpm pid " + pid + " did not end after SIGKILL", e2);
            } catch (InterruptedException e2) {
                Thread.currentThread().interrupt();
                throw new SwtpmException("interrupted while stopping swtpm pid " + pid, e2);
            }
        } catch (java.util.concurrent.ExecutionException e) {
            throw new SwtpmException("waiting for swtpm pid " + pid + " failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SwtpmException("interrupted while stopping swtpm pid " + pid, e);
        }
    }

    /** Deletes a directory tree (a detached instance's work or state directory). */
    public static boolean deleteDirectory(Path directory) {
        return Directories.deleteRecursively(directory);
    }

    @Override
    public String toString() {
        return "SwtpmProcess[" + tpmUri() + ", control port " + controlPort + ", state " + stateDirectory + "]";
    }

    // ---------------------------------------------------------------------------------------------------------------

    private static SwtpmProcess start(Builder builder) {
        Path swtpm = builder.swtpmExecutable != null
                ? Executables.requireExecutable("swtpm", builder.swtpmExecutable)
                : Executables.find("swtpm", null);
        Path workDirectory;
        try {
            workDirectory = Files.createTempDirectory("tpmphone-swtpm-");
        } catch (IOException e) {
            throw new SwtpmException("cannot create a private directory for swtpm under "
                    + System.getProperty("java.io.tmpdir") + ": " + e, e);
        }
        SwtpmProcess instance = null;
        try {
            instance = new SwtpmProcess(builder, swtpm, workDirectory);
            long startedAt = System.nanoTime();
            instance.prepareState(builder.platformCertificate);
            instance.launch(0);
            LOG.debug("swtpm started in {} ms (pid {}, data port {}, control port {}, EK certificates {})",
                    elapsedMillis(startedAt), instance.pid(), instance.port, instance.controlPort,
                    instance.certificatesCreated);
            return instance;
        } catch (RuntimeException | Error e) {
            if (instance != null) {
                instance.killQuietlyAndClose();
            } else {
                Directories.deleteRecursively(workDirectory);
            }
            throw e;
        }
    }

    private void prepareState(boolean platformCertificate) {
        requireUsablePath(stateDirectory);
        requireUsablePath(workDirectory);
        try {
            Files.createDirectories(stateDirectory);
        } catch (IOException e) {
            throw new SwtpmException("cannot create the TPM state directory " + stateDirectory + ": " + e, e);
        }
        if (certificateAuthority == null) {
            return;
        }
        if (Files.exists(stateDirectory.resolve(STATE_FILE))) {
            LOG.info("{} already holds a TPM: not manufacturing new EK certificates", stateDirectory);
            return;
        }
        long startedAt = System.nanoTime();
        certificateAuthority.issue(() -> {
            manufacture(platformCertificate);
            return null;
        });
        certificatesCreated = true;
        LOG.debug("swtpm_setup made EK certificates in {} ms", elapsedMillis(startedAt));
    }

    /** Runs swtpm_setup: EKs, their certificates from our private CA, all PCR banks left active. */
    private void manufacture(boolean platformCertificate) {
        Path swtpmDirectory = swtpm.getParent();
        Path setup = Executables.find("swtpm_setup", swtpmDirectory);
        Path localCa = Executables.find("swtpm_localca", swtpmDirectory);
        Path config = workDirectory.resolve("swtpm_setup.conf");
        Path setupLog = workDirectory.resolve("swtpm_setup.log");
        Path setupOutput = workDirectory.resolve("swtpm_setup.out");
        try {
            Files.writeString(config, String.join("\n",
                    "create_certs_tool = " + localCa,
                    "create_certs_tool_config = " + certificateAuthority.configFile(),
                    "create_certs_tool_options = " + certificateAuthority.optionsFile(),
                    ""), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new SwtpmException("cannot write " + config + ": " + e, e);
        }
        if (swtpm.toString().chars().anyMatch(Character::isWhitespace)) {
            throw new IllegalArgumentException("swtpm_setup cannot run an swtpm whose path has white space: " + swtpm);
        }
        List<String> command = new ArrayList<>(List.of(setup.toString(),
                "--tpm2",
                "--tpmstate", stateDirectory.toString(),
                "--tpm", swtpm + " socket",
                "--config", config.toString(),
                "--create-ek-cert"));
        if (platformCertificate) {
            command.add("--create-platform-cert");
        }
        // "-": keep every bank active, as on a swtpm that was never manufactured (swtpm_setup's default is SHA-256
        // only, which would make tests with and without EK certificates see different PCR banks).
        command.addAll(List.of("--pcr-banks", "-", "--overwrite", "--logfile", setupLog.toString()));
        Process setupProcess;
        try {
            setupProcess = new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(setupOutput.toFile())
                    .start();
        } catch (IOException e) {
            throw new SwtpmException("cannot run " + setup + ": " + e, e);
        }
        try {
            if (!setupProcess.waitFor(SETUP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                killTree(setupProcess);
                throw new SwtpmException("swtpm_setup did not finish within " + SETUP_TIMEOUT.toSeconds() + " s"
                        + setupDiagnostics(setupLog, setupOutput));
            }
        } catch (InterruptedException e) {
            killTree(setupProcess);
            Thread.currentThread().interrupt();
            throw new SwtpmException("interrupted while swtpm_setup was running", e);
        }
        if (setupProcess.exitValue() != 0) {
            throw new SwtpmException("swtpm_setup failed with exit code " + setupProcess.exitValue()
                    + " (command: " + String.join(" ", command) + ")" + setupDiagnostics(setupLog, setupOutput));
        }
    }

    private static String setupDiagnostics(Path setupLog, Path setupOutput) {
        return LogTail.describe("swtpm_setup log", setupLog, 0, LOG_TAIL_LINES)
                + LogTail.describe("swtpm_setup output", setupOutput, 0, LOG_TAIL_LINES);
    }

    /** Starts swtpm, on the preferred data port first if given (non-zero), and waits until that port answers. */
    private void launch(int preferredPort) {
        Path log = logFile();
        Path output = workDirectory.resolve("swtpm.out");
        long deadline = System.nanoTime() + startTimeout.toNanos();
        for (int attempt = 1; attempt <= MAX_START_ATTEMPTS; attempt++) {
            int dataPort = attempt == 1 && preferredPort != 0 ? preferredPort : LoopbackPorts.pickConsecutivePair();
            int[] ports = {dataPort, dataPort + 1};
            long logOffset = LogTail.size(log);
            long outputOffset = LogTail.size(output);
            List<String> command = List.of(swtpm.toString(), "socket", "--tpm2",
                    "--tpmstate", "dir=" + stateDirectory,
                    "--server", "type=tcp,port=" + ports[0] + ",bindaddr=" + HOST,
                    "--ctrl", "type=tcp,port=" + ports[1] + ",bindaddr=" + HOST,
                    "--flags", "not-need-init,startup-clear",
                    "--log", "file=" + log + ",level=1");
            Process started;
            try {
                started = new ProcessBuilder(command)
                        .redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.appendTo(output.toFile()))
                        .start();
            } catch (IOException e) {
                throw new SwtpmException("cannot run " + swtpm + ": " + e, e);
            }
            process = started;
            port = ports[0];
            controlPort = ports[1];
            Readiness readiness = awaitDataPort(started, ports[0], deadline);
            if (readiness == Readiness.READY) {
                return;
            }
            String diagnostics = LogTail.describe("swtpm log", log, logOffset, LOG_TAIL_LINES)
                    + LogTail.describe("swtpm output", output, outputOffset, LOG_TAIL_LINES);
            if (readiness == Readiness.EXITED && diagnostics.contains("Address already in use")
                    && attempt < MAX_START_ATTEMPTS && System.nanoTime() < deadline) {
                LOG.debug("ports {} and {} were taken meanwhile; trying others", ports[0], ports[1]);
                continue;
            }
            if (readiness == Readiness.EXITED) {
                throw new SwtpmException("swtpm exited with code " + started.exitValue()
                        + " before answering on " + HOST + ":" + ports[0] + " (command: "
                        + String.join(" ", command) + ")" + diagnostics);
            }
            terminate(started, false);
            throw new SwtpmException("swtpm did not answer a TPM command on " + HOST + ":" + ports[0] + " within "
                    + startTimeout.toMillis() + " ms (command: " + String.join(" ", command) + ")" + diagnostics);
        }
        throw new IllegalStateException("unreachable: every attempt returns or throws");
    }

    private enum Readiness { READY, EXITED, TIMED_OUT }

    private static Readiness awaitDataPort(Process started, int dataPort, long deadline) {
        while (true) {
            if (!started.isAlive()) {
                return Readiness.EXITED;
            }
            try {
                // A TPM response, not just an accepted connection: a port we lost to another program's listening
                // socket also accepts connections (into its backlog) while our swtpm is on its way out.
                TpmWire.execute(HOST, dataPort, TpmWire.getRandomCommand(1), PROBE_TIMEOUT);
                return Readiness.READY;
            } catch (IOException notYet) {
                // not listening yet, or not swtpm
            }
            if (System.nanoTime() - deadline > 0) {
                return Readiness.TIMED_OUT;
            }
            try {
                Thread.sleep(POLL_STEP_MILLIS);
            } catch (InterruptedException e) {
                killTree(started);
                Thread.currentThread().interrupt();
                throw new SwtpmException("interrupted while waiting for swtpm to listen on port " + dataPort, e);
            }
        }
    }

    private void sendOrderlyShutdown() {
        try {
            int responseCode = TpmWire.execute(HOST, port, TpmWire.shutdownClearCommand(), SHUTDOWN_COMMAND_TIMEOUT);
            if (responseCode != 0) {
                LOG.debug("TPM2_Shutdown(CLEAR) returned TPM_RC 0x{}", Integer.toHexString(responseCode));
            }
        } catch (IOException e) {
            // Typically a client still holds swtpm's single connection. The stop is then unorderly.
            LOG.warn("TPM2_Shutdown(CLEAR) not delivered to {} ({}); stopping it without an orderly shutdown "
                    + "(close TPM clients before stopping swtpm)", tpmUri(), e.toString());
        }
    }

    /** Ends the process (SIGTERM with SIGKILL after a timeout, or SIGKILL at once) and its descendants. */
    private static void terminate(Process target, boolean graceful) {
        List<ProcessHandle> descendants = target.descendants().toList();
        try {
            if (graceful) {
                target.destroy();
                if (!target.waitFor(TERMINATE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                    LOG.warn("swtpm pid {} ignored SIGTERM for {} s; sending SIGKILL", target.pid(),
                            TERMINATE_TIMEOUT.toSeconds());
                }
            }
            target.destroyForcibly();
            descendants.forEach(ProcessHandle::destroyForcibly);
            if (!target.waitFor(TERMINATE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new SwtpmException("swtpm pid " + target.pid() + " is still running "
                        + TERMINATE_TIMEOUT.toSeconds() + " s after SIGKILL");
            }
        } catch (InterruptedException e) {
            target.destroyForcibly();
            descendants.forEach(ProcessHandle::destroyForcibly);
            Thread.currentThread().interrupt();
            throw new SwtpmException("interrupted while stopping swtpm pid " + target.pid(), e);
        }
    }

    private static void killTree(Process target) {
        target.descendants().forEach(ProcessHandle::destroyForcibly);
        target.destroyForcibly();
    }

    private void killQuietlyAndClose() {
        try {
            kill();
        } catch (RuntimeException e) {
            LOG.warn("could not kill swtpm after a failed start: {}", e.toString());
        }
        close();
    }

    /** Shutdown hook path: no locking (the JVM is exiting; a lifecycle call may hold the monitor). */
    private void cleanUpAtJvmExit() {
        Process current = process;
        if (current != null && current.isAlive()) {
            LOG.warn("killing swtpm pid {} left running at JVM exit (close SwtpmProcess in tests)", current.pid());
            killTree(current);
            try {
                current.waitFor(2, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        Directories.deleteRecursively(workDirectory);
    }

    private LocalCertificateAuthority requireCertificateAuthority() {
        if (certificateAuthority == null) {
            throw new IllegalStateException("this swtpm was started without EK certificates: use "
                    + "SwtpmProcess.builder().withEkCertificate(true) or @WithSwtpm(ekCertificate = true)");
        }
        if (!certificatesCreated) {
            throw new IllegalStateException("the state directory " + stateDirectory + " already held a TPM, so no "
                    + "EK certificates were made by this instance's CA; use a fresh state directory");
        }
        return certificateAuthority;
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("this SwtpmProcess is closed; start a new one with SwtpmProcess.builder()");
        }
    }

    private static void requireUsablePath(Path path) {
        // swtpm splits its option values on ',' and swtpm_setup its config values on white space.
        if (path.toString().contains(",") || path.toString().chars().anyMatch(Character::isWhitespace)) {
            throw new IllegalArgumentException("swtpm cannot use a path with ',' or white space: " + path);
        }
    }

    private static long elapsedMillis(long startedAt) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startedAt);
    }

    /**
     * Configures and starts a {@link SwtpmProcess}. Not thread-safe; each {@link #start()} makes a new instance.
     */
    public static final class Builder {
        private boolean ekCertificate;
        private boolean platformCertificate;
        private boolean privateCertificateAuthority;
        private Path stateDirectory;
        private Path swtpmExecutable;
        private Duration startTimeout = DEFAULT_START_TIMEOUT;

        private Builder() {
        }

        /**
         * Whether to manufacture the TPM with EK certificates (RSA-2048 and ECC P-384) before its first start.
         * Default false. Costs about 0.6 s per instance (plus 0.7 s once per CA).
         */
        public Builder withEkCertificate(boolean ekCertificate) {
            this.ekCertificate = ekCertificate;
            return this;
        }

        /** Whether to add a platform certificate at NV 0x01C08000; implies EK certificates. Default false. */
        public Builder withPlatformCertificate(boolean platformCertificate) {
            this.platformCertificate = platformCertificate;
            return this;
        }

        /**
         * Whether this instance gets a CA of its own instead of the one shared by the JVM, e.g. to test that a
         * verifier rejects EK certificates of an unknown manufacturer. Default false. Costs about 0.7 s.
         */
        public Builder privateCertificateAuthority(boolean privateCertificateAuthority) {
            this.privateCertificateAuthority = privateCertificateAuthority;
            return this;
        }

        /**
         * The TPM state directory, created if missing, kept on {@link SwtpmProcess#close()}. Default: a private
         * temporary directory deleted on close. Must not contain ',' or white space. If it already holds a TPM
         * ({@code tpm2-00.permall}), that TPM is used as it is and no EK certificates are made.
         */
        public Builder stateDirectory(Path stateDirectory) {
            this.stateDirectory = Objects.requireNonNull(stateDirectory, "stateDirectory");
            return this;
        }

        /** The swtpm program to run. Default: {@code swtpm} on {@code PATH}, else {@code /usr/bin/swtpm}. */
        public Builder swtpmExecutable(Path swtpmExecutable) {
            this.swtpmExecutable = Objects.requireNonNull(swtpmExecutable, "swtpmExecutable");
            return this;
        }

        /** How long to wait for the TPM to answer on its data port (including port retries). Default 10 s. */
        public Builder startTimeout(Duration startTimeout) {
            Objects.requireNonNull(startTimeout, "startTimeout");
            if (startTimeout.isNegative() || startTimeout.isZero()) {
                throw new IllegalArgumentException("startTimeout must be positive, was " + startTimeout);
            }
            this.startTimeout = startTimeout;
            return this;
        }

        /**
         * Starts swtpm (after {@code swtpm_setup} if certificates were asked for) and returns once its data port
         * answers a TPM command. The caller owns the result and must {@link SwtpmProcess#close() close} it.
         *
         * @throws SwtpmNotInstalledException if swtpm (or swtpm_setup/swtpm_localca, when needed) is missing
         * @throws SwtpmException if it cannot be set up or does not come up in time
         */
        public SwtpmProcess start() {
            return SwtpmProcess.start(this);
        }
    }
}
