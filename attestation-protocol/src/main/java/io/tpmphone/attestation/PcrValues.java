package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.TpmWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * A {@link PcrSelection} and one digest per selected PCR, each as long as the bank's digest. Immutable and
 * thread-safe; arrays are copied in and out.
 */
public final class PcrValues {
    private final PcrSelection selection;
    private final byte[][] values;

    private PcrValues(PcrSelection selection, byte[][] values) {
        this.selection = selection;
        this.values = values;
    }

    /**
     * @param valuesInSelectionOrder one value per selected PCR, in ascending PCR order
     * @throws IllegalArgumentException if the count or a length is wrong
     */
    public static PcrValues of(PcrSelection selection, List<byte[]> valuesInSelectionOrder) {
        Objects.requireNonNull(selection, "selection");
        Objects.requireNonNull(valuesInSelectionOrder, "valuesInSelectionOrder");
        int[] pcrs = selection.indices();
        if (valuesInSelectionOrder.size() != pcrs.length) {
            throw new IllegalArgumentException("selection " + selection + " has " + pcrs.length
                    + " PCR(s) but " + valuesInSelectionOrder.size() + " value(s) were given");
        }
        int expected = selection.bank().digestLength();
        byte[][] copies = new byte[pcrs.length][];
        for (int i = 0; i < pcrs.length; i++) {
            byte[] v = Objects.requireNonNull(valuesInSelectionOrder.get(i), "value");
            if (v.length != expected) {
                throw new IllegalArgumentException("PCR " + pcrs[i] + " value is " + v.length + " bytes; the "
                        + selection.bank().tpmName() + " bank needs " + expected);
            }
            copies[i] = v.clone();
        }
        return new PcrValues(selection, copies);
    }

    public PcrSelection selection() {
        return selection;
    }

    /** A copy of the value of {@code pcr}; {@link IllegalArgumentException} if it is not selected. */
    public byte[] value(int pcr) {
        return values[indexOf(pcr)].clone();
    }

    /** Copies of the values in ascending PCR order. */
    public List<byte[]> values() {
        List<byte[]> out = new ArrayList<>(values.length);
        for (byte[] v : values) {
            out.add(v.clone());
        }
        return Collections.unmodifiableList(out);
    }

    /**
     * {@code H(value[pcr0] || value[pcr1] || ...)} in ascending PCR order: the {@code pcrDigest} of a quote signed
     * with hash {@code h} (TPM 2.0 Part 3 §18.4) and the {@code pcrDigest} argument of TPM2_PolicyPCR.
     */
    public byte[] compositeDigest(HashAlgorithm h) {
        Objects.requireNonNull(h, "h");
        return h.digest(TpmWriter.concat(values));
    }

    /** A copy with the value of {@code pcr} replaced (e.g. to model a tampered PCR in a test). */
    public PcrValues withValue(int pcr, byte[] value) {
        Objects.requireNonNull(value, "value");
        int i = indexOf(pcr);
        List<byte[]> copy = new ArrayList<>(Arrays.asList(values));
        copy.set(i, value);
        return of(selection, copy);
    }

    private int indexOf(int pcr) {
        int i = Arrays.binarySearch(selection.indices(), pcr);
        if (i < 0) {
            throw new IllegalArgumentException("PCR " + pcr + " is not in the selection " + selection);
        }
        return i;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PcrValues other && selection.equals(other.selection)
                && Arrays.deepEquals(values, other.values);
    }

    @Override
    public int hashCode() {
        return 31 * selection.hashCode() + Arrays.deepHashCode(values);
    }

    @Override
    public String toString() {
        return "PcrValues[" + selection + "]";
    }
}
