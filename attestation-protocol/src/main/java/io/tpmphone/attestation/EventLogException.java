package io.tpmphone.attestation;

import java.security.GeneralSecurityException;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A {@link MeasurementLog} is not well-formed or does not replay to the quoted PCR value. {@link #problem()} says
 * which check failed, {@link #eventIndex()} names the first offending event when one can be named. Never carries
 * secret material.
 */
public class EventLogException extends GeneralSecurityException {
    private static final long serialVersionUID = 1L;

    /** The check that failed, in the order {@link LogReplayVerifier} applies them. */
    public enum Problem {
        /** The quote does not cover the measurement PCR in the SHA-256 bank. */
        PCR_SELECTION,
        /** A sequence number is not the event's position (an event was removed, inserted or reordered). */
        SEQUENCE,
        /** The log does not start with exactly one {@link EventType#BASELINE} event. */
        BASELINE,
        /** An event is recorded for a PCR other than the measurement PCR. */
        PCR_INDEX,
        /** The replayed value differs from the quoted PCR value. */
        REPLAY
    }

    private final Problem problem;
    private final int eventIndex;

    /**
     * @param eventIndex the first offending event, or -1 if none can be named
     */
    public EventLogException(Problem problem, int eventIndex, String message) {
        super(Objects.requireNonNull(problem, "problem") + (eventIndex >= 0 ? " at event " + eventIndex : "")
                + ": " + message);
        this.problem = problem;
        this.eventIndex = eventIndex;
    }

    public Problem problem() {
        return problem;
    }

    /** The index of the first offending event, if one can be named. */
    public OptionalInt eventIndex() {
        return eventIndex >= 0 ? OptionalInt.of(eventIndex) : OptionalInt.empty();
    }
}
