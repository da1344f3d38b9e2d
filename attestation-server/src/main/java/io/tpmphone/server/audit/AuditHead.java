package io.tpmphone.server.audit;

import java.time.Instant;
import java.util.Arrays;
import java.util.Objects;

/**
 * The signed head of a log: a statement "at {@link #timestamp()} the log ended at record {@link #seq()} with hash
 * {@link #hash()}, after {@link #checkpoints()} checkpoints of which the last has digest {@link #checkpointDigest()}
 * (and was {@link #closed()} there)". One per log, replaced (never appended) by the writer with every checkpoint, on
 * open, and at least every {@link #refreshMillis()} while the log is open. Encoding {@code tpmphone.audit.head.v1}
 * (docs/audit.md). Every checkpoint such a writer signs is v3, which commits the log to having a head.
 *
 * <p>Why: checkpoints are only written when records arrive, so in a quiet log the newest one can be hours old, and a
 * log cut back to any earlier checkpoint looked like a quiet live log. A running writer's head is never older than
 * the refresh interval, and it names the last checkpoint, so cutting the log back (or restoring an older copy of
 * the database) shows as a stale or mismatching head. It does not help against a copy restored while the writer
 * keeps running on it; for that, anchor the head outside the server ({@code audit verify --expect-head}).
 *
 * <p>Immutable and thread-safe; arrays are copied in and out.
 */
public final class AuditHead {
    private final long seq;
    private final byte[] hash;
    private final Instant timestamp;
    private final long checkpoints;
    private final byte[] checkpointDigest;
    private final long refreshMillis;
    private final boolean closed;
    private final String keyId;
    private final byte[] signature;

    AuditHead(long seq, byte[] hash, Instant timestamp, long checkpoints, byte[] checkpointDigest,
            long refreshMillis, boolean closed, String keyId, byte[] signature) {
        this.seq = seq;
        this.hash = hash.clone();
        this.timestamp = Objects.requireNonNull(timestamp, "timestamp");
        this.checkpoints = checkpoints;
        this.checkpointDigest = checkpointDigest.clone();
        this.refreshMillis = refreshMillis;
        this.closed = closed;
        this.keyId = Objects.requireNonNull(keyId, "keyId");
        this.signature = signature.clone();
    }

    /** The last record when the head was signed (0 for an empty log). */
    public long seq() {
        return seq;
    }

    /** The hash of record {@link #seq()} (32 zero bytes at seq 0). A copy. */
    public byte[] hash() {
        return hash.clone();
    }

    public String hashHex() {
        return AuditEncoding.hex(hash);
    }

    /** When the head was signed (millisecond precision). */
    public Instant timestamp() {
        return timestamp;
    }

    /** How many checkpoints the log had when the head was signed. */
    public long checkpoints() {
        return checkpoints;
    }

    /** SHA-256 of the last checkpoint's signed data, or 32 zero bytes if there was none. A copy. */
    public byte[] checkpointDigest() {
        return checkpointDigest.clone();
    }

    /** The writer re-signs the head at least this often (milliseconds) while the log is open. */
    public long refreshMillis() {
        return refreshMillis;
    }

    /** True if written when the log was closed: no record may follow {@link #seq()}. */
    public boolean closed() {
        return closed;
    }

    /** {@link AuditSigner#keyId()} of the signer. */
    public String keyId() {
        return keyId;
    }

    /** DER-encoded ECDSA signature (SHA256withECDSA). A copy. */
    public byte[] signature() {
        return signature.clone();
    }

    byte[] signedData() {
        return AuditEncoding.headSignedData(seq, hash, timestamp.toEpochMilli(), checkpoints, checkpointDigest,
                refreshMillis, closed);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AuditHead h && seq == h.seq && Arrays.equals(hash, h.hash)
                && timestamp.equals(h.timestamp) && checkpoints == h.checkpoints
                && Arrays.equals(checkpointDigest, h.checkpointDigest) && refreshMillis == h.refreshMillis
                && closed == h.closed
                && keyId.equals(h.keyId) && Arrays.equals(signature, h.signature);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(seq) * 31 + Long.hashCode(checkpoints);
    }

    @Override
    public String toString() {
        return "AuditHead{seq=" + seq + ", hash=" + hashHex() + ", " + timestamp + ", checkpoints=" + checkpoints
                + ", refreshMillis=" + refreshMillis + (closed ? ", closed" : "") + ", keyId=" + keyId + "}";
    }
}
