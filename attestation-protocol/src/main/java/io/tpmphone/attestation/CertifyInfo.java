package io.tpmphone.attestation;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/** {@code TPMS_CERTIFY_INFO} (TPM 2.0 Part 2 §10.12.3): name and qualified name of the certified object. */
public record CertifyInfo(byte[] name, byte[] qualifiedName) {
    public CertifyInfo {
        name = Objects.requireNonNull(name, "name").clone();
        qualifiedName = Objects.requireNonNull(qualifiedName, "qualifiedName").clone();
    }

    @Override
    public byte[] name() {
        return name.clone();
    }

    @Override
    public byte[] qualifiedName() {
        return qualifiedName.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CertifyInfo c && Arrays.equals(name, c.name) && Arrays.equals(qualifiedName, c.qualifiedName);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(name) + Arrays.hashCode(qualifiedName);
    }

    @Override
    public String toString() {
        return "CertifyInfo[name=" + HexFormat.of().formatHex(name)
                + ", qualifiedName=" + HexFormat.of().formatHex(qualifiedName) + "]";
    }
}
