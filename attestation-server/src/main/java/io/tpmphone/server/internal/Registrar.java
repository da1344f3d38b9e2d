package io.tpmphone.server.internal;

import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.MakeCredential;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.TpmtPublic;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Enrollment: EK certificate chain → EK public key matches the certificate → AK template → host/EK conflicts →
 * MakeCredential bound to the AK's name; then activation: the agent returns the credential, which only the TPM that
 * holds the EK and has that AK loaded can release. One activation attempt per challenge; challenges expire after
 * 60 s. Every outcome, accepted or refused, is audited. Challenges and tokens are in the registry's database (only
 * the SHA-256 of a challenge's secret), so with a shared database any instance can complete what another started, and
 * each token and challenge is used once across instances. Thread-safe.
 */
public final class Registrar {
    private static final Duration CHALLENGE_TTL = Duration.ofSeconds(60);
    private static final int MAX_PENDING = 10_000;
    private static final Pattern HOST = Pattern.compile("[A-Za-z0-9][A-Za-z0-9.-]{0,252}");

    /** The challenge the agent must answer with TPM2_ActivateCredential. */
    public record Challenge(String enrollmentId, CredentialBlob credential, Instant expiresAt) {
    }

    private final Registry registry;
    private final EkCertificates ekCas;
    private final AuditTrail audit;
    private final Clock clock;
    private final SecureRandom random = new SecureRandom();

    public Registrar(Registry registry, EkCertificates ekCas, AuditTrail audit, Clock clock) {
        this.registry = registry;
        this.ekCas = ekCas;
        this.audit = audit;
        this.clock = clock;
    }

    /**
     * Starts an enrollment. A new host name needs an operator's enrollment token for that name (single use,
     * consumed on activation): an EK certificate proves a genuine TPM, not the right to a name. Re-enrolling a host
     * with its own EK (to replace its AK) needs no token — the TPM proves it is that host.
     */
    public Challenge enroll(String host, byte[] ekPublicBytes, byte[] ekCertificate, byte[] akPublicBytes,
                            String enrollmentToken, String source) throws ApiException {
        if (!HOST.matcher(host).matches()) {
            throw refuse(source, host, 400, "HOST_NAME", "host name must be 1-253 letters, digits, '.' or '-'");
        }
        TpmtPublic ek = parse(source, host, ekPublicBytes, "ekPublic");
        TpmtPublic ak = parse(source, host, akPublicBytes, "akPublic");
        X509Certificate cert;
        try {
            cert = ekCas.validate(ekCertificate);
        } catch (GeneralSecurityException e) {
            throw refuse(source, host, 403, "EK_CERTIFICATE", "EK certificate not accepted: " + e.getMessage()
                    + " (is the TPM manufacturer's CA in the server's --ek-ca list?)");
        }
        try {
            if (!MessageDigest.isEqual(cert.getPublicKey().getEncoded(), ek.toPublicKey().getEncoded())) {
                throw refuse(source, host, 403, "EK_CERTIFICATE", "the EK public key is not the certificate's key");
            }
        } catch (java.security.InvalidKeyException e) {
            throw refuse(source, host, 400, "EK_PUBLIC", "EK public area has no usable key: " + e.getMessage());
        }
        if (!ek.has(ObjectAttribute.RESTRICTED) || !ek.has(ObjectAttribute.DECRYPT)) {
            throw refuse(source, host, 400, "EK_PUBLIC", "the EK must be a restricted decryption key");
        }
        List<String> violations = AkTemplate.violations(ak);
        if (!violations.isEmpty()) {
            throw refuse(source, host, 403, "AK_TEMPLATE", "the offered AK is not an attestation key: "
                    + String.join("; ", violations));
        }
        Optional<Registry.Host> existing;
        Optional<Registry.Host> holderOfEk;
        try {
            existing = registry.hostByName(host);
            holderOfEk = registry.hostByEkName(ek.name());
        } catch (StorageUnavailableException e) {
            throw new ApiException(503, "registry_unavailable", "cannot read the registry: " + e.getMessage());
        }
        if (existing.isPresent() && !Arrays.equals(existing.get().ekName(), ek.name())) {
            throw refuse(source, host, 409, "HOST_EK", "host '" + host + "' is enrolled with another EK; a host keeps its TPM"
                    + " (an operator must remove the old enrollment first)");
        }
        if (holderOfEk.isPresent() && !holderOfEk.get().host().equals(host)) {
            throw refuse(source, host, 409, "HOST_EK", "this EK is enrolled as host '" + holderOfEk.get().host() + "'");
        }
        boolean newHost = existing.isEmpty();
        if (newHost) {
            byte[] presented = requireToken(source, host, enrollmentToken);
            // Used up now, not at activation: one token, one challenge; a failed activation needs a new token. The
            // delete names the token, so of two requests with it (at any instances) exactly one gets the challenge.
            boolean consumed;
            try {
                consumed = registry.consumeEnrollmentToken(host, presented);
            } catch (SQLException e) {
                throw new ApiException(503, "registry_unavailable", "cannot consume the enrollment token: "
                        + e.getMessage());
            }
            if (!consumed) {
                throw refuse(source, host, 403, "ENROLLMENT_TOKEN", "the enrollment token for '" + host + "' was used"
                        + " already: ask for a new one");
            }
        }
        byte[] secret = new byte[32];
        random.nextBytes(secret);
        CredentialBlob credential;
        // Only the secret's hash is kept (in the registry, for whichever instance gets the answer).
        byte[] secretSha256 = HttpApi.sha256(secret);
        try {
            credential = MakeCredential.make(ek, ak.name(), secret, random);
        } catch (GeneralSecurityException e) {
            throw refuse(source, host, 400, "EK_PUBLIC", "cannot make a credential for this EK: " + e.getMessage());
        } finally {
            Arrays.fill(secret, (byte) 0);
        }
        Instant now = clock.instant();
        byte[] id = new byte[16];
        random.nextBytes(id);
        String enrollmentId = HexFormat.of().formatHex(id);
        Instant expires = now.plus(CHALLENGE_TTL);
        try {
            if (registry.purgeChallenges(now) >= MAX_PENDING) {
                throw new ApiException(503, "busy", "too many pending enrollments; retry later");
            }
            registry.storeChallenge(new Registry.Challenge(enrollmentId, host, ek.encoded(), ekCertificate.clone(),
                    ak.encoded(), secretSha256, expires, newHost));
        } catch (SQLException e) {
            throw new ApiException(503, "registry_unavailable", "cannot store the enrollment challenge: "
                    + e.getMessage());
        }
        return new Challenge(enrollmentId, credential, expires);
    }

