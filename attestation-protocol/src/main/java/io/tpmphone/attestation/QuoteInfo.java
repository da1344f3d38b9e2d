package io.tpmphone.attestation;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/** {@code TPMS_QUOTE_INFO} (TPM 2.0 Part 2 §10.12.4): the quoted PCR selection and their composite digest. */
public record QuoteInfo(PcrSelection selection, byte[] pcrDigest) {
    public QuoteInfo {
        Objects.requireNonNull(selection, "selection");
        pcrDigest = Objects.requireNonNull(pcrDigest, "pcrDigest").clone();
    }

    /** A copy of the digest. */
    @Override
    public byte[] pcrDigest() {
        return pcrDigest.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuoteInfo q && selection.equals(q.selection) && Arrays.equals(pcrDigest, q.pcrDigest);
    }

    @Override
    public int hashCode() {
        return 31 * selection.hashCode() + Arrays.hashCode(pcrDigest);
    }

    @Override
    public String toString() {
        return "QuoteInfo[selection=" + selection + ", pcrDigest=" + HexFormat.of().formatHex(pcrDigest) + "]";
    }
}
