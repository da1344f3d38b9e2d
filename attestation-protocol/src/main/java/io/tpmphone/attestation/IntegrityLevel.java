package io.tpmphone.attestation;

import java.util.Objects;

/**
 * How far a peer's integrity was established, ordered from worst to best (DESIGN §2). Policies set thresholds with
 * {@link #atLeast(IntegrityLevel)}. Thread-safe.
 */
public enum IntegrityLevel {
    /** Evidence was offered and did not verify (bad signature, stale nonce, log not matching PCRs, tampering). */
    FAILED(0),
    /** No evidence at all, e.g. an ordinary SIP phone. */
    UNATTESTED(1),
    /** A genuine, enrolled TPM answered freshly, but the software state is not an approved one. */
    IDENTIFIED(2),
    /** Executables, configuration and command line match an approved release. */
    MEASURED(3),
    /** {@link #MEASURED} plus isolated launch, approved boot state and keys held sealed. */
    HARDENED(4);

    private final int rank;

    IntegrityLevel(int rank) {
        this.rank = rank;
    }

    /** 0 for {@link #FAILED} up to 4 for {@link #HARDENED}. */
    public int rank() {
        return rank;
    }

    /** Whether this level is {@code other} or better. */
    public boolean atLeast(IntegrityLevel other) {
        return rank >= Objects.requireNonNull(other, "other").rank;
    }

    /** The worse of this level and {@code other}. */
    public IntegrityLevel min(IntegrityLevel other) {
        return atLeast(Objects.requireNonNull(other, "other")) ? other : this;
    }
}