    /** Completes an enrollment; returns the enrolled host. */
    public Registry.Host activate(String enrollmentId, byte[] answer, String source) throws ApiException {
        Optional<Registry.Challenge> taken;
        try {
            taken = registry.takeChallenge(enrollmentId);
        } catch (SQLException e) {
            throw new ApiException(503, "registry_unavailable", "cannot read the enrollment challenge: "
                    + e.getMessage());
        }
        if (taken.isEmpty()) {
            throw refuse(source, "-", 404, "ACTIVATION", "no pending enrollment " + enrollmentId
                    + " (unknown, already answered, or expired after 60 s): enroll again");
        }
        Registry.Challenge p = taken.get();
        if (!clock.instant().isBefore(p.expiresAt())) {
            throw refuse(source, p.host(), 403, "ACTIVATION", "the enrollment challenge expired: enroll again");
        }
        if (!MessageDigest.isEqual(p.secretSha256(), HttpApi.sha256(answer))) {
            throw refuse(source, p.host(), 403, "ACTIVATION", "the activation proof is wrong: the AK is not in the TPM"
                    + " that holds this EK");
        }
        TpmtPublic ek;
        TpmtPublic ak;
        try {
            ek = TpmtPublic.parse(p.ekPublic());
            ak = TpmtPublic.parse(p.akPublic());
        } catch (MalformedStructureException e) {
            throw new IllegalStateException("the registry holds an unparseable enrollment challenge", e);
        }
        Registry.Host host = new Registry.Host(p.host(), ek.name(), ek.encoded(), p.ekCertificate(),
                ak.name(), ak.encoded(), clock.instant().toString());
        try {
            registry.enroll(host);
        } catch (SQLException e) {
            throw refuse(source, p.host(), 409, "HOST_EK", "enrollment conflicts with the registry: " + e.getMessage());
        }
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", host.akId());
        detail.put("ekName", HexFormat.of().formatHex(host.ekName()));
        audit.record("ENROLLMENT", p.host(), "ACCEPTED", detail);
        return host;
    }

