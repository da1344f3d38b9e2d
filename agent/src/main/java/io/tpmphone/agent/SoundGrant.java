package io.tpmphone.agent;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The isolated softphone's access to the host's sound server, granted only while it has a call the agent saw
 * accepted: the first call's {@link #open} loads a PulseAudio {@code module-native-protocol-unix} whose socket is
 * {@code DIRECTORY/native}, the directory bind-mounted at {@code sound/} in the child's view; the last call's
 * {@link #close} unloads it, which removes the socket and ends the child's connections. Between calls the child has no
 * socket into the sound server at all.
 *
 * <p><b>Tied to accepted calls.</b> The agent knows the child's calls only through the decisions it hands to the
 * audit log ({@code DECISION}): {@link #accepted} records a call the policy accepted (or restricted), {@link #ended}
 * one it rejected. {@link #open} grants only a call so recorded (or its ringing, {@code CALLID#ring}) and refuses
 * anything else ({@link NotAcceptedException}); and a call's grant ends at the latest {@code bound} after its
 * decision, whether or not the child gives it back. A compromised child can still claim a call that never happened,
 * but only through a decision that lands in the server's audit log, and only for {@code bound} at a time.
 *
 * <p><b>Whose directory.</b> The sound server creates the socket itself, so it must be able to write into the
 * directory. For a sound server run as root (the tests') the directory is root's with the child's group, mode 0750.
 * For the usual one, run as the desktop user ({@link Owner}), the directory is that user's with the child's group,
 * mode 0750, and must lie outside the agent's owner-only state tree, below directories that user may enter
 * ({@link #prepare} checks). The module takes anonymous clients: whoever reaches the socket (the directory's owner,
 * root and the child) controls the sound server while it exists — the threat model says so. The agent talks to the
 * sound server with {@code pactl -s ADMIN}, as a client the server accepts (same user, or its cookie in
 * {@code PULSE_COOKIE}). Thread-safe.
 */
public final class SoundGrant implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SoundGrant.class);
    /** The socket's file name in the granted directory (the child connects to {@code sound/native}). */
    public static final String SOCKET = "native";
    /** Calls holding the grant at once, at most; more are refused (the phone's own bound is 32 calls). */
    static final int MAX_CALLS = 32;
    private static final Duration PACTL_TIMEOUT = Duration.ofSeconds(10);
    /** How long a call may hold the sound server after its decision, unless the agent says otherwise. */
    public static final Duration DEFAULT_BOUND = Duration.ofHours(4);
    /** Accepted calls remembered at once; the oldest is forgotten (and its grant ended) beyond this. */
    static final int MAX_ACCEPTED = 64;
    /** Ended calls remembered (they cannot be accepted again); the oldest is forgotten beyond this. */
    static final int MAX_ENDED = 4096;
    /** New calls accepted per hour at most; beyond, a decision grants nothing (a child looping on fresh calls). */
    static final int MAX_ACCEPTS_PER_HOUR = 60;
    /** The suffix of a ringing's grant: the ringer plays through the speaker before the call is answered. */
    public static final String RING_SUFFIX = "#ring";

    /** The user a sound server runs as, and so the owner of the directory it makes the socket in. */
    public record Owner(String name, int uid, int gid) {
        public Owner {
            Objects.requireNonNull(name, "name");
            if (uid <= 0) {
                throw new IllegalArgumentException("a sound server's user must not be root (uid " + uid + "): without"
                        + " --sound-server-user the agent makes the directory for a root-run server");
            }
        }

        /** The user {@code name}, resolved by {@code id} (so NSS users work too). */
        public static Owner of(String name) throws IOException {
            return new Owner(name, Integer.parseInt(MeasuredLauncher.id("-u", name)),
                    Integer.parseInt(MeasuredLauncher.id("-g", name)));
        }
    }

    /** {@link #open} for a call the agent did not see accepted, or whose bound ran out: the broker says NOT_ACCEPTED. */
    public static final class NotAcceptedException extends IllegalStateException {
        private static final long serialVersionUID = 1L;

        NotAcceptedException(String message) {
            super(message);
        }
    }

    private final String adminServer;
    private final Path directory;
    private final Optional<Owner> owner;
    private final Duration bound;
    private final Set<String> calls = new LinkedHashSet<>();
    /** Accepted call id to its grant's end (System.nanoTime), oldest first. */
    private final java.util.LinkedHashMap<String, Long> accepted = new java.util.LinkedHashMap<>();
    /** Calls that ended (rejected, closed, past their bound, forgotten): never accepted again. Oldest first. */
    private final Set<String> endedCalls = new LinkedHashSet<>();
    /** When (System.nanoTime) each of the last hour's calls was accepted. */
    private final java.util.ArrayDeque<Long> acceptTimes = new java.util.ArrayDeque<>();
    private final java.util.Map<String, java.util.concurrent.ScheduledFuture<?>> expiries = new java.util.HashMap<>();
    private final java.util.concurrent.ScheduledExecutorService timer =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "sound-grant-bound");
                t.setDaemon(true);
                return t;
            });
    private Optional<String> module = Optional.empty();
    /** The sound server's modules before our socket was loaded: what the grant may not leave behind. */
    private Set<String> before = Set.of();
    /**
     * Modules that give someone a way into the sound server or out of it with its audio — listeners, tunnels, RTP,
     * pipes, loopbacks. A client of our socket has full control of the server while the grant exists, so a
     * compromised softphone could load one of these to keep (or hand to any local user) a way in after its grant
     * ends; the grant's end unloads every such module loaded meanwhile.
     */
    static final java.util.regex.Pattern ESCAPE_MODULES = java.util.regex.Pattern.compile(
            "module-(native|esound|simple|http|cli)-protocol-.*|module-tunnel-.*|module-rtp-.*|module-raop-.*"
                    + "|module-zeroconf-.*|module-pipe-.*|module-loopback|module-combine-sink|module-remap-.*"
                    + "|module-dbus-protocol|module-x11-.*");

    /**
     * @param adminServer the sound server as the agent reaches it ({@code unix:/run/user/1000/pulse/native})
     * @param directory   where the per-call socket is made: the directory bind-mounted into the child
     */
    public SoundGrant(String adminServer, Path directory) {
        this(adminServer, directory, Optional.empty(), DEFAULT_BOUND);
    }

    /**
     * @param adminServer the sound server as the agent reaches it ({@code unix:/run/user/1000/pulse/native})
     * @param directory   where the per-call socket is made: the directory bind-mounted into the child
     * @param owner       the user the sound server runs as (it must create the socket), empty for root
     * @param bound       how long after its decision a call may hold the sound server at most
     */
    public SoundGrant(String adminServer, Path directory, Optional<Owner> owner, Duration bound) {
        this.adminServer = Objects.requireNonNull(adminServer, "adminServer");
        this.directory = Objects.requireNonNull(directory, "directory");
        this.owner = Objects.requireNonNull(owner, "owner");
        this.bound = Objects.requireNonNull(bound, "bound");
        if (bound.isNegative() || bound.isZero()) {
            throw new IllegalArgumentException("a sound grant's bound must be positive, got " + bound);
        }
        if (!adminServer.matches("unix:/[A-Za-z0-9._/+-]{1,200}")) {
            throw new IllegalArgumentException("the sound server must be unix:/PATH (its native-protocol socket), got "
                    + adminServer);
        }
    }

    /** The directory the child sees at {@code sound/}. */
    public Path directory() {
        return directory;
    }

    /**
     * The softphone's policy accepted (or restricted) {@code callId}: its audio may be granted, until {@code bound}
     * from now. A call accepted again keeps its first bound; a call that ended (rejected, closed, past its bound) is not
     * accepted again, and no more than {@link #MAX_ACCEPTS_PER_HOUR} calls are accepted in an hour.
     */
    public void accepted(String callId) {
        accepted(callId, bound);
    }

    synchronized void accepted(String callId, Duration bound) {
        Objects.requireNonNull(callId, "callId");
        if (accepted.containsKey(callId)) {
            return;
        }
        String shown = io.tpmphone.attestation.UntrustedText.forTerminal(callId, 200);
        if (endedCalls.contains(callId)) {
            LOG.warn("call {} was accepted again after it ended: no sound server for it", shown);
            return;
        }
        long now = System.nanoTime();
        while (!acceptTimes.isEmpty() && now - acceptTimes.peekFirst() >= Duration.ofHours(1).toNanos()) {
            acceptTimes.pollFirst();
        }
        if (acceptTimes.size() >= MAX_ACCEPTS_PER_HOUR) {
            LOG.warn("more than {} calls accepted within an hour: no sound server for call {}", MAX_ACCEPTS_PER_HOUR,
                    shown);
            return;
        }
        acceptTimes.addLast(now);
        LOG.info("call {} accepted: the softphone may have the sound server for it for {} at most", shown, bound);
        if (accepted.size() >= MAX_ACCEPTED) {
            String oldest = accepted.keySet().iterator().next();
            LOG.warn("more than {} accepted calls: forgetting the oldest ({}) and ending its sound grant",
                    MAX_ACCEPTED, io.tpmphone.attestation.UntrustedText.forTerminal(oldest, 200));
            ended(oldest);
        }
        accepted.put(callId, System.nanoTime() + bound.toNanos());
        expiries.put(callId, timer.schedule(() -> expire(callId), bound.toNanos(),
                java.util.concurrent.TimeUnit.NANOSECONDS));
    }

    /**
     * The softphone's decision {@code action} ({@code ACCEPT}, {@code RESTRICT}, {@code REJECT}) for {@code callId},
     * as it reported it for the audit log: accepted and restricted calls may be granted, a rejected one ends.
     */
    public void decided(String action, String callId) {
        switch (Objects.requireNonNull(action, "action")) {
            case "ACCEPT", "RESTRICT" -> accepted(callId);
            case "REJECT" -> ended(callId);
            default -> throw new IllegalArgumentException("a decision is ACCEPT, RESTRICT or REJECT, not " + action);
        }
    }

    /** {@code callId} was rejected or is over: its grants (call and ringing) end, and it can never be granted again. */
    public synchronized void ended(String callId) {
        Objects.requireNonNull(callId, "callId");
        accepted.remove(callId);
        if (endedCalls.add(callId) && endedCalls.size() > MAX_ENDED) {
            endedCalls.remove(endedCalls.iterator().next());
        }
        java.util.concurrent.ScheduledFuture<?> f = expiries.remove(callId);
        if (f != null) {
            f.cancel(false);
        }
        release(callId);
        release(callId + RING_SUFFIX);
    }

    private synchronized void expire(String callId) {
        expiries.remove(callId);
        boolean held = calls.contains(callId) || calls.contains(callId + RING_SUFFIX);
        if (held) {
            LOG.warn("call {} held the sound server for its whole bound ({}): withdrawn",
                    io.tpmphone.attestation.UntrustedText.forTerminal(callId, 200), bound);
        }
        ended(callId);
        if (held && module.isPresent()) {
            // Other calls still hold the socket, and connections opened under the expired call would outlive it:
            // the socket is made anew, which ends every connection; the softphone reconnects for the calls it has.
            unload();
            try {
                load();
            } catch (IOException e) {
                LOG.error("could not grant the sound server again after call {} ran out: {}",
                        io.tpmphone.attestation.UntrustedText.forTerminal(callId, 200), e.getMessage());
                calls.clear();
            }
        }
    }

    /** The accepted call a grant belongs to: {@code grant} itself, or the call whose ringing it is. */
    private Optional<String> acceptedCall(String grant) {
        if (accepted.containsKey(grant)) {
            return Optional.of(grant);
        }
        if (grant.endsWith(RING_SUFFIX)) {
            String call = grant.substring(0, grant.length() - RING_SUFFIX.length());
            if (accepted.containsKey(call)) {
                return Optional.of(call);
            }
        }
        return Optional.empty();
    }

    /**
     * Grants the socket for {@code callId} (the first call loads the module); idempotent per call. Only for a call
     * {@link #accepted} within its bound, or its ringing ({@code CALLID#ring}).
     *
     * @throws NotAcceptedException if the agent saw no accepted decision for the call, or its bound ran out
     */
    public synchronized void open(String callId) throws IOException {
        Objects.requireNonNull(callId, "callId");
        Optional<String> call = acceptedCall(callId);
        if (call.isEmpty()) {
            throw new NotAcceptedException("no sound server for call "
                    + io.tpmphone.attestation.UntrustedText.forTerminal(callId, 200) + ": the agent saw no accepted"
                    + " decision for it (a call's audio is granted only after its DECISION ... ACCEPT, for "
                    + bound + " at most)");
        }
        if (System.nanoTime() - accepted.get(call.get()) >= 0) {
            ended(call.get());
            throw new NotAcceptedException("no sound server for call "
                    + io.tpmphone.attestation.UntrustedText.forTerminal(callId, 200) + ": its bound of " + bound
                    + " after its decision ran out");
        }
        if (calls.contains(callId)) {
            return;
        }
        if (calls.size() >= MAX_CALLS) {
            throw new IllegalStateException("the sound server is granted for " + MAX_CALLS + " calls already");
        }
        if (module.isEmpty()) {
            load();
        }
        calls.add(callId);
    }

    private void load() throws IOException {
        {
            Path socket = directory.resolve(SOCKET);
            Files.deleteIfExists(socket); // a socket file left by a server that died: the module would not bind
            before = modules().keySet();
            String index = pactl("load-module", "module-native-protocol-unix", "socket=" + socket,
                    "auth-anonymous=1").strip();
            if (!index.matches("[0-9]{1,10}")) {
                throw new IOException("the sound server answered load-module with \"" + abbreviate(index)
                        + "\", not a module index");
            }
            module = Optional.of(index);
            LOG.info("sound server socket granted to the softphone (module {})", index);
        }
    }

    /**
     * The softphone gives back {@code callId}'s grant (the last grant unloads the module and its socket). A call's
     * grant given back ends the call: it cannot be opened again without a new call; a ringing's ({@code CALLID#ring})
     * leaves the call to be answered. Unknown calls are ignored.
     */
    public synchronized void close(String callId) {
        Objects.requireNonNull(callId, "callId");
        if (callId.endsWith(RING_SUFFIX)) {
            release(callId);
        } else {
            ended(callId);
        }
    }

    private void release(String callId) {
        if (calls.remove(callId) && calls.isEmpty()) {
            unload();
        }
    }

    /** Whether a socket is granted now. */
    public synchronized boolean granted() {
        return module.isPresent();
    }

    /** Ends every grant: the child exited or the agent stops. */
    @Override
    public synchronized void close() {
        calls.clear();
        accepted.clear();
        expiries.values().forEach(f -> f.cancel(false));
        expiries.clear();
        unload();
    }

    /** Ends every grant and stops the bound's timer: the agent stops. */
    public synchronized void shutdown() {
        close();
        timer.shutdownNow();
    }

    private void unload() {
        if (module.isEmpty()) {
            return;
        }
        String index = module.get();
        module = Optional.empty();
        try {
            pactl("unload-module", index);
            LOG.info("sound server socket withdrawn (module {})", index);
        } catch (IOException e) {
            LOG.warn("could not unload the softphone's sound server socket (module {}): {}", index, e.getMessage());
        }
        try {
            Files.deleteIfExists(directory.resolve(SOCKET));
        } catch (IOException e) {
            LOG.warn("could not remove {}: {}", directory.resolve(SOCKET), e.toString());
        }
        // What the grant's clients loaded meanwhile to keep a way in: unloaded, and said loudly.
        try {
            for (java.util.Map.Entry<String, String> m : modules().entrySet()) {
                if (!before.contains(m.getKey()) && ESCAPE_MODULES.matcher(m.getValue()).matches()) {
                    try {
                        pactl("unload-module", m.getKey());
                        LOG.warn("the softphone's sound server grant left {} (module {}) loaded; unloaded it",
                                abbreviate(m.getValue()), m.getKey());
                    } catch (IOException e) {
                        LOG.error("the softphone's sound server grant left {} (module {}) loaded and it could not be"
                                + " unloaded: {}", abbreviate(m.getValue()), m.getKey(), e.getMessage());
                    }
                }
            }
        } catch (IOException e) {
            LOG.error("could not list the sound server's modules after the grant ended: {}", e.getMessage());
        }
    }

    /** The sound server's loaded modules: index to name ({@code pactl list short modules}). */
    private java.util.Map<String, String> modules() throws IOException {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        for (String line : pactl("list", "short", "modules").split("\n")) {
            String[] f = line.split("\t");
            if (f.length >= 2 && f[0].strip().matches("[0-9]{1,10}")) {
                m.put(f[0].strip(), f[1].strip());
            }
        }
        return m;
    }

    private String pactl(String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("pactl", "-s", adminServer));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new IOException("cannot run pactl (install pulseaudio-utils): " + e.getMessage(), e);
        }
        CompletableFuture<byte[]> out = CompletableFuture.supplyAsync(() -> readAtMost(p.getInputStream()));
        try {
            if (!p.waitFor(PACTL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                throw new IOException("pactl " + args[0] + " did not finish within " + PACTL_TIMEOUT.toSeconds()
                        + " s");
            }
            String text = new String(out.get(5, TimeUnit.SECONDS), StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IOException("pactl " + args[0] + " failed (exit " + p.exitValue() + "): "
                        + abbreviate(text.strip()));
            }
            return text;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted while running pactl", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException("reading pactl's output failed", e);
        }
    }

    private static byte[] readAtMost(InputStream in) {
        try {
            return in.readNBytes(16 * 1024);
        } catch (IOException e) {
            return new byte[0];
        }
    }

    private static String abbreviate(String s) {
        String t = s.replaceAll("\\p{Cntrl}", " ");
        return t.length() > 300 ? t.substring(0, 300) + "…" : t;
    }

    /**
     * Makes the directory anew and empty for a launch: owned by the sound server's user (root without an
     * {@link Owner}) with the child's group, mode 0750 (the server may make its socket there, the child may enter and
     * connect, not write, nobody else may enter).
     *
     * @throws IOException if the sound server's user could not reach the directory: some directory above it does not
     *     let others enter (the agent's owner-only state tree, a private temporary directory)
     */
    void prepare(MeasuredLauncher.ChildUser user) throws IOException {
        if (owner.isPresent()) {
            for (Path p = directory.toAbsolutePath().getParent(); p != null; p = p.getParent()) {
                java.util.Set<java.nio.file.attribute.PosixFilePermission> perms = Files.getPosixFilePermissions(p);
                if (!perms.contains(java.nio.file.attribute.PosixFilePermission.OTHERS_EXECUTE)) {
                    throw new IOException("the sound server's user " + owner.get().name() + " cannot reach "
                            + directory + ": " + p + " does not let others enter (mode "
                            + java.nio.file.attribute.PosixFilePermissions.toString(perms) + "); the grant directory"
                            + " must lie outside the agent's private state, below directories others may enter");
                }
            }
        }
        prepare(directory, user, owner.map(Owner::uid).orElse(0));
    }

    /**
     * Makes {@code dir} anew. The old one may belong to the sound server's user, who can change what is in it at any
     * moment (swap a subdirectory for a link to {@code /etc}), so root never walks it by path: it is renamed aside
     * within the parent (root's, which nobody else may change, checked) and removed relative to open directories
     * without following links ({@link #removeAside}).
     */
    static void prepare(Path dir, MeasuredLauncher.ChildUser user, int ownerUid) throws IOException {
        Path parent = dir.toAbsolutePath().normalize().getParent();
        Files.createDirectories(parent);
        checkRootsAlone(parent);
        if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            Path aside = parent.resolve("." + dir.getFileName() + ".old-" + Long.toHexString(System.nanoTime()));
            Files.move(dir, aside, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            try {
                removeAside(aside);
            } catch (IOException e) {
                LOG.warn("could not remove the previous sound grant directory {} entirely: {}", aside, e.getMessage());
            }
        }
        Files.createDirectory(dir);
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-x---"));
        if (user != null) {
            Files.setAttribute(dir, "unix:gid", user.gid(), LinkOption.NOFOLLOW_LINKS);
        }
        if (ownerUid != 0) {
            Files.setAttribute(dir, "unix:uid", ownerUid, LinkOption.NOFOLLOW_LINKS);
        }
    }

    /** {@code dir} must be a real directory of root's that only root may change, or renaming inside it is no guard. */
    private static void checkRootsAlone(Path dir) throws IOException {
        java.nio.file.attribute.PosixFileAttributes a = Files.readAttributes(dir,
                java.nio.file.attribute.PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        int uid = (Integer) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS);
        if (!a.isDirectory() || uid != 0 || a.permissions().contains(
                java.nio.file.attribute.PosixFilePermission.GROUP_WRITE) || a.permissions().contains(
                java.nio.file.attribute.PosixFilePermission.OTHERS_WRITE)) {
            throw new IOException("the sound grant directory's parent " + dir + " must be a directory of root's that"
                    + " only root may write (it is " + (a.isSymbolicLink() ? "a symbolic link" : "uid " + uid + ", mode "
                    + java.nio.file.attribute.PosixFilePermissions.toString(a.permissions())) + ")");
        }
    }

    /** Depth of the tree {@link #removeAside} removes at most (deeper ones are left, said in the log). */
    private static final int MAX_DEPTH = 64;

    /**
     * Removes {@code aside} (in a directory only root may change) and what is in it as it stands: each directory is
     * opened relative to its open parent without following links, and each entry removed relative to its open
     * directory, so whatever the old owner swaps meanwhile, nothing outside the tree is touched.
     */
    static void removeAside(Path aside) throws IOException {
        if (!Files.isDirectory(aside, LinkOption.NOFOLLOW_LINKS)) {
            Files.delete(aside); // a link or file: unlink never follows
            return;
        }
        IOException failure = null;
        try (java.nio.file.DirectoryStream<Path> ds = Files.newDirectoryStream(aside)) {
            if (!(ds instanceof java.nio.file.SecureDirectoryStream<Path> sds)) {
                throw new IOException("this platform has no SecureDirectoryStream: " + aside + " left in place");
            }
            failure = removeIn(sds, 0);
        }
        if (failure != null) {
            throw failure;
        }
        Files.delete(aside);
    }

    private static IOException removeIn(java.nio.file.SecureDirectoryStream<Path> dir, int depth) {
        IOException failure = null;
        List<Path> names = new ArrayList<>();
        for (Path p : dir) {
            names.add(p.getFileName());
            if (names.size() > 100_000) {
                return new IOException("more than 100000 entries in one directory");
            }
        }
        for (Path name : names) {
            try {
                boolean isDirectory = dir.getFileAttributeView(name, java.nio.file.attribute.BasicFileAttributeView.class,
                        LinkOption.NOFOLLOW_LINKS).readAttributes().isDirectory();
                if (isDirectory) {
                    if (depth >= MAX_DEPTH) {
                        throw new IOException("deeper than " + MAX_DEPTH + " directories");
                    }
                    try (java.nio.file.SecureDirectoryStream<Path> sub = dir.newDirectoryStream(name,
                            LinkOption.NOFOLLOW_LINKS)) {
                        IOException f = removeIn(sub, depth + 1);
                        if (f != null) {
                            throw f;
                        }
                    }
                    dir.deleteDirectory(name);
                } else {
                    dir.deleteFile(name);
                }
            } catch (IOException e) {
                failure = failure == null ? e : failure;
            }
        }
        return failure;
    }
}
