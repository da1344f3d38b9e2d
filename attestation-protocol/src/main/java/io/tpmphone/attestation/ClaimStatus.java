package io.tpmphone.attestation;

import java.util.Locale;

/**
 * The status of one claim, after the AR4SI trustworthiness tiers. Ordered from best to worst in severity:
 * {@link #NONE} (no claim made) is neutral. Thread-safe.
 */
public enum ClaimStatus {
    /** No claim is made (the check did not apply or its input was absent). AR4SI value 0. */
    NONE(0),
    /** The evidence supports the claim. AR4SI tier "affirming", value 2. */
    AFFIRMING(2),
    /** The evidence does not match an approved state but shows no tampering. AR4SI tier "warning", value 32. */
    WARNING(32),
    /** The evidence shows tampering or an unapproved executable. AR4SI tier "contraindicated", value 96. */
    CONTRAINDICATED(96);

    private final int ar4siValue;

    ClaimStatus(int ar4siValue) {
        this.ar4siValue = ar4siValue;
    }

    /** The AR4SI trustworthiness-claim value for this tier. */
    public int ar4siValue() {
        return ar4siValue;
    }

    /** The lower-case JSON name, e.g. {@code affirming}. */
    public String key() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The level this status caps an appraisal at: FAILED, IDENTIFIED or (no cap) HARDENED. */
    public IntegrityLevel cap() {
        return switch (this) {
            case CONTRAINDICATED -> IntegrityLevel.FAILED;
            case WARNING -> IntegrityLevel.IDENTIFIED;
            case NONE, AFFIRMING -> IntegrityLevel.HARDENED;
        };
    }

    /** Whether this status is more severe than {@code other}: NONE, AFFIRMING, WARNING, CONTRAINDICATED. */
    public boolean worseThan(ClaimStatus other) {
        return ordinal() > other.ordinal();
    }

    /**
     * The status with JSON name {@code key}.
     *
     * @throws IllegalArgumentException if there is none
     */
    public static ClaimStatus fromKey(String key) {
        for (ClaimStatus s : values()) {
            if (s.key().equals(key)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown claim status '" + key + "'");
    }
}
