package io.tpmphone.attestation;

/**
 * {@code TPMS_CLOCK_INFO} (TPM 2.0 Part 2 §10.11.1). {@code resetCount} and {@code restartCount} are unsigned
 * 32-bit values; {@code clock} is an unsigned 64-bit millisecond count held in a {@code long}. For keys outside
 * the endorsement hierarchy the TPM obfuscates the counters.
 */
public record ClockInfo(long clock, long resetCount, long restartCount, boolean safe) {
    public ClockInfo {
        if (resetCount < 0 || resetCount > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("resetCount " + resetCount + " is not an unsigned 32-bit value");
        }
        if (restartCount < 0 || restartCount > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("restartCount " + restartCount + " is not an unsigned 32-bit value");
        }
    }
}
