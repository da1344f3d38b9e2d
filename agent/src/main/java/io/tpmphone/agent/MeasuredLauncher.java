package io.tpmphone.agent;

import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MeasuredCommandLine;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.tpm.TpmException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Measured launch of the softphone core. Before the child runs, in this order, each one event and one
 * {@code PCR_Extend}: the whole {@code java.home} tree (JVM, see {@link #treeDigest}), every jar of the class path
 * (CLASSPATH_JAR) and every native library the child loads (CLASSPATH_JAR named {@code native/FILE}), the configuration (CONFIGURATION), the exact argument vector (COMMAND_LINE), the isolation applied
 * (ISOLATION), then LAUNCH ({@code pid N start INSTANT}). When the child exits: TERMINATED, so that nothing later can
 * present the launch-time PCR value — unless the agent stopped it because the TPM rebooted
 * ({@link Launched#stopUnmeasured}).
 *
 * <p>The child gets an empty environment (no {@code JAVA_TOOL_OPTIONS} and the like) and the hardening options of
 * {@link LaunchSpec#HARDENING_OPTIONS}. When isolated it runs in new PID, mount and IPC namespaces
 * ({@code unshare --pid --fork --mount --ipc --mount-proc --kill-child}); there, still as root, its code directory is
 * bind-mounted read-only at {@link #CHILD_CODE_MOUNT}, the broker's directory at {@code broker/} and the control
 * directory at {@code control/} inside that, and a private {@code /tmp} (tmpfs: what the child leaves there, such as
 * libjitsi's home, is gone with its mount namespace, and no other process sees it), and so are {@code /var/tmp},
 * {@code /dev/shm} and {@code /run/lock} ({@link #PRIVATE_SHARED_DIRECTORIES}); then
 * {@code setpriv --reuid U --rgid N --egid G --clear-groups --no-new-privs --bounding-set -all --inh-caps -all} runs
 * the JVM as {@link LaunchSpec#childUser()}: no capabilities (effective, permitted, bounding, inheritable, ambient),
 * {@code no_new_privs}, and its real gid the group {@code tpmphone-nodump} while its effective gid is the user's own
 * group G. The kernel treats an exec with real and effective gids apart like a set-gid program: the JVM is not
 * dumpable, and no process without {@code CAP_SYS_PTRACE} — not even one of its own uid — passes the ptrace access
 * check against it (no ptrace, {@code /proc/PID/mem} or {@code pidfd_getfd}), which Java itself cannot arrange
 * ({@code prctl(PR_SET_DUMPABLE)} needs native code; docs/decisions/0006). The wrapper shell stays as the PID
 * namespace's init, so {@code --kill-child} still ends the JVM with {@code unshare} (such an exec clears a parent-death
 * signal). The child's working directory is that view of its code directory (0755, files 0644, owned by the agent),
 * so it never traverses the agent's state directory; its output goes to {@code child.log}, opened by the agent.
 *
 * <p>Thread-safety: {@link #launch} is serialized per instance.
 */
public final class MeasuredLauncher {
    private static final Logger LOG = LoggerFactory.getLogger(MeasuredLauncher.class);
    /** Where the broker's directory appears inside an isolated child's code directory. */
    static final String BROKER_MOUNT = "broker";
    /** Where the control directory appears inside an isolated child's code directory. */
    static final String CONTROL_MOUNT = "control";
    /** Where the sound server directory appears inside an isolated child's code directory ({@link SoundGrant}). */
    static final String SOUND_MOUNT = "sound";
    /**
     * The PulseAudio client configuration of a child with a sound directory, in its code tree (libpulse finds it by
     * {@code PULSE_CLIENTCONFIG}): the granted socket as the default server, no autospawn. Measured as a
     * CONFIGURATION event of its own (and named with its digest in the ISOLATION event, {@link #soundIsolation}):
     * the release approves it ({@link LaunchSpec#soundClient()}, {@link ReleaseManifest}), so a changed client
     * configuration appraises at most IDENTIFIED, naming the file.
     */
    static final String PULSE_CLIENT_CONFIG = "pulse-client.conf";

    /** The content of {@link #PULSE_CLIENT_CONFIG}. */
    static byte[] pulseClientConfig() {
        return ("# PulseAudio client configuration of the measured softphone: written by its agent and measured\n"
                + "# (the ISOLATION event names its SHA-256); the socket exists only while a call holds it.\n"
                + "default-server = unix:" + CHILD_CODE_MOUNT.resolve(SOUND_MOUNT).resolve(SoundGrant.SOCKET) + "\n"
                + "autospawn = no\n").getBytes(StandardCharsets.UTF_8);
    }

    /** What the ISOLATION event adds for a sound directory whose client configuration is {@code clientConfig}. */
    static String soundIsolation(byte[] clientConfig) {
        return "; sound dir bind at " + SOUND_MOUNT + "/ (the sound server user's, child's group 0750; a sound server"
                + " socket only during accepted calls); PulseAudio client configuration " + PULSE_CLIENT_CONFIG
                + " sha256:" + java.util.HexFormat.of().formatHex(HashAlgorithm.SHA256.digest(clientConfig));
    }
    /** The control socket's file name in the control directory. */
    public static final String CONTROL_SOCKET = "control.sock";
    /**
     * Where an isolated child sees its code: the staged directory is bind-mounted here, read-only, in the child's
     * mount namespace (every child has its own, so one mount point serves all). Its ancestors are world-traversable,
     * unlike the agent's state directory, so the unprivileged JVM can resolve the absolute class path it derives.
     */
    public static final Path CHILD_CODE_MOUNT = Path.of("/run/tpmphone-agent/child");
    /**
     * The other directories every user may write (sticky, mode 1777) that an isolated child gets a private, empty tmpfs
     * at, like {@code /tmp}: shared, they would let it see and leave files other processes see (a POSIX shared-memory
     * segment, a lock file), both ways. Each only where it exists as a directory.
     */
    static final List<String> PRIVATE_SHARED_DIRECTORIES = List.of("/var/tmp", "/dev/shm", "/run/lock");
    private static final List<Path> SETPRIV = List.of(Path.of("/usr/bin/setpriv"), Path.of("/bin/setpriv"));
    /**
     * What the JVM and the launch wrapper (unshare, mount, setpriv, the {@code launch} shell script) write when they
     * fail, before our logging exists.
     */
    private static final java.util.regex.Pattern WRAPPER_ERROR = java.util.regex.Pattern.compile(
            "Error:|Exception in thread|(unshare|mount|setpriv|launch|sh|/bin/sh): ");
    /** How much of the end of {@code child.log} {@link Launched#errorLines} reads at most. */
    private static final int MAX_LOG_TAIL = 64 * 1024;

    private final MeasurementLogStore store;
    private final Path stagingRoot;
    /** The shell that runs the launch wrapper: /bin/sh, whichever shell that is on the host. */
    private final String shell;

    public MeasuredLauncher(MeasurementLogStore store, Path stagingRoot) {
        this(store, stagingRoot, "/bin/sh");
    }

    /** With another shell for the launch wrapper: the tests run it under bash as well as dash. */
    MeasuredLauncher(MeasurementLogStore store, Path stagingRoot, String shell) {
        this.store = Objects.requireNonNull(store, "store");
        this.stagingRoot = Objects.requireNonNull(stagingRoot, "stagingRoot");
        this.shell = Objects.requireNonNull(shell, "shell");
    }

    /** The user an isolated child runs as, resolved. */
    public record ChildUser(String name, int uid, int gid) {
    }

    /**
     * The JVM as measured: the real path of {@code java.home} (the JVM event's data, the key of the policy's
     * {@code jvm} map) and its {@link #treeDigest}. Immutable.
     */
    public record JvmDigest(String javaHome, byte[] digest) {
        public JvmDigest {
            Objects.requireNonNull(javaHome, "javaHome");
            digest = digest.clone();
        }

        @Override
        public byte[] digest() {
            return digest.clone();
        }

        public String digestHex() {
            return HexFormat.of().formatHex(digest);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof JvmDigest d && d.javaHome.equals(javaHome) && Arrays.equals(d.digest, digest);
        }

        @Override
        public int hashCode() {
            return javaHome.hashCode() * 31 + Arrays.hashCode(digest);
        }

        @Override
        public String toString() {
            return "JvmDigest[" + javaHome + ", " + digestHex() + "]";
        }
    }

    /**
     * A running, measured child. Its end is measured (TERMINATED) once, when it exits; if that measurement fails it
     * is retried by {@link #recordTermination()}. Thread-safe.
     */
    public static final class Launched {
        private final Process process;
        private final Path codeDirectory;
        private final List<MeasurementEvent> events;
        private final MeasurementLogStore store;
        private final String mainClass;
        private final CompletableFuture<Optional<MeasurementEvent>> terminated = new CompletableFuture<>();
        private boolean measureExit = true;

        private final Path log;
        private final long logOffset;

        Launched(Process process, Path codeDirectory, List<MeasurementEvent> events, MeasurementLogStore store,
                 String mainClass, Path log, long logOffset) {
            this.log = log;
            this.logOffset = logOffset;
            this.process = process;
            this.codeDirectory = codeDirectory;
            this.events = List.copyOf(events);
            this.store = store;
            this.mainClass = mainClass;
        }

        /** The process the agent started: the {@code unshare} wrapper when isolated, else the JVM. */
        public Process process() {
            return process;
        }

        public Path codeDirectory() {
            return codeDirectory;
        }

        /** The file the child's output goes to ({@code child.log}, shared by every launch from one staging root). */
        public Path logFile() {
            return log;
        }

        /**
         * The lines this launch's child wrote to {@link #logFile()} that report an error (logged at ERROR, a JVM error
         * such as {@code Error: Could not find or load main class}, or a failure of the launch wrapper such as
         * {@code mount: ...}), at most {@code max}, the last ones, each cut
         * at 500 characters: what to tell a person when the child exits unexpectedly. They are the child's words:
         * render them with {@link io.tpmphone.attestation.UntrustedText} before they reach a terminal or a log.
         */
        public List<String> errorLines(int max) {
            List<String> found = new ArrayList<>();
            try (java.nio.channels.SeekableByteChannel ch = Files.newByteChannel(log)) {
                long start = Math.max(logOffset, ch.size() - MAX_LOG_TAIL);
                ch.position(start);
                java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate((int) Math.max(0, ch.size() - start));
                while (buf.hasRemaining() && ch.read(buf) > 0) {
                    // read what is there
                }
                for (String line : new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8).split("\n")) {
                    if (line.contains(" ERROR ") || WRAPPER_ERROR.matcher(line).lookingAt()) {
                        found.add(line.length() > 500 ? line.substring(0, 500) + "…" : line);
                    }
                }
            } catch (IOException e) {
                return List.of("(cannot read " + log + ": " + e + ")");
            }
            return List.copyOf(found.subList(Math.max(0, found.size() - max), found.size()));
        }

        /** The events measured for this launch, LAUNCH last. */
        public List<MeasurementEvent> events() {
            return events;
        }

        /**
         * Completes when the child's end is settled: with the TERMINATED event, or empty if it was stopped unmeasured.
         * Stays incomplete while recording TERMINATED fails.
         */
        public CompletableFuture<Optional<MeasurementEvent>> terminated() {
            return terminated;
        }

        /** Whether the child has exited and its TERMINATED is not recorded (yet). */
        public boolean terminationPending() {
            return !process.isAlive() && !terminated.isDone();
        }

        /**
         * Records TERMINATED for the exited child unless that is done already; idempotent. Completes an extend of an
         * earlier attempt that was logged but failed, rather than measuring twice.
         *
         * @return the TERMINATED event, or empty if the child was stopped unmeasured
         * @throws IllegalStateException if the child still runs
         */
        public synchronized Optional<MeasurementEvent> recordTermination() throws IOException, TpmException {
            if (terminated.isDone()) {
                return terminated.join();
            }
            if (process.isAlive()) {
                throw new IllegalStateException("the child " + process.pid() + " still runs");
            }
            if (!measureExit) {
                terminated.complete(Optional.empty());
                return Optional.empty();
            }
            store.completePendingExtend();
            MeasurementEvent recorded = loggedTermination().orElse(null);
            if (recorded == null) {
                String status = "exit " + process.exitValue();
                recorded = store.measure(EventType.TERMINATED,
                        HashAlgorithm.SHA256.digest(status.getBytes(StandardCharsets.US_ASCII)), status);
                LOG.info("softphone core {} ({}); PCR {} capped", mainClass, status, store.pcr());
            }
            terminated.complete(Optional.of(recorded));
            return Optional.of(recorded);
        }

        /** A TERMINATED already in the store's log after this launch (an earlier attempt logged it). */
        private Optional<MeasurementEvent> loggedTermination() {
            MeasurementEvent launch = events.get(events.size() - 1);
            MeasurementLog log = store.log();
            if (log.size() <= launch.sequence() || !log.event(launch.sequence()).equals(launch)) {
                return Optional.empty();
            }
            for (int i = launch.sequence() + 1; i < log.size(); i++) {
                if (log.event(i).type() == EventType.TERMINATED) {
                    return Optional.of(log.event(i));
                }
            }
            return Optional.empty();
        }

        /**
         * Stops the child without measuring its end: for a child of a TPM boot that is over (the PCR it was measured
         * into is gone and its log archived), where a TERMINATED would land in the new boot's PCR ahead of its log.
         * Closes its stdin, waits up to {@code grace}, then kills it.
         */
        public void stopUnmeasured(Duration grace) {
            synchronized (this) {
                measureExit = false;
            }
            stop(grace);
            try {
                recordTermination();
            } catch (IOException | TpmException | RuntimeException e) {
                LOG.warn("settling the end of the softphone core: {}", e.toString());
            }
        }

        /**
         * Closes the child's stdin (it exits), waits up to {@code grace}, then kills it; waits for it and every process
         * under it to end. The namespace dies with the process we started, but its processes (the softphone's JVM)
         * exit asynchronously: a launch right after would find the child user still busy and refuse.
         */
        void stop(Duration grace) {
            List<ProcessHandle> tree = process.descendants().toList();
            try {
                process.getOutputStream().close();
            } catch (IOException ignored) {
                // the child is gone already
            }
            try {
                if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                    process.destroyForcibly().waitFor(grace.toMillis(), TimeUnit.MILLISECONDS);
                }
                long deadline = System.nanoTime() + grace.toNanos();
                for (ProcessHandle h : tree) {
                    if (h.isAlive() && System.nanoTime() - deadline > 0) {
                        h.destroyForcibly();
                    }
                    long left = Math.max(1, deadline - System.nanoTime());
                    try {
                        h.onExit().get(left, TimeUnit.NANOSECONDS);
                    } catch (java.util.concurrent.TimeoutException e) {
                        h.destroyForcibly();
                        h.onExit().get(grace.toMillis(), TimeUnit.MILLISECONDS);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                LOG.warn("a process of the softphone core did not end after it was killed: {}", e.toString());
            }
        }
    }

    /**
     * The argument vector the child runs with (what COMMAND_LINE measures): {@link #measuredCommandLine}'s.
     *
     * @throws IllegalArgumentException if it does not fit in one event ({@link MeasuredCommandLine#MAX_LENGTH})
     */
    public static List<String> commandLine(LaunchSpec spec) throws IOException {
        return measuredCommandLine(spec).argv();
    }

    /**
     * The command line the child runs with, as COMMAND_LINE measures it ({@link MeasuredCommandLine#forLaunch}): the
     * real path of the Java launcher, the hardening options, the spec's JVM options, {@code -cp} with the jar file
     * names, the main class, {@code --config} with the configuration file name, then the arguments.
     *
     * @throws IllegalArgumentException if it does not fit in one event ({@link MeasuredCommandLine#MAX_LENGTH})
     */
    public static MeasuredCommandLine measuredCommandLine(LaunchSpec spec) throws IOException {
        return MeasuredCommandLine.forLaunch(spec.javaHome().resolve("bin/java").toRealPath().toString(),
                spec.jvmOptions(), LaunchSpec.classPathNames(spec.classPath()), spec.mainClass(),
                spec.configFile().getFileName().toString(), spec.arguments());
    }

    /** The JVM of {@code spec} as it is measured and approved: {@code java.home} by real path, and its tree digest. */
    public static JvmDigest jvmDigest(LaunchSpec spec) throws IOException {
        Path home = spec.javaHome().toRealPath();
        long started = System.nanoTime();
        byte[] digest = treeDigest(home);
        LOG.debug("digested java.home {} in {} ms", home, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started));
        return new JvmDigest(home.toString(), digest);
    }

    /**
     * The digest of a directory tree, covering everything in it the JVM may read. The tree is walked from
     * {@code root} following symbolic links (so content reached through a link — Debian links {@code conf/} files
     * into {@code /etc/java-17-openjdk} — is covered as if it were in place); each path below {@code root} yields one
     * entry:
     * <pre>
     *   entry  = path || 0x00 || type || digest
     *   path   = the path relative to root, '/'-separated, UTF-8 (never contains 0x00)
     *   type   = one ASCII byte: 'f' regular file, 'd' directory, 'l' symbolic link that resolves to neither (dangling,
     *            or a directory already on the walk's path: a loop), 'o' anything else (fifo, socket, device)
     *   digest = 32 bytes: 'f' SHA-256 of the content; 'l' SHA-256 of the link's target as stored (UTF-8);
     *            'd' and 'o' 32 zero bytes
     * </pre>
     * and the result is SHA-256 over the entries, sorted by {@code path} in unsigned byte order, concatenated. A link
     * is described by what it resolves to: a link to a file and a copy of that file give the same entry. Permissions,
     * owners and times are not covered. The root itself has no entry.
     *
     * @throws IOException if a file cannot be read, or {@code root} is not a directory
     */
    public static byte[] treeDigest(Path root) throws IOException {
        if (!Files.isDirectory(root)) {
            throw new IOException(root + " is not a directory");
        }
        TreeMap<String, byte[]> entries = new TreeMap<>(MeasuredLauncher::compareUtf8);
        Set<Path> onPath = new HashSet<>();
        onPath.add(root.toRealPath());
        walk(root, "", entries, onPath);
        java.security.MessageDigest md = HashAlgorithm.SHA256.newMessageDigest();
        for (byte[] entry : entries.values()) {
            md.update(entry);
        }
        return md.digest();
    }

    private static void walk(Path dir, String prefix, Map<String, byte[]> entries, Set<Path> onPath)
            throws IOException {
        List<Path> children;
        try (Stream<Path> list = Files.list(dir)) {
            children = list.toList();
        }
        for (Path child : children) {
            String rel = prefix + child.getFileName().toString();
            BasicFileAttributes attrs;
            try {
                attrs = Files.readAttributes(child, BasicFileAttributes.class);
            } catch (NoSuchFileException dangling) {
                entries.put(rel, entry(rel, 'l', linkTarget(child)));
                continue;
            }
            if (attrs.isDirectory()) {
                Path real = child.toRealPath();
                if (onPath.contains(real)) {
                    entries.put(rel, entry(rel, 'l', linkTarget(child)));
                    continue;
                }
                entries.put(rel, entry(rel, 'd', new byte[32]));
                onPath.add(real);
                walk(child, rel + "/", entries, onPath);
                onPath.remove(real);
            } else if (attrs.isRegularFile()) {
                entries.put(rel, entry(rel, 'f', MeasurementLogStore.sha256(child)));
            } else {
                entries.put(rel, entry(rel, 'o', new byte[32]));
            }
        }
    }

    private static byte[] linkTarget(Path link) throws IOException {
        String target = Files.isSymbolicLink(link) ? Files.readSymbolicLink(link).toString() : "";
        return HashAlgorithm.SHA256.digest(target.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] entry(String rel, char type, byte[] digest) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(rel.getBytes(StandardCharsets.UTF_8));
        out.write(0);
        out.write(type);
        out.writeBytes(digest);
        return out.toByteArray();
    }

    private static int compareUtf8(String a, String b) {
        return Arrays.compareUnsigned(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Resolves {@code spec}'s child user to its uid and gid ({@code id -u}, {@code id -g}, so NSS users work too),
     * creating it first if it is a missing dedicated user ({@link LaunchSpec#DEDICATED_USER_PREFIX}: a system user with
     * its own group, no home and no login shell). An existing dedicated user must be one the agent created
     * ({@link DedicatedAccounts}): whoever made it first would otherwise decide what the softphone runs with. The user
     * must be the softphone's own: a user with running processes is refused, since any process of the same user could
     * take the child's broker session (ptrace, pidfd_getfd).
     *
     * @throws IOException if the user does not exist and cannot be created, is a dedicated user the agent did not
     *     create, is root, or has running processes
     */
    public static ChildUser resolveChildUser(LaunchSpec spec) throws IOException {
        String user = spec.childUser();
        if (user.startsWith(LaunchSpec.DEDICATED_USER_PREFIX)) {
            if (!DedicatedAccounts.exists(user)) {
                DedicatedAccounts.create(user);
            }
            DedicatedAccounts.verify(user); // also when just created: another useradd may have won the race
        }
        int uid = Integer.parseInt(id("-u", user));
        int gid = Integer.parseInt(id("-g", user));
        if (uid == 0 || gid == 0) {
            throw new IOException("child user " + user + " resolves to uid " + uid + " gid " + gid
                    + ": the child must not run as root or group root; name an unprivileged user");
        }
        List<Long> running = processesOf(uid);
        if (!running.isEmpty()) {
            throw new IOException("child user " + user + " (uid " + uid + ") has running processes " + running
                    + ": a softphone's user must be its own (any process of that user could take over its broker"
                    + " session); stop them, or give each softphone its own --child-user");
        }
        return new ChildUser(user, uid, gid);
    }

    /** The pids of the processes whose real, effective, saved or file-system uid is {@code uid}. */
    static List<Long> processesOf(int uid) throws IOException {
        List<Long> pids = new ArrayList<>();
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path proc : (Iterable<Path>) procs::iterator) {
                String name = proc.getFileName().toString();
                if (!name.chars().allMatch(Character::isDigit)) {
                    continue;
                }
                List<String> lines;
                try {
                    lines = Files.readAllLines(proc.resolve("status"), StandardCharsets.US_ASCII);
                } catch (IOException gone) {
                    continue; // it ended while we looked
                }
                for (String line : lines) {
                    if (line.startsWith("Uid:")) {
                        for (String id : line.substring(4).trim().split("\\s+")) {
                            if (id.equals(Integer.toString(uid))) {
                                pids.add(Long.parseLong(name));
                                break;
                            }
                        }
                        break;
                    }
                }
            }
        }
        return pids;
    }

    record Result(int exitCode, String output) {
    }

    /** Runs {@code command} (stdin closed, stderr with stdout) for at most {@code timeoutSeconds}. */
    static Result run(List<String> command, int timeoutSeconds) throws IOException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        // Read while it runs: output beyond the pipe's buffer (getent passwd on a large directory) would block it.
        CompletableFuture<byte[]> output = CompletableFuture.supplyAsync(() -> {
            try (java.io.InputStream in = p.getInputStream()) {
                return in.readAllBytes();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        try {
            p.getOutputStream().close();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", command) + " did not finish within " + timeoutSeconds + " s");
            }
            return new Result(p.exitValue(), new String(output.get(timeoutSeconds, TimeUnit.SECONDS),
                    StandardCharsets.UTF_8).trim());
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            throw new IOException("cannot read the output of " + String.join(" ", command) + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted running " + command.get(0), e);
        }
    }

    static String id(String option, String user) throws IOException {
        Result r = run(List.of("id", option, user), 10);
        if (r.exitCode() != 0 || !r.output().matches("[0-9]{1,10}")) {
            throw new IOException("cannot resolve the child user '" + user + "' (id " + option + ": " + r.output()
                    + "): create it or set another child user");
        }
        return r.output();
    }

    /** What the ISOLATION event records for a child running as {@code user} with the real gid {@code realGid}. */
    static String isolationDescription(ChildUser user, long realGid, boolean controlDirectory) {
        return "unshare --pid --fork --mount --ipc --mount-proc --kill-child; code dir ro-bind at " + CHILD_CODE_MOUNT
                + (controlDirectory ? "; control dir bind at " + CONTROL_MOUNT + "/ (owner-only, child's user)" : "")
                + "; private /tmp, " + String.join(", ", PRIVATE_SHARED_DIRECTORIES) + " (tmpfs), /dev/mqueue (its own"
                + " IPC namespace's)"
                + "; setpriv uid "
                + user.uid() + " gid " + user.gid() + " clear-groups no_new_privs bounding-set -all inh-caps -all"
                + " (no capabilities); real gid " + realGid + " (" + DedicatedAccounts.NODUMP_GROUP + "): not dumpable,"
                + " no ptrace by its own uid";
    }

    /**
     * Stages, measures and starts the child, connected to {@code broker}, with its control directory at
     * {@code control/} in the staging root; see {@link #launch(LaunchSpec, Broker, Path)}.
     */
    public synchronized Launched launch(LaunchSpec spec, Broker broker) throws IOException, TpmException {
        return launch(spec, broker, stagingRoot.resolve(CONTROL_MOUNT));
    }

    /**
     * Stages, measures and starts the child, connected to {@code broker}: makes the broker reachable for the child's
     * user (see {@link Broker}; when isolated the child finds it at {@code broker/broker.sock} relative to its working
     * directory), sets {@code TPMPHONE_BROKER} and gives the child the token on its stdin.
     *
     * <p>{@code controlDirectory} is where the child listens for its user interface: the agent creates it (owner-only,
     * owned by the child's user when isolated, so the child may create its socket there and nobody else but root may
     * enter), removes a stale socket, bind-mounts it at {@code control/} in an isolated child's view (the child never
     * traverses the agent's private state directory) and names the socket in {@code TPMPHONE_CONTROL}. Outside, the
     * socket is {@code controlDirectory/control.sock}.
     */
    public synchronized Launched launch(LaunchSpec spec, Broker broker, Path controlDirectory)
            throws IOException, TpmException {
        return launch(spec, broker, controlDirectory, null);
    }

    /**
     * As {@link #launch(LaunchSpec, Broker, Path)}, and an isolated child sees {@code sound}'s directory (made anew,
     * empty, the sound server's user's with the child's group, mode 0750) at {@code sound/}: where the sound server
     * makes a socket while a call is active ({@link SoundGrant}). Null: no sound directory.
     */
    public synchronized Launched launch(LaunchSpec spec, Broker broker, Path controlDirectory, SoundGrant sound)
            throws IOException, TpmException {
        Path soundDirectory = sound == null ? null : sound.directory();
        Objects.requireNonNull(broker, "broker");
        Objects.requireNonNull(controlDirectory, "controlDirectory");
        String socketName = broker.socketPath().getFileName().toString();
        Launched launched;
        if (spec.isolate()) {
            ChildUser user = resolveChildUser(spec);
            broker.admitUser(user.uid());
            prepareControlDirectory(controlDirectory, user);
            if (sound != null) {
                sound.prepare(user);
            }
            Map<String, String> environment = new LinkedHashMap<>(Map.of("TPMPHONE_BROKER",
                    BROKER_MOUNT + "/" + socketName, "TPMPHONE_CONTROL", CONTROL_MOUNT + "/" + CONTROL_SOCKET));
            if (sound != null) {
                // libpulse reads this file instead of the system's /etc/pulse/client.conf (and its .d directory)
                environment.put("PULSE_CLIENTCONFIG", CHILD_CODE_MOUNT.resolve(PULSE_CLIENT_CONFIG).toString());
            }
            launched = launch(spec, environment, user, broker.directory(),
                    controlDirectory, soundDirectory);
        } else {
            prepareControlDirectory(controlDirectory, null);
            launched = launch(spec, Map.of("TPMPHONE_BROKER", broker.socketPath().toString(), "TPMPHONE_CONTROL",
                    controlDirectory.toAbsolutePath().resolve(CONTROL_SOCKET).toString()), null, null, null, null);
        }
        OutputStream stdin = launched.process().getOutputStream();
        stdin.write((broker.token() + "\n").getBytes(StandardCharsets.US_ASCII));
        stdin.flush();
        return launched;
    }

    /**
     * Makes {@code dir} anew for this launch: whatever an earlier child left there is removed (symbolic links as
     * links, never followed: the earlier child owned the directory), then an empty directory is created owner-only and,
     * when {@code user} is given (isolated, the agent is root), handed to that user; otherwise it stays ours. Its
     * parent must be a directory only the agent can write (the agent's 0700 state directory), so nobody else can
     * replace {@code dir} itself in between.
     */
    private static void prepareControlDirectory(Path dir, ChildUser user) throws IOException {
        try {
            if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
                deleteTreeNoFollow(dir);
            }
            Files.createDirectories(dir.getParent());
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString(
                    "rwx------")));
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------")); // whatever the umask
            if (user != null) {
                Files.setAttribute(dir, "unix:uid", user.uid(), LinkOption.NOFOLLOW_LINKS);
                Files.setAttribute(dir, "unix:gid", user.gid(), LinkOption.NOFOLLOW_LINKS);
            }
        } catch (IOException e) {
            throw new IOException("cannot prepare the softphone's control directory " + dir + ": " + e, e);
        }
    }

    /** Deletes {@code root} and everything below it; a symbolic link is deleted, never followed. */
    private static void deleteTreeNoFollow(Path root) throws IOException {
        Files.walkFileTree(root, new java.nio.file.SimpleFileVisitor<>() {
            @Override
            public java.nio.file.FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return java.nio.file.FileVisitResult.CONTINUE;
            }

            @Override
            public java.nio.file.FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null) {
                    throw e;
                }
                Files.delete(d);
                return java.nio.file.FileVisitResult.CONTINUE;
            }
        });
    }

    /**
     * Stages, measures and starts the child. {@code environment} is all the child gets; an isolated child runs as
     * {@link LaunchSpec#childUser()}, so any path in it must be reachable by that user — to connect the child to the
     * agent's broker use {@link #launch(LaunchSpec, Broker)}.
     */
    public synchronized Launched launch(LaunchSpec spec, Map<String, String> environment)
            throws IOException, TpmException {
        return launch(spec, environment, spec.isolate() ? resolveChildUser(spec) : null, null, null, null);
    }

    private Launched launch(LaunchSpec spec, Map<String, String> environment, ChildUser user, Path brokerDirectory,
                            Path controlDirectory, Path soundDirectory) throws IOException, TpmException {
        MeasuredCommandLine commandLine = measuredCommandLine(spec);
        List<String> argv = commandLine.argv();
        Path setpriv = null;
        long realGid = -1;
        if (spec.isolate()) {
            setpriv = SETPRIV.stream().filter(Files::isExecutable).findFirst().orElseThrow(() -> new IOException(
                    "setpriv (util-linux) is not installed at " + SETPRIV + ": install it, or launch without"
                            + " isolation"));
            realGid = DedicatedAccounts.nodumpGroup();
        }
        JvmDigest jvm = jvmDigest(spec);
        Path code = stage(spec, brokerDirectory != null, controlDirectory != null, soundDirectory != null);
        List<MeasurementEvent> events = new ArrayList<>();
        events.add(store.measure(EventType.JVM, jvm.digest(), jvm.javaHome()));
        for (Path jar : spec.classPath()) {
            String name = jar.getFileName().toString();
            events.add(store.measureFile(EventType.CLASSPATH_JAR, code.resolve(name), name));
        }
        // native code the JVM loads is executable code like the jars: one event each, by its path in the code tree
        for (Path lib : spec.nativeLibraries()) {
            String name = LaunchSpec.nativeName(lib);
            events.add(store.measureFile(EventType.CLASSPATH_JAR, code.resolve(name), name));
        }
        String configName = spec.configFile().getFileName().toString();
        events.add(store.measureFile(EventType.CONFIGURATION, code.resolve(configName), configName));
        if (soundDirectory != null) {
            // the child's PulseAudio client configuration is configuration like the other: compared with the release
            events.add(store.measureFile(EventType.CONFIGURATION, code.resolve(PULSE_CLIENT_CONFIG),
                    PULSE_CLIENT_CONFIG));
        }
        events.add(store.measure(MeasuredCommandLine.EVENT_TYPE, commandLine.digest(),
                new String(commandLine.encoded(), StandardCharsets.UTF_8)));
        List<String> command = new ArrayList<>();
        if (spec.isolate()) {
            String isolation = isolationDescription(user, realGid, controlDirectory != null)
                    + (soundDirectory != null ? soundIsolation(Files.readAllBytes(code.resolve(PULSE_CLIENT_CONFIG)))
                    : "");
            events.add(store.measure(EventType.ISOLATION,
                    HashAlgorithm.SHA256.digest(isolation.getBytes(StandardCharsets.UTF_8)), isolation));
            Path view = childCodeMount();
            // $1 code dir, $2 its view, $3 broker dir or "", $4 control dir or "", $5 sound dir or "", then argv. Mounts (as root), then
            // drop to the child user. The shell stays, as the namespace's init, instead of exec'ing setpriv: the JVM's
            // exec is set-gid-like (real gid N, effective G), which clears any parent-death signal, so the JVM cannot
            // hold one; the shell keeps unshare's (--kill-child), and when it dies the kernel kills the namespace.
            String script = "code=\"$1\"; view=\"$2\"; brokerdir=\"$3\"; controldir=\"$4\"; sounddir=\"$5\"; shift 5"
                    + " && mount --bind \"$code\" \"$view\" && mount -o remount,bind,ro \"$view\""
                    + " && { [ -z \"$brokerdir\" ] || mount --bind \"$brokerdir\" \"$view/" + BROKER_MOUNT + "\"; }"
                    + " && { [ -z \"$controldir\" ] || mount --bind \"$controldir\" \"$view/" + CONTROL_MOUNT + "\"; }"
                    + " && { [ -z \"$sounddir\" ] || mount --bind \"$sounddir\" \"$view/" + SOUND_MOUNT + "\"; }"
                    + " && mount -t tmpfs -o mode=1777,nosuid,nodev,size=128m tpmphone-tmp /tmp"
                    + " && for d in " + String.join(" ", PRIVATE_SHARED_DIRECTORIES) + "; do [ ! -d \"$d\" ]"
                    + " || mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m tpmphone-tmp \"$d\" || exit 1; done"
                    // systemd mounts the host IPC namespace's queues at /dev/mqueue (mode 1777); the mount stays tied
                    // to that namespace after unshare --ipc, so mount this namespace's own.
                    + " && { [ ! -d /dev/mqueue ] || mount -t mqueue -o nosuid,nodev,noexec tpmphone-mqueue /dev/mqueue; }"
                    + " && cd \"$view\""
                    + " && " + setpriv + " --reuid=" + user.uid() + " --rgid=" + realGid + " --egid=" + user.gid()
                    + " --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all -- \"$@\""
                    // Not the last command of the script: bash (/bin/sh on Fedora, Arch, openSUSE) execs a script's
                    // last command in place of the shell, which would end the shell's parent-death signal.
                    + "; exit $?";
            command.addAll(List.of("unshare", "--pid", "--fork", "--mount", "--ipc", "--mount-proc", "--kill-child",
                    "--", shell, "-c", script, "launch", code.toString(), view.toString(),
                    brokerDirectory == null ? "" : brokerDirectory.toString(),
                    controlDirectory == null ? "" : controlDirectory.toAbsolutePath().toString(),
                    soundDirectory == null ? "" : soundDirectory.toAbsolutePath().toString()));
        }
        command.addAll(argv);
        Path log = stagingRoot.resolve("child.log");
        long logOffset = Files.exists(log) ? Files.size(log) : 0;
        // The child's output may hold anything it logged: owner-only before the redirect opens it (which would
        // create it with the umask).
        io.tpmphone.attestation.OwnerOnlyFiles.createPrivateFile(log);
        ProcessBuilder pb = new ProcessBuilder(command).directory(code.toFile())
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectErrorStream(true);
        pb.environment().clear();
        pb.environment().put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        pb.environment().putAll(environment);
        Process process = pb.start();
        String launch = launchData(process.toHandle());
        events.add(store.measure(EventType.LAUNCH,
                HashAlgorithm.SHA256.digest(launch.getBytes(StandardCharsets.US_ASCII)), launch));
        LOG.info("launched {} ({}{}), {} measurements in PCR {}", spec.mainClass(), launch,
                user == null ? "" : ", as uid " + user.uid(), events.size(), store.pcr());
        Launched launched = new Launched(process, code, events, store, spec.mainClass(), log, logOffset);
        process.onExit().thenRun(() -> {
            try {
                launched.recordTermination();
            } catch (IOException | TpmException | RuntimeException e) {
                LOG.warn("could not measure the end of the softphone core ({}); the agent retries", e.toString());
            }
        });
        return launched;
    }

    /** Creates the (empty, root-owned, 0755) mount point {@link #CHILD_CODE_MOUNT} if needed. */
    private static Path childCodeMount() throws IOException {
        try {
            Files.createDirectories(CHILD_CODE_MOUNT);
            for (Path p = CHILD_CODE_MOUNT; !p.equals(Path.of("/run")); p = p.getParent()) {
                Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
            }
        } catch (IOException e) {
            throw new IOException("cannot create the isolated child's code mount point " + CHILD_CODE_MOUNT
                    + " (the agent needs root for isolation): " + e, e);
        }
        return CHILD_CODE_MOUNT;
    }

    /** The LAUNCH event's data: the pid and the start time that tell this process from a later one with its pid. */
    static String launchData(ProcessHandle process) {
        return "pid " + process.pid() + " start " + process.info().startInstant().map(Instant::toString)
                .orElse("unknown");
    }

    /**
     * Copies the jars and the configuration into a fresh directory (0755, files 0644, owned by the agent: the child
     * user may read, never write, and the directory is mounted read-only anyway); the copies are what is measured.
     */
    private Path stage(LaunchSpec spec, boolean brokerMountPoint, boolean controlMountPoint, boolean soundMountPoint)
            throws IOException {
        // Holds child.log; an isolated child reaches its code through the bind mount, never through this directory.
        io.tpmphone.attestation.OwnerOnlyFiles.createPrivateDirectories(stagingRoot);
        Path code = Files.createTempDirectory(stagingRoot, "code-");
        Map<String, Path> files = new LinkedHashMap<>();
        for (Path jar : spec.classPath()) {
            files.put(jar.getFileName().toString(), jar);
        }
        files.put(spec.configFile().getFileName().toString(), spec.configFile());
        if (soundMountPoint && files.containsKey(PULSE_CLIENT_CONFIG)) {
            // staging the client configuration would overwrite the phone's own file of that name
            throw new IOException("the softphone's configuration file is named " + PULSE_CLIENT_CONFIG + ", the name"
                    + " of the PulseAudio client configuration staged beside it: rename it");
        }
        for (Path lib : spec.nativeLibraries()) {
            files.put(LaunchSpec.nativeName(lib), lib);
        }
        try {
            if (!spec.nativeLibraries().isEmpty()) {
                Path dir = Files.createDirectory(code.resolve(LaunchSpec.NATIVE_DIRECTORY));
                Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            for (Map.Entry<String, Path> f : files.entrySet()) {
                Path copy = code.resolve(f.getKey());
                Files.copy(f.getValue(), copy, StandardCopyOption.REPLACE_EXISTING);
                Files.setPosixFilePermissions(copy, PosixFilePermissions.fromString("rw-r--r--"));
            }
            if (brokerMountPoint) {
                Files.setPosixFilePermissions(Files.createDirectory(code.resolve(BROKER_MOUNT)),
                        PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            if (controlMountPoint) {
                Files.setPosixFilePermissions(Files.createDirectory(code.resolve(CONTROL_MOUNT)),
                        PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            if (soundMountPoint) {
                Files.setPosixFilePermissions(Files.createDirectory(code.resolve(SOUND_MOUNT)),
                        PosixFilePermissions.fromString("rwxr-xr-x"));
                Path conf = Files.write(code.resolve(PULSE_CLIENT_CONFIG), pulseClientConfig());
                Files.setPosixFilePermissions(conf, PosixFilePermissions.fromString("rw-r--r--"));
            }
            Files.setPosixFilePermissions(code, PosixFilePermissions.fromString("rwxr-xr-x"));
        } catch (UnsupportedOperationException e) {
            LOG.warn("cannot set the permissions of {} on this file system", code);
        }
        return code;
    }
}
