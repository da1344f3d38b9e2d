package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.Hex;
import java.util.Arrays;
import java.util.Objects;

/**
 * The PCR value a {@link MeasurementLog} replays to. Immutable and thread-safe; arrays are copied out.
 * Computing one proves nothing by itself: {@link LogReplayVerifier#check} returns one only after comparing it with
 * a quoted value.
 */
public final class ReplayResult {
    private final int pcrIndex;
    private final boolean baselinePresent;
    private final byte[] initialValue;
    private final byte[] value;
    private final int extendedEvents;

    ReplayResult(int pcrIndex, boolean baselinePresent, byte[] initialValue, byte[] value, int extendedEvents) {
        this.pcrIndex = pcrIndex;
        this.baselinePresent = baselinePresent;
        this.initialValue = initialValue.clone();
        this.value = value.clone();
        this.extendedEvents = extendedEvents;
    }

    public int pcrIndex() {
        return pcrIndex;
    }

    /** Whether replay started from a {@link EventType#BASELINE} event (otherwise from 32 zero bytes). */
    public boolean baselinePresent() {
        return baselinePresent;
    }

    /** A copy of the value replay started from. */
    public byte[] initialValue() {
        return initialValue.clone();
    }

    /** A copy of the replayed PCR value. */
    public byte[] value() {
        return value.clone();
    }

    public String valueHex() {
        return Hex.of(value);
    }

    /** How many events were extended (every event on the PCR except the baseline). */
    public int extendedEvents() {
        return extendedEvents;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ReplayResult r && pcrIndex == r.pcrIndex && baselinePresent == r.baselinePresent
                && extendedEvents == r.extendedEvents && Arrays.equals(initialValue, r.initialValue)
                && Arrays.equals(value, r.value);
    }

    @Override
    public int hashCode() {
        return Objects.hash(pcrIndex, baselinePresent, extendedEvents, Arrays.hashCode(initialValue),
                Arrays.hashCode(value));
    }

    @Override
    public String toString() {
        return "ReplayResult[pcr " + pcrIndex + " = " + valueHex() + " after " + extendedEvents + " event(s)]";
    }
}
