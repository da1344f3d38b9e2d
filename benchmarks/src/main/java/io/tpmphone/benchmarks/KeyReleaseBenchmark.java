package io.tpmphone.benchmarks;

import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.SealedKeystore;
import io.tpmphone.keystore.SrtpKeys;
import io.tpmphone.keystore.SrtpSuite;
import io.tpmphone.keystore.Unlock;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;

/**
 * Measures SRTP key release latency — unseal of the root (policy session, PolicyPCR/PolicyAuthorize), HKDF
 * derivation, and the durable fingerprint record — through {@link SealedKeystore#srtpKey(String, SrtpSuite, Unlock)}.
 * Returns figures, prints nothing. Each measured key is destroyed right away. Not thread-safe (run one at a time).
 */
final class KeyReleaseBenchmark {
    /** Latency figures over {@code rounds} releases after {@code warmup} unmeasured ones, and every sample. */
    public record Result(int rounds, Duration median, Duration p95, Duration min, Duration max, long[] sortedNanos) {
        public Result {
            sortedNanos = sortedNanos.clone();
        }

        @Override
        public long[] sortedNanos() {
            return sortedNanos.clone();
        }
    }

    private KeyReleaseBenchmark() {
    }

    static Result measure(SealedKeystore keystore, Unlock unlock, int warmup, int rounds)
            throws KeystoreException {
        Objects.requireNonNull(keystore, "keystore");
        Objects.requireNonNull(unlock, "unlock");
        if (warmup < 0 || rounds < 1) {
            throw new IllegalArgumentException("warmup >= 0 and rounds >= 1, got " + warmup + ", " + rounds);
        }
        for (int i = 0; i < warmup; i++) {
            keystore.srtpKey("bench-warmup-" + i, SrtpSuite.AES_CM_128_HMAC_SHA1_80, unlock).destroy();
        }
        long[] nanos = new long[rounds];
        for (int i = 0; i < rounds; i++) {
            long start = System.nanoTime();
            SrtpKeys keys = keystore.srtpKey("bench-" + i, SrtpSuite.AES_CM_128_HMAC_SHA1_80, unlock);
            nanos[i] = System.nanoTime() - start;
            keys.destroy();
        }
        Arrays.sort(nanos);
        return new Result(rounds, Duration.ofNanos(nanos[(rounds - 1) / 2]),
                Duration.ofNanos(nanos[(int) Math.ceil(rounds * 0.95) - 1]), Duration.ofNanos(nanos[0]),
                Duration.ofNanos(nanos[rounds - 1]), nanos);
    }
}
