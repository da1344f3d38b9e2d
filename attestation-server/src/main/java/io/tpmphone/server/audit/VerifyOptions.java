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
 *       They are not protected: cutting them off is not detectable without an external anchor.</li>
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

    private VerifyOptions(Clock openClock, boolean acceptV1) {
        this.openClock = openClock;
        this.acceptV1 = acceptV1;
    }

    /** A closed log: every record signed, the last checkpoint a closing one at the head. */
    public static VerifyOptions closed() {
        return new VerifyOptions(null, false);
    }

    /** A live log: a short, young unsigned tail is accepted and counted; {@code clock} judges its age. */
    public static VerifyOptions open(Clock clock) {
        return new VerifyOptions(Objects.requireNonNull(clock, "clock"), false);
    }

    /**
     * Also accepts v1 checkpoints (written before checkpoint encoding v2) the old, weaker way: they are checked
     * against their records and their signatures, but a deleted v1 checkpoint goes unnoticed, so a rewrite of the
     * records they covered is detectable only up to the first v2 checkpoint's chain. The report counts them.
     */
    public VerifyOptions acceptV1() {
        return new VerifyOptions(openClock, true);
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

    @Override
    public String toString() {
        return "VerifyOptions{" + (isOpen() ? "open" : "closed") + (acceptV1 ? ", acceptV1" : "") + "}";
    }
}
