package io.tpmphone.attestation;

import static io.tpmphone.attestation.Measurements.BASELINE;
import static io.tpmphone.attestation.Measurements.PCR;
import static io.tpmphone.attestation.Measurements.approvedLaunch;
import static io.tpmphone.attestation.Measurements.hex;
import static io.tpmphone.attestation.Measurements.log;
import static io.tpmphone.attestation.Measurements.quote;
import static io.tpmphone.attestation.Measurements.quoteFor;
import static io.tpmphone.attestation.Measurements.sha256;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.EventLogException.Problem;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class LogReplayVerifierTest {
    private final MeasurementLog good = log(approvedLaunch(true));
    private final PcrValues quoted = quoteFor(good);

    private static MeasurementEvent renumbered(MeasurementEvent e, int sequence) {
        return MeasurementEvent.of(sequence, e.pcrIndex(), e.type(), e.contentDigest(), e.data());
    }

    private static EventLogException rejected(MeasurementLog log, PcrValues quoted) {
        return assertThrows(EventLogException.class, () -> LogReplayVerifier.check(log, quoted, PCR));
    }

    @Test
    void untamperedLog_replaysToTheQuotedValue() throws Exception {
        ReplayResult r = LogReplayVerifier.check(good, quoted, PCR);
        assertArrayEquals(quoted.value(PCR), r.value());
        assertEquals(good.size() - 1, r.extendedEvents());
    }

    @Test
    void removedEvent_isNamedByIndex() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.remove(4);
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(Problem.SEQUENCE, e.problem());
        assertEquals(OptionalInt.of(4), e.eventIndex());
        assertTrue(e.getMessage().contains("removed"), e.getMessage());
    }

    @Test
    void removedLastEvent_failsReplayWithBothValues() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.remove(events.size() - 1);
        MeasurementLog shorter = MeasurementLog.of(events);
        EventLogException e = rejected(shorter, quoted);
        assertEquals(Problem.REPLAY, e.problem());
        assertTrue(e.getMessage().contains(hex(quoted.value(PCR))), e.getMessage());
        assertTrue(e.getMessage().contains(shorter.replay(PCR).valueHex()), e.getMessage());
    }

    @Test
    void insertedEventWithARepeatedSequence_isNamedByIndex() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.add(5, MeasurementEvent.of(5, PCR, EventType.CLASSPATH_JAR, sha256("evil"), "evil.jar"));
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(Problem.SEQUENCE, e.problem());
        assertEquals(OptionalInt.of(5), e.eventIndex());
        assertTrue(e.getMessage().contains("inserted"), e.getMessage());
    }

    @Test
    void insertedEventWithAFreshSequence_isNamedByIndex() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.add(3, MeasurementEvent.of(99, PCR, EventType.CLASSPATH_JAR, sha256("evil"), "evil.jar"));
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(OptionalInt.of(3), e.eventIndex());
    }

    @Test
    void insertedAndRenumberedEvent_failsReplay() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.add(3, MeasurementEvent.of(3, PCR, EventType.CLASSPATH_JAR, sha256("evil"), "evil.jar"));
        for (int i = 4; i < events.size(); i++) {
            events.set(i, renumbered(events.get(i), i));
        }
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(Problem.REPLAY, e.problem());
        assertEquals(OptionalInt.empty(), e.eventIndex());
    }

    @Test
    void modifiedEvent_failsReplay_andIsNamedAgainstThePreviouslyAcceptedLog() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        MeasurementEvent jar = events.get(3);
        events.set(3, MeasurementEvent.of(3, PCR, jar.type(), sha256("patched"), jar.data()));
        MeasurementLog modified = MeasurementLog.of(events);
        EventLogException plain = rejected(modified, quoted);
        assertEquals(Problem.REPLAY, plain.problem());
        assertTrue(plain.getMessage().contains("does not replay"), plain.getMessage());

        MeasurementLog accepted = MeasurementLog.of(good.events().subList(0, 6));
        EventLogException named = assertThrows(EventLogException.class,
                () -> LogReplayVerifier.check(modified, quoted, PCR, accepted));
        assertEquals(OptionalInt.of(3), named.eventIndex());
        assertTrue(named.getMessage().contains("modified"), named.getMessage());
    }

    @Test
    void modifiedData_failsReplay() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        MeasurementEvent jar = events.get(3);
        events.set(3, MeasurementEvent.of(3, PCR, jar.type(), jar.contentDigest(), "other.jar"));
        assertEquals(Problem.REPLAY, rejected(MeasurementLog.of(events), quoted).problem());
    }

    @Test
    void logWithoutBaseline_isRejectedAtEventZero() {
        List<MeasurementEvent> events = new ArrayList<>();
        for (int i = 1; i < good.size(); i++) {
            events.add(renumbered(good.event(i), i - 1));
        }
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(Problem.BASELINE, e.problem());
        assertEquals(OptionalInt.of(0), e.eventIndex());
        EventLogException empty = rejected(MeasurementLog.empty(), quoted);
        assertEquals(OptionalInt.of(0), empty.eventIndex());
    }

    @Test
    void secondBaseline_isRejectedAtItsIndex() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        events.set(2, MeasurementEvent.of(2, PCR, EventType.BASELINE, sha256("reset"), ""));
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(Problem.BASELINE, e.problem());
        assertEquals(OptionalInt.of(2), e.eventIndex());
    }

    @Test
    void eventForAnotherPcr_isNamed() {
        List<MeasurementEvent> events = new ArrayList<>(good.events());
        MeasurementEvent e6 = events.get(6);
        events.set(6, MeasurementEvent.of(6, 15, e6.type(), e6.contentDigest(), e6.data()));
        EventLogException e = rejected(MeasurementLog.of(events), quoted);
        assertEquals(Problem.PCR_INDEX, e.problem());
        assertEquals(OptionalInt.of(6), e.eventIndex());
        assertTrue(e.getMessage().contains("PCR 15"), e.getMessage());
    }

    @Test
    void wrongBaselineValue_failsReplay() {
        MeasurementLog otherStart = MeasurementLog.builder(PCR, sha256("another boot")).build();
        assertEquals(Problem.REPLAY, rejected(otherStart, quote(BASELINE)).problem());
    }

    @Test
    void baselineOnlyLog_replaysToTheBaseline() throws Exception {
        MeasurementLog fresh = MeasurementLog.builder(PCR, BASELINE).build();
        assertArrayEquals(BASELINE, LogReplayVerifier.check(fresh, quote(BASELINE), PCR).value());
    }

    @Test
    void quoteWithoutTheMeasurementPcrOrOnSha1_isRejected() {
        PcrValues noPcr14 = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA256, 0), List.of(new byte[32]));
        assertEquals(Problem.PCR_SELECTION, rejected(good, noPcr14).problem());
        PcrValues sha1 = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA1, PCR), List.of(new byte[20]));
        EventLogException e = rejected(good, sha1);
        assertEquals(Problem.PCR_SELECTION, e.problem());
        assertTrue(e.getMessage().contains("sha1"), e.getMessage());
    }
}
