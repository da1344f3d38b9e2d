package io.tpmphone.attestation;

/** The scheme algorithm ids ({@code TPM_ALG_ID}) used in key parameters and signatures (TPM 2.0 Part 2 §6.3). */
public enum SchemeAlgorithm {
    /** {@code TPM_ALG_NULL}: no scheme fixed by the key. */
    NULL(0x0010),
    HMAC(0x0005),
    XOR(0x000A),
    RSASSA(0x0014),
    RSAES(0x0015),
    RSAPSS(0x0016),
    OAEP(0x0017),
    ECDSA(0x0018),
    ECDH(0x0019);

    private final int tpmId;

    SchemeAlgorithm(int tpmId) {
        this.tpmId = tpmId;
    }

    public int tpmId() {
        return tpmId;
    }

    /** Whether the scheme carries a hash algorithm ({@code RSAES} and {@code NULL} do not). */
    public boolean hasHash() {
        return this != NULL && this != RSAES;
    }
}
