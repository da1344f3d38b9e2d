package io.tpmphone.benchmarks;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.format.OutputFormat;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * SRTP cost per 172-byte RTP packet (AES_CM_128_HMAC_SHA1_80), our stack ({@link SrtpBenchmark}: libjitsi over
 * jitsi-srtp, through JMH in forked JVMs, a row per AES implementation jitsi-srtp may use) next to the system's
 * libsrtp2 ({@code srtp_bench.c}, compiled with gcc at run time), on the same machine in one run: passes alternate
 * which one goes first. Both measure the same thing —
 * long-lived sender and receiver, rings of 2048 packets with fresh indexes processed in place, preparation and checks
 * untimed — and both protect one reference packet with a fresh context, which must come out byte for byte the same.
 * Prints nothing itself except progress to the given stream: {@code tpmphone bench srtp} prints the table.
 */
public final class SrtpBenchmarks {
    /** Batches of {@link SrtpBenchmark#RING} packets in one libsrtp2 round: 102,400 packets, 0.1–0.3 s. */
    private static final int LIBSRTP_BATCHES_PER_ROUND = 50;
    private static final int LIBSRTP_WARMUP_ROUNDS = 2;
    private static final int JMH_WARMUP_ITERATIONS = 4;

    private SrtpBenchmarks() {
    }

    /**
     * What to run.
     *
     * @param passes         alternating passes; each runs both implementations (odd passes libsrtp2 first)
     * @param jmhIterations  JMH measurement iterations of one second per operation and AES per pass (after 4 warm-up)
     * @param libsrtpRounds  libsrtp2 measured rounds per pass (after 2 warm-up rounds), each of 102,400 packets
     * @param aes            our AES implementations, each a row: {@code OpenSSL}, {@code SunJCE}, {@code BouncyCastle}
     *                       pin one in jitsi-srtp; {@code elected} leaves jitsi-srtp's per-JVM election alone
     * @param buildDirectory where the C program is compiled (e.g. the CLI's {@code target/})
     */
    public record Options(int passes, int jmhIterations, int libsrtpRounds, List<String> aes, Path buildDirectory) {
        /** The accepted {@link #aes} values. */
        public static final List<String> AES_CHOICES = List.of("OpenSSL", "SunJCE", "BouncyCastle",
                SrtpBenchmark.ELECTED);

        public Options {
            Objects.requireNonNull(buildDirectory, "buildDirectory");
            aes = List.copyOf(aes);
            if (passes < 1 || jmhIterations < 1 || libsrtpRounds < 1) {
                throw new IllegalArgumentException("passes, JMH iterations and libsrtp2 rounds must be at least 1,"
                        + " got " + passes + ", " + jmhIterations + ", " + libsrtpRounds);
            }
            if (aes.isEmpty() || !AES_CHOICES.containsAll(aes) || new HashSet<>(aes).size() != aes.size()) {
                throw new IllegalArgumentException("AES implementations must be distinct values of " + AES_CHOICES
                        + ", got " + aes);
            }
        }
    }

    /**
     * One row: an implementation's figures in nanoseconds per packet — the median over all samples of all passes, and
     * each pass's median — and the ratios to libsrtp2's (below 1: faster; 1 for libsrtp2 itself). A sample is the
     * mean over one JMH iteration (one second of rings) or over one libsrtp2 round.
     *
     * @param stack           what exactly ran, with versions
     * @param aes             the AES-CTR implementation it ran with (for ours, as each forked JVM reported it)
     * @param hmac            the HMAC-SHA1 implementation it ran with
     * @param cryptoLibraries native crypto libraries mapped into the measuring process
     */
    public record Implementation(String name, String stack, String aes, String hmac, String cryptoLibraries,
                                 double protectNanos, double unprotectNanos, double protectRatio,
                                 double unprotectRatio, List<Double> protectNanosPerPass,
                                 List<Double> unprotectNanosPerPass, int samplesPerPass, String sample) {
    }

