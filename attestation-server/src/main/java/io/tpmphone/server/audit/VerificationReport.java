package io.tpmphone.server.audit;

import java.util.Objects;
import java.util.Optional;

/**
 * What {@link AuditVerifier} found: either the log is intact, or the first broken record or checkpoint (lowest
 * sequence number) and what is wrong with it. Verification stops at the first problem, so later records are not
 * reported.
 *
 * <p>Immutable and thread-safe.
 */
public final class VerificationReport {

    /** Machine-readable kind of a problem. */
    public enum ProblemKind {
        /** A sequence number is missing, duplicated or out of order. */
        SEQ_GAP,
        /** A record's prev_hash is not the previous record's hash (or not zero for record 1). */
        PREV_HASH_MISMATCH,
        /** A record's stored hash does not recompute from its contents. */
        HASH_MISMATCH,
        /** A record or checkpoint field is not of the expected form (hash length, unknown type, bad text). */
        MALFORMED,
        /** A checkpoint signature does not verify with the given key. */
        CHECKPOINT_SIGNATURE_INVALID,
        /** A checkpoint was signed by a key other than the given one. */
        CHECKPOINT_KEY_MISMATCH,
        /** A checkpoint's hash is not the hash of the record at its seq. */
        CHECKPOINT_HASH_MISMATCH,
        /** A checkpoint refers to a record beyond the end of the log: records were removed from the end. */
        CHECKPOINT_BEYOND_END,
        /**
         * No checkpoint where the signed interval (or, without any v2 checkpoint, the documented default) requires
         * one: checkpoints were deleted, possibly with a rewrite of the records they covered.
         */
        CHECKPOINT_MISSING,
        /**
         * A v2 checkpoint does not cover the checkpoint before it (its {@code prevDigest}), or seqs go backwards:
         * a checkpoint was removed, reordered or inserted.
         */
        CHECKPOINT_CHAIN_BROKEN,
        /**
         * The log does not end with a closing checkpoint at its last record: records after the last checkpoint are
         * unsigned, or the closing checkpoint was removed with or without the records after it. A running server's
         * log is verified with {@link VerifyOptions#open}.
         */
        NOT_CLOSED,
        /** Open mode: the unsigned tail is older than the signed bound allows; the writer would have signed it. */
        UNSIGNED_TAIL_TOO_OLD,
        /** A v1 checkpoint, which cannot show that checkpoints were deleted, without {@link VerifyOptions#acceptV1}. */
        LEGACY_CHECKPOINT,
        /** A record's timestamp is before the previous record's, or (open mode) later than the verifier's clock. */
        TIMESTAMP_INVALID,
        /**
         * The log has no signed head ({@link AuditHead}) where one must be: in open mode always (a running writer
         * keeps one), otherwise when the database or export format has one. It was removed.
         */
        SIGNED_HEAD_MISSING,
        /** The signed head is signed by another key, or its signature does not verify. */
        SIGNED_HEAD_INVALID,
        /**
         * The signed head names records or checkpoints the log does not have (or others): the log was cut back, an
         * older copy was put in place with a newer head, or checkpoints were replaced.
         */
        SIGNED_HEAD_MISMATCH,
        /**
         * Open mode: the signed head is older than its refresh interval (plus grace): the log was cut back to an older
         * state or replaced by an older copy, or its writer is stalled or stopped.
         */
        SIGNED_HEAD_STALE,
        /** The record {@link VerifyOptions#expectHead} names is missing or has another hash: the log was cut back. */
        ANCHOR_MISMATCH
    }

    /**
     * The first problem found.
     *
     * @param seq     the record (or checkpoint) sequence number concerned
     * @param kind    what kind of problem
     * @param message for people, e.g. {@code record 17: stored hash does not match its contents ...}
     */
    public record Problem(long seq, ProblemKind kind, String message) {
        public Problem {
            Objects.requireNonNull(kind, "kind");
            Objects.requireNonNull(message, "message");
        }
    }

    private final String source;
    private final long recordsChecked;
    private final long checkpointsChecked;
    private final boolean signaturesChecked;
    private final long headSeq;
    private final String headHashHex;
    private final Problem problem;
    private final boolean open;
    private final long unsignedRecords;
    private final long legacyCheckpoints;

