package io.tpmphone.attestation.internal;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.PcrSelection;
import java.util.ArrayList;
import java.util.List;

/** Reads a single-bank {@code TPML_PCR_SELECTION} (TPM 2.0 Part 2 §10.9.7) inside a larger structure. */
public final class PcrSelectionCodec {
    private PcrSelectionCodec() {
    }

    /**
     * Reads the selection at the reader's position.
     *
     * @param prefix field path prefix for messages, e.g. {@code attested.pcrSelect.} (may be empty)
     */
    public static PcrSelection read(TpmReader r, String prefix) throws MalformedStructureException {
        int countAt = r.offset();
        long count = r.u32(prefix + "count");
        if (count != 1) {
            throw r.error(prefix + "count", countAt, "count is " + count
                    + "; expected 1 (multi-bank and empty PCR selections are not supported)");
        }
        HashAlgorithm bank = r.hashAlg(prefix + "pcrSelections[0].hash");
        int sizeAt = r.offset();
        int sizeofSelect = r.u8(prefix + "pcrSelections[0].sizeofSelect");
        if (sizeofSelect < 3 || sizeofSelect > 4) {
            throw r.error(prefix + "pcrSelections[0].sizeofSelect", sizeAt,
                    "sizeofSelect is " + sizeofSelect + "; expected 3 (or 4 with PCRs 24..31 unselected)");
        }
        int bitmapAt = r.offset();
        byte[] bitmap = r.bytes(sizeofSelect, prefix + "pcrSelections[0].pcrSelect");
        List<Integer> pcrs = new ArrayList<>();
        for (int i = 0; i < sizeofSelect * 8; i++) {
            if ((bitmap[i / 8] & (1 << (i % 8))) != 0) {
                if (i >= PcrSelection.PCR_COUNT) {
                    throw r.error(prefix + "pcrSelections[0].pcrSelect", bitmapAt,
                            "PCR " + i + " is selected; only PCRs 0.." + (PcrSelection.PCR_COUNT - 1) + " exist");
                }
                pcrs.add(i);
            }
        }
        if (pcrs.isEmpty()) {
            throw r.error(prefix + "pcrSelections[0].pcrSelect", bitmapAt, "no PCR is selected; expected at least one");
        }
        return PcrSelection.of(bank, pcrs.stream().mapToInt(Integer::intValue).toArray());
    }
}
