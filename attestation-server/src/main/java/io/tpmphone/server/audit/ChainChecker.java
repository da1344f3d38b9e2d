package io.tpmphone.server.audit;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.Signature;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Checks records fed in stored order, then checkpoints, and keeps the first problem (lowest seq). Shared by the
 * database and the export verifier so both apply exactly the same rules, in this order per record: seq continues,
 * hash sizes, prev link, hash recomputes, type known; per checkpoint, in written order: seqs do not go back, none is
 * missing where the signed interval requires one, within the log, key id, signature, hash equals the record's,
 * encoding (v1 only if accepted), chain ({@code prevDigest} covers the previous one); then the log's end: no
 * interval checkpoint missing after the last one, and either a closing checkpoint at the head or (open mode) a
 * short, young unsigned tail. Rules and their reasons: docs/audit.md, "Verification".
 *
 * <p>Not thread-safe: one verification, one thread.
 */
final class ChainChecker {
    private final Optional<PublicKey> key;
    private final VerifyOptions options;
    private final String keyId;
    /** With known checkpoints: the seq after the last one, whose timestamp open mode needs. */
    private final long firstUnsignedSeq;
    private long firstUnsignedMillis = -1;
    private long[] allMillis = new long[0];
    /** Seqs whose record hash must be kept for checkpoint checks; null: keep all (checkpoints not known yet). */
    private final Set<Long> wanted;
    private final Map<Long, byte[]> retained = new HashMap<>();
    private byte[] allHashes = new byte[0];

    private long expectedSeq = 1;
    private byte[] lastHash = AuditEncoding.zeroHash();
    private long recordsChecked;
    private VerificationReport.Problem recordProblem;

    ChainChecker(Optional<PublicKey> key, List<AuditCheckpoint> knownCheckpoints, VerifyOptions options) {
        this.key = key;
        this.options = options;
        this.firstUnsignedSeq = knownCheckpoints == null ? -1
                : knownCheckpoints.stream().mapToLong(AuditCheckpoint::seq).max().orElse(0) + 1;
        this.keyId = key.map(AuditSigner::keyIdOf).orElse(null);
        if (knownCheckpoints == null) {
            this.wanted = null;
        } else {
            this.wanted = new TreeSet<>();
            knownCheckpoints.forEach(c -> wanted.add(c.seq()));
        }
    }

    /** True while no problem was found; once false, further records are ignored. */
    boolean intact() {
        return recordProblem == null;
    }

    /** Reports a record whose fields could not even be read. */
    void malformed(long seq, String message) {
        if (recordProblem == null) {
            recordProblem = new VerificationReport.Problem(seq, VerificationReport.ProblemKind.MALFORMED,
                    "record " + seq + ": " + message);
        }
    }

    /** Checks the next record in stored order; returns {@link #intact()}. */
    boolean accept(long seq, long timestampMillis, byte[] type, byte[] subject, byte[] outcome, byte[] detail,
            byte[] prevHash, byte[] hash) {
        if (recordProblem != null) {
            return false;
        }
        if (seq != expectedSeq) {
            String message;
            if (seq > expectedSeq) {
                String missing = seq - expectedSeq == 1 ? "record " + expectedSeq
                        : "records " + expectedSeq + ".." + (seq - 1);
                message = expectedSeq == 1 ? missing + " missing (the log starts at seq " + seq + ")"
                        : missing + " missing (seq jumps from " + (expectedSeq - 1) + " to " + seq + ")";
            } else {
                message = "record " + seq + " is out of order or duplicated (it follows record " + (expectedSeq - 1)
                        + ")";
            }
            return problem(expectedSeq, VerificationReport.ProblemKind.SEQ_GAP, message);
        }
        if (prevHash == null || prevHash.length != AuditEncoding.HASH_LENGTH || hash == null
                || hash.length != AuditEncoding.HASH_LENGTH) {
            return problem(seq, VerificationReport.ProblemKind.MALFORMED,
                    "record " + seq + ": hash or prev_hash is not " + AuditEncoding.HASH_LENGTH + " bytes");
        }
        if (!Arrays.equals(prevHash, lastHash)) {
            return problem(seq, VerificationReport.ProblemKind.PREV_HASH_MISMATCH, seq == 1
                    ? "record 1: prev_hash is not 32 zero bytes (the first record was replaced or the link changed)"
                    : "record " + seq + ": prev_hash does not match record " + (seq - 1) + "'s hash (record "
                            + (seq - 1) + " was rewritten, or this link was changed)");
        }
        byte[] recomputed = AuditEncoding.recordHash(seq, timestampMillis, type, subject, outcome, detail, prevHash);
        if (!Arrays.equals(recomputed, hash)) {
            return problem(seq, VerificationReport.ProblemKind.HASH_MISMATCH, "record " + seq
                    + ": stored hash does not match its contents (timestamp, type, subject, outcome or detail was "
                    + "changed, or the hash itself)");
        }
        String typeName = new String(type, StandardCharsets.UTF_8);
        if (Arrays.stream(AuditEventType.values()).noneMatch(t -> t.name().equals(typeName))) {
            return problem(seq, VerificationReport.ProblemKind.MALFORMED, "record " + seq + ": unknown type '"
                    + typeName + "' (written by a newer version?)");
        }
        retain(seq, hash, timestampMillis);
        lastHash = hash.clone();
        expectedSeq = seq + 1;
        recordsChecked++;
        return true;
    }

