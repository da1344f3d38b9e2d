package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JWSObject;
import com.nimbusds.jose.Payload;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jose.jwk.Curve;
import io.tpmphone.server.InProcessVerifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Provider;
import java.security.Signature;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What one signed attestation result (compact JWS, ES256, RFC 7515/7518 §3.4) costs, from the claims to the
 * {@code header.payload.signature} string, four ways on one P-256 key:
 * <ul>
 *   <li>{@code server}: what the attestation server runs ({@link InProcessVerifier#sign}, i.e. its
 *       {@code ResultSigner});</li>
 *   <li>{@code bcDerToJose}: Bouncy Castle's {@code SHA256withECDSA} (DER) and a hand-written DER→r||s conversion —
 *       the server's signer before issue 13, kept here for the comparison;</li>
 *   <li>{@code bcPlain}: Bouncy Castle's {@code SHA256withPLAIN-ECDSA}, which returns r||s itself;</li>
 *   <li>{@code nimbusOnBc}: nimbus-jose-jwt's {@code ECDSASigner} on the Bouncy Castle provider (it signs DER through
 *       JCA and transcodes), with its own header and serialization.</li>
 * </ul>
 * Plain JMH ({@code java -cp … org.openjdk.jmh.Main ResultSigningBenchmark}); on a machine shared with other work,
 * where JMH's wall-clock throughput of one benchmark after another mostly measures the neighbours,
 * {@link #main} runs the four interleaved and reports CPU time per signature instead. See benchmarks/README.md.
 */
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 6, time = 1)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
public class ResultSigningBenchmark {
    private static final Provider BOUNCY_CASTLE = new BouncyCastleProvider();
    private static final Base64.Encoder B64URL = Base64.getUrlEncoder().withoutPadding();
    private static final ObjectMapper JSON = new ObjectMapper();

