package io.tpmphone.server.audit;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.Signature;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Checks records fed in stored order, then checkpoints, and keeps the first problem (lowest seq). Shared by the
 * database and the export verifier so both apply exactly the same rules, in this order per record: seq continues,
 * hash sizes, prev link, hash recomputes, type known; per checkpoint: within the log, key id, signature, hash
 * equals the record's.
 *
 * <p>Not thread-safe: one verification, one thread.
 */
final class ChainChecker {
    private final Optional<PublicKey> key;
    private final String keyId;
    /** Seqs whose record hash must be kept for checkpoint checks; null: keep all (checkpoints not known yet). */
    private final Set<Long> wanted;
    private final Map<Long, byte[]> retained = new HashMap<>();
    private byte[] allHashes = new byte[0];

    private long expectedSeq = 1;
    private byte[] lastHash = AuditEncoding.zeroHash();
    private long recordsChecked;
    private VerificationReport.Problem recordProblem;

    ChainChecker(Optional<PublicKey> key, List<AuditCheckpoint> knownCheckpoints) {
        this.key = key;
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
        retain(seq, hash);
        lastHash = hash.clone();
        expectedSeq = seq + 1;
        recordsChecked++;
        return true;
    }

    /**
     * Checks the checkpoints against the records seen and returns the report.
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
        VerificationReport.Problem problem = recordProblem;
        long checkpointsChecked = 0;
        for (AuditCheckpoint checkpoint : checkpoints.stream().sorted(Comparator.comparingLong(AuditCheckpoint::seq))
                .toList()) {
            if (checkpoint.seq() >= limit) {
                break;
            }
            VerificationReport.Problem found = check(checkpoint, head);
            if (found != null) {
                problem = found;
                break;
            }
            checkpointsChecked++;
        }
        return new VerificationReport(source, recordsChecked, checkpointsChecked, key.isPresent(), head,
                head == 0 ? null : AuditEncoding.hex(lastHash), problem);
    }

    private VerificationReport.Problem check(AuditCheckpoint checkpoint, long head) {
        long seq = checkpoint.seq();
        if (seq > head) {
            return new VerificationReport.Problem(seq, VerificationReport.ProblemKind.CHECKPOINT_BEYOND_END,
                    "checkpoint at " + seq + ": record " + seq + " is missing; the log ends at record " + head
                            + " (records after " + head + " were removed)");
        }
        if (seq < 1 || checkpoint.hash().length != AuditEncoding.HASH_LENGTH) {
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
                                + ": signature invalid (its seq, hash or timestamp was changed, or the signature)");
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
            verifier.update(AuditEncoding.checkpointSignedData(checkpoint.seq(), checkpoint.hash(),
                    checkpoint.timestamp().toEpochMilli()));
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

    private void retain(long seq, byte[] hash) {
        if (wanted != null) {
            if (wanted.contains(seq)) {
                retained.put(seq, hash.clone());
            }
            return;
        }
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
        if (wanted != null) {
            return retained.get(seq);
        }
        int offset = (int) ((seq - 1) * AuditEncoding.HASH_LENGTH);
        return Arrays.copyOfRange(allHashes, offset, offset + AuditEncoding.HASH_LENGTH);
    }
}
