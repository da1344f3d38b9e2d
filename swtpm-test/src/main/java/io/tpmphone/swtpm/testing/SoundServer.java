package io.tpmphone.swtpm.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A private, headless PulseAudio server for tests: started with no configuration ({@code pulseaudio -n}), its native
 * protocol on a socket in a directory of the test's, anonymous clients allowed (only processes that reach the
 * directory can connect). Tests make null sinks as speakers ({@link #speaker}), virtual microphones that play a PCM
 * loop ({@link #microphone}: a null sink fed by {@code pacat}, its monitor remapped as a source, since libjitsi hides
 * monitor sources), and record what a speaker played ({@link #record}). Fails — never skips — when PulseAudio or its
 * utilities are missing. Not thread-safe; {@link #close} ends every process it started.
 */
public final class SoundServer implements AutoCloseable {
    /** The Debian packages this needs ({@code ./tpmphone test} installs them). */
    public static final String PACKAGES = "pulseaudio pulseaudio-utils";
    private static final Duration START_TIMEOUT = Duration.ofSeconds(15);

    private final Path directory;
    private final Process server;
    private final List<Process> feeders = new ArrayList<>();
    private final Path log;

    private SoundServer(Path directory, Process server, Path log) {
        this.directory = directory;
        this.server = server;
        this.log = log;
    }

    /** Starts a server whose socket is {@code directory/native}; returns once it answers {@code pactl info}. */
    public static SoundServer start(Path directory) throws IOException {
        return start(directory, null);
    }

    /**
     * As {@link #start(Path)}, the server running as {@code user} (a desktop user's server; null: as ourselves), by
     * {@code setpriv}: {@code directory}, its home and runtime directories are made that user's, and the directories
     * above it must let the user enter.
     */
    public static SoundServer start(Path directory, String user) throws IOException {
        Objects.requireNonNull(directory, "directory");
        for (String tool : List.of("pulseaudio", "pactl", "pacat")) {
            if (!Files.isExecutable(Path.of("/usr/bin", tool))) {
                throw new IllegalStateException("/usr/bin/" + tool + " is missing: install " + PACKAGES
                        + " (./tpmphone test does)");
            }
        }
        Files.createDirectories(directory.resolve("home"));
        Files.createDirectories(directory.resolve("runtime"));
        Path log = directory.resolve("pulseaudio.log");
        List<String> command = new ArrayList<>();
        if (user != null) {
            for (Path d : List.of(directory, directory.resolve("home"), directory.resolve("runtime"))) {
                Files.setPosixFilePermissions(d, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
                Files.setOwner(d, d.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(user));
            }
            command.addAll(List.of("setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"));
        }
        command.addAll(List.of("pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
                "--use-pid-file=no", "--log-target=stderr",
                "-L", "module-native-protocol-unix socket=" + directory.resolve("native") + " auth-anonymous=1"));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
        environment(pb, directory);
        Process p = pb.start();
        SoundServer s = new SoundServer(directory, p, log);
        try {
            Await.until("the test sound server to answer on " + s.address(), START_TIMEOUT,
                    () -> p.isAlive() && s.pactl("info").contains("Server Name"),
                    () -> "alive " + p.isAlive() + ", its log: " + s.logTail());
        } catch (AssertionError e) {
            s.close();
            throw e;
        }
        return s;
    }

    private static void environment(ProcessBuilder pb, Path directory) {
        pb.environment().put("HOME", directory.resolve("home").toString());
        pb.environment().put("XDG_RUNTIME_DIR", directory.resolve("runtime").toString());
        pb.environment().remove("PULSE_SERVER");
    }

    /** The server's address for libpulse and the PulseAudio utilities: {@code unix:DIR/native}. */
    public String address() {
        return "unix:" + directory.resolve("native");
    }

    /** The server's process id. */
    public long pid() {
        return server.pid();
    }

    /** The last lines of the server's log, for failure messages. */
    public String logTail() {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** Runs {@code pactl} against this server and returns its output; a non-zero exit is an {@link IOException}. */
    public String pactl(String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("pactl", "-s", address()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        environment(pb, directory);
        Process p = pb.start();
        CompletableFuture<byte[]> out = CompletableFuture.supplyAsync(() -> readAll(p.getInputStream()));
        try {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("pactl " + String.join(" ", args) + " did not finish in 10 s");
            }
            String text = new String(out.get(5, TimeUnit.SECONDS), StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IOException("pactl " + String.join(" ", args) + " failed (" + p.exitValue() + "): " + text);
            }
            return text;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException("reading pactl's output failed", e);
        }
    }

    private static byte[] readAll(InputStream in) {
        try {
            return in.readAllBytes();
        } catch (IOException e) {
            return new byte[0];
        }
    }

    /** A null sink named {@code name}: a speaker whose sound {@link #record} reads from its monitor. */
    public void speaker(String name) throws IOException {
        pactl("load-module", "module-null-sink", "sink_name=" + name);
    }

    /**
     * A microphone named {@code name} that plays {@code pcm} (16-bit, 8 kHz mono) in a loop: a null sink
     * {@code NAME_feed} fed by {@code pacat}, and its monitor remapped as the source {@code name}.
     */
    public void microphone(String name, short[] pcm) throws IOException {
        if (pcm.length == 0) {
            throw new IllegalArgumentException("a microphone needs at least one sample");
        }
        String feed = name + "_feed";
        pactl("load-module", "module-null-sink", "sink_name=" + feed);
        pactl("load-module", "module-remap-source", "master=" + feed + ".monitor", "source_name=" + name);
        ProcessBuilder pb = new ProcessBuilder("pacat", "--playback", "-s", address(), "-d", feed,
                "--format=s16le", "--rate=8000", "--channels=1", "--raw")
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD);
        environment(pb, directory);
        Process p = pb.start();
        feeders.add(p);
        byte[] bytes = new byte[pcm.length * 2];
        for (int i = 0; i < pcm.length; i++) {
            bytes[2 * i] = (byte) pcm[i];
            bytes[2 * i + 1] = (byte) (pcm[i] >> 8);
        }
        Thread t = new Thread(() -> {
            try (OutputStream out = p.getOutputStream()) {
                while (p.isAlive()) {
                    out.write(bytes); // pacat reads at the sink's pace: the pipe paces this loop
                }
            } catch (IOException ended) {
                // pacat was stopped
            }
        }, "sound-server-microphone-" + name);
        t.setDaemon(true);
        t.start();
    }

    /**
     * Records {@code seconds} of what was played to speaker {@code sink} (its monitor), as 16-bit 8 kHz mono
     * samples; fails if the recording does not arrive within {@code seconds} + 10 s.
     */
    public short[] record(String sink, double seconds) throws IOException {
        int bytes = (int) Math.round(seconds * 8000) * 2;
        ProcessBuilder pb = new ProcessBuilder("pacat", "--record", "-s", address(), "-d", sink + ".monitor",
                "--format=s16le", "--rate=8000", "--channels=1", "--raw")
                .redirectError(ProcessBuilder.Redirect.DISCARD);
        environment(pb, directory);
        Process p = pb.start();
        try {
            CompletableFuture<byte[]> read = CompletableFuture.supplyAsync(() -> {
                try {
                    return p.getInputStream().readNBytes(bytes);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            byte[] b = read.get((long) (seconds * 1000) + 10_000, TimeUnit.MILLISECONDS);
            short[] s = new short[b.length / 2];
            for (int i = 0; i < s.length; i++) {
                s[i] = (short) ((b[2 * i] & 0xff) | (b[2 * i + 1] << 8));
            }
            return s;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException("recording " + sink + ".monitor failed: " + e, e);
        } finally {
            p.destroyForcibly();
        }
    }

    @Override
    public void close() {
        for (Process p : feeders) {
            p.destroyForcibly();
        }
        server.destroy();
        try {
            if (!server.waitFor(5, TimeUnit.SECONDS)) {
                server.destroyForcibly();
                server.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            server.destroyForcibly();
        }
    }
}