    /**
     * Checks the checkpoints, in the order they were written, against the records seen and the coverage rules, and
     * returns the report.
     *
     * @param declaredRecordCount the record count an export declares, or -1
     */
    VerificationReport finish(String source, List<AuditCheckpoint> checkpoints, long declaredRecordCount) {
        long head = expectedSeq - 1;
        if (recordProblem == null && declaredRecordCount > head) {
            problem(head + 1, VerificationReport.ProblemKind.SEQ_GAP, (declaredRecordCount - head == 1
                    ? "record " + declaredRecordCount : "records " + (head + 1) + ".." + declaredRecordCount)
                    + " missing (the export declares " + declaredRecordCount + " records but ends at " + head + ")");
        }
        long limit = recordProblem == null ? Long.MAX_VALUE : recordProblem.seq();
        boolean hasV1 = checkpoints.stream().anyMatch(c -> c.version() == 1);
        // The interval in force: the first v2 checkpoint's for the records before it, then each one's own. Without
        // any v2 checkpoint, the documented default: a log whose checkpoints were all deleted is still judged.
        int interval = checkpoints.stream().filter(c -> c.version() == 2).mapToInt(AuditCheckpoint::every)
                .filter(e -> e >= 1).findFirst().orElse(AuditLog.Options.DEFAULT_CHECKPOINT_EVERY);
        long maxUnsignedMillis = AuditLog.Options.DEFAULT_MAX_UNSIGNED_AGE.toMillis();
        boolean sawV2 = false;
        byte[] expectedPrev = AuditEncoding.zeroHash();
        long previousSeq = 0;
        AuditCheckpoint last = null;
        long checked = 0;
        long legacy = 0;
        VerificationReport.Problem found = null;
        // Written order is seq order: a checkpoint stored after one with a higher seq was moved. Named at its own
        // seq, before anything the move makes look missing above it.
        VerificationReport.Problem reordered = null;
        long highest = -1;
        for (AuditCheckpoint checkpoint : checkpoints) {
            if (checkpoint.seq() < highest && (reordered == null || checkpoint.seq() < reordered.seq())) {
                reordered = new VerificationReport.Problem(checkpoint.seq(),
                        VerificationReport.ProblemKind.CHECKPOINT_CHAIN_BROKEN, "checkpoint at " + checkpoint.seq()
                                + " is stored after the checkpoint at " + highest + " (checkpoints were reordered)");
            }
            highest = Math.max(highest, checkpoint.seq());
        }
        for (AuditCheckpoint checkpoint : checkpoints) {
            long seq = checkpoint.seq();
            if (reordered != null && seq >= reordered.seq()) {
                found = reordered;
            } else if (!hasV1 || sawV2) {
                // Before the first v2 checkpoint of an upgraded log, v1 rules: no interval is known.
                long required = AuditLog.nextMultiple(previousSeq, interval);
                if (seq > required && required <= head) {
                    found = missing(required, interval, last);
                }
            }
            if (found == null) {
                found = check(checkpoint, head);
            }
            if (found == null && checkpoint.version() == 1) {
                if (!options.acceptsV1()) {
                    found = new VerificationReport.Problem(seq, VerificationReport.ProblemKind.LEGACY_CHECKPOINT,
                            "checkpoint at " + seq + " is in the v1 format (tpmphone.audit.checkpoint.v1), which "
                                    + "cannot show that checkpoints were deleted; if this log was never opened by "
                                    + "a v2 server, verify it the weaker way with --accept-v1");
                } else if (sawV2) {
                    found = new VerificationReport.Problem(seq,
                            VerificationReport.ProblemKind.CHECKPOINT_CHAIN_BROKEN, "checkpoint at " + seq
                                    + " is v1 but follows a v2 checkpoint (v2 writers never write v1)");
                }
            }
            if (found == null && checkpoint.version() == 2) {
                if (checkpoint.every() < 1 || checkpoint.maxUnsignedMillis() < 1) {
                    found = new VerificationReport.Problem(seq, VerificationReport.ProblemKind.MALFORMED,
                            "checkpoint at " + seq + ": interval or unsigned-age bound is not positive");
                } else if (!Arrays.equals(checkpoint.prevDigest(), expectedPrev)) {
                    found = new VerificationReport.Problem(seq,
                            VerificationReport.ProblemKind.CHECKPOINT_CHAIN_BROKEN, "checkpoint at " + seq
                                    + " does not cover " + (last == null ? "nothing (it is the first, but names a "
                                    + "previous checkpoint: the checkpoints before it were removed)"
                                    : "the checkpoint before it (at " + last.seq() + "): a checkpoint between them "
                                            + "was removed, reordered or inserted"));
                }
            }
            if (found != null) {
                break;
            }
            if (checkpoint.version() == 2) {
                sawV2 = true;
                interval = checkpoint.every();
                maxUnsignedMillis = checkpoint.maxUnsignedMillis();
            } else {
                legacy++;
            }
            expectedPrev = checkpoint.digest();
            previousSeq = seq;
            last = checkpoint;
            checked++;
        }
        VerificationReport.Problem problem = recordProblem;
        if (found != null && found.seq() < limit) {
            problem = found;
        }
        long unsigned = 0;
        boolean legacyOnly = hasV1 && !sawV2;
        if (problem == null && !legacyOnly) {
            long required = AuditLog.nextMultiple(previousSeq, interval);
            long covered = last == null ? 0 : last.seq();
            if (required <= head) {
                problem = missing(required, interval, last);
            } else if (!options.isOpen()) {
                if (last == null || !last.closed() || last.seq() != head) {
                    problem = notClosed(last, head);
                }
            } else if (head > covered) {
                unsigned = head - covered;
                long oldest = oldestUnsignedMillis(covered + 1);
                long age = options.openClock().millis() - oldest;
                long bound = maxUnsignedMillis + VerifyOptions.OPEN_GRACE.toMillis();
                if (age > bound) {
                    problem = new VerificationReport.Problem(covered + 1,
                            VerificationReport.ProblemKind.UNSIGNED_TAIL_TOO_OLD, "records " + (covered + 1) + ".."
                                    + head + " are not signed, and record " + (covered + 1) + " is " + age
                                    + " ms old; the writer signs within " + maxUnsignedMillis + " ms (+ "
                                    + VerifyOptions.OPEN_GRACE.toMillis() + " ms grace), so a checkpoint after it "
                                    + "was removed, or the server is stalled");
                    unsigned = 0;
                }
            }
        }
        return new VerificationReport(source, recordsChecked, checked, key.isPresent(), head,
                head == 0 ? null : AuditEncoding.hex(lastHash), problem, options.isOpen(), problem == null
                        ? unsigned : 0, legacy);
    }

