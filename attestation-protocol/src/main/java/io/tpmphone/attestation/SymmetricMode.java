package io.tpmphone.attestation;

/** Block-cipher modes ({@code TPMI_ALG_SYM_MODE}, TPM 2.0 Part 2 §6.3). */
public enum SymmetricMode {
    CTR(0x0040),
    OFB(0x0041),
    CBC(0x0042),
    CFB(0x0043),
    ECB(0x0044);

    private final int tpmId;

    SymmetricMode(int tpmId) {
        this.tpmId = tpmId;
    }

    public int tpmId() {
        return tpmId;
    }
}
