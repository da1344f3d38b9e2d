package io.tpmphone.attestation;

/** {@code TPMA_OBJECT} bits (TPM 2.0 Part 2 §8.3). Other bits are reserved and rejected by the parser. */
public enum ObjectAttribute {
    FIXED_TPM(1 << 1),
    ST_CLEAR(1 << 2),
    FIXED_PARENT(1 << 4),
    SENSITIVE_DATA_ORIGIN(1 << 5),
    USER_WITH_AUTH(1 << 6),
    ADMIN_WITH_POLICY(1 << 7),
    NO_DA(1 << 10),
    ENCRYPTED_DUPLICATION(1 << 11),
    RESTRICTED(1 << 16),
    DECRYPT(1 << 17),
    SIGN_ENCRYPT(1 << 18),
    /** {@code x509sign} (added in TPM 2.0 revision 1.59). */
    X509_SIGN(1 << 19);

    private final int mask;

    ObjectAttribute(int mask) {
        this.mask = mask;
    }

    /** The bit in {@code TPMA_OBJECT}. */
    public int mask() {
        return mask;
    }

    /** All defined bits. */
    static int allMasks() {
        int all = 0;
        for (ObjectAttribute a : values()) {
            all |= a.mask;
        }
        return all;
    }
}
