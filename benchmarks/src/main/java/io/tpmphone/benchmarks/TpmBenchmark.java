package io.tpmphone.benchmarks;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PolicyDigest;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmObjectBlob;
import io.tpmphone.tpm.TpmUri;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Round-trip latency of TPM operations on a swtpm, over our transport and over TSS.Java's stock
 * {@code TpmDeviceTcp}, side by side in one run: the same {@link TpmClient} command sequences, alternating rounds so
 * that machine noise hits both alike. Provisions what it needs (ECC EK, AK, ECC SRK, a persisted TIK, one sealed
 * object) on the TPM it is given: point it at a scratch swtpm, never at a production TPM.
 *
 * <p>Operations, with the TPM commands each one sends:
 * <ul>
 *   <li>GetRandom — {@code GetRandom(32)} (1 command);</li>
 *   <li>Quote — {@code Quote} with the ECC AK over sha256:0-7 plus {@code PCR_Read} of those PCRs (2);</li>
 *   <li>Unseal — {@code Load}, {@code StartAuthSession}, {@code PolicyPCR}, {@code Unseal}, two {@code FlushContext}
 *       (6);</li>
 *   <li>Sign — {@code Sign} of a SHA-256 digest with the persisted ECC TIK (1).</li>
 * </ul>
 */
public final class TpmBenchmark {

    /** A measured operation. */
    public enum Operation { GET_RANDOM, QUOTE, UNSEAL, SIGN }

    /** Which device carried the commands. */
    public enum Device { TPMPHONE, TSS_JAVA_STOCK }

    /** Latency figures of one operation over one device, in milliseconds. */
    public record Figure(Operation operation, Device device, int samples, double medianMillis, double p95Millis,
                         double minMillis) {
    }

    private static final PcrSelection PCRS = PcrSelection.parse("sha256:0-7");
    private static final PersistentHandle BENCH_AK = new PersistentHandle(0x81010020);
    private static final PersistentHandle BENCH_TIK = new PersistentHandle(0x81000020);

    private final String host;
    private final int port;

    /** A benchmark against the swtpm data port {@code host:port} (its control port must be {@code port + 1}). */
    public TpmBenchmark(String host, int port) {
        this.host = Objects.requireNonNull(host, "host");
        this.port = port;
    }

    /**
     * Runs {@code rounds} rounds; each round takes {@code samplesPerRound} samples of every operation on our device
     * and {@code stockSamplesPerRound} on the stock device (which is ~100x slower, so fewer).
     */
    public List<Figure> run(int rounds, int samplesPerRound, int stockSamplesPerRound) throws TpmException {
        TpmUri uri = TpmUri.swtpm(host, port);
        TpmObjectBlob sealed;
        try (TpmClient setup = TpmClient.open(uri)) {
            setup.ensureEndorsementKey(EkType.ECC_P256);
            setup.evict(BENCH_AK);
            setup.createAttestationKey(PersistentHandle.EK_ECC, BENCH_AK);
            setup.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
            setup.evict(BENCH_TIK);
            setup.persist(PersistentHandle.SRK_ECC, setup.createSigningKey(PersistentHandle.SRK_ECC,
                    Optional.empty()), BENCH_TIK);
            byte[] policy = PolicyDigest.initial(HashAlgorithm.SHA256).policyPcr(setup.pcrRead(PCRS)).value();
            sealed = setup.seal(PersistentHandle.SRK_ECC, SecretBytes.copyOf(setup.getRandom(32)), policy);
        }
        Map<Device, Map<Operation, List<Long>>> samples = new EnumMap<>(Device.class);
        for (Device d : Device.values()) {
            samples.put(d, new EnumMap<>(Operation.class));
            for (Operation o : Operation.values()) {
                samples.get(d).put(o, new ArrayList<>());
            }
        }
        for (int round = 0; round < rounds; round++) {
            Device[] order = round % 2 == 0 ? new Device[] {Device.TPMPHONE, Device.TSS_JAVA_STOCK}
                    : new Device[] {Device.TSS_JAVA_STOCK, Device.TPMPHONE};
            for (Device device : order) {
                int n = device == Device.TPMPHONE ? samplesPerRound : stockSamplesPerRound;
                try (TpmClient client = device == Device.TPMPHONE ? TpmClient.open(uri)
                        : TpmClient.openOverStockTcpDevice(host, port)) {
                    measureRound(client, sealed, n, 2, samples.get(device));
                }
            }
        }
        List<Figure> figures = new ArrayList<>();
        for (Operation o : Operation.values()) {
            for (Device d : Device.values()) {
                figures.add(figure(o, d, samples.get(d).get(o)));
            }
        }
        return figures;
    }

    private static void measureRound(TpmClient client, TpmObjectBlob sealed, int n, int warmup,
                                     Map<Operation, List<Long>> out) throws TpmException {
        byte[] digest = HashAlgorithm.SHA256.digest(new byte[] {1});
        for (Operation o : Operation.values()) {
            for (int i = 0; i < warmup + n; i++) {
                long start = System.nanoTime();
                switch (o) {
                    case GET_RANDOM:
                        client.getRandom(32);
                        break;
                    case QUOTE:
                        client.quote(BENCH_AK, PCRS, digest);
                        break;
                    case UNSEAL:
                        client.unsealWithPcrPolicy(PersistentHandle.SRK_ECC, sealed, PCRS).destroy();
                        break;
                    case SIGN:
                        client.sign(BENCH_TIK, digest, Optional.empty());
                        break;
                    default:
                        throw new IllegalStateException(o.name());
                }
                long elapsed = System.nanoTime() - start;
                if (i >= warmup) {
                    out.get(o).add(elapsed);
                }
            }
        }
    }

    private static Figure figure(Operation o, Device d, List<Long> nanos) {
        long[] sorted = nanos.stream().mapToLong(Long::longValue).sorted().toArray();
        if (sorted.length == 0) {
            return new Figure(o, d, 0, Double.NaN, Double.NaN, Double.NaN);
        }
        return new Figure(o, d, sorted.length, percentile(sorted, 50) / 1e6, percentile(sorted, 95) / 1e6,
                sorted[0] / 1e6);
    }

    /** Nearest-rank percentile. */
    static double percentile(long[] sorted, int p) {
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
    }

    @Override
    public String toString() {
        return "TpmBenchmark[" + host + ":" + port + "]";
    }
}
