package io.tpmphone.server.audit;

import java.time.Instant;
import java.util.Arrays;
import java.util.Objects;

/**
 * A signed statement "the log's record {@code seq} has hash {@code hash}", made every
 * {@code Options.checkpointEvery} records and on close. The signature covers the encoding of (seq, hash, timestamp)
 * documented in {@code docs/audit.md}.
 *
 * <p>Immutable and thread-safe; arrays are copied in and out.
 */
public final class AuditCheckpoint {
    private final long seq;
    private final byte[] hash;
    private final Instant timestamp;
    private final String keyId;
    private final byte[] signature;

    AuditCheckpoint(long seq, byte[] hash, Instant timestamp, String keyId, byte[] signature) {
        this.seq = seq;
        this.hash = hash.clone();
        this.timestamp = Objects.requireNonNull(timestamp, "timestamp");
        this.keyId = Objects.requireNonNull(keyId, "keyId");
        this.signature = signature.clone();
    }

    public long seq() {
        return seq;
    }

    /** The hash of record {@link #seq()} when the checkpoint was made. A copy. */
    public byte[] hash() {
        return hash.clone();
    }

    public String hashHex() {
        return AuditEncoding.hex(hash);
    }

    /** When the checkpoint was made (millisecond precision). */
    public Instant timestamp() {
        return timestamp;
    }

    /** {@link AuditSigner#keyId()} of the signer. */
    public String keyId() {
        return keyId;
    }

    /** DER-encoded ECDSA signature (SHA256withECDSA). A copy. */
    public byte[] signature() {
        return signature.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AuditCheckpoint c && seq == c.seq && Arrays.equals(hash, c.hash)
                && timestamp.equals(c.timestamp) && keyId.equals(c.keyId) && Arrays.equals(signature, c.signature);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(seq) * 31 + Arrays.hashCode(hash);
    }

    @Override
    public String toString() {
        return "AuditCheckpoint{seq=" + seq + ", hash=" + hashHex() + ", " + timestamp + ", keyId=" + keyId + "}";
    }
}