    private static VerificationReport.Problem missing(long required, int interval, AuditCheckpoint last) {
        return new VerificationReport.Problem(required, VerificationReport.ProblemKind.CHECKPOINT_MISSING,
                "no checkpoint at record " + required + ", where the interval of " + interval + " records ("
                        + (last == null || last.version() != 2 ? "the documented default, no earlier checkpoint "
                        + "states one" : "signed in the checkpoint at " + last.seq()) + ") requires one: "
                        + "checkpoints were removed, and the records after " + (last == null ? 0 : last.seq())
                        + " may have been rewritten");
    }

    private static VerificationReport.Problem notClosed(AuditCheckpoint last, long head) {
        if (last == null) {
            return new VerificationReport.Problem(head == 0 ? 0 : 1, VerificationReport.ProblemKind.NOT_CLOSED,
                    head == 0 ? "the log is empty and has no closing checkpoint (a closed empty log has one at seq "
                            + "0): its records and checkpoints may have been removed"
                            : "records 1.." + head + " are not signed: the log has no checkpoint at all (they were "
                                    + "removed, and the records may have been rewritten)");
        }
        if (last.seq() < head) {
            return new VerificationReport.Problem(last.seq() + 1, VerificationReport.ProblemKind.NOT_CLOSED,
                    "records " + (last.seq() + 1) + ".." + head + " after the last checkpoint (at " + last.seq()
                            + ") are not signed: the log was not closed, or its closing checkpoint was removed. "
                            + "A running server's log is verified with --open");
        }
        return new VerificationReport.Problem(head, VerificationReport.ProblemKind.NOT_CLOSED, "the last checkpoint"
                + " (at " + head + ") is not a closing one: the log was not closed (verify a running server's log "
                + "with --open), or records after it were cut off together with their checkpoints");
    }

