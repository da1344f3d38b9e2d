package io.tpmphone.benchmarks;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import org.jitsi.srtp.crypto.Aes;
import org.jitsi.srtp.crypto.HmacSha1;
import org.jitsi.srtp.crypto.JitsiOpenSslProvider;
import org.jitsi.utils.logging2.LoggerImpl;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * SRTP protect (encrypt + HMAC-SHA1-80 tag) and unprotect (replay check, tag check, decrypt) of one 172-byte RTP packet
 * with AES_CM_128_HMAC_SHA1_80, through the transformers our media path uses ({@link SrtpPacketPath}: libjitsi's SDES
 * transform engine over jitsi-srtp). Scores are nanoseconds per packet.
 *
 * <p>Sequence numbers and the replay window: a receiver accepts each packet index once, and jitsi-srtp's sender also
 * refuses to protect an index twice, so a packet cannot simply be processed over and over. Here the sender and the
 * receiver live for the whole trial, as in a call, and each invocation processes a ring of {@value #RING} packets in
 * place, prepared untimed in a {@code Level.Invocation} setup with the next, never used, packet indexes (plaintext for
 * {@code protect}; plaintext protected by the sender for {@code unprotect}). One invocation is a millisecond or more,
 * which {@code Level.Invocation} needs to time accurately, and {@code @OperationsPerInvocation} makes the score per
 * packet. An untimed teardown checks every packet of every invocation (protected: 10 bytes longer, payload no longer
 * in clear; unprotected: exactly the plaintext again), and before anything is timed a round trip and the refusal of a
 * packet with a flipped tag bit are checked. libsrtp2 is measured the same way by {@code srtp_bench.c}.
 *
 * <p>The AES implementation (the {@code aes} parameter): at the first cipher a JVM asks for, jitsi-srtp times one
 * 1250-byte encryption with OpenSSL (its own JNI library over the system's libcrypto), SunJCE and Bouncy Castle and
 * keeps the fastest for the JVM's lifetime. That single timing is noisy: on one machine it elects OpenSSL in one JVM
 * and SunJCE in the next, so the media path runs with either. {@code OpenSSL} and {@code SunJCE} pin one
 * (jitsi-srtp's {@link Aes#setFactoryClassName}, set before the first cipher is made; a pinned implementation that
 * does not work falls back to the election) so both possible outcomes are measured; {@value #ELECTED} leaves the
 * election alone.
 *
 * <p>{@code tpmphone bench srtp} runs this in alternation with {@code srtp_bench.c} and prints both (see
 * benchmarks/README.md). With {@value #REPORT_PROPERTY} set to a directory, each forked JVM writes there which AES
 * and HMAC implementation its contexts got.
 */
@Fork(value = 1, jvmArgsAppend = {"-Xms256m", "-Xmx256m"})
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 8, time = 1)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class SrtpBenchmark {
    /** Packets per invocation: 2048 × 182 bytes stay in a core's L2 cache. */
    static final int RING = 2048;
    /** System property: a directory where each forked JVM writes the AES and HMAC implementations it used. */
    static final String REPORT_PROPERTY = "tpmphone.bench.srtp.reportDirectory";
    /** {@code aes} value that leaves jitsi-srtp's own election of the AES implementation alone. */
    static final String ELECTED = "elected";

    /** For {@code protect}: a ring of plaintext packets with fresh indexes before every invocation. */
    @State(Scope.Thread)
    public static class Plaintext {
        /** AES-CTR: {@code OpenSSL}, {@code SunJCE}, {@code BouncyCastle} or {@value SrtpBenchmark#ELECTED}. */
        @Param({"OpenSSL", "SunJCE"})
        public String aes;
        SrtpPacketPath path;

        @Setup(Level.Trial)
        public void open(BenchmarkParams params) throws IOException {
            path = SrtpBenchmark.open(aes, params);
        }

        @Setup(Level.Invocation)
        public void next() {
            path.fillPlaintext();
        }

        @TearDown(Level.Invocation)
        public void check() {
            path.checkProtected();
        }

        @TearDown(Level.Trial)
        public void close() {
            path.close();
        }
    }

    /** For {@code unprotect}: a ring of packets with fresh indexes, protected by the sender before every invocation. */
    @State(Scope.Thread)
    public static class Protected {
        /** AES-CTR: {@code OpenSSL}, {@code SunJCE}, {@code BouncyCastle} or {@value SrtpBenchmark#ELECTED}. */
        @Param({"OpenSSL", "SunJCE"})
        public String aes;
        SrtpPacketPath path;

        @Setup(Level.Trial)
        public void open(BenchmarkParams params) throws IOException {
            path = SrtpBenchmark.open(aes, params);
        }

        @Setup(Level.Invocation)
        public void next() {
            path.fillPlaintext();
            path.protectRing();
        }

        @TearDown(Level.Invocation)
        public void check() {
            path.checkPlaintext();
        }

        @TearDown(Level.Trial)
        public void close() {
            path.close();
        }
    }

    @Benchmark
    @OperationsPerInvocation(RING)
    public int protect(Plaintext state) {
        return state.path.protectRing();
    }

    @Benchmark
    @OperationsPerInvocation(RING)
    public int unprotect(Protected state) {
        return state.path.unprotectRing();
    }

    /**
     * Pins the AES implementation (unless {@value #ELECTED}) and opens a path whose round trip and tamper refusal were
     * checked once, untimed; writes the report if asked to.
     */
    static SrtpPacketPath open(String aes, BenchmarkParams params) throws IOException {
        if (!ELECTED.equals(aes)) {
            // Before the JVM's first cipher: jitsi-srtp elects once per JVM and keeps its choice.
            Aes.setFactoryClassName(aes);
        }
        SrtpPacketPath path = new SrtpPacketPath(RING);
        path.fillPlaintext();
        path.protectRing();
        path.checkProtected();
        path.unprotectRing();
        path.checkPlaintext();
        if (!path.refusesTamperedTag()) {
            path.close();
            throw new IllegalStateException("SRTP unprotect accepted a packet with a flipped tag bit");
        }
        String directory = System.getProperty(REPORT_PROPERTY);
        if (directory != null) {
            String method = params.getBenchmark().substring(params.getBenchmark().lastIndexOf('.') + 1);
            writeReport(Path.of(directory).resolve(method + "-" + aes + ".properties"));
        }
        return path;
    }

    /**
     * Which AES-CTR and HMAC-SHA1 implementations jitsi-srtp gives its contexts in this JVM (it chooses once per JVM,
     * so a new cipher from {@link Aes#createCipher} comes from the same provider the contexts got), and which native
     * crypto libraries are mapped into the process.
     */
    private static void writeReport(Path file) throws IOException {
        Cipher aes = Aes.createCipher("AES/CTR/NoPadding");
        Mac hmac = HmacSha1.createMac(new LoggerImpl(SrtpBenchmark.class.getName()));
        Properties p = new Properties();
        p.setProperty("aes.provider", aes.getProvider().getName());
        p.setProperty("aes.algorithm", aes.getAlgorithm());
        p.setProperty("hmac.provider", hmac.getProvider().getName());
        p.setProperty("hmac.algorithm", hmac.getAlgorithm());
        // jitsi-srtp's JNI library is extracted to an anonymous temporary file: only libcrypto shows by name.
        p.setProperty("openssl.jni.loaded", Boolean.toString(JitsiOpenSslProvider.isLoaded()));
        p.setProperty("libraries", String.join(" ", NativeLibraries.mapped("libcrypto", "libssl")));
        try (Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            p.store(w, "jitsi-srtp's AES and HMAC in the forked benchmark JVM");
        }
    }
}
