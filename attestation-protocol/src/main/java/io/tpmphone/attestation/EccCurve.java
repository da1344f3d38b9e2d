package io.tpmphone.attestation;

/** {@code TPM_ECC_CURVE} values this library supports (TPM 2.0 Part 2 §6.4), with JCA names and OIDs. */
public enum EccCurve {
    NIST_P256(0x0003, "secp256r1", "1.2.840.10045.3.1.7", 32),
    NIST_P384(0x0004, "secp384r1", "1.3.132.0.34", 48);

    private final int tpmId;
    private final String jcaName;
    private final String oid;
    private final int coordinateLength;

    EccCurve(int tpmId, String jcaName, String oid, int coordinateLength) {
        this.tpmId = tpmId;
        this.jcaName = jcaName;
        this.oid = oid;
        this.coordinateLength = coordinateLength;
    }

    public int tpmId() {
        return tpmId;
    }

    /** The JCA / SEC 2 name, e.g. {@code secp256r1}. */
    public String jcaName() {
        return jcaName;
    }

    /** The named-curve OID used in SubjectPublicKeyInfo. */
    public String oid() {
        return oid;
    }

    /** Bytes of one coordinate (and of the order). */
    public int coordinateLength() {
        return coordinateLength;
    }
}