    VerificationReport(String source, long recordsChecked, long checkpointsChecked, boolean signaturesChecked,
            long headSeq, String headHashHex, Problem problem) {
        this(source, recordsChecked, checkpointsChecked, signaturesChecked, headSeq, headHashHex, problem, false, 0,
                0);
    }

    VerificationReport(String source, long recordsChecked, long checkpointsChecked, boolean signaturesChecked,
            long headSeq, String headHashHex, Problem problem, boolean open, long unsignedRecords,
            long legacyCheckpoints) {
        this.open = open;
        this.unsignedRecords = unsignedRecords;
        this.legacyCheckpoints = legacyCheckpoints;
        this.source = Objects.requireNonNull(source, "source");
        this.recordsChecked = recordsChecked;
        this.checkpointsChecked = checkpointsChecked;
        this.signaturesChecked = signaturesChecked;
        this.headSeq = headSeq;
        this.headHashHex = headHashHex;
        this.problem = problem;
    }

    /** True if every record and checkpoint checked out. */
    public boolean intact() {
        return problem == null;
    }

    /** The first broken record or checkpoint, if any. */
    public Optional<Problem> firstProblem() {
        return Optional.ofNullable(problem);
    }

    /** The database path or export name that was verified. */
    public String source() {
        return source;
    }

    /** Records whose hash and link were verified (all of them if intact). */
    public long recordsChecked() {
        return recordsChecked;
    }

    /** Checkpoints checked against the records (and against the key if {@link #signaturesChecked()}). */
    public long checkpointsChecked() {
        return checkpointsChecked;
    }

    /**
     * Whether checkpoint signatures were verified. Without a public key only the hash chain is checked, which
     * detects edits but not a chain rewritten from the edited record on.
     */
    public boolean signaturesChecked() {
        return signaturesChecked;
    }

    /** Sequence number of the last verified record (0 for an empty log). */
    public long headSeq() {
        return headSeq;
    }

    /**
     * Hash of the last verified record: write it down elsewhere to detect later truncation of the log's end,
     * which no chain can detect by itself. Empty for an empty log.
     */
    public Optional<String> headHashHex() {
        return Optional.ofNullable(headHashHex);
    }

    /** Whether the log was verified as open ({@link VerifyOptions#open}). */
    public boolean open() {
        return open;
    }

    /**
     * Records after the last checkpoint, accepted unsigned because the log was verified as open (0 for a closed
     * log). Nothing protects them: anyone with file access could cut them off or rewrite them.
     */
    public long unsignedRecords() {
        return unsignedRecords;
    }

    /** v1 (legacy, weaker) checkpoints accepted with {@link VerifyOptions#acceptV1()}. */
    public long legacyCheckpoints() {
        return legacyCheckpoints;
    }

    /** Returns this report if intact, else throws {@link AuditException.Code#NOT_INTACT} with the problem. */
    public VerificationReport requireIntact() throws AuditException {
        if (problem != null) {
            throw new AuditException(AuditException.Code.NOT_INTACT, source + ": " + problem.kind() + " at "
                    + problem.seq() + ": " + problem.message());
        }
        return this;
    }

    /** One line for people. */
    public String summary() {
        if (problem != null) {
            return "BROKEN " + source + ": " + problem.kind() + " at " + problem.seq() + ": " + problem.message();
        }
        return "OK " + source + ": " + recordsChecked + " records, " + checkpointsChecked + " checkpoints"
                + (signaturesChecked ? " (signatures verified)" : " (signatures NOT checked: no public key given)")
                + (headHashHex == null ? "" : ", head " + headSeq + " " + headHashHex)
                + (open ? (unsignedRecords == 0 ? "; open log, every record signed"
                        : "; open log: the last " + unsignedRecords + " records (" + (headSeq - unsignedRecords + 1)
                                + ".." + headSeq + ") are not signed yet") : "; closed")
                + (legacyCheckpoints == 0 ? "" : "; WEAKER: " + legacyCheckpoints + " v1 checkpoints accepted"
                        + " (their deletion would go unnoticed)");
    }

    @Override
    public String toString() {
        return summary();
    }
}
