package io.tpmphone.tpm;

/**
 * The endorsement key templates of the TCG EK Credential Profile (v2.5 §B.3.3 "Template L-1" and "L-2"), with the
 * NV index where a manufacturer stores the matching certificate. Created from these templates with an all-zero
 * {@code unique} field, the EK has exactly the public key of the manufacturer's certificate.
 */
public enum EkType {
    /** RSA-2048, AES-128-CFB, SHA-256 name; certificate at NV {@code 0x01C00002}. What every TPM carries. */
    RSA_2048(0x01C00002, PersistentHandle.EK_RSA),
    /** ECC NIST P-256, AES-128-CFB, SHA-256 name; certificate at NV {@code 0x01C0000A}. */
    ECC_P256(0x01C0000A, PersistentHandle.EK_ECC);

    private final int certificateNvIndex;
    private final PersistentHandle defaultHandle;

    EkType(int certificateNvIndex, PersistentHandle defaultHandle) {
        this.certificateNvIndex = certificateNvIndex;
        this.defaultHandle = defaultHandle;
    }

    public int certificateNvIndex() {
        return certificateNvIndex;
    }

    /** Where the TCG provisioning guidance persists this EK. */
    public PersistentHandle defaultHandle() {
        return defaultHandle;
    }
}