    /**
     * The comparison: our rows (one per AES implementation asked for), then libsrtp2's.
     *
     * @param referencePacket the reference packet (index 0x1234) as both protected it, in hex
     * @param loadAverages    the 1-minute load average before and after the run (other processes share the CPU)
     */
    public record Report(String suite, int packetBytes, String cpu, int cores, boolean cpuHasAesInstructions,
                         int passes, List<Implementation> implementations, String referencePacket,
                         List<Double> loadAverages) {
    }

    /** One row's samples while the passes run. */
    private static final class Samples {
        final List<Double> protect = new ArrayList<>();
        final List<Double> unprotect = new ArrayList<>();
        final List<Double> protectPerPass = new ArrayList<>();
        final List<Double> unprotectPerPass = new ArrayList<>();
        /** For ours: the AES, HMAC and libraries each forked JVM reported, with how many JVMs reported each. */
        final Map<String, Integer> aes = new LinkedHashMap<>();
        final Map<String, Integer> hmac = new LinkedHashMap<>();
        final Map<String, Integer> libraries = new LinkedHashMap<>();

        void add(List<Double> protectSamples, List<Double> unprotectSamples) {
            protect.addAll(protectSamples);
            unprotect.addAll(unprotectSamples);
            protectPerPass.add(median(protectSamples));
            unprotectPerPass.add(median(unprotectSamples));
        }
    }

    /**
     * Compiles and runs the libsrtp2 program and the JMH benchmark in alternating passes.
     *
     * @param progress where JMH's own progress and a line per step go, or {@code null} for none
     * @throws IOException      if gcc or libsrtp2 is missing (the message says what to install) or the C program fails
     * @throws RunnerException  if JMH fails, e.g. a packet was refused or did not round-trip
     * @throws IllegalStateException if the two implementations protect the reference packet differently
     */
    public static Report run(Options options, PrintStream progress)
            throws IOException, InterruptedException, RunnerException {
        Objects.requireNonNull(options, "options");
        double loadBefore = loadAverage();
        Path directory = options.buildDirectory().resolve("srtp-bench");
        LibSrtp2Program program = LibSrtp2Program.compile(directory);
        String linkage = program.linkage();
        byte[] ourReference = SrtpPacketPath.protectReference();
        Path forkReports = directory.resolve("fork-reports");
        Files.createDirectories(forkReports);

        Map<String, Samples> ours = new LinkedHashMap<>();
        for (String aes : options.aes()) {
            ours.put(aes, new Samples());
        }
        Samples libsrtp2 = new Samples();
        LibSrtp2Program.Run lib = null;
        for (int pass = 1; pass <= options.passes(); pass++) {
            boolean libsrtpFirst = pass % 2 == 1;
            for (int step = 0; step < 2; step++) {
                if ((step == 0) == libsrtpFirst) {
                    say(progress, "libsrtp2 (" + linkage + "), pass " + pass + "/" + options.passes() + ": "
                            + options.libsrtpRounds() + " rounds of " + LIBSRTP_BATCHES_PER_ROUND * SrtpBenchmark.RING
                            + " packets");
                    lib = program.run(SrtpBenchmark.RING, LIBSRTP_BATCHES_PER_ROUND, LIBSRTP_WARMUP_ROUNDS,
                            options.libsrtpRounds());
                    if (!Arrays.equals(ourReference, lib.referencePacket())) {
                        throw new IllegalStateException("libsrtp2 and jitsi-srtp protect the reference packet"
                                + " differently, so they would not be measuring the same transform: ours "
                                + HexFormat.of().formatHex(ourReference) + ", libsrtp2 "
                                + HexFormat.of().formatHex(lib.referencePacket()));
                    }
                    libsrtp2.add(lib.protectNanos(), lib.unprotectNanos());
                } else {
                    say(progress, "jitsi-srtp (JMH, a forked JVM per operation and AES " + options.aes() + "), pass "
                            + pass + "/" + options.passes());
                    jmh(options, forkReports, ours, progress);
                }
            }
        }

        double libProtect = median(libsrtp2.protect);
        double libUnprotect = median(libsrtp2.unprotect);
        List<Implementation> rows = new ArrayList<>();
        String name = "tpmphone (jitsi-srtp " + version("jitsi-srtp") + ")";
        String stack = "libjitsi " + version("libjitsi") + " SDesTransformEngine RTP transformer over jitsi-srtp "
                + version("jitsi-srtp") + ", JDK " + Runtime.version().feature();
        for (Map.Entry<String, Samples> e : ours.entrySet()) {
            Samples s = e.getValue();
            double protect = median(s.protect);
            double unprotect = median(s.unprotect);
            rows.add(new Implementation(name, stack, aesLabel(e.getKey(), s.aes), counted(s.hmac),
                    counted(s.libraries), protect, unprotect, protect / libProtect, unprotect / libUnprotect,
                    List.copyOf(s.protectPerPass), List.copyOf(s.unprotectPerPass), options.jmhIterations(),
                    "JMH iteration: mean over 1 s of 2048-packet rings"));
        }
        rows.add(new Implementation(lib.version() + " (system)", "srtp_protect/srtp_unprotect of "
                + program.library() + ", gcc -O2", linkage, linkage,
                lib.cryptoLibraries().isEmpty() ? "none" : lib.cryptoLibraries(), libProtect, libUnprotect, 1, 1,
                List.copyOf(libsrtp2.protectPerPass), List.copyOf(libsrtp2.unprotectPerPass),
                options.libsrtpRounds(), "libsrtp2 round: mean over " + LIBSRTP_BATCHES_PER_ROUND
                        + " 2048-packet rings"));
        Cpu cpu = Cpu.read();
        return new Report(SrtpPacketPath.SUITE, SrtpPacketPath.PACKET_BYTES, cpu.model(),
                Runtime.getRuntime().availableProcessors(), cpu.aesInstructions(), options.passes(), List.copyOf(rows),
                HexFormat.of().formatHex(ourReference), List.of(loadBefore, loadAverage()));
    }

