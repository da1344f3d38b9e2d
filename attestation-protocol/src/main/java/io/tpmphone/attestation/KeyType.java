package io.tpmphone.attestation;

/** {@code TPMI_ALG_PUBLIC}: the object types {@link TpmtPublic} parses (TPM 2.0 Part 2 §12.2.2). */
public enum KeyType {
    RSA(0x0001),
    KEYEDHASH(0x0008),
    ECC(0x0023),
    SYMCIPHER(0x0025);

    private final int tpmId;

    KeyType(int tpmId) {
        this.tpmId = tpmId;
    }

    public int tpmId() {
        return tpmId;
    }
}
