package io.tpmphone.benchmarks;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * An attestation server as operators run it, {@code tpmphone server} in a JVM of its own, so that the benchmark can
 * read the server's own CPU time ({@code /proc/PID/stat}) apart from the load generator's. Started on a free
 * loopback port; ready when it prints its address.
 */
final class ServerProcess implements AutoCloseable {
    /** The kernel's clock ticks per second for {@code /proc/PID/stat} (USER_HZ: 100 on every Linux we run). */
    private static final double USER_HZ = 100;

    private final Process process;
    private final URI uri;
    private final X509Certificate certificate;

    private ServerProcess(Process process, URI uri, X509Certificate certificate) {
        this.process = process;
        this.uri = uri;
        this.certificate = certificate;
    }

    /**
     * Starts {@code tpmphone server} with this JVM's class path, {@code state} as its state directory and
     * {@code arguments} after the state, listen address and admin token file; its output goes to
     * {@code state/../NAME.log}.
     */
    static ServerProcess start(String name, Path state, Path adminTokenFile, List<String> arguments,
                               Duration timeout) throws IOException, InterruptedException {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-Xmx1g"));
        // e.g. a flight recording of the server: -Dtpmphone.bench.serverJvmOptions=-XX:StartFlightRecording=...
        String extra = System.getProperty("tpmphone.bench.serverJvmOptions", "").replace("{name}", name);
        if (!extra.isBlank()) {
            command.addAll(List.of(extra.trim().split("\\s+")));
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.tpmphone.cli.Main",
                "server", "--state", state.toString(), "--listen", "127.0.0.1:" + port, "--admin-token-file",
                adminTokenFile.toString()));
        command.addAll(arguments);
        Path log = state.resolveSibling(name + ".log");
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        CompletableFuture<URI> ready = new CompletableFuture<>();
        Thread pump = new Thread(() -> copyUntilReady(p.getInputStream(), log, ready), name + "-output");
        pump.setDaemon(true);
        pump.start();
        try {
            URI uri = ready.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            X509Certificate cert;
            try (InputStream in = Files.newInputStream(state.resolve("keys").resolve("tls-cert.pem"))) {
                cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
            }
            return new ServerProcess(p, uri, cert);
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException
                 | java.security.cert.CertificateException e) {
            p.destroyForcibly();
            List<String> lines = Files.exists(log) ? Files.readAllLines(log, StandardCharsets.UTF_8) : List.of();
            throw new IOException("the server " + name + " did not start within " + timeout.toSeconds() + " s ("
                    + e + "); the end of its output:\n  " + String.join("\n  ", lines.subList(Math.max(0,
                    lines.size() - 15), lines.size())), e);
        }
    }

    /** Copies the server's output to {@code log}; completes {@code ready} with its address when it prints it. */
    private static void copyUntilReady(InputStream in, Path log, CompletableFuture<URI> ready) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
             java.io.Writer w = Files.newBufferedWriter(log, StandardCharsets.UTF_8)) {
            String line;
            while ((line = r.readLine()) != null) {
                w.write(line);
                w.write('\n');
                w.flush();
                int at = line.indexOf("attestation server on https://");
                if (at >= 0 && !ready.isDone()) {
                    String rest = line.substring(at + "attestation server on ".length());
                    ready.complete(URI.create(rest.substring(0, rest.indexOf(' '))));
                }
            }
            ready.completeExceptionally(new IOException("the server exited"));
        } catch (IOException | RuntimeException e) {
            ready.completeExceptionally(e);
        }
    }

    URI uri() {
        return uri;
    }

    X509Certificate certificate() {
        return certificate;
    }

    /** The server process's id, for {@link ThreadCpu}. */
    long pid() {
        return process.pid();
    }

    /** The server process's CPU time so far (user and system, all its threads), in seconds. */
    double cpuSeconds() throws IOException {
        String stat = Files.readString(Path.of("/proc", Long.toString(process.pid()), "stat"));
        // Fields after the command name (in parentheses, which may hold spaces): state is field 3, utime 14, stime 15.
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / USER_HZ;
    }

    /**
     * The CPU time so far (user and system) of the server's thread whose name starts with {@code namePrefix}, in
     * seconds ({@code /proc/PID/task/TID/comm} holds the first 15 characters of a thread's name), or -1 if none.
     */
    double threadCpuSeconds(String namePrefix) throws IOException {
        String prefix = namePrefix.length() > 15 ? namePrefix.substring(0, 15) : namePrefix;
        try (java.util.stream.Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(process.pid()),
                "task"))) {
            for (Path task : (Iterable<Path>) tasks::iterator) {
                String comm;
                String stat;
                try {
                    comm = Files.readString(task.resolve("comm")).strip();
                    stat = Files.readString(task.resolve("stat"));
                } catch (IOException ended) {
                    continue; // the thread ended while listed
                }
                if (comm.startsWith(prefix)) {
                    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                    return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / USER_HZ;
                }
            }
        }
        return -1;
    }

    /**
     * The server's live heap in bytes, measured by {@code jcmd PID GC.class_histogram} (which runs a full GC first:
     * call it outside a measured window), or -1 when that cannot be done (no {@code jcmd}: a JRE).
     */
    long liveHeapBytes() {
        Path jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
        if (!Files.isExecutable(jcmd)) {
            return -1;
        }
        Process p = null;
        try {
            // the histogram goes to a file, so that a jcmd stuck on a server in a GC storm is bounded by the wait below
            // (reading its output first would block until jcmd ends, however long that is)
            Path out = Files.createTempFile("tpmphone-histogram-", ".txt");
            try {
                p = new ProcessBuilder(jcmd.toString(), Long.toString(process.pid()), "GC.class_histogram")
                        .redirectErrorStream(true).redirectOutput(out.toFile()).start();
                if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                    return -1;
                }
                String last = null;
                for (String line : Files.readAllLines(out, StandardCharsets.UTF_8)) {
                    if (line.startsWith("Total")) {
                        last = line;
                    }
                }
                if (last == null) {
                    return -1;
                }
                String[] f = last.trim().split("\\s+"); // "Total <instances> <bytes>"
                return Long.parseLong(f[2]);
            } finally {
                Files.deleteIfExists(out);
            }
        } catch (IOException | NumberFormatException | ArrayIndexOutOfBoundsException e) {
            return -1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        } finally {
            if (p != null && p.isAlive()) {
                p.destroyForcibly();
            }
        }
    }

    /** SIGTERM (the server closes cleanly: a final audit checkpoint), then SIGKILL after 60 s. */
    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
