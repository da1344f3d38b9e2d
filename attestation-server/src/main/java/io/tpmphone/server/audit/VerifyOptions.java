package io.tpmphone.server.audit;

import java.time.Clock;
import java.time.Duration;
import java.util.Objects;

/**
 * How strictly {@link AuditVerifier} judges the checkpoints' coverage of the log (docs/audit.md, "Verification").
 *
 * <ul>
 *   <li>{@link #closed()} (the default): the log must end with a closing checkpoint ({@link AuditCheckpoint#closed()})
 *       at its last record — what {@link AuditLog#close()} leaves. Anything else is {@code NOT_CLOSED}.</li>
 *   <li>{@link #open(Clock)}: for a running server's database or an export of it. Records after the last checkpoint
 *       are accepted unsigned if there are fewer than the interval and the oldest of them is younger than the signed
 *       {@code maxUnsignedAge} plus {@link #OPEN_GRACE} by {@code clock}; the report says how many are unsigned.
 *       They are not protected: cutting them off is not detectable without an external anchor. The signed head
 *       ({@link AuditHead}) must be younger than its refresh interval plus {@link #OPEN_GRACE} and name the log's
 *       last checkpoint: that is what shows a log cut back to an older checkpoint.</li>
 * </ul>
 *
 * <p>Both require a v2 checkpoint wherever the signed interval demands one, and an unbroken checkpoint chain. Logs
 * with v1 (legacy) checkpoints are refused unless {@link #acceptV1()} is set. Immutable and thread-safe.
 */
public final class VerifyOptions {
    /** Slack on top of the signed unsigned-age bound in open mode: writer scheduling, a slow disk, clock steps. */
    public static final Duration OPEN_GRACE = Duration.ofSeconds(5);

    private final Clock openClock;
    private final boolean acceptV1;
    private final long anchorSeq;
    private final byte[] anchorHash;

    private VerifyOptions(Clock openClock, boolean acceptV1, long anchorSeq, byte[] anchorHash) {
        this.openClock = openClock;
        this.acceptV1 = acceptV1;
        this.anchorSeq = anchorSeq;
        this.anchorHash = anchorHash;
    }

    /** A closed log: every record signed, the last checkpoint a closing one at the head. */
    public static VerifyOptions closed() {
        return new VerifyOptions(null, false, -1, null);
    }

    /** A live log: a short, young unsigned tail is accepted and counted; {@code clock} judges its age. */
    public static VerifyOptions open(Clock clock) {
        return new VerifyOptions(Objects.requireNonNull(clock, "clock"), false, -1, null);
    }

    /**
     * Also accepts v1 checkpoints (written before checkpoint encoding v2) the old, weaker way: they are checked
     * against their records and their signatures, but a deleted v1 checkpoint goes unnoticed, so a rewrite of the
     * records they covered is detectable only up to the first v2 checkpoint's chain. The report counts them.
     */
    public VerifyOptions acceptV1() {
        return new VerifyOptions(openClock, true, anchorSeq, anchorHash);
    }

    /**
     * Also requires that the log still holds record {@code seq} with hash {@code hash}: a head written down earlier
     * somewhere the server cannot write (what {@code verify} printed then). This is what shows a log cut back to an
     * earlier clean state, which nothing inside the file can show. Seq 0 stands for the empty log (hash all zeros).
     *
     * @throws IllegalArgumentException if {@code seq} is negative or {@code hash} is not 32 bytes
     */
    public VerifyOptions expectHead(long seq, byte[] hash) {
        if (seq < 0) {
            throw new IllegalArgumentException("anchor seq must be >= 0, got " + seq);
        }
        if (hash == null || hash.length != AuditEncoding.HASH_LENGTH) {
            throw new IllegalArgumentException("anchor hash must be " + AuditEncoding.HASH_LENGTH + " bytes");
        }
        return new VerifyOptions(openClock, acceptV1, seq, hash.clone());
    }

    /** True for {@link #open(Clock)}. */
    public boolean isOpen() {
        return openClock != null;
    }

    /** Whether v1 checkpoints are accepted. */
    public boolean acceptsV1() {
        return acceptV1;
    }

    Clock openClock() {
        return openClock;
    }

    /** The anchored record's seq, or -1 without {@link #expectHead}. */
    long anchorSeq() {
        return anchorSeq;
    }

    byte[] anchorHash() {
        return anchorHash == null ? null : anchorHash.clone();
    }

    @Override
    public String toString() {
        return "VerifyOptions{" + (isOpen() ? "open" : "closed") + (acceptV1 ? ", acceptV1" : "")
                + (anchorSeq >= 0 ? ", anchor at " + anchorSeq : "") + "}";
    }
}
