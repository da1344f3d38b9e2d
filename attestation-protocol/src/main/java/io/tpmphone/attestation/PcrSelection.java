package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.PcrSelectionCodec;
import io.tpmphone.attestation.internal.TpmReader;
import io.tpmphone.attestation.internal.TpmWriter;
import java.util.Arrays;
import java.util.Collections;
import java.util.Objects;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * One PCR bank and a non-empty set of PCR indices 0..23: a single-bank {@code TPML_PCR_SELECTION}
 * (TPM 2.0 Part 2 §10.9.7). Multi-bank selections are not supported. Immutable and thread-safe.
 */
public final class PcrSelection {
    /** Number of PCRs of a PC-client TPM. */
    public static final int PCR_COUNT = 24;
    /** {@code sizeofSelect} written by {@link #toTpml()}: 3 bytes for 24 PCRs. */
    public static final int SIZEOF_SELECT = 3;

    private final HashAlgorithm bank;
    private final int[] pcrs;

    private PcrSelection(HashAlgorithm bank, int[] sortedUniquePcrs) {
        this.bank = bank;
        this.pcrs = sortedUniquePcrs;
    }

    /**
     * The selection of {@code pcrs} in {@code bank}; order and repetitions do not matter.
     *
     * @throws IllegalArgumentException if no PCR is given or an index is outside 0..23
     */
    public static PcrSelection of(HashAlgorithm bank, int... pcrs) {
        Objects.requireNonNull(bank, "bank");
        Objects.requireNonNull(pcrs, "pcrs");
        if (pcrs.length == 0) {
            throw new IllegalArgumentException("a PCR selection needs at least one PCR index");
        }
        for (int pcr : pcrs) {
            if (pcr < 0 || pcr >= PCR_COUNT) {
                throw new IllegalArgumentException("PCR index " + pcr + " is out of range 0.." + (PCR_COUNT - 1));
            }
        }
        return new PcrSelection(bank, Arrays.stream(pcrs).sorted().distinct().toArray());
    }

    /**
     * Parses the tpm2-tools notation {@code bank:list}, e.g. {@code sha256:0,1,2,16} or {@code sha256:0-7,16}.
     *
     * @throws IllegalArgumentException saying what is wrong and what the form is
     */
    public static PcrSelection parse(String text) {
        Objects.requireNonNull(text, "text");
        String form = " (expected e.g. 'sha256:0,1,2,16' or 'sha256:0-7')";
        int colon = text.indexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException("PCR selection '" + text + "' has no ':' after the bank" + form);
        }
        if (text.indexOf('+') >= 0 || text.indexOf(':', colon + 1) >= 0) {
            throw new IllegalArgumentException("PCR selection '" + text
                    + "' names more than one bank; multi-bank selections are not supported" + form);
        }
        HashAlgorithm bank = HashAlgorithm.fromName(text.substring(0, colon));
        String list = text.substring(colon + 1).trim();
        if (list.isEmpty()) {
            throw new IllegalArgumentException("PCR selection '" + text + "' lists no PCR" + form);
        }
        TreeSet<Integer> set = new TreeSet<>();
        for (String item : list.split(",", -1)) {
            String t = item.trim();
            int dash = t.indexOf('-');
            int from;
            int to;
            try {
                if (dash >= 0) {
                    from = Integer.parseInt(t.substring(0, dash).trim());
                    to = Integer.parseInt(t.substring(dash + 1).trim());
                } else {
                    from = Integer.parseInt(t);
                    to = from;
                }
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("PCR selection '" + text + "': '" + t
                        + "' is not a PCR index or range" + form, e);
            }
            if (from < 0 || to >= PCR_COUNT || from > to) {
                throw new IllegalArgumentException("PCR selection '" + text + "': '" + t
                        + "' is outside 0.." + (PCR_COUNT - 1) + " or an empty range" + form);
            }
            for (int i = from; i <= to; i++) {
                set.add(i);
            }
        }
        return new PcrSelection(bank, set.stream().mapToInt(Integer::intValue).toArray());
    }

    /**
     * Parses a complete marshalled {@code TPML_PCR_SELECTION} (no trailing bytes).
     *
     * @throws MalformedStructureException if count is not 1, the bank is unknown, sizeofSelect is not 3 or 4,
     *     a PCR above 23 is selected, no PCR is selected, or the input is truncated or too long
     */
    public static PcrSelection fromTpml(byte[] tpml) throws MalformedStructureException {
        TpmReader r = new TpmReader(Objects.requireNonNull(tpml, "tpml"), "TPML_PCR_SELECTION");
        PcrSelection s = PcrSelectionCodec.read(r, "");
        r.requireEnd();
        return s;
    }

    public HashAlgorithm bank() {
        return bank;
    }

    /** The selected PCR indices, ascending (an unmodifiable copy). */
    public SortedSet<Integer> pcrs() {
        return Collections.unmodifiableSortedSet(
                Arrays.stream(pcrs).boxed().collect(Collectors.toCollection(TreeSet::new)));
    }

    /** The selected PCR indices, ascending (a fresh array). */
    public int[] indices() {
        return pcrs.clone();
    }

    public int size() {
        return pcrs.length;
    }

    public boolean contains(int pcr) {
        return Arrays.binarySearch(pcrs, pcr) >= 0;
    }

    /** The {@code pcrSelect} bitmap of {@link #SIZEOF_SELECT} bytes: PCR i is bit {@code i % 8} of byte i / 8. */
    public byte[] selectBitmap() {
        byte[] bitmap = new byte[SIZEOF_SELECT];
        for (int pcr : pcrs) {
            bitmap[pcr / 8] |= (byte) (1 << (pcr % 8));
        }
        return bitmap;
    }

    /** The marshalled {@code TPML_PCR_SELECTION}: count = 1, hash, sizeofSelect = 3, bitmap. */
    public byte[] toTpml() {
        return new TpmWriter().u32(1).u16(bank.tpmId()).u8(SIZEOF_SELECT).bytes(selectBitmap()).toByteArray();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PcrSelection other && bank == other.bank && Arrays.equals(pcrs, other.pcrs);
    }

    @Override
    public int hashCode() {
        return 31 * bank.hashCode() + Arrays.hashCode(pcrs);
    }

    /** The tpm2-tools notation, e.g. {@code sha256:0,1,2}; {@link #parse(String)} reads it back. */
    @Override
    public String toString() {
        return bank.tpmName() + ":" + Arrays.stream(pcrs).mapToObj(Integer::toString).collect(Collectors.joining(","));
    }
}
