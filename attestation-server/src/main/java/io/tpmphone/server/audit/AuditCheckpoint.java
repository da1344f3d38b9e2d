package io.tpmphone.server.audit;

import java.time.Instant;
import java.util.Arrays;
import java.util.Objects;

/**
 * A signed statement about the log's head at record {@link #seq()}. Two encodings exist (docs/audit.md):
 *
 * <ul>
 *   <li><b>v2</b> (written since checkpoint v2): signs (seq, hash, timestamp, the checkpoint interval
 *       {@link #every()}, the unsigned-age bound {@link #maxUnsignedMillis()}, whether the log was
 *       {@link #closed()} there, and {@link #prevDigest()}, the SHA-256 of the previous checkpoint's signed data).
 *       Because each checkpoint covers the one before and states the interval, a verifier can tell when one was
 *       removed, reordered, or never written where the interval requires one.</li>
 *   <li><b>v3</b> (written since the signed head): v2's fields under its own tag. Because the tag is signed, a v3
 *       checkpoint commits the log to keeping an {@link AuditHead}: wherever one is left, a missing head means the
 *       log was cut back.</li>
 *   <li><b>v1</b> (legacy, only read): signs (seq, hash, timestamp). Checkpoints can be deleted unnoticed.</li>
 * </ul>
 *
 * <p>Immutable and thread-safe; arrays are copied in and out.
 */
public final class AuditCheckpoint {
    private final int version;
    private final long seq;
    private final byte[] hash;
    private final Instant timestamp;
    private final String keyId;
    private final byte[] signature;
    private final int every;
    private final long maxUnsignedMillis;
    private final boolean closed;
    private final byte[] prevDigest;

    /** A v1 (legacy) checkpoint. */
    AuditCheckpoint(long seq, byte[] hash, Instant timestamp, String keyId, byte[] signature) {
        this(1, seq, hash, timestamp, keyId, signature, 0, 0, false, new byte[0]);
    }

    AuditCheckpoint(int version, long seq, byte[] hash, Instant timestamp, String keyId, byte[] signature, int every,
            long maxUnsignedMillis, boolean closed, byte[] prevDigest) {
        if (version < 1 || version > 3) {
            throw new IllegalArgumentException("checkpoint version must be 1, 2 or 3, got " + version);
        }
        this.version = version;
        this.seq = seq;
        this.hash = hash.clone();
        this.timestamp = Objects.requireNonNull(timestamp, "timestamp");
        this.keyId = Objects.requireNonNull(keyId, "keyId");
        this.signature = signature.clone();
        this.every = every;
        this.maxUnsignedMillis = maxUnsignedMillis;
        this.closed = closed;
        this.prevDigest = prevDigest.clone();
    }

    /**
     * 1 (legacy encoding {@code tpmphone.audit.checkpoint.v1}), 2 ({@code tpmphone.audit.checkpoint.v2}) or 3
     * ({@code tpmphone.audit.checkpoint.v3}: v2's fields, signed by a writer that keeps a signed head).
     */
    public int version() {
        return version;
    }

    /** True for v2 and v3: chained, with an interval, an age bound and a closed flag. */
    public boolean chained() {
        return version >= 2;
    }

    public long seq() {
        return seq;
    }

    /** The hash of record {@link #seq()} when the checkpoint was made (32 zero bytes at seq 0). A copy. */
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

    /** v2, v3: the writer's checkpoint interval (a checkpoint at every multiple of it); 0 for v1. */
    public int every() {
        return every;
    }

    /** v2: the longest a record may stay unsigned before the writer signs it (milliseconds); 0 for v1. */
    public long maxUnsignedMillis() {
        return maxUnsignedMillis;
    }

    /** v2: true if written by {@link AuditLog#close()}: nothing was appended after it in that run. */
    public boolean closed() {
        return closed;
    }

    /** v2: SHA-256 of the previous checkpoint's signed data, or 32 zero bytes for the first; empty for v1. A copy. */
    public byte[] prevDigest() {
        return prevDigest.clone();
    }

    /** The bytes the signature covers, in this checkpoint's encoding. */
    byte[] signedData() {
        return switch (version) {
            case 1 -> AuditEncoding.checkpointSignedData(seq, hash, timestamp.toEpochMilli());
            case 2 -> AuditEncoding.checkpointV2SignedData(seq, hash, timestamp.toEpochMilli(), every,
                    maxUnsignedMillis, closed, prevDigest);
            default -> AuditEncoding.checkpointV3SignedData(seq, hash, timestamp.toEpochMilli(), every,
                    maxUnsignedMillis, closed, prevDigest);
        };
    }

    /** SHA-256 of {@link #signedData()}: what the next v2 checkpoint's {@link #prevDigest()} must be. */
    byte[] digest() {
        return AuditEncoding.sha256().digest(signedData());
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AuditCheckpoint c && version == c.version && seq == c.seq && Arrays.equals(hash, c.hash)
                && timestamp.equals(c.timestamp) && keyId.equals(c.keyId) && Arrays.equals(signature, c.signature)
                && every == c.every && maxUnsignedMillis == c.maxUnsignedMillis && closed == c.closed
                && Arrays.equals(prevDigest, c.prevDigest);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(seq) * 31 + Arrays.hashCode(hash);
    }

    @Override
    public String toString() {
        return "AuditCheckpoint{v" + version + ", seq=" + seq + ", hash=" + hashHex() + ", " + timestamp + ", keyId="
                + keyId + (version >= 2 ? ", every=" + every + ", maxUnsignedMillis=" + maxUnsignedMillis
                + (closed ? ", closed" : "") : "") + "}";
    }
}
