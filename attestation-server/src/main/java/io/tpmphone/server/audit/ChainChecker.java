package io.tpmphone.server.audit;

import java.nio.ByteBuffer;
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
    /** The UTF-8 names of the record types, compared as bytes: no string per record. */
    private static final Set<ByteBuffer> KNOWN_TYPES = Arrays.stream(AuditEventType.values())
            .map(t -> ByteBuffer.wrap(t.name().getBytes(StandardCharsets.UTF_8)))
            .collect(java.util.stream.Collectors.toUnmodifiableSet());
    /**
     * Bouncy Castle's ECDSA, not the platform's default: SunEC is ~13 times slower for P-256 here (PITFALLS.md), which
     * made a million-record log's thousand checkpoints cost seconds. Not registered globally.
     */
    private static final java.security.Provider SIGNATURES = new org.bouncycastle.jce.provider.BouncyCastleProvider();
    private final AuditEncoding.RecordHasher hasher = new AuditEncoding.RecordHasher();
    /** Checked in parallel before the checkpoints are judged in order (identity: equal checkpoints are judged alike). */
    private final Map<AuditCheckpoint, Boolean> validSignatures = new java.util.concurrent.ConcurrentHashMap<>();
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

    /** Open mode: the verifier's time, read once when verification starts (when the snapshot is taken). */
    private final long nowMillis;
    private long expectedSeq = 1;
    private long lastMillis = Long.MIN_VALUE;
    private byte[] lastHash = AuditEncoding.zeroHash();
    private long recordsChecked;
    private VerificationReport.Problem recordProblem;

    /**
     * @param knownCheckpoints the checkpoints if known before the records (then only the hashes they, the signed head
     *                         and the anchor need are kept), or null
     * @param knownHead        the signed head if known before the records, or null
     */
    ChainChecker(Optional<PublicKey> key, List<AuditCheckpoint> knownCheckpoints, AuditHead knownHead,
            VerifyOptions options) {
        this.key = key;
        this.options = options;
        // Read now, not after streaming a large log: ages must not grow with the verifier's own running time.
        this.nowMillis = options.isOpen() ? options.openClock().millis() : 0;
        long covered = knownCheckpoints == null ? -1
                : knownCheckpoints.stream().mapToLong(AuditCheckpoint::seq).max().orElse(0);
        if (knownCheckpoints != null && knownHead != null) {
            covered = Math.max(covered, knownHead.seq());
        }
        this.firstUnsignedSeq = knownCheckpoints == null ? -1 : covered + 1;
        this.keyId = key.map(AuditSigner::keyIdOf).orElse(null);
        if (knownCheckpoints == null) {
            this.wanted = null;
        } else {
            this.wanted = new TreeSet<>();
            knownCheckpoints.forEach(c -> wanted.add(c.seq()));
            if (knownHead != null) {
                wanted.add(knownHead.seq());
            }
            if (options.anchorSeq() >= 0) {
                wanted.add(options.anchorSeq());
            }
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
        byte[] recomputed = hasher.hash(seq, timestampMillis, type, subject, outcome, detail, prevHash);
        if (!Arrays.equals(recomputed, hash)) {
            return problem(seq, VerificationReport.ProblemKind.HASH_MISMATCH, "record " + seq
                    + ": stored hash does not match its contents (timestamp, type, subject, outcome or detail was "
                    + "changed, or the hash itself)");
        }
        if (timestampMillis < lastMillis) {
            return problem(seq, VerificationReport.ProblemKind.TIMESTAMP_INVALID, "record " + seq + ": timestamp "
                    + timestampMillis + " is before record " + (seq - 1) + "'s (" + lastMillis + "); the writer never"
                    + " dates a record before the previous one, so this one or its neighbour was rewritten");
        }
        if (!KNOWN_TYPES.contains(ByteBuffer.wrap(type))) {
            String typeName = new String(type, StandardCharsets.UTF_8);
            return problem(seq, VerificationReport.ProblemKind.MALFORMED, "record " + seq + ": unknown type '"
                    + typeName + "' (written by a newer version?)");
        }
        retain(seq, hash, timestampMillis);
        lastHash = hash.clone();
        lastMillis = timestampMillis;
        expectedSeq = seq + 1;
        recordsChecked++;
        return true;
    }

    /**
     * Checks the checkpoints, in the order they were written, against the records seen and the coverage rules, and
     * returns the report.
     *
     * @param head                the signed head, or null if the log has none
     * @param declaredRecordCount the record count an export declares, or -1
     */
    VerificationReport finish(String source, List<AuditCheckpoint> checkpoints, AuditHead signedHead,
            long declaredRecordCount) {
        // A v3 checkpoint signs that its writer keeps a signed head: where one is left, the head must be there.
        if (key.isPresent()) {
            // The signatures, on every core at once: a million-record log has a thousand of them.
            checkpoints.parallelStream().forEach(c -> validSignatures.put(c, signatureValid(c.signedData(),
                    c.signature())));
        }
        boolean headRequired = checkpoints.stream().anyMatch(c -> c.version() == 3);
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
        int interval = checkpoints.stream().filter(AuditCheckpoint::chained).mapToInt(AuditCheckpoint::every)
                .filter(e -> e >= 1).findFirst().orElse(AuditLog.Options.DEFAULT_CHECKPOINT_EVERY);
        long maxUnsignedMillis = AuditLog.Options.DEFAULT_MAX_UNSIGNED_AGE.toMillis();
        boolean sawV2 = false;
        boolean sawV3 = false;
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
                                    + " is v1 but follows a v2 or v3 checkpoint (they are never followed by v1)");
                }
            }
            if (found == null && checkpoint.version() == 2 && sawV3) {
                found = new VerificationReport.Problem(seq, VerificationReport.ProblemKind.CHECKPOINT_CHAIN_BROKEN,
                        "checkpoint at " + seq + " is v2 but follows a v3 checkpoint (v3 writers never write v2)");
            }
            if (found == null && checkpoint.chained()) {
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
            if (checkpoint.chained()) {
                sawV2 = true;
                sawV3 |= checkpoint.version() == 3;
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
        if (problem == null) {
            problem = checkSignedHead(signedHead, headRequired, checkpoints,
                    signedHead == null ? 0 : Math.min(signedHead.seq(), head));
        }
        if (problem == null) {
            problem = checkAnchor();
        }
        long unsigned = 0;
        // A head is written only by a server that also writes v2 checkpoints: with one, the v2 end rules apply.
        boolean legacyOnly = hasV1 && !sawV2 && signedHead == null;
        if (problem == null && !legacyOnly) {
            long required = AuditLog.nextMultiple(previousSeq, interval);
            long covered = Math.max(last == null ? 0 : last.seq(), signedHead == null ? 0 : signedHead.seq());
            if (required <= head) {
                problem = missing(required, interval, last);
            } else if (!options.isOpen()) {
                if (last == null || !last.closed() || last.seq() != head) {
                    problem = notClosed(last, head);
                }
            } else if (head > covered) {
                unsigned = head - covered;
                long oldest = oldestUnsignedMillis(covered + 1);
                long now = nowMillis;
                long grace = VerifyOptions.OPEN_GRACE.toMillis();
                // Unsigned timestamps are the attacker's to choose: compare without overflow, and refuse the future.
                long bound = maxUnsignedMillis > Long.MAX_VALUE - grace ? Long.MAX_VALUE : maxUnsignedMillis + grace;
                long age = oldest > now ? 0 : (now - oldest < 0 ? Long.MAX_VALUE : now - oldest);
                if (oldest > now && oldest - now > grace) {
                    problem = new VerificationReport.Problem(covered + 1,
                            VerificationReport.ProblemKind.TIMESTAMP_INVALID, "record " + (covered + 1)
                                    + " (not signed yet) is dated " + (oldest - now) + " ms after this verifier's "
                                    + "clock: its timestamp was rewritten, or the clocks disagree (record times never "
                                    + "go back, so after the server's clock was set back they run ahead of it)");
                } else if (age > bound) {
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

    private VerificationReport.Problem checkSignedHead(AuditHead head, boolean headRequired,
            List<AuditCheckpoint> checkpoints, long seqForProblems) {
        long logHead = expectedSeq - 1;
        if (head == null) {
            if (headRequired || options.isOpen()) {
                return new VerificationReport.Problem(logHead, VerificationReport.ProblemKind.SIGNED_HEAD_MISSING,
                        options.isOpen() ? "the log has no signed head; a running server keeps one and re-signs it "
                                + "at least every minute: it was removed (the log may have been cut back), or this "
                                + "log is not being written by a current server (verify it without --open)"
                                : "the log has v3 checkpoints, which commit it to a signed head, but there is none: "
                                        + "it was removed (the log may have been cut back or stripped of "
                                        + "checkpoints)");
            }
            return null;
        }
        String signed = "the signed head (signed " + head.timestamp() + ", record " + head.seq() + ", "
                + head.checkpoints() + " checkpoints) ";
        if (head.refreshMillis() < 1 || head.seq() < 0 || head.checkpoints() < 0 || head.keyId().isEmpty()
                || head.hash().length != AuditEncoding.HASH_LENGTH
                || head.checkpointDigest().length != AuditEncoding.HASH_LENGTH) {
            return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.MALFORMED,
                    signed + "has a malformed field");
        }
        if (key.isPresent()) {
            if (!keyId.equals(head.keyId())) {
                return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_INVALID,
                        signed + "is signed by key id " + head.keyId() + ", not by the given public key (key id "
                                + keyId + ")");
            }
            if (!signatureValid(head.signedData(), head.signature())) {
                return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_INVALID,
                        signed + "has an invalid signature (a field or the signature was changed)");
            }
        }
        if (head.seq() > logHead) {
            return new VerificationReport.Problem(logHead + 1, VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH,
                    signed + "covers record " + head.seq() + ", but the log ends at record " + logHead + ": records "
                            + "were removed from its end");
        }
        if (head.closed() && logHead > head.seq()) {
            return new VerificationReport.Problem(head.seq() + 1, VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH,
                    signed + "closed the log at record " + head.seq() + ", but records up to " + logHead + " follow:"
                            + " they were appended by someone other than the server");
        }
        if (head.checkpoints() != checkpoints.size()) {
            return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH,
                    signed + "counts " + head.checkpoints() + " checkpoints, but the log has " + checkpoints.size()
                            + (head.checkpoints() > checkpoints.size() ? ": checkpoints were removed (the log was cut"
                            + " back)" : ": checkpoints were added after it"));
        }
        byte[] lastDigest = checkpoints.isEmpty() ? AuditEncoding.zeroHash()
                : checkpoints.get(checkpoints.size() - 1).digest();
        if (!Arrays.equals(lastDigest, head.checkpointDigest())) {
            return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH,
                    signed + "names another last checkpoint than the log's: checkpoints were replaced");
        }
        long lastCheckpointSeq = checkpoints.isEmpty() ? 0 : checkpoints.get(checkpoints.size() - 1).seq();
        if (head.seq() < lastCheckpointSeq) {
            return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH,
                    signed + "is behind the last checkpoint (at " + lastCheckpointSeq + ")");
        }
        if (!Arrays.equals(head.hash(), retainedHash(head.seq()))) {
            return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH,
                    signed + "names another hash for record " + head.seq() + ": records up to it were rewritten");
        }
        if (options.isOpen()) {
            long now = nowMillis;
            long at = head.timestamp().toEpochMilli();
            long grace = VerifyOptions.OPEN_GRACE.toMillis();
            long bound = head.refreshMillis() > Long.MAX_VALUE - grace ? Long.MAX_VALUE : head.refreshMillis() + grace;
            if (at > now && at - now > grace) {
                return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.TIMESTAMP_INVALID,
                        signed + "is dated " + (at - now) + " ms after this verifier's clock: the clocks disagree");
            }
            long age = at >= now ? 0 : (now - at < 0 ? Long.MAX_VALUE : now - at);
            if (age > bound) {
                return new VerificationReport.Problem(seqForProblems, VerificationReport.ProblemKind.SIGNED_HEAD_STALE,
                        signed + "is " + age + " ms old; a running server re-signs it every " + head.refreshMillis()
                                + " ms (+ " + grace + " ms grace): the log was cut back or replaced by an older "
                                + "copy, or its server is stalled or stopped (verify a stopped server's log without "
                                + "--open)");
            }
        }
        return null;
    }

    private VerificationReport.Problem checkAnchor() {
        long seq = options.anchorSeq();
        if (seq < 0) {
            return null;
        }
        long logHead = expectedSeq - 1;
        if (seq > logHead) {
            return new VerificationReport.Problem(logHead + 1, VerificationReport.ProblemKind.ANCHOR_MISMATCH,
                    "the expected head names record " + seq + ", but the log ends at record " + logHead + ": it was "
                            + "cut back (or another log was given)");
        }
        if (!Arrays.equals(options.anchorHash(), retainedHash(seq))) {
            return new VerificationReport.Problem(seq, VerificationReport.ProblemKind.ANCHOR_MISMATCH,
                    "record " + seq + " does not have the expected hash " + AuditEncoding.hex(options.anchorHash())
                            + ": the log was rewritten up to it (or another log was given)");
        }
        return null;
    }

    private static VerificationReport.Problem missing(long required, int interval, AuditCheckpoint last) {
        return new VerificationReport.Problem(required, VerificationReport.ProblemKind.CHECKPOINT_MISSING,
                "no checkpoint at record " + required + ", where the interval of " + interval + " records ("
                        + (last == null || !last.chained() ? "the documented default, no earlier checkpoint "
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
        if (seq < (checkpoint.chained() ? 0 : 1) || checkpoint.hash().length != AuditEncoding.HASH_LENGTH) {
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
        Boolean known = validSignatures.get(checkpoint);
        return known != null ? known : signatureValid(checkpoint.signedData(), checkpoint.signature());
    }

    private boolean signatureValid(byte[] signedData, byte[] signature) {
        try {
            Signature verifier = Signature.getInstance(AuditVerifier.SIGNATURE_ALGORITHM, SIGNATURES);
            verifier.initVerify(key.orElseThrow());
            verifier.update(signedData);
            return verifier.verify(signature);
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