    /** Issues a single-use enrollment token for a new host name; returns the token (only its hash is kept). */
    public String issueToken(String host, Duration ttl, String by) throws ApiException {
        if (!HOST.matcher(host).matches()) {
            throw ApiException.badRequest("host name must be 1-253 letters, digits, '.' or '-'");
        }
        byte[] raw = new byte[32];
        random.nextBytes(raw);
        String token = java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
        Instant expires = clock.instant().plus(ttl);
        try {
            registry.storeEnrollmentToken(host, HttpApi.sha256(token.getBytes(java.nio.charset.StandardCharsets.UTF_8)),
                    expires, by);
        } catch (SQLException e) {
            throw new ApiException(503, "registry_unavailable", "cannot store the token: " + e.getMessage());
        }
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("host", host);
        detail.put("expiresAt", expires.toString());
        audit.record("ADMIN", by, "ENROLLMENT_TOKEN_ISSUED", detail);
        return token;
    }

    /** Checks the token against the stored one; returns its SHA-256. */
    private byte[] requireToken(String source, String host, String token) throws ApiException {
        Optional<Registry.EnrollmentToken> stored;
        try {
            stored = registry.enrollmentToken(host);
        } catch (SQLException e) {
            throw new ApiException(503, "registry_unavailable", "cannot read enrollment tokens: " + e.getMessage());
        }
        if (token == null || stored.isEmpty()) {
            throw refuse(source, host, 403, "ENROLLMENT_TOKEN", "enrolling the new host '" + host + "' needs an enrollment"
                    + " token for that name from an operator (tpmphone enrollment-token --host " + host + ")");
        }
        byte[] presented = HttpApi.sha256(token.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        if (!MessageDigest.isEqual(presented, stored.get().tokenSha256())) {
            throw refuse(source, host, 403, "ENROLLMENT_TOKEN", "the enrollment token is not the one issued for '" + host
                    + "'");
        }
        if (!clock.instant().isBefore(stored.get().expiresAt())) {
            throw refuse(source, host, 403, "ENROLLMENT_TOKEN", "the enrollment token for '" + host + "' expired at "
                    + stored.get().expiresAt() + ": ask for a new one");
        }
        return presented;
    }

    private TpmtPublic parse(String source, String host, byte[] bytes, String field) throws ApiException {
        try {
            return TpmtPublic.parse(bytes);
        } catch (MalformedStructureException e) {
            throw refuse(source, host, 400, field.startsWith("ek") ? "EK_PUBLIC" : "AK_TEMPLATE",
                    field + " is not a TPMT_PUBLIC: " + e.getMessage());
        }
    }

    /**
     * The refusal of an enrollment step. Nothing is authenticated before the activation succeeds (an EK certificate
     * is public), so anyone can provoke these: with a {@link RefusalAggregator} they are recorded per client address
     * and check (the first at once, then a count per window), never one record per request.
     */
    private ApiException refuse(String source, String host, int status, String check, String message)
            throws ApiException {
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("check", check);
        RefusalAggregator aggregator = refusals;
        if (aggregator != null) {
            detail.put("detail", message); // "reason" is the aggregation key's
            detail.put("remote", source);
            aggregator.refuse("ENROLLMENT_REFUSED", source, check, detail, host, "enrollment");
        } else {
            detail.put("reason", message);
            audit.record("REFUSAL", host, "ENROLLMENT_REFUSED", detail);
        }
        return new ApiException(status, "enrollment_refused", check, message);
    }

    private volatile RefusalAggregator refusals;

    /** Rate-limits the records of enrollment refusals through {@code refusals}. Call once, before serving. */
    public Registrar withRefusals(RefusalAggregator refusals) {
        this.refusals = refusals;
        return this;
    }
}
