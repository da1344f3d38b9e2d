package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.Hex;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Collections;
import java.util.Date;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * The EAR-like attestation result the server signs (as a JWT) and relying parties check: level, claim vector,
 * nonce, AK and TIK identities, quoted PCR digest, policy version, validity window and matched release. Immutable and
 * thread-safe. Signing and signature checks are not done here.
 *
 * <p>Invariants (enforced by the builder and by {@link #fromJsonMap(Map)}): times are whole seconds,
 * {@code issuedAt < expiresAt <= issuedAt + 300 s}; the nonce is 16..64 bytes of lower-case hex; the PCR digest is a
 * SHA-256 digest; the level is not better than the claims allow (a contraindicated claim means FAILED, a warning at
 * most IDENTIFIED) and IDENTIFIED or better needs an affirming instance identity.
 *
 * <p>JSON claims set ({@link #toJsonMap()}): {@code profile}, {@code iat}, {@code exp} (seconds since the epoch),
 * {@code level}, {@code claims} (AR4SI claim name to {@code {status, reason}}), {@code nonce}, {@code akId},
 * {@code tikId} (optional), {@code pcrDigest}, {@code policyVersion}, {@code release} (optional).
 */
public final class AttestationResult {
    /** The {@code profile} claim value identifying this format. */
    public static final String PROFILE = "tag:tpmphone.io,2025:attestation-result-v1";
    /** The longest validity a result may have. */
    public static final Duration MAX_VALIDITY = Duration.ofSeconds(300);
    /** Registered JWT claims a signer may add; {@link #fromJsonMap(Map)} ignores them. */
    public static final Set<String> TOLERATED_JWT_CLAIMS = Set.of("iss", "jti");

    private static final Set<String> FIELDS = Set.of("profile", "iat", "exp", "level", "claims", "nonce", "akId",
            "tikId", "pcrDigest", "policyVersion", "release");
    private static final int MAX_ID_LENGTH = 256;

    private final IntegrityLevel level;
    private final ClaimVector claims;
    private final String nonceHex;
    private final String akId;
    private final String tikId;
    private final String pcrDigestHex;
    private final int policyVersion;
    private final Instant issuedAt;
    private final Instant expiresAt;
    private final String release;

    private AttestationResult(Builder b) {
        this.level = b.level;
        this.claims = b.claims;
        this.nonceHex = b.nonceHex;
        this.akId = b.akId;
        this.tikId = b.tikId;
        this.pcrDigestHex = b.pcrDigestHex;
        this.policyVersion = b.policyVersion;
        this.issuedAt = b.issuedAt;
        this.expiresAt = b.expiresAt;
        this.release = b.release;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with level, claims, release and policy version taken from {@code appraisal}. */
    public static Builder builder(Appraisal appraisal) {
        Objects.requireNonNull(appraisal, "appraisal");
        Builder b = new Builder().level(appraisal.level()).claims(appraisal.claims())
                .policyVersion(appraisal.policyVersion());
        appraisal.matchedRelease().ifPresent(b::release);
        return b;
    }

    public IntegrityLevel level() {
        return level;
    }

    public ClaimVector claims() {
        return claims;
    }

    /** The nonce (or binder) the evidence answered, lower-case hex. */
    public String nonceHex() {
        return nonceHex;
    }

    /** The attestation key's identifier as the server records it. */
    public String akId() {
        return akId;
    }

    /** The TLS identity key's identifier, if the result covers one. */
    public Optional<String> tikId() {
        return Optional.ofNullable(tikId);
    }

    /** The quoted PCR digest, lower-case hex. */
    public String pcrDigestHex() {
        return pcrDigestHex;
    }

    public int policyVersion() {
        return policyVersion;
    }

    public Instant issuedAt() {
        return issuedAt;
    }

    public Instant expiresAt() {
        return expiresAt;
    }

    /** The approved release matched, if any. */
    public Optional<String> release() {
        return Optional.ofNullable(release);
    }

    /** Whether {@code now} is at or after {@link #expiresAt()}. */
    public boolean isExpiredAt(Instant now) {
        return !Objects.requireNonNull(now, "now").isBefore(expiresAt);
    }

    /** The JWT claims set (see the class documentation); unmodifiable, numbers as {@link Long}/{@link Integer}. */
    public Map<String, Object> toJsonMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("profile", PROFILE);
        m.put("iat", issuedAt.getEpochSecond());
        m.put("exp", expiresAt.getEpochSecond());
        m.put("level", level.name());
        Map<String, Object> c = new LinkedHashMap<>();
        claims.asMap().forEach((name, claim) -> {
            Map<String, Object> one = new LinkedHashMap<>();
            one.put("status", claim.status().key());
            one.put("reason", claim.reason());
            c.put(name.key(), Collections.unmodifiableMap(one));
        });
        m.put("claims", Collections.unmodifiableMap(c));
        m.put("nonce", nonceHex);
        m.put("akId", akId);
        if (tikId != null) {
            m.put("tikId", tikId);
        }
        m.put("pcrDigest", pcrDigestHex);
        m.put("policyVersion", policyVersion);
        if (release != null) {
            m.put("release", release);
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * Reads and validates a claims set written by {@link #toJsonMap()} (e.g. from a verified JWT). Unknown claims
     * other than {@link #TOLERATED_JWT_CLAIMS} are refused; {@code iat}/{@code exp} may be integral numbers of
     * seconds or {@link Date}s (as {@code JWTClaimsSet.getClaims()} returns them).
     *
     * @throws MalformedStructureException naming the claim that is missing, mistyped or out of range
     */
    public static AttestationResult fromJsonMap(Map<String, ?> map) throws MalformedStructureException {
        Objects.requireNonNull(map, "map");
        for (String key : map.keySet()) {
            if (!FIELDS.contains(key) && !TOLERATED_JWT_CLAIMS.contains(key)) {
                throw bad(String.valueOf(key), "unknown claim; expected " + FIELDS);
            }
        }
        String profile = string(map, "profile");
        if (!profile.equals(PROFILE)) {
            throw bad("profile", "'" + profile + "' is not " + PROFILE);
        }
        Builder b = builder().issuedAt(time(map, "iat")).expiresAt(time(map, "exp"));
        String level = string(map, "level");
        try {
            b.level(IntegrityLevel.valueOf(level));
        } catch (IllegalArgumentException e) {
            throw bad("level", "'" + level + "' is not one of " + List.of(IntegrityLevel.values()));
        }
        b.claims(claims(map.get("claims")));
        b.nonceHex(string(map, "nonce")).akId(string(map, "akId")).pcrDigestHex(string(map, "pcrDigest"));
        if (map.containsKey("tikId")) {
            b.tikId(string(map, "tikId"));
        }
        if (map.containsKey("release")) {
            b.release(string(map, "release"));
        }
        long version = integral(map.get("policyVersion"), "policyVersion");
        if (version < 1 || version > Integer.MAX_VALUE) {
            throw bad("policyVersion", version + " is not a positive 32-bit integer");
        }
        b.policyVersion((int) version);
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new MalformedStructureException("AttestationResult", "(result)",
                    MalformedStructureException.NO_OFFSET, e.getMessage(), e);
        }
    }

    private static ClaimVector claims(Object value) throws MalformedStructureException {
        if (!(value instanceof Map<?, ?> m)) {
            throw bad("claims", value == null ? "missing" : "not an object");
        }
        EnumMap<ClaimName, Claim> out = new EnumMap<>(ClaimName.class);
        for (Map.Entry<?, ?> e : m.entrySet()) {
            String key = String.valueOf(e.getKey());
            ClaimName name;
            try {
                name = ClaimName.fromKey(key);
            } catch (IllegalArgumentException ex) {
                throw bad("claims." + key, "unknown claim name");
            }
            if (!(e.getValue() instanceof Map<?, ?> c)) {
                throw bad("claims." + key, "not an object");
            }
            for (Object k : c.keySet()) {
                if (!"status".equals(k) && !"reason".equals(k)) {
                    throw bad("claims." + key + "." + k, "unknown field; expected status and reason");
                }
            }
            if (!(c.get("status") instanceof String status)) {
                throw bad("claims." + key + ".status", "missing or not a string");
            }
            if (!(c.get("reason") instanceof String reason)) {
                throw bad("claims." + key + ".reason", "missing or not a string");
            }
            if (reason.length() > Claim.MAX_REASON_LENGTH) {
                throw bad("claims." + key + ".reason", "longer than " + Claim.MAX_REASON_LENGTH + " characters");
            }
            try {
                out.put(name, new Claim(ClaimStatus.fromKey(status), reason));
            } catch (IllegalArgumentException ex) {
                throw bad("claims." + key + ".status", "'" + status + "' is not one of none, affirming, warning, "
                        + "contraindicated");
            }
        }
        if (out.size() != ClaimName.values().length) {
            throw bad("claims", "has " + out.size() + " claim(s); all " + ClaimName.values().length
                    + " must be present");
        }
        return ClaimVector.of(out);
    }

    private static String string(Map<String, ?> map, String key) throws MalformedStructureException {
        Object v = map.get(key);
        if (!(v instanceof String s)) {
            throw bad(key, v == null ? "missing" : "not a string");
        }
        return s;
    }

    private static Instant time(Map<String, ?> map, String key) throws MalformedStructureException {
        Object v = map.get(key);
        if (v instanceof Date d) {
            return d.toInstant();
        }
        return Instant.ofEpochSecond(integral(v, key));
    }

    private static long integral(Object v, String key) throws MalformedStructureException {
        if (v instanceof Long l) {
            return l;
        }
        if (v instanceof Integer i) {
            return i;
        }
        throw bad(key, v == null ? "missing" : "not an integer (found " + v.getClass().getSimpleName() + ")");
    }

    private static MalformedStructureException bad(String field, String detail) {
        return new MalformedStructureException("AttestationResult", field, MalformedStructureException.NO_OFFSET,
                detail);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttestationResult r && level == r.level && claims.equals(r.claims)
                && nonceHex.equals(r.nonceHex) && akId.equals(r.akId) && Objects.equals(tikId, r.tikId)
                && pcrDigestHex.equals(r.pcrDigestHex) && policyVersion == r.policyVersion
                && issuedAt.equals(r.issuedAt) && expiresAt.equals(r.expiresAt) && Objects.equals(release, r.release);
    }

    @Override
    public int hashCode() {
        return Objects.hash(level, claims, nonceHex, akId, tikId, pcrDigestHex, policyVersion, issuedAt, expiresAt,
                release);
    }

    @Override
    public String toString() {
        return "AttestationResult[" + level + ", ak " + akId + ", policy " + policyVersion + ", until " + expiresAt
                + "]";
    }

    /** Builder; {@link #build()} validates. Times are truncated to whole seconds. Not thread-safe. */
    public static final class Builder {
        private IntegrityLevel level;
        private ClaimVector claims;
        private String nonceHex;
        private String akId;
        private String tikId;
        private String pcrDigestHex;
        private int policyVersion;
        private Instant issuedAt;
        private Instant expiresAt;
        private String release;

        private Builder() {
        }

        public Builder level(IntegrityLevel v) {
            this.level = Objects.requireNonNull(v, "level");
            return this;
        }

        public Builder claims(ClaimVector v) {
            this.claims = Objects.requireNonNull(v, "claims");
            return this;
        }

        public Builder nonceHex(String v) {
            this.nonceHex = Objects.requireNonNull(v, "nonceHex");
            return this;
        }

        public Builder nonce(byte[] v) {
            return nonceHex(Hex.of(v));
        }

        public Builder akId(String v) {
            this.akId = Objects.requireNonNull(v, "akId");
            return this;
        }

        public Builder tikId(String v) {
            this.tikId = Objects.requireNonNull(v, "tikId");
            return this;
        }

        public Builder pcrDigestHex(String v) {
            this.pcrDigestHex = Objects.requireNonNull(v, "pcrDigestHex");
            return this;
        }

        /** The composite SHA-256 digest of the quoted PCR values. */
        public Builder pcrDigest(PcrValues quoted) {
            return pcrDigestHex(Hex.of(Objects.requireNonNull(quoted, "quoted").compositeDigest(HashAlgorithm.SHA256)));
        }

        public Builder policyVersion(int v) {
            this.policyVersion = v;
            return this;
        }

        public Builder issuedAt(Instant v) {
            this.issuedAt = Objects.requireNonNull(v, "issuedAt").truncatedTo(ChronoUnit.SECONDS);
            return this;
        }

        public Builder expiresAt(Instant v) {
            this.expiresAt = Objects.requireNonNull(v, "expiresAt").truncatedTo(ChronoUnit.SECONDS);
            return this;
        }

        public Builder release(String v) {
            this.release = Objects.requireNonNull(v, "release");
            return this;
        }

        /**
         * @throws IllegalArgumentException naming the rule that failed (see the class documentation)
         */
        public AttestationResult build() {
            require(level != null, "level is not set");
            require(claims != null, "claims are not set");
            require(nonceHex != null && Hex.isLowerEven(nonceHex) && nonceHex.length() >= 32
                    && nonceHex.length() <= 128, "nonce must be 16..64 bytes of lower-case hex");
            requireId(akId, "akId");
            if (tikId != null) {
                requireId(tikId, "tikId");
            }
            require(pcrDigestHex != null && Hex.isLowerEven(pcrDigestHex) && pcrDigestHex.length() == 64,
                    "pcrDigest must be 64 lower-case hex digits (SHA-256)");
            require(policyVersion >= 1, "policyVersion " + policyVersion + " is not positive");
            require(issuedAt != null && expiresAt != null, "issuedAt and expiresAt must be set");
            require(expiresAt.isAfter(issuedAt), "expiresAt " + expiresAt + " is not after issuedAt " + issuedAt);
            Duration validity = Duration.between(issuedAt, expiresAt);
            require(validity.compareTo(MAX_VALIDITY) <= 0, "validity " + validity.getSeconds()
                    + " s exceeds the maximum " + MAX_VALIDITY.getSeconds()
                    + " s; issue results for at most 5 minutes");
            if (release != null) {
                requireId(release, "release");
            }
            require(claims.cap().atLeast(level),
                    "level " + level + " is better than the claims allow (" + claims.cap() + ")");
            require(!level.atLeast(IntegrityLevel.IDENTIFIED)
                    || claims.status(ClaimName.INSTANCE_IDENTITY) == ClaimStatus.AFFIRMING,
                    "level " + level + " needs an affirming instance-identity claim");
            return new AttestationResult(this);
        }

        private static void requireId(String v, String what) {
            require(v != null && !v.isEmpty() && v.length() <= MAX_ID_LENGTH
                    && v.chars().allMatch(ch -> ch >= 0x20 && ch != 0x7F),
                    what + " must be 1.." + MAX_ID_LENGTH + " characters without control characters");
        }

        private static void require(boolean ok, String rule) {
            if (!ok) {
                throw new IllegalArgumentException(rule);
            }
        }
    }
}
