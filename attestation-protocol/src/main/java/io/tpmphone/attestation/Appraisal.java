package io.tpmphone.attestation;

import java.util.EnumMap;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The outcome of {@link Appraiser#appraise}: the integrity level, the claim vector it follows from, the release the
 * softphone was appraised against, and why. Immutable and thread-safe.
 */
public final class Appraisal {
    private final IntegrityLevel level;
    private final ClaimVector claims;
    private final String matchedRelease;
    private final List<String> reasons;
    private final String failedCheck;
    private final int policyVersion;

    Appraisal(IntegrityLevel level, ClaimVector claims, String matchedRelease, List<String> reasons,
            String failedCheck, int policyVersion) {
        this.level = Objects.requireNonNull(level, "level");
        this.claims = Objects.requireNonNull(claims, "claims");
        this.matchedRelease = matchedRelease;
        this.reasons = List.copyOf(reasons);
        this.failedCheck = failedCheck;
        this.policyVersion = policyVersion;
    }

    /**
     * A {@link IntegrityLevel#FAILED} appraisal for a check the caller made before appraisal (e.g. the quote
     * signature), so that every refusal has the same shape.
     *
     * @param check the failed check, e.g. {@code signature} or {@code nonce}
     */
    public static Appraisal failed(ClaimName claim, String check, String reason, int policyVersion) {
        Objects.requireNonNull(claim, "claim");
        Objects.requireNonNull(check, "check");
        Objects.requireNonNull(reason, "reason");
        EnumMap<ClaimName, Claim> m = new EnumMap<>(ClaimName.class);
        m.put(claim, new Claim(ClaimStatus.CONTRAINDICATED, reason));
        return new Appraisal(IntegrityLevel.FAILED, ClaimVector.of(m), null, List.of(check + ": " + reason), check,
                policyVersion);
    }

    /** An {@link IntegrityLevel#UNATTESTED} appraisal: the peer offered no evidence at all. */
    public static Appraisal unattested(int policyVersion) {
        return new Appraisal(IntegrityLevel.UNATTESTED, ClaimVector.empty(), null,
                List.of("no attestation evidence was offered"), null, policyVersion);
    }

    public IntegrityLevel level() {
        return level;
    }

    public ClaimVector claims() {
        return claims;
    }

    /**
     * The approved release whose jars the (last) launch matched exactly; empty if no release matched all jars.
     */
    public Optional<String> matchedRelease() {
        return Optional.ofNullable(matchedRelease);
    }

    /**
     * Human-readable findings in appraisal order: every warning and contraindication, and why the level is not
     * higher (e.g. {@code not HARDENED: keys are not sealed}).
     */
    public List<String> reasons() {
        return reasons;
    }

    /**
     * The check that determined a level below {@link IntegrityLevel#MEASURED}: the first, in appraisal order, of the
     * most severe findings, e.g. {@code executables}, {@code event-log}, {@code configuration}. Empty at MEASURED and
     * above.
     */
    public Optional<String> failedCheck() {
        return Optional.ofNullable(failedCheck);
    }

    /** The version of the policy applied. */
    public int policyVersion() {
        return policyVersion;
    }

    @Override
    public String toString() {
        return "Appraisal[" + level + ", " + claims + (failedCheck == null ? "" : ", failed " + failedCheck)
                + (matchedRelease == null ? "" : ", release " + matchedRelease) + "]";
    }
}
