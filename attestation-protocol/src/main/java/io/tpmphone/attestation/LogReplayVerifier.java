package io.tpmphone.attestation;

import io.tpmphone.attestation.EventLogException.Problem;
import io.tpmphone.attestation.internal.Hex;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Checks that a {@link MeasurementLog} is well-formed and replays to the quoted value of the measurement PCR.
 * Stateless and thread-safe.
 *
 * <p>Order of checks (the first failure is thrown):
 * <ol>
 *   <li>the quoted values are in the SHA-256 bank and include the measurement PCR;
 *   <li>per event, in log order: its sequence number equals its position (a gap names the first event after a
 *       removed one, a repeat names the inserted or duplicated one); event 0 and only event 0 is the
 *       {@link EventType#BASELINE}; the event is for the measurement PCR;
 *   <li>the replayed value equals the quoted PCR value (compared in constant time).
 * </ol>
 *
 * <p>When a sequence number repeats, the verifier tries the log without each of the two events that carry it
 * (two extra replays, no recursion) and names the one whose removal makes the log replay: the inserted event.
 *
 * <p>A modified event keeps its position, so a replay mismatch alone cannot say which event changed. When the
 * caller has the log it last accepted from the same host and boot (the log is append-only, so that log must be a
 * prefix of this one), {@link #check(MeasurementLog, PcrValues, int, MeasurementLog)} names the first event that
 * differs from it.
 */
public final class LogReplayVerifier {
    private LogReplayVerifier() {
    }

    /**
     * Verifies {@code log} against {@code quoted} for {@code measurementPcr}.
     *
     * @return the replay result, whose value equals the quoted value
     * @throws EventLogException naming the {@link Problem} and, where possible, the first offending event
     */
    public static ReplayResult check(MeasurementLog log, PcrValues quoted, int measurementPcr)
            throws EventLogException {
        return check(log, quoted, measurementPcr, null);
    }

    /**
     * As {@link #check(MeasurementLog, PcrValues, int)}; if replay fails and {@code previouslyAccepted} (the log
     * last accepted from the same host since the same boot, same baseline) differs from {@code log} in an event
     * both hold, that event's index is named.
     */
    public static ReplayResult check(MeasurementLog log, PcrValues quoted, int measurementPcr,
            MeasurementLog previouslyAccepted) throws EventLogException {
        Objects.requireNonNull(log, "log");
        Objects.requireNonNull(quoted, "quoted");
        PcrSelection selection = quoted.selection();
        if (selection.bank() != MeasurementEvent.HASH) {
            throw new EventLogException(Problem.PCR_SELECTION, -1, "the quoted PCRs are in the "
                    + selection.bank().tpmName() + " bank; the event log replays the sha256 bank only");
        }
        if (!selection.pcrs().contains(measurementPcr)) {
            throw new EventLogException(Problem.PCR_SELECTION, -1, "the quote selects " + selection
                    + " but not the measurement PCR " + measurementPcr + "; quote it to verify the log");
        }
        List<MeasurementEvent> events = log.events();
        if (events.isEmpty()) {
            throw new EventLogException(Problem.BASELINE, 0,
                    "the log is empty; it must start with a BASELINE event for PCR " + measurementPcr);
        }
        for (int i = 0; i < events.size(); i++) {
            try {
                checkStructure(i, events.get(i), measurementPcr);
            } catch (EventLogException e) {
                throw nameInsertedEvent(log, quoted, measurementPcr, i, e);
            }
        }
        ReplayResult replay = log.replay(measurementPcr);
        byte[] expected = quoted.value(measurementPcr);
        if (!MessageDigest.isEqual(expected, replay.value())) {
            int differs = firstDifference(log, previouslyAccepted);
            String hexes = "the log replays to " + replay.valueHex() + " but the quoted PCR " + measurementPcr
                    + " is " + Hex.of(expected);
            if (differs >= 0) {
                throw new EventLogException(Problem.REPLAY, differs, "event " + differs
                        + " differs from the log accepted before (it was modified); " + hexes);
            }
            throw new EventLogException(Problem.REPLAY, -1, "the log does not replay to the quoted PCR value: "
                    + hexes + "; an event was modified, inserted with renumbering, or left out of the log");
        }
        return replay;
    }

    private static void checkStructure(int i, MeasurementEvent e, int measurementPcr) throws EventLogException {
        if (e.sequence() != i) {
            String missing = e.sequence() == i + 1 ? "sequence " + i + " is missing"
                    : "sequences " + i + ".." + (e.sequence() - 1) + " are missing";
            String what = e.sequence() > i
                    ? missing + " (event(s) removed)"
                    : "sequence " + e.sequence() + " repeats or goes back (event inserted or reordered)";
            throw new EventLogException(Problem.SEQUENCE, i, "event at position " + i + " has sequence "
                    + e.sequence() + ": " + what);
        }
        if (i == 0 && e.type() != EventType.BASELINE) {
            throw new EventLogException(Problem.BASELINE, 0, "event 0 is " + e.type()
                    + "; the log must start with a BASELINE event");
        }
        if (i > 0 && e.type() == EventType.BASELINE) {
            throw new EventLogException(Problem.BASELINE, i, "event " + i
                    + " is a second BASELINE; only event 0 may be one");
        }
        if (e.pcrIndex() != measurementPcr) {
            throw new EventLogException(Problem.PCR_INDEX, i, "event " + i + " (" + e.type() + ") is for PCR "
                    + e.pcrIndex() + "; every event must be for the measurement PCR " + measurementPcr);
        }
    }

    /**
     * A sequence number that repeats at position {@code i} means one of two events with the same number was
     * inserted; if the log without one of them is well-formed and replays to the quoted value, that one is named.
     * Costs at most two replays.
     */
    private static EventLogException nameInsertedEvent(MeasurementLog log, PcrValues quoted, int measurementPcr,
            int i, EventLogException e) {
        int sequence = log.event(i).sequence();
        if (e.problem() != Problem.SEQUENCE || sequence >= i) {
            return e;
        }
        for (int candidate : new int[] {sequence, i}) {
            List<MeasurementEvent> without = new ArrayList<>(log.events());
            without.remove(candidate);
            MeasurementLog shorter = MeasurementLog.of(without);
            try {
                if (replaysWithoutDiagnosis(shorter, quoted, measurementPcr)) {
                    return new EventLogException(Problem.SEQUENCE, candidate, "event " + candidate + " ("
                            + log.event(candidate).type() + ") was inserted: sequence " + sequence
                            + " appears twice, and without this event the log replays to the quoted PCR value");
                }
            } catch (EventLogException notThisOne) {
                // try the other candidate
            }
        }
        return e;
    }

    /** Structure and replay only: no diagnosis, so a hostile log cannot make diagnosis recurse. */
    private static boolean replaysWithoutDiagnosis(MeasurementLog log, PcrValues quoted, int measurementPcr)
            throws EventLogException {
        for (int i = 0; i < log.size(); i++) {
            checkStructure(i, log.event(i), measurementPcr);
        }
        return MessageDigest.isEqual(quoted.value(measurementPcr), log.replay(measurementPcr).value());
    }

    private static int firstDifference(MeasurementLog log, MeasurementLog previous) {
        if (previous == null || previous.size() == 0 || log.size() == 0
                || !previous.event(0).equals(log.event(0))) {
            return -1;
        }
        int common = Math.min(previous.size(), log.size());
        for (int i = 1; i < common; i++) {
            if (!previous.event(i).equals(log.event(i))) {
                return i;
            }
        }
        return -1;
    }
}
