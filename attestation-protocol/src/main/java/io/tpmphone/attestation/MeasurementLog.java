package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.TpmReader;
import io.tpmphone.attestation.internal.TpmWriter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * The append-only tpmphone measurement log: {@link MeasurementEvent}s in order, starting with a
 * {@link EventType#BASELINE} event. Immutable and thread-safe.
 *
 * <p>The encoding is the concatenation of the events' encodings with nothing before or between them, so an
 * append-only file of encoded events is a valid log. {@link #parse(byte[])} checks each event's syntax; whether
 * the log is well-formed as a whole (sequence numbers, baseline, PCR) and replays to a quoted value is decided by
 * {@link LogReplayVerifier}, so that a tampered log is reported with the offending event's index.
 */
public final class MeasurementLog {
    /** The most events a log may hold. */
    public static final int MAX_EVENTS = 10_000;

    private static final MeasurementLog EMPTY = new MeasurementLog(List.of());

    private final List<MeasurementEvent> events;

    private MeasurementLog(List<MeasurementEvent> events) {
        this.events = events;
    }

    /** A log with no events (not a valid log for {@link LogReplayVerifier}: it lacks the baseline). */
    public static MeasurementLog empty() {
        return EMPTY;
    }

    /**
     * A log of exactly these events, as given (no renumbering, no checks beyond the events' own).
     *
     * @throws IllegalArgumentException if there are more than {@link #MAX_EVENTS}
     */
    public static MeasurementLog of(List<MeasurementEvent> events) {
        Objects.requireNonNull(events, "events");
        if (events.size() > MAX_EVENTS) {
            throw new IllegalArgumentException("a measurement log holds at most " + MAX_EVENTS + " events, not "
                    + events.size());
        }
        List<MeasurementEvent> copy = List.copyOf(events);
        return new MeasurementLog(copy);
    }

    /**
     * A builder of a well-formed log whose event 0 is a {@link EventType#BASELINE} for {@code measurementPcr} with
     * the PCR value observed when the log started.
     */
    public static Builder builder(int measurementPcr, byte[] baselinePcrValue) {
        return new Builder(measurementPcr, baselinePcrValue);
    }

    /** The events in order (unmodifiable). */
    public List<MeasurementEvent> events() {
        return events;
    }

    public int size() {
        return events.size();
    }

    /** Event {@code index}; {@link IndexOutOfBoundsException} if there is none. */
    public MeasurementEvent event(int index) {
        return events.get(index);
    }

    /**
     * A new log with one more event: sequence {@link #size()}, on the PCR of event 0 (the baseline's PCR).
     *
     * @throws IllegalStateException if this log is empty or full
     * @throws IllegalArgumentException as {@link MeasurementEvent#of(int, int, EventType, byte[], String)}
     */
    public MeasurementLog append(EventType type, byte[] contentDigest, String data) {
        if (events.isEmpty()) {
            throw new IllegalStateException("cannot append to an empty log: start it with builder(pcr, baseline)");
        }
        if (events.size() >= MAX_EVENTS) {
            throw new IllegalStateException("the measurement log is full (" + MAX_EVENTS + " events)");
        }
        List<MeasurementEvent> next = new ArrayList<>(events);
        next.add(MeasurementEvent.of(events.size(), events.get(0).pcrIndex(), type, contentDigest, data));
        return new MeasurementLog(Collections.unmodifiableList(next));
    }

    /** The concatenated encodings of the events. */
    public byte[] encode() {
        TpmWriter w = new TpmWriter();
        for (MeasurementEvent e : events) {
            w.bytes(e.encode());
        }
        return w.toByteArray();
    }

    /**
     * Parses a complete encoded log: zero or more events, each with the right magic, a known type, SHA-256 only, at
     * most 4096 bytes of valid UTF-8 data; at most {@link #MAX_EVENTS} events; no trailing bytes.
     *
     * @throws MalformedStructureException naming the event index and field, e.g. {@code events[3].type}
     */
    public static MeasurementLog parse(byte[] encoded) throws MalformedStructureException {
        TpmReader r = new TpmReader(Objects.requireNonNull(encoded, "encoded"), "MeasurementLog");
        List<MeasurementEvent> events = new ArrayList<>();
        while (r.remaining() > 0) {
            if (events.size() == MAX_EVENTS) {
                throw r.error("events[" + MAX_EVENTS + "]", r.offset(), "more than " + MAX_EVENTS
                        + " events; a measurement log holds at most " + MAX_EVENTS);
            }
            int index = events.size();
            if (r.remaining() < MeasurementEvent.FIXED_LENGTH) {
                throw r.error("events[" + index + "]", r.offset(), r.remaining()
                        + " trailing byte(s) are not a whole event (at least " + MeasurementEvent.FIXED_LENGTH
                        + " needed): truncated or trailing data");
            }
            events.add(MeasurementEvent.read(r, "events[" + index + "]."));
        }
        return new MeasurementLog(Collections.unmodifiableList(events));
    }

    /**
     * Replays the events on {@code pcrIndex}: start with the content digest of the first {@link EventType#BASELINE}
     * event for that PCR (32 zero bytes, the reset value, if there is none), then for every other event on that PCR
     * in log order {@code v = SHA-256(v || event.extendDigest())}. Does not check the log's structure; use
     * {@link LogReplayVerifier} for that.
     */
    public ReplayResult replay(int pcrIndex) {
        if (pcrIndex < 0 || pcrIndex >= PcrSelection.PCR_COUNT) {
            throw new IllegalArgumentException("PCR index " + pcrIndex + " is outside 0..23");
        }
        byte[] start = null;
        for (MeasurementEvent e : events) {
            if (e.type() == EventType.BASELINE && e.pcrIndex() == pcrIndex) {
                start = e.contentDigest();
                break;
            }
        }
        boolean baseline = start != null;
        if (start == null) {
            start = new byte[MeasurementEvent.HASH.digestLength()];
        }
        byte[] v = start;
        int extended = 0;
        for (MeasurementEvent e : events) {
            if (e.type() != EventType.BASELINE && e.pcrIndex() == pcrIndex) {
                v = MeasurementEvent.HASH.digest(v, e.extendDigest());
                extended++;
            }
        }
        return new ReplayResult(pcrIndex, baseline, start, v, extended);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MeasurementLog l && events.equals(l.events);
    }

    @Override
    public int hashCode() {
        return events.hashCode();
    }

    @Override
    public String toString() {
        return "MeasurementLog[" + events.size() + " event(s)]";
    }

    /** Builds a well-formed log: baseline first, then sequence numbers 1, 2, ... on one PCR. Not thread-safe. */
    public static final class Builder {
        private final int pcrIndex;
        private final List<MeasurementEvent> events = new ArrayList<>();

        private Builder(int pcrIndex, byte[] baselinePcrValue) {
            this.pcrIndex = pcrIndex;
            events.add(MeasurementEvent.of(0, pcrIndex, EventType.BASELINE,
                    Objects.requireNonNull(baselinePcrValue, "baselinePcrValue"), "pcr " + pcrIndex));
        }

        /**
         * Appends the next event on the log's PCR.
         *
         * @throws IllegalStateException if the log would exceed {@link MeasurementLog#MAX_EVENTS}
         * @throws IllegalArgumentException if the type is {@link EventType#BASELINE} or as
         *     {@link MeasurementEvent#of(int, int, EventType, byte[], String)}
         */
        public Builder append(EventType type, byte[] contentDigest, String data) {
            Objects.requireNonNull(type, "type");
            if (type == EventType.BASELINE) {
                throw new IllegalArgumentException("the baseline is event 0 only; the builder already wrote it");
            }
            if (events.size() >= MAX_EVENTS) {
                throw new IllegalStateException("the measurement log is full (" + MAX_EVENTS + " events)");
            }
            events.add(MeasurementEvent.of(events.size(), pcrIndex, type, contentDigest, data));
            return this;
        }

        public MeasurementLog build() {
            return new MeasurementLog(List.copyOf(events));
        }
    }
}
