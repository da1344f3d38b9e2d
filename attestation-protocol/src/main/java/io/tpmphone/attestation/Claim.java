package io.tpmphone.attestation;

import java.util.Objects;

/**
 * One claim of a {@link ClaimVector}: its status and a human-readable reason (may be empty for {@link
 * ClaimStatus#NONE}). Immutable and thread-safe.
 */
public record Claim(ClaimStatus status, String reason) {
    /** The largest reason accepted, in characters. */
    public static final int MAX_REASON_LENGTH = 1000;

    public Claim {
        Objects.requireNonNull(status, "status");
        Objects.requireNonNull(reason, "reason");
        if (reason.length() > MAX_REASON_LENGTH) {
            reason = reason.substring(0, MAX_REASON_LENGTH - 1) + "\u2026";
        }
    }

    /** {@link ClaimStatus#NONE} with an empty reason. */
    public static Claim none() {
        return new Claim(ClaimStatus.NONE, "");
    }
}
