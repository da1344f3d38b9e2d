package io.tpmphone.benchmarks;

import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.SecretBytes;
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
import io.tpmphone.server.internal.ServerIdentity;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The attestation server's verifier without Jetty: the same objects, wired as {@code AttestationServer} and
 * {@code V1Routes} wire them (registry and audit log in SQLite with {@code synchronous=FULL}, the clock-state flush
 * every second), so {@link #appraisals()} is exactly what {@code POST /v1/appraisals} runs. Keep it in step with
 * {@code AttestationServer}'s constructor.
 */
final class InProcessVerifier implements AutoCloseable {
    private final ServerIdentity identity;
    private final AuditLog auditLog;
    private final Registry registry;
    private final Registrar registrar;
    private final NonceService nonces;
    private final ResultSigner signer;
    private final Appraisals appraisals;
    private final AttestationPolicy policy;
    private final ScheduledExecutorService housekeeping;

    private InProcessVerifier(Path state, List<X509Certificate> trustedEkCas, String policyJson) throws Exception {
        Clock clock = Clock.systemUTC();
        identity = ServerIdentity.loadOrCreate(state.resolve("keys"), List.of());
        auditLog = AuditLog.open(state.resolve("audit.db"), AuditSigner.ecdsa(identity.resultKeyPair()),
                AuditLog.Options.defaults());
        AuditTrail audit = (type, subject, outcome, detail) -> {
            try {
                auditLog.append(AuditEntry.of(AuditEventType.valueOf(type), subject, outcome, detail));
            } catch (AuditException e) {
                throw new ApiException(503, "audit_unavailable", "audit: " + e.getMessage());
            }
        };
        registry = Registry.open(state.resolve("registry.db"), clock);
        registrar = new Registrar(registry, new EkCertificates(trustedEkCas, clock), audit, clock);
        nonces = new NonceService(clock);
        signer = new ResultSigner(identity.resultKeyPair());
        policy = AttestationPolicy.parse(policyJson);
        appraisals = new Appraisals(registry, nonces, signer,
                new KeyApprover(identity.keystoreAuthorityKeyPair()), audit, clock, () -> policy);
        housekeeping = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "bench-housekeeping");
            t.setDaemon(true);
            return t;
        });
        housekeeping.scheduleWithFixedDelay(() -> {
            try {
                registry.flushClocks();
            } catch (java.sql.SQLException e) {
                throw new IllegalStateException(e);
            }
        }, 1, 1, TimeUnit.SECONDS);
    }

    static InProcessVerifier open(Path state, List<X509Certificate> trustedEkCas, String policyJson)
            throws Exception {
        return new InProcessVerifier(state, trustedEkCas, policyJson);
    }

    /**
     * Enrolls {@code host} through the registrar (operator's enrollment token, EK chain, AK template,
     * MakeCredential, activation).
     */
    String enroll(MeasuredHost host) throws Exception {
        String token = registrar.issueToken(host.name(), java.time.Duration.ofMinutes(10), "benchmark");
        Registrar.Challenge c = registrar.enroll(host.name(), host.ekPublic().encoded(), host.ekCertificate(),
                host.akPublic().encoded(), token, "benchmark");
        SecretBytes secret = host.tpm().activateCredential(PersistentHandle.AK, EkType.RSA_2048.defaultHandle(),
                c.credential().integrityHmac(), c.credential().encIdentity(), c.credential().encryptedSecret());
        try {
            byte[] s = secret.reveal();
            try {
                return registrar.activate(c.enrollmentId(), s, "benchmark").akId();
            } finally {
                java.util.Arrays.fill(s, (byte) 0);
            }
        } finally {
            secret.destroy();
        }
    }

    Appraisals appraisals() {
        return appraisals;
    }

    NonceService nonces() {
        return nonces;
    }

    ResultSigner signer() {
        return signer;
    }

    AttestationPolicy policy() {
        return policy;
    }

    Registry registry() {
        return registry;
    }

    AuditLog auditLog() {
        return auditLog;
    }

    @Override
    public void close() throws java.sql.SQLException, AuditException {
        housekeeping.shutdownNow();
        try {
            registry.close();
        } finally {
            auditLog.close();
        }
    }
}
