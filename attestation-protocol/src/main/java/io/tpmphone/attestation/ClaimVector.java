package io.tpmphone.attestation;

import java.util.Collections;
import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * A status and reason for every {@link ClaimName} (absent claims are {@link ClaimStatus#NONE}). Immutable and
 * thread-safe.
 */
public final class ClaimVector {
    private static final ClaimVector EMPTY = new ClaimVector(new EnumMap<>(ClaimName.class));

    private final Map<ClaimName, Claim> claims;

    private ClaimVector(EnumMap<ClaimName, Claim> claims) {
        for (ClaimName n : ClaimName.values()) {
            claims.putIfAbsent(n, Claim.none());
        }
        this.claims = Collections.unmodifiableMap(claims);
    }

    /** Every claim {@link ClaimStatus#NONE}. */
    public static ClaimVector empty() {
        return EMPTY;
    }

    /** The vector with these claims; names not given are {@link ClaimStatus#NONE}. */
    public static ClaimVector of(Map<ClaimName, Claim> claims) {
        Objects.requireNonNull(claims, "claims");
        EnumMap<ClaimName, Claim> copy = new EnumMap<>(ClaimName.class);
        claims.forEach((k, v) -> copy.put(Objects.requireNonNull(k, "name"), Objects.requireNonNull(v, "claim")));
        return new ClaimVector(copy);
    }

    /** A copy with {@code name} set to {@code claim}. */
    public ClaimVector with(ClaimName name, Claim claim) {
        EnumMap<ClaimName, Claim> copy = new EnumMap<>(claims);
        copy.put(Objects.requireNonNull(name, "name"), Objects.requireNonNull(claim, "claim"));
        return new ClaimVector(copy);
    }

    public Claim get(ClaimName name) {
        return claims.get(Objects.requireNonNull(name, "name"));
    }

    public ClaimStatus status(ClaimName name) {
        return get(name).status();
    }

    /** All six claims in {@link ClaimName} order (unmodifiable). */
    public Map<ClaimName, Claim> asMap() {
        return claims;
    }

    /**
     * The best level these claims allow: {@link IntegrityLevel#FAILED} if any is contraindicated,
     * {@link IntegrityLevel#IDENTIFIED} if any is a warning, else {@link IntegrityLevel#HARDENED} (no cap; whether
     * the appraisal reaches it is decided by the appraiser).
     */
    public IntegrityLevel cap() {
        IntegrityLevel cap = IntegrityLevel.HARDENED;
        for (Claim c : claims.values()) {
            cap = cap.min(c.status().cap());
        }
        return cap;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ClaimVector v && claims.equals(v.claims);
    }

    @Override
    public int hashCode() {
        return claims.hashCode();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("ClaimVector[");
        claims.forEach((k, v) -> sb.append(k.key()).append('=').append(v.status().key()).append(' '));
        return sb.toString().trim() + "]";
    }
}