    /**
     * Runs protect and unprotect for each AES implementation, each in a forked JVM; adds their per-iteration scores
     * (ns per packet) and what each JVM reported to {@code ours}.
     */
    private static void jmh(Options o, Path forkReports, Map<String, Samples> ours, PrintStream progress)
            throws RunnerException, IOException {
        org.openjdk.jmh.runner.options.Options options = new OptionsBuilder()
                .include(SrtpBenchmark.class.getName() + "\\.(protect|unprotect)$")
                .param("aes", o.aes().toArray(new String[0]))
                .warmupIterations(JMH_WARMUP_ITERATIONS).warmupTime(TimeValue.seconds(1))
                .measurementIterations(o.jmhIterations()).measurementTime(TimeValue.seconds(1))
                .forks(1)
                .jvmArgsAppend("-Xms256m", "-Xmx256m", "-D" + SrtpBenchmark.REPORT_PROPERTY + "=" + forkReports)
                .shouldFailOnError(true).verbosity(VerboseMode.NORMAL).build();
        Collection<RunResult> results = new Runner(options, output(progress)).run();
        Map<String, List<Double>> protect = new HashMap<>();
        Map<String, List<Double>> unprotect = new HashMap<>();
        for (RunResult r : results) {
            String aes = r.getParams().getParam("aes");
            String method = r.getParams().getBenchmark().substring(r.getParams().getBenchmark().lastIndexOf('.') + 1);
            List<Double> scores = (method.equals("unprotect") ? unprotect : protect)
                    .computeIfAbsent(aes, k -> new ArrayList<>());
            for (BenchmarkResult b : r.getBenchmarkResults()) {
                for (IterationResult i : b.getIterationResults()) {
                    scores.add(i.getPrimaryResult().getScore());
                }
            }
            Path report = forkReports.resolve(method + "-" + aes + ".properties");
            Properties fork = new Properties();
            try (Reader in = Files.newBufferedReader(report, StandardCharsets.UTF_8)) {
                fork.load(in);
            }
            Files.delete(report);
            Samples s = ours.get(aes);
            String libraries = fork.getProperty("libraries", "");
            s.aes.merge(describe(fork.getProperty("aes.provider", "unknown")), 1, Integer::sum);
            s.hmac.merge(fork.getProperty("hmac.provider", "unknown") + " " + fork.getProperty("hmac.algorithm", ""),
                    1, Integer::sum);
            s.libraries.merge((libraries.isEmpty() ? "none" : libraries)
                    + ("true".equals(fork.getProperty("openssl.jni.loaded")) ? " (jitsi-srtp's OpenSSL JNI library"
                    + " loaded)" : " (jitsi-srtp's OpenSSL JNI library not loaded)"), 1, Integer::sum);
        }
        for (String aes : o.aes()) {
            if (!protect.containsKey(aes) || !unprotect.containsKey(aes)) {
                throw new RunnerException("JMH returned no figures for SrtpBenchmark.protect/unprotect, aes=" + aes);
            }
            ours.get(aes).add(protect.get(aes), unprotect.get(aes));
        }
    }

