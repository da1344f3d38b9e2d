package io.tpmphone.server.audit;

import java.time.Instant;
import java.util.Arrays;
import java.util.Objects;

/**
 * One committed audit record: the entry plus the sequence number, timestamp and chain hashes the log assigned.
 *
 * <p>Immutable and thread-safe; hash arrays are copied in and out. {@link #hash()} is SHA-256 over the encoding in
 * {@code docs/audit.md} of (seq, timestamp, type, subject, outcome, detail, prevHash).
 */
public final class AuditRecord {
    private final long seq;
    private final Instant timestamp;
    private final AuditEventType type;
    private final String subject;
    private final String outcome;
    private final String detailJson;
    private final byte[] prevHash;
    private final byte[] hash;

    AuditRecord(long seq, Instant timestamp, AuditEventType type, String subject, String outcome, String detailJson,
            byte[] prevHash, byte[] hash) {
        if (seq < 1) {
            throw new IllegalArgumentException("seq must be >= 1, got " + seq);
        }
        if (prevHash.length != AuditEncoding.HASH_LENGTH || hash.length != AuditEncoding.HASH_LENGTH) {
            throw new IllegalArgumentException("hashes must be " + AuditEncoding.HASH_LENGTH + " bytes");
        }
        this.seq = seq;
        this.timestamp = Objects.requireNonNull(timestamp, "timestamp");
        this.type = Objects.requireNonNull(type, "type");
        this.subject = Objects.requireNonNull(subject, "subject");
        this.outcome = Objects.requireNonNull(outcome, "outcome");
        this.detailJson = Objects.requireNonNull(detailJson, "detailJson");
        this.prevHash = prevHash.clone();
        this.hash = hash.clone();
    }

    /** Position in the log, 1..n without gaps. */
    public long seq() {
        return seq;
    }

    /** When the log committed the record (UTC, millisecond precision). */
    public Instant timestamp() {
        return timestamp;
    }

    public AuditEventType type() {
        return type;
    }

    public String subject() {
        return subject;
    }

    public String outcome() {
        return outcome;
    }

    /** Canonical JSON text of the detail, exactly as hashed. */
    public String detailJson() {
        return detailJson;
    }

    /** Hash of record {@code seq - 1}; 32 zero bytes for record 1. A copy. */
    public byte[] prevHash() {
        return prevHash.clone();
    }

    /** This record's chain hash. A copy. */
    public byte[] hash() {
        return hash.clone();
    }

    /** {@link #hash()} as lowercase hex. */
    public String hashHex() {
        return AuditEncoding.hex(hash);
    }

    /** {@link #prevHash()} as lowercase hex. */
    public String prevHashHex() {
        return AuditEncoding.hex(prevHash);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AuditRecord r && seq == r.seq && timestamp.equals(r.timestamp) && type == r.type
                && subject.equals(r.subject) && outcome.equals(r.outcome) && detailJson.equals(r.detailJson)
                && Arrays.equals(prevHash, r.prevHash) && Arrays.equals(hash, r.hash);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(seq) * 31 + Arrays.hashCode(hash);
    }

    @Override
    public String toString() {
        return "AuditRecord{seq=" + seq + ", " + timestamp + ", " + type + ", subject=" + subject + ", outcome="
                + outcome + ", hash=" + hashHex() + "}";
    }
}
