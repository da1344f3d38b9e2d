package io.tpmphone.benchmarks;

import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Provider;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The cost of the two ECDSA P-256 operations every appraisal does (verify the AK's quote signature, sign the result
 * JWS), with the JDK's SunEC and with Bouncy Castle, which the server already ships. Explains where the in-process
 * time goes and what switching providers would buy.
 */
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
public class EcdsaBenchmark {
    @Param({"SunEC", "BC"})
    public String provider;

    private Provider jca;
    private KeyPair keys;
    private final byte[] message = "TPMS_ATTEST of about one hundred and fifty bytes ............................"
            .getBytes(StandardCharsets.US_ASCII);
    private byte[] signature;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        jca = provider.equals("BC") ? new BouncyCastleProvider() : java.security.Security.getProvider("SunEC");
        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC", jca);
        kpg.initialize(new ECGenParameterSpec("secp256r1"));
        keys = kpg.generateKeyPair();
        signature = sign();
    }

    @Benchmark
    public byte[] sign() throws Exception {
        Signature s = Signature.getInstance("SHA256withECDSA", jca);
        s.initSign(keys.getPrivate());
        s.update(message);
        return s.sign();
    }

    @Benchmark
    public boolean verify() throws Exception {
        Signature s = Signature.getInstance("SHA256withECDSA", jca);
        s.initVerify(keys.getPublic());
        s.update(message);
        if (!s.verify(signature)) {
            throw new IllegalStateException("signature does not verify");
        }
        return true;
    }
}