    /** The AES label of one of our rows: what the JVMs reported, and what was asked for when that differs. */
    private static String aesLabel(String asked, Map<String, Integer> reported) {
        if (asked.equals(SrtpBenchmark.ELECTED)) {
            return "elected: " + counted(reported);
        }
        String label = counted(reported);
        return reported.size() == 1 && label.startsWith(PINNED_PREFIXES.getOrDefault(asked, asked)) ? label
                : label + " (asked for " + asked + ")";
    }

    /** "a" when every JVM reported the same, else "a in 3 JVMs, b in 1". */
    private static String counted(Map<String, Integer> reported) {
        if (reported.size() == 1) {
            return reported.keySet().iterator().next();
        }
        StringBuilder s = new StringBuilder();
        reported.forEach((value, count) -> s.append(s.length() == 0 ? "" : ", ").append(value).append(" in ")
                .append(count).append(count == 1 ? " JVM" : " JVMs"));
        return s.toString();
    }

    /** How {@link #describe} names each implementation that can be pinned. */
    private static final Map<String, String> PINNED_PREFIXES = Map.of("OpenSSL", "OpenSSL", "SunJCE", "JDK SunJCE",
            "BouncyCastle", "Bouncy Castle");

    /** A short name for the JCA provider jitsi-srtp picked for AES-CTR (the libraries are reported separately). */
    private static String describe(String provider) {
        switch (provider) {
            case "JitsiOpenSslProvider":
                return "OpenSSL via JNI";
            case "SunJCE":
                return "JDK SunJCE";
            case "BC":
                return "Bouncy Castle";
            default:
                return provider;
        }
    }

    /** The 1-minute load average (Linux), or NaN. */
    private static double loadAverage() {
        try {
            return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    static double median(List<Double> values) {
        double[] sorted = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /** The Maven version of an org.jitsi artifact on the class path, from its pom.properties. */
    private static String version(String artifact) {
        try (InputStream in = SrtpBenchmarks.class.getClassLoader()
                .getResourceAsStream("META-INF/maven/org.jitsi/" + artifact + "/pom.properties")) {
            if (in == null) {
                return "(version unknown)";
            }
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "(version unknown)");
        } catch (IOException e) {
            return "(version unknown)";
        }
    }

    private record Cpu(String model, boolean aesInstructions) {
        static Cpu read() {
            String model = "unknown";
            boolean aes = false;
            try {
                for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                    int colon = line.indexOf(':');
                    if (colon < 0) {
                        continue;
                    }
                    String key = line.substring(0, colon).strip();
                    String value = line.substring(colon + 1).strip();
                    if (key.equals("model name") && model.equals("unknown")) {
                        model = value;
                    } else if (key.equals("flags")) {
                        aes |= Arrays.asList(value.split("\\s+")).contains("aes");
                    }
                }
            } catch (IOException e) {
                // Not Linux: the model stays unknown.
            }
            return new Cpu(model, aes);
        }
    }

    private static void say(PrintStream progress, String line) {
        if (progress != null) {
            progress.printf(Locale.ROOT, "# srtp: %s%n", line);
            progress.flush();
        }
    }

    private static OutputFormat output(PrintStream progress) {
        return progress == null
                ? OutputFormatFactory.createFormatInstance(new PrintStream(OutputStream.nullOutputStream()),
                        VerboseMode.SILENT)
                : OutputFormatFactory.createFormatInstance(progress, VerboseMode.NORMAL);
    }
}
