package io.tpmphone.tpm;

import java.util.Locale;

/**
 * A persistent object handle (TPM 2.0 Part 2 §7.2, {@code 0x81xxxxxx}). The well-known values follow the TCG
 * "TPM v2.0 Provisioning Guidance" (§7.8): {@code 0x81000001} storage root key, {@code 0x81010001} RSA EK.
 */
public record PersistentHandle(int value) {

    /** Storage primary (SRK), RSA-2048, owner hierarchy. */
    public static final PersistentHandle SRK_RSA = new PersistentHandle(0x81000001);
    /** Storage primary (SRK), ECC P-256, owner hierarchy. */
    public static final PersistentHandle SRK_ECC = new PersistentHandle(0x81000002);
    /** Endorsement key, RSA-2048 (TCG template L-1). */
    public static final PersistentHandle EK_RSA = new PersistentHandle(0x81010001);
    /** Endorsement key, ECC P-256 (TCG template L-2). */
    public static final PersistentHandle EK_ECC = new PersistentHandle(0x81010002);
    /** The host's attestation key (restricted ECC P-256 signing key under the EK). */
    public static final PersistentHandle AK = new PersistentHandle(0x81010010);
    /** The host's TLS identity key (unrestricted ECC P-256 signing key under the SRK). */
    public static final PersistentHandle TIK = new PersistentHandle(0x81000010);

    public PersistentHandle {
        if ((value & 0xff000000) != 0x81000000) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "persistent handles are 0x81000000..0x81ffffff, got 0x%08x", value));
        }
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "0x%08x", value);
    }
}
