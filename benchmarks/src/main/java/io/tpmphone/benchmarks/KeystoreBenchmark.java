package io.tpmphone.benchmarks;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.keystore.KeyReleaseBenchmark;
import io.tpmphone.keystore.Protection;
import io.tpmphone.keystore.SealedKeystore;
import io.tpmphone.keystore.Unlock;
import io.tpmphone.server.internal.KeyApprover;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Key release latency on a private swtpm, side by side in one run (alternating rounds): an SRTP key from an
 * AUTHORIZED keystore with the server's clock-limited approval (VerifySignature, PolicyPCR, PolicyCounterTimer,
 * PolicyAuthorize, Unseal, HKDF, durable fingerprint), from a PCR_ONLY keystore (PolicyPCR, Unseal, ...), and a
 * TLS identity key signature under the same approval. Returns figures; prints nothing.
 */
public final class KeystoreBenchmark {
    /** One operation's latency over all rounds, in milliseconds. */
    public record Figure(String operation, int samples, double medianMillis, double p95Millis, double minMillis) {
    }

    private KeystoreBenchmark() {
    }

    public static List<Figure> run(Path directory, int rounds, int samples, int warmup) throws Exception {
        PcrSelection pcrs = Protection.DEFAULT_PCRS;
        try (SwtpmProcess swtpm = SwtpmProcess.builder().start();
             TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            tpm.pcrExtend(14, HashAlgorithm.SHA256.digest("softphone".getBytes(StandardCharsets.US_ASCII)));
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            KeyApprover approver = new KeyApprover(g.generateKeyPair());
            byte[] ekName = tpm.ensureEndorsementKey(io.tpmphone.tpm.EkType.RSA_2048).name();
            io.tpmphone.attestation.ClockInfo clock = tpm.readClock();
            PolicyApproval approval = PolicyApproval.of(approver.approve(tpm.pcrRead(pcrs), pcrs, clock.resetCount(),
                    clock.clock(), Duration.ofHours(1), ekName));
            Unlock approved = Unlock.approved(approval);
            Files.createDirectories(directory);
            List<long[]> authorized = new ArrayList<>();
            List<long[]> pcrOnly = new ArrayList<>();
            List<long[]> sign = new ArrayList<>();
            try (SealedKeystore auth = SealedKeystore.create(tpm, Files.createTempDirectory(directory, "authorized"),
                    Protection.authorizedForHost(pcrs, approver.publicArea(), ekName), Optional.empty());
                 SealedKeystore plain = SealedKeystore.create(tpm, Files.createTempDirectory(directory, "pcr-only"),
                         Protection.pcrOnly(pcrs), Optional.<SecretBytes>empty())) {
                auth.identityKey();
                byte[] digest = HashAlgorithm.SHA256.digest(new byte[] {1});
                for (int i = 0; i < warmup; i++) {
                    auth.sign(digest, approved);
                }
                KeyReleaseBenchmark.measure(auth, approved, warmup, 1);
                KeyReleaseBenchmark.measure(plain, Unlock.measuredState(), warmup, 1);
                for (int r = 0; r < rounds; r++) {
                    authorized.add(nanos(KeyReleaseBenchmark.measure(auth, approved, 0, samples)));
                    pcrOnly.add(nanos(KeyReleaseBenchmark.measure(plain, Unlock.measuredState(), 0, samples)));
                    long[] s = new long[samples];
                    for (int i = 0; i < samples; i++) {
                        long t = System.nanoTime();
                        auth.sign(digest, approved);
                        s[i] = System.nanoTime() - t;
                    }
                    sign.add(s);
                }
            }
            return List.of(figure("SRTP key, AUTHORIZED (clock-limited approval)", authorized),
                    figure("SRTP key, PCR_ONLY", pcrOnly), figure("TIK sign, AUTHORIZED", sign));
        }
    }

    private static long[] nanos(KeyReleaseBenchmark.Result r) {
        return r.sortedNanos();
    }

    private static Figure figure(String name, List<long[]> rounds) {
        long[] all = rounds.stream().flatMapToLong(Arrays::stream).sorted().toArray();
        int n = all.length;
        return new Figure(name, n, all[(n - 1) / 2] / 1e6, all[(int) Math.ceil(n * 0.95) - 1] / 1e6, all[0] / 1e6);
    }
}
