package io.tpmphone.attestation;

import java.util.Objects;
import java.util.Optional;

/**
 * What the caller of {@link Appraiser#appraise} has already established about the evidence, outside the event
 * log. The appraiser trusts these statements; it checks nothing of them itself. Immutable and thread-safe.
 */
public final class AppraisalContext {
    private final boolean quoteVerified;
    private final boolean isolationAttested;
    private final boolean keysSealed;
    private final MeasurementLog previouslyAcceptedLog;

    private AppraisalContext(Builder b) {
        this.quoteVerified = b.quoteVerified;
        this.isolationAttested = b.isolationAttested;
        this.keysSealed = b.keysSealed;
        this.previouslyAcceptedLog = b.previouslyAcceptedLog;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * True only if the caller verified all of: the AK is enrolled (and its template was enforced at enrollment),
     * the quote's signature verifies with it, its qualifying data is the expected fresh nonce or binder, and the
     * quoted PCR digest matches the {@link PcrValues} passed to the appraiser (e.g. with {@link QuoteVerifier}).
     */
    public boolean quoteVerified() {
        return quoteVerified;
    }

    /** Whether the caller has established that the launch was isolated as the ISOLATION event says. */
    public boolean isolationAttested() {
        return isolationAttested;
    }

    /** Whether the host's keys are held sealed to the measured state. */
    public boolean keysSealed() {
        return keysSealed;
    }

    /**
     * The log last accepted from this host since the same boot, if the caller keeps it: lets a replay failure name
     * the modified event.
     */
    public Optional<MeasurementLog> previouslyAcceptedLog() {
        return Optional.ofNullable(previouslyAcceptedLog);
    }

    @Override
    public String toString() {
        return "AppraisalContext[quoteVerified=" + quoteVerified + ", isolationAttested=" + isolationAttested
                + ", keysSealed=" + keysSealed + ", previousLog=" + (previouslyAcceptedLog != null) + "]";
    }

    /** Builder; everything defaults to false / absent. Not thread-safe. */
    public static final class Builder {
        private boolean quoteVerified;
        private boolean isolationAttested;
        private boolean keysSealed;
        private MeasurementLog previouslyAcceptedLog;

        private Builder() {
        }

        /** See {@link AppraisalContext#quoteVerified()}. */
        public Builder quoteVerified(boolean v) {
            this.quoteVerified = v;
            return this;
        }

        /** See {@link AppraisalContext#isolationAttested()}. */
        public Builder isolationAttested(boolean v) {
            this.isolationAttested = v;
            return this;
        }

        /** See {@link AppraisalContext#keysSealed()}. */
        public Builder keysSealed(boolean v) {
            this.keysSealed = v;
            return this;
        }

        /** See {@link AppraisalContext#previouslyAcceptedLog()}. */
        public Builder previouslyAcceptedLog(MeasurementLog log) {
            this.previouslyAcceptedLog = Objects.requireNonNull(log, "log");
            return this;
        }

        public AppraisalContext build() {
            return new AppraisalContext(this);
        }
    }
}
