package io.tpmphone.attestation;

/** The {@code TPMI_ST_ATTEST} types this library accepts (TPM 2.0 Part 2 §6.9). */
public enum AttestType {
    /** {@code TPM_ST_ATTEST_CERTIFY} (0x8017): TPM2_Certify. */
    CERTIFY(0x8017),
    /** {@code TPM_ST_ATTEST_QUOTE} (0x8018): TPM2_Quote. */
    QUOTE(0x8018);

    private final int tag;

    AttestType(int tag) {
        this.tag = tag;
    }

    /** The {@code TPM_ST} value. */
    public int tag() {
        return tag;
    }
}
