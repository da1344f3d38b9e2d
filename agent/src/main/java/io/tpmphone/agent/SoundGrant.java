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
 * The isolated softphone's access to the host's sound server, granted only while it has a call: the first call's
 * {@link #open} loads a PulseAudio {@code module-native-protocol-unix} whose socket is {@code DIRECTORY/native}, the
 * directory bind-mounted at {@code sound/} in the child's view (root and the child's group only, mode 0750); the last
 * call's {@link #close} unloads it, which removes the socket and ends the child's connections. Between calls the
 * child has no socket into the sound server at all. The module takes anonymous clients: whoever reaches the socket
 * (root and the child, through the directory's mode) controls the sound server while it exists — the threat model
 * says so. The agent talks to the sound server with {@code pactl -s ADMIN}, as a client the server accepts (same
 * user, or its cookie in {@code PULSE_COOKIE}). Thread-safe.
 */
public final class SoundGrant implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SoundGrant.class);
    /** The socket's file name in the granted directory (the child connects to {@code sound/native}). */
    public static final String SOCKET = "native";
    /** Calls holding the grant at once, at most; more are refused (the phone's own bound is 32 calls). */
    static final int MAX_CALLS = 32;
    private static final Duration PACTL_TIMEOUT = Duration.ofSeconds(10);

    private final String adminServer;
    private final Path directory;
    private final Set<String> calls = new LinkedHashSet<>();
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
        this.adminServer = Objects.requireNonNull(adminServer, "adminServer");
        this.directory = Objects.requireNonNull(directory, "directory");
        if (!adminServer.matches("unix:/[A-Za-z0-9._/+-]{1,200}")) {
            throw new IllegalArgumentException("the sound server must be unix:/PATH (its native-protocol socket), got "
                    + adminServer);
        }
    }

    /** The directory the child sees at {@code sound/}. */
    public Path directory() {
        return directory;
    }

    /** Grants the socket for {@code callId} (the first call loads the module); idempotent per call. */
    public synchronized void open(String callId) throws IOException {
        Objects.requireNonNull(callId, "callId");
        if (calls.contains(callId)) {
            return;
        }
        if (calls.size() >= MAX_CALLS) {
            throw new IllegalStateException("the sound server is granted for " + MAX_CALLS + " calls already");
        }
        if (module.isEmpty()) {
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
        calls.add(callId);
    }

    /** Ends {@code callId}'s grant (the last call unloads the module and its socket); unknown calls are ignored. */
    public synchronized void close(String callId) {
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
        unload();
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
     * Makes {@code dir} anew and empty for a launch: owned by root with the child's group, mode 0750 (the child may
     * enter and connect, not write); its parent must be the agent's private state.
     */
    static void prepare(Path dir, MeasuredLauncher.ChildUser user) throws IOException {
        if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            try (var s = Files.walk(dir)) {
                for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
                    Files.delete(p);
                }
            }
        }
        Files.createDirectories(dir.getParent());
        Files.createDirectory(dir);
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-x---"));
        if (user != null) {
            Files.setAttribute(dir, "unix:gid", user.gid(), LinkOption.NOFOLLOW_LINKS);
        }
    }
}
