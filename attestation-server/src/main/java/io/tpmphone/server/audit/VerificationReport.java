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
        CHECKPOINT_BEYOND_END
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

    VerificationReport(String source, long recordsChecked, long checkpointsChecked, boolean signaturesChecked,
            long headSeq, String headHashHex, Problem problem) {
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

    /** Returns this report if intact, else throws {@link AuditException.Code#NOT_INTACT} with the problem. */
    public VerificationReport requireIntact() throws AuditException {
        if (problem != null) {
            throw new AuditException(AuditException.Code.NOT_INTACT, source + ": " + problem.message());
        }
        return this;
    }

    /** One line for people. */
    public String summary() {
        if (problem != null) {
            return "BROKEN " + source + ": " + problem.message();
        }
        return "OK " + source + ": " + recordsChecked + " records, " + checkpointsChecked + " checkpoints"
                + (signaturesChecked ? " (signatures verified)" : " (signatures NOT checked: no public key given)")
                + (headHashHex == null ? "" : ", head " + headSeq + " " + headHashHex);
    }

    @Override
    public String toString() {
        return summary();
    }
}