    private Path directory;
    private InProcessVerifier server;
    private io.tpmphone.attestation.AttestationResult result;
    private byte[] encodedHeader;
    private Signature bcDer;
    private Signature bcPlain;
    private ECDSASigner nimbus;
    private JWSHeader nimbusHeader;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        directory = Files.createTempDirectory("tpmphone-bench-jws-");
        var spec = Release.spec(directory.resolve("release"));
        server = InProcessVerifier.open(directory.resolve("server"), List.of(), Release.policy(spec));
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair keys = g.generateKeyPair();
        // A FAILED result (any claim vector allows that level), in the server's one encoding: every variant signs
        // exactly these payload bytes, encoded per signature as the server does.
        result = io.tpmphone.attestation.AttestationResult.builder().host("bench-host-0")
                .issuedAt(java.time.Instant.ofEpochSecond(1_700_000_000L))
                .expiresAt(java.time.Instant.ofEpochSecond(1_700_000_300L))
                .nonceHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
                .level(io.tpmphone.attestation.IntegrityLevel.FAILED)
                .claims(io.tpmphone.attestation.ClaimVector.empty()).akId("000b" + "11".repeat(32))
                .pcrDigestHex("22".repeat(32)).policyVersion(1).build();
        encodedHeader = B64URL.encode(("{\"alg\":\"ES256\",\"kid\":\"00112233445566778899aabbccddeeff\","
                + "\"typ\":\"ear+jwt\"}").getBytes(StandardCharsets.UTF_8));
        bcDer = Signature.getInstance("SHA256withECDSA", BOUNCY_CASTLE);
        bcDer.initSign(keys.getPrivate());
        bcPlain = Signature.getInstance("SHA256withPLAIN-ECDSA", BOUNCY_CASTLE);
        bcPlain.initSign(keys.getPrivate());
        nimbus = new ECDSASigner((ECPrivateKey) keys.getPrivate(), Curve.P_256);
        nimbus.getJCAContext().setProvider(BOUNCY_CASTLE);
        nimbusHeader = new JWSHeader.Builder(JWSAlgorithm.ES256).keyID("00112233445566778899aabbccddeeff")
                .type(new JOSEObjectType("ear+jwt")).build();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        server.close();
        try (var files = Files.walk(directory)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @Benchmark
    public String server() throws Exception {
        return server.sign(result);
    }

    @Benchmark
    public String bcDerToJose() throws Exception {
        byte[] input = signingInput();
        bcDer.update(input);
        return compact(input, derToJose(bcDer.sign()));
    }

    @Benchmark
    public String bcPlain() throws Exception {
        byte[] input = signingInput();
        bcPlain.update(input);
        return compact(input, bcPlain.sign());
    }

    @Benchmark
    public String nimbusOnBc() throws Exception {
        JWSObject jws = new JWSObject(nimbusHeader, new Payload(result.encode()));
        jws.sign(nimbus);
        return jws.serialize();
    }

    private byte[] signingInput() throws Exception {
        byte[] payload = B64URL.encode(result.encode());
        byte[] input = Arrays.copyOf(encodedHeader, encodedHeader.length + 1 + payload.length);
        input[encodedHeader.length] = '.';
        System.arraycopy(payload, 0, input, encodedHeader.length + 1, payload.length);
        return input;
    }

    private static String compact(byte[] input, byte[] rs) {
        return new String(input, StandardCharsets.US_ASCII) + '.' + B64URL.encodeToString(rs);
    }

    /** One way of signing, for {@link #main}. */
    @FunctionalInterface
    private interface Way {
        String sign() throws Exception;
    }

    /**
     * The four ways interleaved in {@code ROUNDS} rounds (default 12, the order rotating each round) of {@code N}
     * signatures each (default 1000), after 3000 of warm-up each; prints the median, min and max of the per-round
     * CPU time per signature (this thread's CPU time: time the scheduler gives to other processes is not counted).
     */
    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 12;
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 1000;
        ResultSigningBenchmark b = new ResultSigningBenchmark();
        b.setUp();
        try {
            Map<String, Way> ways = new LinkedHashMap<>();
            ways.put("server", b::server);
            ways.put("bcDerToJose", b::bcDerToJose);
            ways.put("bcPlain", b::bcPlain);
            ways.put("nimbusOnBc", b::nimbusOnBc);
            java.lang.management.ThreadMXBean cpu = java.lang.management.ManagementFactory.getThreadMXBean();
            for (Way w : ways.values()) {
                for (int i = 0; i < 3000; i++) {
                    w.sign();
                }
            }
            Map<String, List<Double>> micros = new LinkedHashMap<>();
            List<String> order = new java.util.ArrayList<>(ways.keySet());
            for (int r = 0; r < rounds; r++) {
                java.util.Collections.rotate(order, 1);
                for (String name : order) {
                    Way w = ways.get(name);
                    long t0 = cpu.getCurrentThreadCpuTime();
                    for (int i = 0; i < n; i++) {
                        w.sign();
                    }
                    micros.computeIfAbsent(name, k -> new java.util.ArrayList<>())
                            .add((cpu.getCurrentThreadCpuTime() - t0) / 1e3 / n);
                }
            }
            // This main is a command (run by hand, like `tpmphone bench`): its figures are its output.
            java.io.PrintStream out = System.out;
            out.printf(java.util.Locale.ROOT, "CPU us per signed result, %d interleaved rounds of %d:%n", rounds, n);
            for (Map.Entry<String, List<Double>> e : micros.entrySet()) {
                List<Double> v = e.getValue().stream().sorted().toList();
                out.printf(java.util.Locale.ROOT, "  %-12s median %6.1f  min %6.1f  max %6.1f%n", e.getKey(),
                        v.get(v.size() / 2), v.get(0), v.get(v.size() - 1));
            }
        } finally {
            b.tearDown();
        }
    }

    /** DER SEQUENCE { INTEGER r, INTEGER s } to the 64-byte r || s of ES256: the conversion the server dropped. */
    static byte[] derToJose(byte[] der) throws GeneralSecurityException {
        if (der.length < 8 || der[0] != 0x30 || (der[1] & 0x80) != 0 || der[1] != der.length - 2) {
            throw new GeneralSecurityException("not a DER ECDSA signature");
        }
        int offset = 2;
        byte[] out = new byte[64];
        for (int part = 0; part < 2; part++) {
            if (der[offset] != 0x02) {
                throw new GeneralSecurityException("not a DER ECDSA signature");
            }
            int len = der[offset + 1];
            if (len <= 0 || offset + 2 + len > der.length) {
                throw new GeneralSecurityException("not a DER ECDSA signature");
            }
            byte[] v = Arrays.copyOfRange(der, offset + 2, offset + 2 + len);
            int start = 0;
            while (v.length - start > 32 && v[start] == 0) {
                start++;
            }
            if (v.length - start > 32) {
                throw new GeneralSecurityException("ECDSA component longer than 32 bytes");
            }
            System.arraycopy(v, start, out, part * 32 + 32 - (v.length - start), v.length - start);
            offset += 2 + len;
        }
        return out;
    }
}