    private long oldestUnsignedMillis(long seq) {
        if (wanted != null) {
            return seq == firstUnsignedSeq ? firstUnsignedMillis : Long.MIN_VALUE;
        }
        return allMillis[(int) (seq - 1)];
    }

    private VerificationReport.Problem check(AuditCheckpoint checkpoint, long head) {
        long seq = checkpoint.seq();
        if (seq > head) {
            return new VerificationReport.Problem(seq, VerificationReport.ProblemKind.CHECKPOINT_BEYOND_END,
                    "checkpoint at " + seq + ": record " + seq + " is missing; the log ends at record " + head
                            + " (records after " + head + " were removed)");
        }
        if (seq < (checkpoint.version() == 2 ? 0 : 1) || checkpoint.hash().length != AuditEncoding.HASH_LENGTH) {
            return new VerificationReport.Problem(seq, VerificationReport.ProblemKind.MALFORMED,
                    "checkpoint at " + seq + ": seq or hash is malformed");
        }
        if (key.isPresent()) {
            if (!keyId.equals(checkpoint.keyId())) {
                return new VerificationReport.Problem(seq, VerificationReport.ProblemKind.CHECKPOINT_KEY_MISMATCH,
                        "checkpoint at " + seq + ": signed by key id " + checkpoint.keyId()
                                + ", not by the given public key (key id " + keyId + ")");
            }
            if (!signatureValid(checkpoint)) {
                return new VerificationReport.Problem(seq,
                        VerificationReport.ProblemKind.CHECKPOINT_SIGNATURE_INVALID, "checkpoint at " + seq
                                + ": signature invalid (its seq, hash, timestamp or another signed field was "
                                + "changed, or the signature)");
            }
        }
        if (!Arrays.equals(checkpoint.hash(), retainedHash(seq))) {
            return new VerificationReport.Problem(seq, VerificationReport.ProblemKind.CHECKPOINT_HASH_MISMATCH,
                    "checkpoint at " + seq + ": hash does not match record " + seq + "'s hash (records up to " + seq
                            + " were rewritten, or the checkpoint was changed)");
        }
        return null;
    }

    private boolean signatureValid(AuditCheckpoint checkpoint) {
        try {
            Signature verifier = Signature.getInstance(AuditVerifier.SIGNATURE_ALGORITHM);
            verifier.initVerify(key.orElseThrow());
            verifier.update(checkpoint.signedData());
            return verifier.verify(checkpoint.signature());
        } catch (GeneralSecurityException e) {
            // A signature that is not even DER, or a key of another algorithm: not valid.
            return false;
        }
    }

    private boolean problem(long seq, VerificationReport.ProblemKind kind, String message) {
        recordProblem = new VerificationReport.Problem(seq, kind, message);
        return false;
    }

    private void retain(long seq, byte[] hash, long timestampMillis) {
        if (wanted != null) {
            if (wanted.contains(seq)) {
                retained.put(seq, hash.clone());
            }
            if (seq == firstUnsignedSeq) {
                firstUnsignedMillis = timestampMillis;
            }
            return;
        }
        if (seq > allMillis.length) {
            allMillis = Arrays.copyOf(allMillis, (int) Math.min(Integer.MAX_VALUE - 8,
                    Math.max(128, (long) allMillis.length * 2)));
        }
        allMillis[(int) (seq - 1)] = timestampMillis;
        long offset = (seq - 1) * AuditEncoding.HASH_LENGTH;
        if (offset + AuditEncoding.HASH_LENGTH > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("export too large to verify with checkpoints after records; "
                    + "put the checkpoints array first");
        }
        if (offset + AuditEncoding.HASH_LENGTH > allHashes.length) {
            allHashes = Arrays.copyOf(allHashes, (int) Math.min(Integer.MAX_VALUE - 8,
                    Math.max(1024, (long) allHashes.length * 2)));
        }
        System.arraycopy(hash, 0, allHashes, (int) offset, AuditEncoding.HASH_LENGTH);
    }

    private byte[] retainedHash(long seq) {
        if (seq == 0) {
            return AuditEncoding.zeroHash();
        }
        if (wanted != null) {
            return retained.get(seq);
        }
        int offset = (int) ((seq - 1) * AuditEncoding.HASH_LENGTH);
        return Arrays.copyOfRange(allHashes, offset, offset + AuditEncoding.HASH_LENGTH);
    }
}
