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
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real software TPM 2.0 ({@code swtpm socket --tpm2}) for tests, the demo and {@code tpmphone swtpm start},
 * reachable only by the user who started it: its <em>data channel</em> (TPM commands) and its <em>control
 * channel</em> (swtpm's own protocol, which can save, restore and reset the whole TPM) are Unix-domain sockets in an
 * owner-only directory ({@link #serverSocket()}, {@link #controlSocket()}), and its state is encrypted with a key of
 * its own ({@link #stateKeyFile()}). It is started with {@code --flags not-need-init,startup-clear}: it takes
 * commands at once, as after {@code TPM2_Startup(TPM_SU_CLEAR)}.
 *
 * <pre>{@code
 * try (SwtpmProcess tpm = SwtpmProcess.builder().withEkCertificate(true).start()) {
 *     TpmClient.open(TpmUri.parse(tpm.tpmUri()));   // swtpm:socket=/tmp/tpmphone-swtpm-…/run/server.sock
 *     tpm.restart();                       // a reboot: PCRs reset, NV indices and persistent objects kept
 * }                                        // stopped and its private directories deleted
 * }</pre>
 *
 * <h2>Who can reach it</h2>
 * Why not TCP: a loopback port is open to every local user, and swtpm's control channel has no authentication, so
 * any user could save the TPM's whole state (EK, AK and TIK seeds included), run a clone of the host's TPM and pass
 * its attestation. Here the sockets live in a directory of mode 0700, the state directory is 0700 with files 0600,
 * and the state is encrypted (AES-256-CBC) with a random key in an owner-only file created with its final mode
 * beside the state directory ({@code STATE.key}): a copy of the state directory alone is useless. Root, and anyone
 * with the starting user's rights, can still clone it: a software TPM protects nothing against them
 * (docs/threat-model.md). {@link Builder#insecureTcp(boolean)} restores the old TCP ports for programs that can only
 * speak TCP (TSS.Java's stock {@code TpmDeviceTcp}), and only for throwaway TPMs.
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
    private static final String SERVER_SOCKET = "server.sock";
    private static final String CONTROL_SOCKET = "ctrl.sock";
    /** swtpm's and swtpm_setup's name for the state cipher; the key file holds its 256-bit key as hex. */
    private static final String STATE_CIPHER = "aes-256-cbc";
    private static final int STATE_KEY_BYTES = 32;
    private static final int MAX_SOCKET_PATH_BYTES = 107;
    private static final Set<PosixFilePermission> OWNER_ONLY_DIRECTORY = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> OWNER_ONLY_FILE = PosixFilePermissions.fromString("rw-------");
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
    private final Path stateKeyFile;
    private final Path runDirectory;
    private final boolean insecureTcp;
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
        this.stateKeyFile = builder.stateKeyFile != null
                ? builder.stateKeyFile.toAbsolutePath()
                : stateDirectory.resolveSibling(stateDirectory.getFileName() + ".key");
        this.runDirectory = builder.socketDirectory != null ? builder.socketDirectory.toAbsolutePath()
                : workDirectory.resolve("run");
        this.insecureTcp = builder.insecureTcp;
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

    /**
     * {@code "127.0.0.1"}: with {@link Builder#insecureTcp(boolean)}, swtpm listens on loopback only.
     *
     * @throws IllegalStateException if this swtpm listens on Unix sockets (the default)
     */
    public String host() {
        requireTcp("host()");
        return HOST;
    }

    /**
     * The TCP data port (TPM commands) of an {@link Builder#insecureTcp(boolean) insecure-TCP} swtpm. May change on
     * {@link #restart()} if the old port was taken meanwhile.
     *
     * @throws IllegalStateException if this swtpm listens on Unix sockets (the default)
     */
    public int port() {
        requireTcp("port()");
        return port;
    }

    /** Whether this swtpm listens on loopback TCP ports ({@link Builder#insecureTcp(boolean)}) instead of sockets. */
    public boolean isInsecureTcp() {
        return insecureTcp;
    }

    /**
     * The data channel's Unix-domain socket (TPM commands, raw or MS-simulator framing), in an owner-only directory.
     *
     * @throws IllegalStateException if this swtpm was started with {@link Builder#insecureTcp(boolean)}
     */
    public Path serverSocket() {
        requireUnixSockets("serverSocket()");
        return runDirectory.resolve(SERVER_SOCKET);
    }

    /**
     * The control channel's Unix-domain socket ({@code swtpm_ioctl --unix PATH}), beside {@link #serverSocket()}. It
     * speaks swtpm's control protocol, not TPM commands, and can save and restore the whole TPM: never hand it out.
     *
     * @throws IllegalStateException if this swtpm was started with {@link Builder#insecureTcp(boolean)}
     */
    public Path controlSocket() {
        requireUnixSockets("controlSocket()");
        return runDirectory.resolve(CONTROL_SOCKET);
    }

    /**
     * The file holding the key that encrypts the TPM's state (64 hex digits, mode 0600), beside the state directory
     * unless {@link Builder#stateKeyFile(Path)} says otherwise. Kept with a kept state directory: without it the
     * state cannot be started again.
     */
    public Path stateKeyFile() {
        return stateKeyFile;
    }

    /**
     * The control port, always {@link #port()} + 1: clients derive it (tpm2-tss's swtpm TCTI sets the locality
     * there, TSS.Java's {@code TpmDeviceTcp} sends platform signals there). It speaks swtpm's control protocol
     * ({@code swtpm_ioctl --tcp 127.0.0.1:PORT}), not TPM commands.
     */
    public int controlPort() {
        requireTcp("controlPort()");
        return controlPort;
    }

    /**
     * The TPM's address for our configuration ({@code io.tpmphone.tpm.TpmUri}): {@code swtpm:socket=PATH} (its
     * {@link #serverSocket()}), or {@code swtpm:host=127.0.0.1,port=P} for an insecure-TCP swtpm.
     */
    public String tpmUri() {
        return insecureTcp ? "swtpm:host=" + HOST + ",port=" + port : "swtpm:socket=" + serverSocket();
    }

    /**
     * The TCTI for tpm2-tools' {@code -T} option or {@code TPM2TOOLS_TCTI}: {@code cmd:socat - UNIX-CONNECT:PATH}
     * (tpm2-tss's command TCTI speaks raw TPM commands over a child's stdin and stdout, and socat carries them to the
     * data socket; tpm2-tss's swtpm TCTI is TCP-only; see {@link #commandTcti}), or
     * {@code swtpm:host=127.0.0.1,port=P} for an insecure-TCP swtpm. Needs {@code socat}.
     */
    public String tctiString() {
        return insecureTcp ? "swtpm:host=" + HOST + ",port=" + port : commandTcti(serverSocket());
    }

    /**
     * tpm2-tss's command TCTI for a TPM on the Unix socket {@code socket}: {@code cmd:socat - UNIX-CONNECT:PATH}, the
     * address written so that each of the two parsers it passes through reads the path back exactly. socat first:
     * in an address ',' starts an option, ':' a parameter, {@code !!} a second address, and brackets and quotes nest,
     * so every character of the path other than {@code A-Z a-z 0-9 / . _ + @ % = -} gets a backslash. Then
     * {@code /bin/sh}, which the command TCTI hands the string to ({@code sh -c}): an address that is not plain any
     * more is single-quoted ({@code '} as {@code '\''}). A plain path stays as it is
     * ({@code cmd:socat - UNIX-CONNECT:/run/swtpm/server.sock}).
     */
    public static String commandTcti(Path socket) {
        String address = "UNIX-CONNECT:" + SOCAT_SPECIAL.matcher(socket.toString()).replaceAll("\\\\$0");
        return "cmd:socat - " + (SHELL_PLAIN.matcher(address).matches() ? address
                : "'" + address.replace("'", "'\\''") + "'");
    }

    /** Characters socat's address parser may treat as syntax (or that are not ASCII): escaped with a backslash. */
    private static final Pattern SOCAT_SPECIAL = Pattern.compile("[^A-Za-z0-9/._+@%=-]");
    /** Words {@code /bin/sh} takes as they are. */
    private static final Pattern SHELL_PLAIN = Pattern.compile("[A-Za-z0-9/._+@%=:-]+");

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
        LOG.debug("swtpm restarted in {} ms (pid {}, {})", elapsedMillis(startedAt), pid(), tpmUri());
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
        stopDetached(pid, host + ":" + port, timeout -> TpmWire.execute(host, port, TpmWire.shutdownClearCommand(),
                timeout));
    }

    /**
     * Stops a swtpm left running by {@link #detach()} that listens on the Unix socket {@code serverSocket}, as
     * {@link #stopDetached(long, String, int)} does for one on a TCP port.
     *
     * @throws SwtpmException if the process does not end
     */
    public static void stopDetached(long pid, Path serverSocket) {
        stopDetached(pid, serverSocket.toString(), timeout -> TpmWire.execute(serverSocket,
                TpmWire.shutdownClearCommand(), timeout));
    }

    private interface TpmExchange {
        int send(Duration timeout) throws IOException;
    }

    private static void stopDetached(long pid, String where, TpmExchange shutdown) {
        Optional<ProcessHandle> handle = ProcessHandle.of(pid);
        if (handle.isEmpty() || !handle.get().isAlive()) {
            return;
        }
        if (!handle.get().info().command().map(c -> c.endsWith("swtpm")).orElse(true)) {
            throw new SwtpmException("pid " + pid + " is " + handle.get().info().command().orElse("?")
                    + ", not swtpm: refusing to stop it (stale instance file?)");
        }
        try {
            shutdown.send(SHUTDOWN_COMMAND_TIMEOUT);
        } catch (IOException e) {
            LOG.warn("TPM2_Shutdown(CLEAR) not delivered to {} ({}); stopping without an orderly shutdown", where,
                    e.toString());
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
        return "SwtpmProcess[" + tpmUri() + ", control " + (insecureTcp ? "port " + controlPort
                : "socket " + runDirectory.resolve(CONTROL_SOCKET)) + ", state " + stateDirectory + "]";
    }

    // ---------------------------------------------------------------------------------------------------------------

    private static SwtpmProcess start(Builder builder) {
        Path swtpm = builder.swtpmExecutable != null
                ? Executables.requireExecutable("swtpm", builder.swtpmExecutable)
                : Executables.find("swtpm", null);
        Path workDirectory;
        try {
            // Owner-only from creation (the JDK's default for temporary directories, said explicitly): it holds the
            // sockets, the log and, by default, the state and its key.
            workDirectory = Files.createTempDirectory("tpmphone-swtpm-",
                    PosixFilePermissions.asFileAttribute(OWNER_ONLY_DIRECTORY));
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
            LOG.debug("swtpm started in {} ms (pid {}, {}, EK certificates {})", elapsedMillis(startedAt),
                    instance.pid(), instance.tpmUri(), instance.certificatesCreated);
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
        requireUsablePath(stateKeyFile);
        requireUsablePath(runDirectory);
        if (!insecureTcp) {
            for (String socket : List.of(SERVER_SOCKET, CONTROL_SOCKET)) {
                int bytes = runDirectory.resolve(socket).toString().getBytes(StandardCharsets.UTF_8).length;
                if (bytes > MAX_SOCKET_PATH_BYTES) {
                    throw new SwtpmException("the swtpm socket path " + runDirectory.resolve(socket) + " is " + bytes
                            + " bytes long, Unix sockets allow " + MAX_SOCKET_PATH_BYTES + ": use a shorter socket"
                            + " directory (or java.io.tmpdir)");
                }
            }
        }
        try {
            ownerOnlyDirectory(stateDirectory);
            ownerOnlyDirectory(runDirectory);
        } catch (IOException e) {
            throw new SwtpmException("cannot create the TPM state directory " + stateDirectory + " owner-only: " + e,
                    e);
        }
        boolean existingTpm = Files.exists(stateDirectory.resolve(STATE_FILE));
        prepareStateKey(existingTpm);
        if (certificateAuthority == null) {
            return;
        }
        if (existingTpm) {
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

    /** Creates {@code directory} (and missing parents) with mode 0700, or makes an existing one 0700. */
    private static void ownerOnlyDirectory(Path directory) throws IOException {
        if (Files.isSymbolicLink(directory)) {
            throw new IOException(directory + " is a symbolic link; give the real directory");
        }
        if (!Files.isDirectory(directory)) {
            Files.createDirectories(directory, PosixFilePermissions.asFileAttribute(OWNER_ONLY_DIRECTORY));
        }
        Set<PosixFilePermission> current = Files.getPosixFilePermissions(directory, LinkOption.NOFOLLOW_LINKS);
        if (!current.equals(OWNER_ONLY_DIRECTORY)) {
            LOG.info("{} was {}; making it owner-only (rwx------)", directory, PosixFilePermissions.toString(current));
            Files.setPosixFilePermissions(directory, OWNER_ONLY_DIRECTORY);
        }
    }

    /**
     * Makes sure the state key exists, is a regular owner-only file, and that an existing TPM state has one. A new key
     * is 32 bytes from {@link SecureRandom}, written as hex (the format swtpm_setup's {@code --keyfile} reads) into a
     * file created with mode 0600 — never created readable and narrowed afterwards.
     */
    private void prepareStateKey(boolean existingTpm) {
        if (Files.exists(stateKeyFile, LinkOption.NOFOLLOW_LINKS)) {
            try {
                if (!Files.isRegularFile(stateKeyFile, LinkOption.NOFOLLOW_LINKS)) {
                    throw new SwtpmException("the TPM state key " + stateKeyFile + " is not a regular file (a "
                            + "symbolic link?); remove it");
                }
                Set<PosixFilePermission> mode = Files.getPosixFilePermissions(stateKeyFile, LinkOption.NOFOLLOW_LINKS);
                if (!OWNER_ONLY_FILE.containsAll(mode)) {
                    throw new SwtpmException("the TPM state key " + stateKeyFile + " is readable by others (mode "
                            + PosixFilePermissions.toString(mode) + "): anyone who read it can decrypt a copy of the "
                            + "state and clone this TPM; make a new TPM (delete " + stateDirectory + " and the key)");
                }
            } catch (IOException e) {
                throw new SwtpmException("cannot check the TPM state key " + stateKeyFile + ": " + e, e);
            }
            return;
        }
        if (existingTpm) {
            throw new SwtpmException(stateDirectory + " holds a TPM state but there is no key " + stateKeyFile
                    + ": it is unencrypted (made by an older tpmphone) or its key was lost. Its EK, AK and TIK may"
                    + " have been copied while it was reachable; make a new TPM (tpmphone swtpm stop --purge, or"
                    + " delete " + stateDirectory + ") and enroll it again");
        }
        byte[] key = new byte[STATE_KEY_BYTES];
        byte[] hex = null;
        try {
            new SecureRandom().nextBytes(key);
            hex = HexFormat.of().formatHex(key).getBytes(StandardCharsets.US_ASCII);
            Files.createFile(stateKeyFile, PosixFilePermissions.asFileAttribute(OWNER_ONLY_FILE));
            Files.write(stateKeyFile, hex, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING,
                    LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            throw new SwtpmException("cannot create the TPM state key " + stateKeyFile + ": " + e, e);
        } finally {
            Arrays.fill(key, (byte) 0);
            if (hex != null) {
                Arrays.fill(hex, (byte) 0);
            }
        }
        LOG.debug("created a new TPM state key {}", stateKeyFile);
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
                "--keyfile", stateKeyFile.toString(),
                "--cipher", STATE_CIPHER,
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

    /** The swtpm command line, with the given channels. The key is named by its file, never put on the line. */
    private List<String> swtpmCommand(String server, String control) {
        return List.of(swtpm.toString(), "socket", "--tpm2",
                "--tpmstate", "dir=" + stateDirectory + ",mode=0600",
                "--key", "file=" + stateKeyFile + ",mode=" + STATE_CIPHER + ",format=hex",
                "--server", server,
                "--ctrl", control,
                "--flags", "not-need-init,startup-clear",
                "--log", "file=" + logFile() + ",level=1");
    }

    /**
     * Starts swtpm and waits until its data channel answers a TPM command: on the Unix sockets, or (insecure TCP) on
     * the preferred data port first if given (non-zero).
     */
    private void launch(int preferredPort) {
        if (insecureTcp) {
            launchTcp(preferredPort);
        } else {
            launchUnixSockets();
        }
    }

    private void launchUnixSockets() {
        Path log = logFile();
        Path output = workDirectory.resolve("swtpm.out");
        long deadline = System.nanoTime() + startTimeout.toNanos();
        Path server = runDirectory.resolve(SERVER_SOCKET);
        Path control = runDirectory.resolve(CONTROL_SOCKET);
        try {
            // Left behind by a killed swtpm; ours to remove (the directory is private).
            Files.deleteIfExists(server);
            Files.deleteIfExists(control);
        } catch (IOException e) {
            throw new SwtpmException("cannot remove the old swtpm sockets in " + runDirectory + ": " + e, e);
        }
        long logOffset = LogTail.size(log);
        long outputOffset = LogTail.size(output);
        // mode=0600 on top of the 0700 directory, so that a socket moved or linked elsewhere stays private too.
        List<String> command = swtpmCommand("type=unixio,path=" + server + ",mode=0600",
                "type=unixio,path=" + control + ",mode=0600");
        Process started = startProcess(command, output);
        process = started;
        port = 0;
        controlPort = 0;
        Readiness readiness = awaitReady(started, timeout -> TpmWire.execute(server, TpmWire.getRandomCommand(1),
                timeout), deadline);
        if (readiness == Readiness.READY) {
            return;
        }
        String diagnostics = LogTail.describe("swtpm log", log, logOffset, LOG_TAIL_LINES)
                + LogTail.describe("swtpm output", output, outputOffset, LOG_TAIL_LINES);
        if (readiness == Readiness.EXITED) {
            throw new SwtpmException("swtpm exited with code " + started.exitValue() + " before answering on "
                    + server + " (command: " + String.join(" ", command) + ")" + diagnostics);
        }
        terminate(started, false);
        throw new SwtpmException("swtpm did not answer a TPM command on " + server + " within "
                + startTimeout.toMillis() + " ms (command: " + String.join(" ", command) + ")" + diagnostics);
    }

    private Process startProcess(List<String> command, Path output) {
        try {
            return new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(output.toFile()))
                    .start();
        } catch (IOException e) {
            throw new SwtpmException("cannot run " + swtpm + ": " + e, e);
        }
    }

    private void launchTcp(int preferredPort) {
        Path log = logFile();
        Path output = workDirectory.resolve("swtpm.out");
        long deadline = System.nanoTime() + startTimeout.toNanos();
        for (int attempt = 1; attempt <= MAX_START_ATTEMPTS; attempt++) {
            int dataPort = attempt == 1 && preferredPort != 0 ? preferredPort : LoopbackPorts.pickConsecutivePair();
            int[] ports = {dataPort, dataPort + 1};
            long logOffset = LogTail.size(log);
            long outputOffset = LogTail.size(output);
            List<String> command = swtpmCommand("type=tcp,port=" + ports[0] + ",bindaddr=" + HOST,
                    "type=tcp,port=" + ports[1] + ",bindaddr=" + HOST);
            Process started = startProcess(command, output);
            process = started;
            port = ports[0];
            controlPort = ports[1];
            Readiness readiness = awaitReady(started, timeout -> TpmWire.execute(HOST, ports[0],
                    TpmWire.getRandomCommand(1), timeout), deadline);
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

    private static Readiness awaitReady(Process started, TpmExchange probe, long deadline) {
        while (true) {
            if (!started.isAlive()) {
                return Readiness.EXITED;
            }
            try {
                // A TPM response, not just an accepted connection: a port we lost to another program's listening
                // socket also accepts connections (into its backlog) while our swtpm is on its way out.
                probe.send(PROBE_TIMEOUT);
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
                throw new SwtpmException("interrupted while waiting for swtpm to answer", e);
            }
        }
    }

    private void sendOrderlyShutdown() {
        try {
            int responseCode = insecureTcp
                    ? TpmWire.execute(HOST, port, TpmWire.shutdownClearCommand(), SHUTDOWN_COMMAND_TIMEOUT)
                    : TpmWire.execute(serverSocket(), TpmWire.shutdownClearCommand(), SHUTDOWN_COMMAND_TIMEOUT);
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

    private void requireTcp(String accessor) {
        if (!insecureTcp) {
            throw new IllegalStateException(accessor + ": this swtpm listens on Unix sockets, not TCP; use tpmUri(), "
                    + "serverSocket() or tctiString() (or start it with SwtpmProcess.builder().insecureTcp(true))");
        }
    }

    private void requireUnixSockets(String accessor) {
        if (insecureTcp) {
            throw new IllegalStateException(accessor + ": this swtpm was started with insecureTcp(true) and has no "
                    + "Unix sockets; use host() and port()");
        }
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
        private Path stateKeyFile;
        private Path socketDirectory;
        private boolean insecureTcp;
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

        /**
         * The file holding the state's encryption key: created (mode 0600) with a new TPM, required for an existing
         * one. Default: beside the state directory, named after it with {@code .key} ({@code …/state.key}), so that
         * copying the state directory does not copy the key. Must not contain ',' or white space.
         */
        public Builder stateKeyFile(Path stateKeyFile) {
            this.stateKeyFile = Objects.requireNonNull(stateKeyFile, "stateKeyFile");
            return this;
        }

        /**
         * The directory for the data and control sockets, created or made owner-only (0700); stale sockets in it are
         * replaced. Default: {@code run/} in the private work directory. Its socket paths must fit a Unix socket
         * address (107 bytes).
         */
        public Builder socketDirectory(Path socketDirectory) {
            this.socketDirectory = Objects.requireNonNull(socketDirectory, "socketDirectory");
            return this;
        }

        /**
         * Listen on two consecutive loopback TCP ports (data P, control P+1) instead of owner-only Unix sockets.
         * <strong>Insecure on a shared host</strong>: every local user can connect to both, and the control channel
         * can save and restore the whole TPM, so a local user can clone it. Only for throwaway TPMs that something
         * TCP-only must reach (TSS.Java's stock {@code TpmDeviceTcp} in {@code tpmphone bench tpm}). Default false.
         */
        public Builder insecureTcp(boolean insecureTcp) {
            this.insecureTcp = insecureTcp;
            return this;
        }

        /** The swtpm program to run. Default: {@code swtpm} on {@code PATH}, else {@code /usr/bin/swtpm}. */
        public Builder swtpmExecutable(Path swtpmExecutable) {
            this.swtpmExecutable = Objects.requireNonNull(swtpmExecutable, "swtpmExecutable");
            return this;
        }

        /** How long to wait for the TPM to answer on its data channel (including port retries). Default 10 s. */
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
