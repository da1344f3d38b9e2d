package io.tpmphone.benchmarks;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code srtp_bench.c} (a resource next to this class) compiled with gcc against the system's libsrtp2 and run: SRTP
 * protect/unprotect per 172-byte packet measured the way {@link SrtpBenchmark} measures our stack. Not thread-safe.
 */
final class LibSrtp2Program {
    private static final String SOURCE = "srtp_bench.c";
    private static final String INSTALL = "apt-get install -y gcc libsrtp2-dev (./tpmphone bench srtp installs both"
            + " when run as root)";

    private final Path binary;
    private final String library;
    private final String linkage;

    private LibSrtp2Program(Path binary) throws IOException, InterruptedException {
        this.binary = binary;
        String resolved = null;
        for (String line : exec(List.of("ldd", binary.toString()), binary.getParent(), Duration.ofSeconds(30))
                .output().split("\n")) {
            String[] parts = line.strip().split("\\s+");
            if (parts.length >= 3 && parts[0].startsWith("libsrtp2") && parts[1].equals("=>")) {
                resolved = parts[2];
            }
        }
        this.library = resolved != null ? resolved : "libsrtp2";
        this.linkage = resolved != null ? linkage(resolved, binary.getParent())
                : "unknown (ldd does not show which libsrtp2 the program uses)";
    }

    /** One run's figures and facts, parsed from the program's key=value lines. */
    record Run(String version, List<Double> protectNanos, List<Double> unprotectNanos, byte[] referencePacket,
               String cryptoLibraries) {
    }

    /**
     * Writes the C source into {@code directory} and compiles it there (every time: gcc takes well under a second and
     * the binary then always matches the source and the installed libsrtp2).
     *
     * @throws IOException if gcc or libsrtp2's headers or library are missing (the message says what to install), or
     *                     the compilation fails otherwise
     */
    static LibSrtp2Program compile(Path directory) throws IOException, InterruptedException {
        Files.createDirectories(directory);
        Path source = directory.resolve(SOURCE);
        try (InputStream in = LibSrtp2Program.class.getResourceAsStream(SOURCE)) {
            if (in == null) {
                throw new IOException(SOURCE + " is missing from the benchmarks jar: rebuild (mvn install)");
            }
            Files.write(source, in.readAllBytes());
        }
        Path binary = directory.resolve("srtp_bench");
        Files.deleteIfExists(binary);
        Result gcc;
        try {
            gcc = exec(List.of("gcc", "-O2", "-std=c11", "-Wall", "-o", binary.toString(), source.toString(),
                    "-lsrtp2"), directory, Duration.ofMinutes(2));
        } catch (IOException e) {
            throw new IOException("cannot run gcc to build the libsrtp2 benchmark: " + INSTALL, e);
        }
        if (gcc.exitCode() != 0) {
            if (gcc.output().contains("srtp2/srtp.h") || gcc.output().contains("-lsrtp2")) {
                throw new IOException("libsrtp2's development files are missing (" + gcc.output().strip() + "): "
                        + INSTALL);
            }
            throw new IOException("gcc failed to build " + source + " (exit " + gcc.exitCode() + "):\n"
                    + gcc.output().strip());
        }
        return new LibSrtp2Program(binary);
    }

    /** The libsrtp2 shared object the program runs with, as {@code ldd} resolves it. */
    String library() {
        return library;
    }

    /**
     * Which crypto library the system's libsrtp2 is linked with ({@code ldd} on the program, then on the libsrtp2
     * shared object it resolves to): "NSS (libsrtp2.so.1 links libnss3.so)", "OpenSSL (... links libcrypto.so.3)",
     * or libsrtp2's own AES and HMAC-SHA1 when it links neither.
     */
    String linkage() {
        return linkage;
    }

    private static String linkage(String library, Path workDirectory) throws IOException, InterruptedException {
        String dependencies = exec(List.of("ldd", library), workDirectory, Duration.ofSeconds(30)).output();
        String name = Path.of(library).getFileName().toString();
        for (String[] backend : new String[][] {{"libcrypto", "OpenSSL"}, {"libnss3", "NSS"},
                {"libgcrypt", "libgcrypt"}}) {
            for (String line : dependencies.split("\n")) {
                String dependency = line.strip().split("\\s+")[0];
                if (dependency.startsWith(backend[0])) {
                    return backend[1] + " (" + name + " links " + dependency + ")";
                }
            }
        }
        return "libsrtp2's built-in AES and HMAC-SHA1 (" + name + " links no crypto library)";
    }

    /**
     * Runs the program: {@code warmupRounds} unrecorded rounds, then {@code rounds}, each of {@code batches} batches
     * of {@code ring} packets.
     *
     * @throws IOException if the program fails (an SRTP call did not return ok, a packet did not round-trip)
     */
    Run run(int ring, int batches, int warmupRounds, int rounds) throws IOException, InterruptedException {
        Result r = exec(List.of(binary.toString(), Integer.toString(ring), Integer.toString(batches),
                Integer.toString(warmupRounds), Integer.toString(rounds)), binary.getParent(), Duration.ofMinutes(15));
        if (r.exitCode() != 0) {
            throw new IOException(binary + " failed (exit " + r.exitCode() + "):\n" + r.output().strip());
        }
        Map<String, String> values = new HashMap<>();
        for (String line : r.output().split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0) {
                values.put(line.substring(0, eq), line.substring(eq + 1).strip());
            }
        }
        return new Run(required(values, "libsrtp_version"), doubles(required(values, "protect_ns_rounds")),
                doubles(required(values, "unprotect_ns_rounds")), hex(required(values, "reference_srtp")),
                values.getOrDefault("crypto_libraries", ""));
    }

    private static String required(Map<String, String> values, String key) throws IOException {
        String value = values.get(key);
        if (value == null) {
            throw new IOException("srtp_bench printed no " + key + " line");
        }
        return value;
    }

    private static List<Double> doubles(String csv) {
        List<Double> result = new ArrayList<>();
        for (String v : csv.split(",")) {
            result.add(Double.parseDouble(v));
        }
        return List.copyOf(result);
    }

    private static byte[] hex(String hex) {
        byte[] bytes = new byte[hex.length() / 2];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return bytes;
    }

    private record Result(int exitCode, String output) {
    }

    /**
     * Runs a command in {@code directory} with stdout and stderr into one temporary file there (no pipe to drain),
     * killing it after {@code timeout}.
     */
    private static Result exec(List<String> command, Path directory, Duration timeout)
            throws IOException, InterruptedException {
        Path output = Files.createTempFile(directory, "exec", ".out");
        try {
            Process p = new ProcessBuilder(command).directory(directory.toFile()).redirectErrorStream(true)
                    .redirectOutput(output.toFile()).start();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", command) + " did not finish within " + timeout);
            }
            return new Result(p.exitValue(), Files.readString(output, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(output);
        }
    }
}
