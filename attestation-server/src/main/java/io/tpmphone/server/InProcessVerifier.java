package io.tpmphone.server;

import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditException;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.server.internal.ApiException;
import io.tpmphone.server.internal.Appraisals;
import io.tpmphone.server.internal.AuditTrail;
import io.tpmphone.server.internal.EkCertificates;
import io.tpmphone.server.internal.KeyApprover;
import io.tpmphone.server.internal.NonceService;
import io.tpmphone.server.internal.Registrar;
import io.tpmphone.server.internal.Registry;
import io.tpmphone.server.internal.ResultSigner;
import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.internal.ServerIdentity;
import java.io.IOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The attestation server's registrar and verifier in this process, without HTTP: the same objects
 * {@link AttestationServer} wires (server keys, registry and audit log in SQLite with {@code synchronous=FULL}, the
 * TPM clock states flushed every second), so {@link #appraise(String)} runs exactly what {@code POST /v1/appraisals}
 * runs after Jetty has read the body. For measuring the verifier without a network in between (the appraisal
 * benchmark) and for embedding it; a state directory belongs to one verifier or server at a time.
 *
 * <p>What it does not do, unlike the server: no admin token or enrollment tokens from an operator (the caller enrolls
 * hosts itself), no rate-limited refusal records per client address, no TLS. Thread-safe; {@link #close()} once.
 */
public final class InProcessVerifier implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(InProcessVerifier.class);
    private static final String SOURCE = "in-process";

    /** Answers the registrar's MakeCredential challenge with the host's TPM (TPM2_ActivateCredential). */
    @FunctionalInterface
    public interface CredentialActivation {
        /** The secret the TPM recovers from {@code challenge}; the verifier wipes it after use. */
        byte[] activate(CredentialBlob challenge) throws Exception;
    }

    /**
     * What one appraisal decided: the host, its level, the check that failed first (if any), the reasons, and the
     * signed attestation result (compact JWS, ES256) the server would return.
     */
    public record Outcome(String host, IntegrityLevel level, Optional<String> failedCheck, List<String> reasons,
                          String signedResult) {
        public Outcome {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(level, "level");
            Objects.requireNonNull(failedCheck, "failedCheck");
            reasons = List.copyOf(reasons);
            Objects.requireNonNull(signedResult, "signedResult");
        }
    }

    /**
     * A request the verifier refuses, as the HTTP API would: its status (400, 403, 404, 409, 503), the
     * machine-readable error code and, where a verification check failed, that check.
     */
    public static final class RefusedException extends Exception {
        private static final long serialVersionUID = 1L;

        private final int status;
        private final String error;
        private final String check;

        RefusedException(ApiException cause) {
            super(cause.getMessage(), cause);
            this.status = cause.status();
            this.error = cause.error();
            this.check = cause.check();
        }

        /** The HTTP status the server would answer with. */
        public int status() {
            return status;
        }

        /** The machine-readable error code, such as {@code bad_request} or {@code verification_failed}. */
        public String error() {
            return error;
        }

        /** The verification check that failed, if one did. */
        public Optional<String> check() {
            return Optional.ofNullable(check);
        }
    }

    private final AuditLog auditLog;
    private final Registry registry;
    private final Registrar registrar;
    private final NonceService nonces;
    private final ResultSigner signer;
    private final Appraisals appraisals;
    private final AttestationPolicy policy;
    private final ScheduledExecutorService housekeeping;

    private InProcessVerifier(Path state, List<X509Certificate> trustedEkCas, AttestationPolicy policy, Clock clock,
                              String databaseUrl)
            throws IOException, GeneralSecurityException, SQLException, AuditException {
        OwnerOnlyFiles.createPrivateDirectories(state);
        ServerIdentity identity = ServerIdentity.loadOrCreate(state.resolve("keys"), List.of());
        Registry opened;
        if (databaseUrl == null) {
            opened = Registry.open(state.resolve("registry.db"), clock);
        } else {
            opened = Registry.open(ServerDatabase.postgresql(databaseUrl, null, ServerDatabase.DEFAULT_POOL_SIZE),
                    clock);
        }
        AuditLog audited = null;
        try {
            opened.requireClusterKeys(identity.clusterKeyIds());
            // On PostgreSQL the audit log is the cluster's one chain, in the registry's database.
            audited = opened.shared() ? AuditLog.openShared(opened.database().dataSource(),
                    opened.database().description(), AuditSigner.ecdsa(identity.resultKeyPair()),
                    AuditLog.Options.defaults())
                    : AuditLog.open(state.resolve("audit.db"), AuditSigner.ecdsa(identity.resultKeyPair()),
                    AuditLog.Options.defaults());
            auditLog = audited;
            AuditTrail audit = (type, subject, outcome, detail) -> {
                try {
                    auditLog.append(AuditEntry.of(AuditEventType.valueOf(type), subject, outcome, detail));
                } catch (AuditException e) {
                    throw new ApiException(503, "audit_unavailable", "the audit log cannot record this decision, so"
                            + " it was not made: " + e.getMessage());
                }
            };
            registry = opened;
            registrar = new Registrar(registry, new EkCertificates(trustedEkCas, clock), audit, clock);
            nonces = NonceService.shared(clock, registry.database());
            signer = new ResultSigner(identity.resultKeyPair());
            this.policy = policy;
            appraisals = new Appraisals(registry, nonces, signer, new KeyApprover(identity.keystoreAuthorityKeyPair()),
                    audit, clock, () -> this.policy);
        } catch (GeneralSecurityException | SQLException | AuditException | RuntimeException e) {
            if (audited != null) {
                audited.close();
            }
            opened.close();
            throw e;
        }
        housekeeping = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "in-process-verifier-housekeeping");
            t.setDaemon(true);
            return t;
        });
        housekeeping.scheduleWithFixedDelay(this::flushClocks, 1, 1, TimeUnit.SECONDS);
    }

    /**
     * Opens (or creates) the verifier state in {@code stateDirectory} (made owner-only), trusting EK certificates
     * that chain to {@code trustedEkCas}, appraising against {@code policyJson} (docs/attestation.md).
     *
     * @throws io.tpmphone.attestation.PolicyException naming the first bad field if the policy is not valid
     * @throws AuditException if the audit log cannot be opened (or its chain is broken)
     */
    public static InProcessVerifier open(Path stateDirectory, List<X509Certificate> trustedEkCas, String policyJson)
            throws IOException, GeneralSecurityException, SQLException, AuditException {
        Objects.requireNonNull(stateDirectory, "stateDirectory");
        Objects.requireNonNull(trustedEkCas, "trustedEkCas");
        Objects.requireNonNull(policyJson, "policyJson");
        return new InProcessVerifier(stateDirectory, List.copyOf(trustedEkCas), AttestationPolicy.parse(policyJson),
                Clock.systemUTC(), null);
    }

    /**
     * As {@link #open(Path, List, String)}, with the registry in the PostgreSQL database at {@code databaseUrl}
     * (several verifiers and servers may share it; each needs the same keys, so copy {@code keys/} from the first
     * one's state directory). The audit log is then the cluster's one chain in that database.
     *
     * @throws IllegalStateException if this state directory's keys are not the ones recorded in the database
     */
    public static InProcessVerifier open(Path stateDirectory, List<X509Certificate> trustedEkCas, String policyJson,
                                         String databaseUrl)
            throws IOException, GeneralSecurityException, SQLException, AuditException {
        Objects.requireNonNull(stateDirectory, "stateDirectory");
        Objects.requireNonNull(trustedEkCas, "trustedEkCas");
        Objects.requireNonNull(policyJson, "policyJson");
        ServerDatabase.requirePostgresqlUrl(databaseUrl);
        return new InProcessVerifier(stateDirectory, List.copyOf(trustedEkCas), AttestationPolicy.parse(policyJson),
                Clock.systemUTC(), databaseUrl);
    }

    /**
     * Enrolls {@code host} as {@code POST /v1/enrollments} and its activation do: the EK certificate must chain to a
     * trusted CA and match the EK, the AK must fit the template; {@code tpm} answers the MakeCredential challenge.
     * Returns the AK id (hex of the AK's TPM name) that appraisals name.
     *
     * @throws RefusedException as the registrar refuses (EK certificate, AK template, host/EK conflict, wrong proof)
     */
    public String enroll(String host, byte[] ekPublic, byte[] ekCertificate, byte[] akPublic, CredentialActivation tpm)
            throws Exception {
        Objects.requireNonNull(tpm, "tpm");
        try {
            String token = registrar.issueToken(host, Duration.ofMinutes(10), SOURCE);
            Registrar.Challenge c = registrar.enroll(host, ekPublic, ekCertificate, akPublic, token, SOURCE);
            byte[] secret = tpm.activate(c.credential());
            try {
                return registrar.activate(c.enrollmentId(), secret, SOURCE).akId();
            } finally {
                Arrays.fill(secret, (byte) 0);
            }
        } catch (ApiException e) {
            throw new RefusedException(e);
        }
    }

    /** A fresh nonce for the next quote of {@code akId}, valid for the policy's nonce lifetime. */
    public byte[] issueNonce(String akId) {
        return nonces.issue(Objects.requireNonNull(akId, "akId"), policy.nonceTtl());
    }

    /**
     * Appraises one evidence request, the JSON body of {@code POST /v1/appraisals} (docs/attestation.md): nonce
     * consumption, quote, TPM clock, event log against the policy, the signed result and the durable audit record.
     *
     * @throws RefusedException where the server answers an error status instead of a signed result (evidence not
     *     authenticated: unknown AK, stale nonce, bad signature, malformed body)
     */
    public Outcome appraise(String requestJson) throws Exception {
        Map<String, Object> response;
        try {
            response = appraisals.appraise(Objects.requireNonNull(requestJson, "requestJson"));
        } catch (ApiException e) {
            throw new RefusedException(e);
        }
        @SuppressWarnings("unchecked")
        List<String> reasons = (List<String>) response.get("reasons");
        return new Outcome((String) response.get("host"), IntegrityLevel.valueOf((String) response.get("level")),
                Optional.ofNullable((String) response.get("failedCheck")), reasons, (String) response.get("result"));
    }

    /**
     * Signs {@code result} as the server signs its attestation results (compact JWS, ES256, this verifier's result
     * key). For measuring what signing costs next to an appraisal; whoever holds this object holds the key anyway.
     */
    public String sign(io.tpmphone.attestation.AttestationResult result) throws GeneralSecurityException {
        return signer.sign(Objects.requireNonNull(result, "result"));
    }

    /** The policy appraisals are made against. */
    public AttestationPolicy policy() {
        return policy;
    }

    private void flushClocks() {
        try {
            registry.flushClocks();
        } catch (SQLException e) {
            LOG.warn("could not persist TPM clock states: {}", e.toString());
        }
    }

    /** Stops the clock flushing, then closes the registry and the audit log (writing a final checkpoint). */
    @Override
    public void close() throws SQLException, AuditException {
        housekeeping.shutdownNow();
        try {
            auditLog.close(); // first: on PostgreSQL it writes through the registry's pool
        } finally {
            registry.close();
        }
    }
}
