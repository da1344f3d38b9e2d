package io.tpmphone.attestation;

import java.util.Objects;

/**
 * A non-NULL {@code TPMT_SYM_DEF_OBJECT} (TPM 2.0 Part 2 §11.1.7). Only AES is supported; {@code keyBits} is
 * 128, 192 or 256.
 */
public record SymmetricDefinition(int keyBits, SymmetricMode mode) {
    /** {@code TPM_ALG_AES}. */
    public static final int TPM_ALG_AES = 0x0006;

    /** AES-128-CFB, the symmetric definition of the TCG EK and SRK templates. */
    public static final SymmetricDefinition AES_128_CFB = new SymmetricDefinition(128, SymmetricMode.CFB);

    public SymmetricDefinition {
        Objects.requireNonNull(mode, "mode");
        if (keyBits != 128 && keyBits != 192 && keyBits != 256) {
            throw new IllegalArgumentException("AES keyBits must be 128, 192 or 256, got " + keyBits);
        }
    }
}
