package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.Hex;
import io.tpmphone.attestation.internal.StrictJson;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The attestation result, wire format version {@value #VERSION}: what the attestation server signs for a host after
 * appraising its evidence, and what a relying party reads from a peer's passport (docs/attestation.md §5). It is the
 * payload of a compact JWS (ES256, RFC 7515); signing and signature checks are not done here. The server encodes it
 * ({@link #encode()}); relying parties decode it ({@link #decode(byte[])}) after checking the signature.
 *
 * <p>JSON members, in this order ({@code release} and {@code failedCheck} optional, the others required):
 * <pre>
 * version        1
 * iss            "tpmphone-attestation-server"
 * sub            the host name (1..253 letters, digits, '.' or '-')
 * iat, exp       issued at / expires at, integral seconds since the epoch; 0 &lt; exp - iat &lt;= 300
 * eat_nonce      the server nonce the quote answered (16..64 bytes, lower-case hex)
 * level          FAILED, IDENTIFIED, MEASURED or HARDENED (never UNATTESTED: that means no evidence)
 * claims         {INSTANCE_IDENTITY, EXECUTABLES, CONFIGURATION, HARDWARE, RUNTIME, STORAGE}, each
 *                {"status": NONE|AFFIRMING|WARNING|CONTRAINDICATED, "reason": non-empty text, omitted when empty}
 * akId           the AK's TPM name (lower-case hex)
 * pcrDigest      SHA-256 of the quoted PCR values (TPMS_QUOTE_INFO.pcrDigest, 64 lower-case hex digits)
 * policyVersion  the version of the policy that appraised it (a positive integer)
 * release        the approved release the last launch matched (1..200 characters, as the policy names it)
 * failedCheck    the check that set the level, below MEASURED (1..200 characters, no control characters)
 * reasons        every finding of the appraisal, in order (an array of strings, possibly empty)
 * </pre>
 * Invariants (the builder and {@link #decode} enforce them): the level is no better than the claims allow (a
 * contraindicated claim means FAILED, a warning at most IDENTIFIED), and IDENTIFIED or better has an affirming
 * instance identity. {@link #decode} refuses unknown, missing and mistyped members and another version, naming the
 * member. Immutable and thread-safe.
 */
public final class AttestationResult {
    /** The wire format's version. */
    public static final int VERSION = 1;
    /** The {@code iss} of every result. */
    public static final String ISSUER = "tpmphone-attestation-server";
    /** The longest validity a result may have. */
    public static final Duration MAX_VALIDITY = Duration.ofSeconds(300);
    /** The longest encoding {@link #decode} reads (a passport also has to fit in a TLS extension). */
    public static final int MAX_ENCODED_LENGTH = 1 << 20;

    private static final String STRUCTURE = "AttestationResult";
    private static final Set<String> REQUIRED = Set.of("version", "iss", "sub", "iat", "exp", "eat_nonce", "level",
            "claims", "akId", "pcrDigest", "policyVersion", "reasons");
    private static final Set<String> OPTIONAL = Set.of("release", "failedCheck");
    private static final int MAX_NAME_LENGTH = 200;
    private static final int MAX_AK_ID_BYTES = 2 + 64;

    private final String host;
    private final Instant issuedAt;
    private final Instant expiresAt;
    private final String nonceHex;
    private final IntegrityLevel level;
    private final ClaimVector claims;
    private final String akId;
    private final String pcrDigestHex;
    private final int policyVersion;
    private final String release;
    private final String failedCheck;
    private final List<String> reasons;

    private AttestationResult(Builder b) {
        this.host = b.host;
        this.issuedAt = b.issuedAt;
        this.expiresAt = b.expiresAt;
        this.nonceHex = b.nonceHex;
        this.level = b.level;
        this.claims = b.claims;
        this.akId = b.akId;
        this.pcrDigestHex = b.pcrDigestHex;
        this.policyVersion = b.policyVersion;
        this.release = b.release;
        this.failedCheck = b.failedCheck;
        this.reasons = List.copyOf(b.reasons);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with level, claims, reasons, failed check, release and policy version taken from {@code appraisal}. */
    public static Builder builder(Appraisal appraisal) {
        Objects.requireNonNull(appraisal, "appraisal");
        Builder b = new Builder().level(appraisal.level()).claims(appraisal.claims())
                .policyVersion(appraisal.policyVersion()).reasons(appraisal.reasons());
        appraisal.matchedRelease().ifPresent(b::release);
        appraisal.failedCheck().ifPresent(b::failedCheck);
        return b;
    }

    /** The appraised host ({@code sub}). */
    public String host() {
        return host;
    }

    public Instant issuedAt() {
        return issuedAt;
    }

    public Instant expiresAt() {
        return expiresAt;
    }

    /** The server nonce the evidence answered ({@code eat_nonce}), lower-case hex. */
    public String nonceHex() {
        return nonceHex;
    }

    public IntegrityLevel level() {
        return level;
    }

    public ClaimVector claims() {
        return claims;
    }

    /** The attestation key's TPM name, lower-case hex. */
    public String akId() {
        return akId;
    }

    /** The quoted PCR digest, lower-case hex. */
    public String pcrDigestHex() {
        return pcrDigestHex;
    }

    /** The quoted PCR digest. */
    public byte[] pcrDigest() {
        return Hex.parse(pcrDigestHex);
    }

    public int policyVersion() {
        return policyVersion;
    }

    /** The approved release matched, if any. */
    public Optional<String> release() {
        return Optional.ofNullable(release);
    }

    /** The check that set the level, if it is below MEASURED. */
    public Optional<String> failedCheck() {
        return Optional.ofNullable(failedCheck);
    }

    /** The appraisal's findings, in order (unmodifiable). */
    public List<String> reasons() {
        return reasons;
    }

    /** Whether {@code now} is at or after {@link #expiresAt()}. */
    public boolean isExpiredAt(Instant now) {
        return !Objects.requireNonNull(now, "now").isBefore(expiresAt);
    }

    /** The UTF-8 JSON (see the class documentation): the JWS payload. */
    public byte[] encode() {
        return StrictJson.write(g -> {
            g.writeStartObject();
            g.writeNumberField("version", VERSION);
            g.writeStringField("iss", ISSUER);
            g.writeStringField("sub", host);
            g.writeNumberField("iat", issuedAt.getEpochSecond());
            g.writeNumberField("exp", expiresAt.getEpochSecond());
            g.writeStringField("eat_nonce", nonceHex);
            g.writeStringField("level", level.name());
            g.writeObjectFieldStart("claims");
            for (Map.Entry<ClaimName, Claim> e : claims.asMap().entrySet()) {
                g.writeObjectFieldStart(e.getKey().name());
                g.writeStringField("status", e.getValue().status().name());
                if (!e.getValue().reason().isEmpty()) {
                    g.writeStringField("reason", e.getValue().reason());
                }
                g.writeEndObject();
            }
            g.writeEndObject();
            g.writeStringField("akId", akId);
            g.writeStringField("pcrDigest", pcrDigestHex);
            g.writeNumberField("policyVersion", policyVersion);
            if (release != null) {
                g.writeStringField("release", release);
            }
            if (failedCheck != null) {
                g.writeStringField("failedCheck", failedCheck);
            }
            g.writeArrayFieldStart("reasons");
            for (String reason : reasons) {
                g.writeString(reason);
            }
            g.writeEndArray();
            g.writeEndObject();
        });
    }

    /**
     * Reads a result strictly (see the class documentation), e.g. the payload of a JWS whose signature checked out.
     * The version is read first, so a result of another version is refused as such, whatever else it holds.
     *
     * @throws MalformedStructureException naming the member that is unknown, missing, mistyped or out of range
     */
    public static AttestationResult decode(byte[] json) throws MalformedStructureException {
        StrictJson.Reader r = StrictJson.read(json, MAX_ENCODED_LENGTH, STRUCTURE);
        long version = r.integer("version", Integer.MIN_VALUE, Integer.MAX_VALUE);
        if (version != VERSION) {
            throw r.bad("version", "version " + version + " is not supported; this verifier knows version "
                    + VERSION);
        }
        r.members(REQUIRED, OPTIONAL);
        String issuer = r.text("iss");
        if (!issuer.equals(ISSUER)) {
            throw r.bad("iss", "'" + UntrustedText.forTerminal(issuer, 100) + "' is not " + ISSUER);
        }
        Builder b = builder().host(r.text("sub"))
                .issuedAt(Instant.ofEpochSecond(r.integer("iat", 0, Instant.MAX.getEpochSecond())))
                .expiresAt(Instant.ofEpochSecond(r.integer("exp", 0, Instant.MAX.getEpochSecond())))
                .nonceHex(r.text("eat_nonce"));
        String level = r.text("level");
        try {
            b.level(IntegrityLevel.valueOf(level));
        } catch (IllegalArgumentException e) {
            throw r.bad("level", "'" + UntrustedText.forTerminal(level, 100) + "' is not one of "
                    + List.of(IntegrityLevel.values()), e);
        }
        b.claims(claims(r.object("claims")));
        b.akId(r.text("akId")).pcrDigestHex(r.text("pcrDigest"))
                .policyVersion((int) r.integer("policyVersion", 1, Integer.MAX_VALUE));
        r.optionalText("release").ifPresent(b::release);
        r.optionalText("failedCheck").ifPresent(b::failedCheck);
        b.reasons(r.textArray("reasons"));
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new MalformedStructureException(STRUCTURE, b.failedMember, MalformedStructureException.NO_OFFSET,
                    e.getMessage(), e);
        }
    }

    private static ClaimVector claims(StrictJson.Reader c) throws MalformedStructureException {
        Set<String> names = new java.util.HashSet<>();
        for (ClaimName n : ClaimName.values()) {
            names.add(n.name());
        }
        c.members(names, Set.of());
        EnumMap<ClaimName, Claim> out = new EnumMap<>(ClaimName.class);
        for (ClaimName name : ClaimName.values()) {
            StrictJson.Reader one = c.object(name.name());
            one.members(Set.of("status"), Set.of("reason"));
            String status = one.text("status");
            ClaimStatus s;
            try {
                s = ClaimStatus.valueOf(status);
            } catch (IllegalArgumentException e) {
                throw one.bad("status", "'" + UntrustedText.forTerminal(status, 100) + "' is not one of "
                        + List.of(ClaimStatus.values()), e);
            }
            String reason = one.optionalText("reason").orElse("");
            if (one.has("reason") && (reason.isEmpty() || reason.length() > Claim.MAX_REASON_LENGTH)) {
                throw one.bad("reason", "must be 1.." + Claim.MAX_REASON_LENGTH + " characters (an empty reason is"
                        + " omitted)");
            }
            out.put(name, new Claim(s, reason));
        }
        return ClaimVector.of(out);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttestationResult r && host.equals(r.host) && issuedAt.equals(r.issuedAt)
                && expiresAt.equals(r.expiresAt) && nonceHex.equals(r.nonceHex) && level == r.level
                && claims.equals(r.claims) && akId.equals(r.akId) && pcrDigestHex.equals(r.pcrDigestHex)
                && policyVersion == r.policyVersion && Objects.equals(release, r.release)
                && Objects.equals(failedCheck, r.failedCheck) && reasons.equals(r.reasons);
    }

    @Override
    public int hashCode() {
        return Objects.hash(host, issuedAt, expiresAt, nonceHex, level, claims, akId, pcrDigestHex, policyVersion,
                release, failedCheck, reasons);
    }

    @Override
    public String toString() {
        return "AttestationResult[v" + VERSION + ", " + host + ", " + level + ", AK " + Hex.abbreviate(akId)
                + ", policy " + policyVersion + ", until " + expiresAt + "]";
    }

    /** Builder; {@link #build()} validates. Times are truncated to whole seconds. Not thread-safe. */
    public static final class Builder {
        private String host;
        private Instant issuedAt;
        private Instant expiresAt;
        private String nonceHex;
        private IntegrityLevel level;
        private ClaimVector claims;
        private String akId;
        private String pcrDigestHex;
        private int policyVersion;
        private String release;
        private String failedCheck;
        private List<String> reasons = List.of();
        /** The member the last failed rule is about (for {@link #decode}'s message). */
        private String failedMember = "(result)";

        private Builder() {
        }

        /** The appraised host's name ({@code sub}). */
        public Builder host(String v) {
            this.host = Objects.requireNonNull(v, "host");
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

        public Builder nonceHex(String v) {
            this.nonceHex = Objects.requireNonNull(v, "nonceHex");
            return this;
        }

        public Builder nonce(byte[] v) {
            return nonceHex(Hex.of(v));
        }

        public Builder level(IntegrityLevel v) {
            this.level = Objects.requireNonNull(v, "level");
            return this;
        }

        public Builder claims(ClaimVector v) {
            this.claims = Objects.requireNonNull(v, "claims");
            return this;
        }

        /** The AK's TPM name as lower-case hex. */
        public Builder akId(String v) {
            this.akId = Objects.requireNonNull(v, "akId");
            return this;
        }

        public Builder pcrDigestHex(String v) {
            this.pcrDigestHex = Objects.requireNonNull(v, "pcrDigestHex");
            return this;
        }

        /** The quoted PCR digest ({@code TPMS_QUOTE_INFO.pcrDigest}). */
        public Builder pcrDigest(byte[] v) {
            return pcrDigestHex(Hex.of(v));
        }

        public Builder policyVersion(int v) {
            this.policyVersion = v;
            return this;
        }

        public Builder release(String v) {
            this.release = Objects.requireNonNull(v, "release");
            return this;
        }

        public Builder failedCheck(String v) {
            this.failedCheck = Objects.requireNonNull(v, "failedCheck");
            return this;
        }

        public Builder reasons(List<String> v) {
            this.reasons = List.copyOf(v);
            return this;
        }

        /**
         * @throws IllegalArgumentException naming the rule that failed (see the class documentation)
         */
        public AttestationResult build() {
            // The messages are built only when a rule fails: this runs once per appraisal.
            require("sub", host != null && isHostName(host),
                    () -> "sub must be a host name: 1..253 letters, digits, '.' or '-'");
            require("iat", issuedAt != null, () -> "iat is not set");
            require("exp", expiresAt != null, () -> "exp is not set");
            require("exp", expiresAt.isAfter(issuedAt), () -> "exp " + expiresAt + " is not after iat " + issuedAt);
            Duration validity = Duration.between(issuedAt, expiresAt);
            require("exp", validity.compareTo(MAX_VALIDITY) <= 0, () -> "the validity " + validity.getSeconds()
                    + " s exceeds the maximum " + MAX_VALIDITY.getSeconds() + " s");
            require("eat_nonce", nonceHex != null && Hex.isLowerEven(nonceHex) && nonceHex.length() >= 32
                    && nonceHex.length() <= 128, () -> "eat_nonce must be 16..64 bytes of lower-case hex");
            require("level", level != null, () -> "level is not set");
            require("level", level != IntegrityLevel.UNATTESTED, () -> "a result is never UNATTESTED (that is no"
                    + " evidence at all)");
            require("claims", claims != null, () -> "claims are not set");
            require("akId", akId != null && Hex.isLowerEven(akId) && akId.length() <= 2 * MAX_AK_ID_BYTES,
                    () -> "akId must be a TPM name in lower-case hex");
            require("pcrDigest", pcrDigestHex != null && Hex.isLowerEven(pcrDigestHex)
                    && pcrDigestHex.length() == 64, () -> "pcrDigest must be 64 lower-case hex digits (SHA-256)");
            require("policyVersion", policyVersion >= 1, () -> "policyVersion " + policyVersion
                    + " is not positive");
            require("release", release == null || !release.isBlank() && release.length() <= MAX_NAME_LENGTH,
                    () -> "release must be 1.." + MAX_NAME_LENGTH + " characters, as a policy names it");
            if (failedCheck != null) {
                requireName("failedCheck", failedCheck);
            }
            IntegrityLevel cap = claims.cap();
            require("level", cap.atLeast(level),
                    () -> "level " + level + " is better than the claims allow (" + cap + ")");
            require("level", !level.atLeast(IntegrityLevel.IDENTIFIED)
                    || claims.status(ClaimName.INSTANCE_IDENTITY) == ClaimStatus.AFFIRMING,
                    () -> "level " + level + " needs an affirming INSTANCE_IDENTITY claim");
            return new AttestationResult(this);
        }

        private void requireName(String member, String v) {
            boolean plain = !v.isEmpty() && v.length() <= MAX_NAME_LENGTH;
            for (int i = 0; plain && i < v.length(); i++) {
                char c = v.charAt(i);
                plain = c >= 0x20 && c != 0x7F;
            }
            require(member, plain, () -> member + " must be 1.." + MAX_NAME_LENGTH
                    + " characters without control characters");
        }

        /** 1..253 letters, digits, '.' or '-', not starting with '.' or '-' (a loop: this is on the hot path). */
        private static boolean isHostName(String h) {
            if (h.isEmpty() || h.length() > 253 || h.charAt(0) == '.' || h.charAt(0) == '-') {
                return false;
            }
            for (int i = 0; i < h.length(); i++) {
                char c = h.charAt(i);
                if ((c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '-') {
                    return false;
                }
            }
            return true;
        }

        private void require(String member, boolean ok, Supplier<String> rule) {
            if (!ok) {
                failedMember = member;
                throw new IllegalArgumentException(rule.get());
            }
        }
    }

    /** The UTF-8 text of {@link #encode()}, for logs and tests. */
    public String toJson() {
        return new String(encode(), StandardCharsets.UTF_8);
    }
}
