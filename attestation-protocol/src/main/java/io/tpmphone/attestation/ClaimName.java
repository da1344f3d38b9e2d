package io.tpmphone.attestation;

import java.util.Locale;

/**
 * The trustworthiness claims of an appraisal, after the RATS AR4SI trustworthiness vector
 * (draft-ietf-rats-ar4si §2.3). Thread-safe.
 */
public enum ClaimName {
    /** The attester is a genuine, enrolled TPM that answered freshly (AK, signature, nonce). */
    INSTANCE_IDENTITY("instance-identity"),
    /** The JVM and the class-path jars are those of an approved release. */
    EXECUTABLES("executables"),
    /** Configuration files and the command line are those of an approved release. */
    CONFIGURATION("configuration"),
    /** The boot PCRs hold approved values. */
    HARDWARE("hardware"),
    /** The measured softphone is running (launched, not terminated) and how it is isolated. */
    RUNTIME("runtime-opaque"),
    /** Keys are held sealed to the measured state. */
    STORAGE("storage-opaque");

    private final String key;

    ClaimName(String key) {
        this.key = key;
    }

    /** The AR4SI claim name used in JSON, e.g. {@code instance-identity}. */
    public String key() {
        return key;
    }

    /**
     * The claim with AR4SI name {@code key}.
     *
     * @throws IllegalArgumentException if there is none
     */
    public static ClaimName fromKey(String key) {
        for (ClaimName n : values()) {
            if (n.key.equals(key)) {
                return n;
            }
        }
        throw new IllegalArgumentException("unknown claim '" + key + "'");
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
