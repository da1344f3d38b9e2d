package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.server.InProcessVerifier;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import io.tpmphone.server.audit.VerifyOptions;
import java.util.Optional;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmQuote;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two server instances on one PostgreSQL database serve the same host: whatever one instance issued or recorded, the
 * other one honours, and nothing one instance keeps in memory decides anything (issue 17, "stateless instances").
 * Each instance has its own connection pool, registry, nonce service and verifier, as two server processes would;
 * quotes come from a real swtpm.
 */
@Timeout(120)
@ExtendWith(PostgresExtension.class)
class StatelessInstancesIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static TpmHost host;

    @TempDir
    Path dir;

    @BeforeAll
    static void startHost() throws Exception {
        host = TpmHost.start().measureRelease();
    }

    @AfterAll
    static void stopHost() {
        if (host != null) {
            host.close();
        }
    }

    @Test
    void aNonceIssuedByInstanceA_isRedeemedAtBOnce_andASecondRedemptionFailsAtEither(TestBackend db)
            throws Exception {
        String policy = TpmHost.policy(3);
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        try (InProcessVerifier atA = InProcessVerifier.open(a, host.ekCaChain(), policy, db.databaseUrl())) {
            copyKeys(a, b); // instances of one cluster share their keys
            try (InProcessVerifier atB = InProcessVerifier.open(b, host.ekCaChain(), policy, db.databaseUrl())) {
                String akId = atA.enroll("alice", host.ek().encoded(), host.ekCertificate(), host.ak().encoded(),
                        StatelessInstancesIT::activate);
                byte[] nonce = atA.issueNonce(akId);
                String body = host.appraisalRequest(nonce, host.quote(AttestationPolicy.parse(policy)
                        .requiredPcrSelection(), nonce), host.log(), Map.of());

                InProcessVerifier.Outcome first = atB.appraise(body);
                assertEquals(IntegrityLevel.MEASURED, first.level(), () -> "B's appraisal of A's nonce: " + first);
                for (InProcessVerifier at : List.of(atB, atA)) {
                    InProcessVerifier.RefusedException e = assertThrows(InProcessVerifier.RefusedException.class,
                            () -> at.appraise(body), "a second redemption must fail");
                    assertEquals(403, e.status(), e::getMessage);
                    assertEquals("NONCE", e.check().orElse(null), "refused at " + e.check() + ": " + e.getMessage());
                }
            }
        }
        // Both instances wrote one audit chain (enrollment at A, the appraisal and a refusal at B, a refusal at A),
        // closed by the last instance to stop.
        VerificationReport report = AuditVerifier.verify(db.databaseUrl(), Optional.of(AuditVerifier
                .publicKeyFromPem(Files.readString(a.resolve("keys").resolve("result-signing-cert.pem")))),
                VerifyOptions.closed());
        assertTrue(report.intact(), "one intact chain: " + report.summary());
        assertTrue(report.recordsChecked() >= 5, "records of both instances: " + report.summary());
    }

    @Test
    void anInstanceWithOtherKeys_refusesToJoinTheCluster(TestBackend db) throws Exception {
        String policy = TpmHost.policy(3);
        try (InProcessVerifier first = InProcessVerifier.open(dir.resolve("a"), List.of(), policy, db.databaseUrl())) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> InProcessVerifier.open(
                    dir.resolve("other"), List.of(), policy, db.databaseUrl()).close());
            assertTrue(e.getMessage().contains("every instance must have the same keys")
                    && e.getMessage().contains("Copy the keys/ directory"), "says what to do: " + e.getMessage());
            assertEquals(3, first.policy().version(), "the first instance is unaffected: " + first.policy());
        }
    }

    /**
     * Appraisal 1 (at A) consumed its nonce and read the TPM's state, then stalls just before recording the state.
     * Meanwhile the host asks B for the next nonce and B accepts a later quote. When A goes on, its compare-and-set
     * finds the state changed, re-reads it, and fails its older quote at CLOCK: the state keeps B's newer clock. A
     * blind write would have set the TPM's clock back.
     */
    @Test
    void concurrentAppraisalsOfOneTpmThroughBothInstances_neverLetItsClockGoBack(TestBackend db) throws Exception {
        StallingClock stallA = new StallingClock();
        try (Instance atA = new Instance(db.databaseUrl(), stallA); Instance atB = new Instance(db.databaseUrl(),
                Clock.systemUTC())) {
            atA.registry.enroll(host.enrolledAs("alice"));
            appraiseAt(atB); // the TPM has a state, at version 1

            byte[] nonce1 = atA.nonces.issue(host.akId(), atA.policy.nonceTtl());
            TpmQuote quote1 = host.quote(atA.policy.requiredPcrSelection(), nonce1);
            long clock1 = TpmsAttest.parse(quote1.attest()).clockInfo().clock();
            String body1 = host.appraisalRequest(nonce1, quote1, host.log(), Map.of());
            stallA.stallThread("appraisal-at-a");
            CompletableFuture<Map<String, Object>> first = new CompletableFuture<>();
            Thread t = new Thread(() -> {
                try {
                    first.complete(atA.appraisals.appraise(body1));
                } catch (Throwable e) {
                    first.completeExceptionally(e);
                }
            }, "appraisal-at-a");
            t.start();
            assertTrue(stallA.stalled.await(WAIT.toSeconds(), TimeUnit.SECONDS),
                    "A's appraisal did not reach the state update within " + WAIT);

            Map<String, Object> second = appraiseAt(atB); // the next nonce, a later quote, at B
            assertEquals("MEASURED", second.get("level"), () -> "B's appraisal: " + second);
            long clock2 = atB.registry.tpmState(host.ek().name()).orElseThrow().clock();
            assertTrue(clock2 > clock1, "the later quote's clock " + clock2 + " is after the first's " + clock1);

            stallA.release.countDown();
            Map<String, Object> outcome = first.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertEquals("FAILED", outcome.get("level"), () -> "A's stale appraisal: " + outcome);
            assertEquals("CLOCK", outcome.get("failedCheck"), () -> "A's stale appraisal: " + outcome);
            assertTrue(String.valueOf(outcome.get("reasons")).contains("concurrent appraisal"),
                    () -> "says why: " + outcome.get("reasons"));
            assertTrue(atA.details.stream().anyMatch(d -> Integer.valueOf(1).equals(d.get("stateConflicts"))),
                    () -> "A's audit record names the conflict: " + atA.details);
            Registry.TpmState after = atA.registry.tpmState(host.ek().name()).orElseThrow();
            assertEquals(clock2, after.clock(), "the TPM's clock stayed at B's newer quote, saw " + after);

            Map<String, Object> next = appraiseAt(atA); // and the host goes on, at either instance
            assertEquals("MEASURED", next.get("level"), () -> "the next appraisal at A: " + next);
        }
    }

    @Test
    void anEnrollmentStartedAtA_isCompletedAtB_once(TestBackend db) throws Exception {
        try (Instance atA = new Instance(db.databaseUrl(), Clock.systemUTC());
             Instance atB = new Instance(db.databaseUrl(), Clock.systemUTC())) {
            String token = atA.registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
            Registrar.Challenge c = atA.registrar.enroll("alice", host.ek().encoded(), host.ekCertificate(),
                    host.ak().encoded(), token, "192.0.2.1");
            byte[] answer = activate(c.credential());
            assertEquals("alice", atB.registrar.activate(c.enrollmentId(), answer, "192.0.2.2").host());
            ApiException again = assertThrows(ApiException.class, () -> atA.registrar.activate(c.enrollmentId(),
                    answer, "192.0.2.1"));
            assertEquals(404, again.status(), again::getMessage);
            assertEquals("alice", atA.registry.hostByAkId(host.akId()).orElseThrow().host(),
                    "enrolled, as A sees it");
            ApiException reuse = assertThrows(ApiException.class, () -> atB.registrar.enroll("bob",
                    host.ek().encoded(), host.ekCertificate(), host.ak().encoded(), token, "192.0.2.2"));
            assertEquals("HOST_EK", reuse.check(), "the EK is alice's: " + reuse.getMessage());
        }
    }

    @Test
    void aSignedNonceRequestReplayedToTheOtherInstance_isRefused_andAPolicyStoredAtAIsInForceAtB(TestBackend db)
            throws Exception {
        try (Instance atA = new Instance(db.databaseUrl(), Clock.systemUTC());
             Instance atB = new Instance(db.databaseUrl(), Clock.systemUTC())) {
            long requestedAt = System.currentTimeMillis();
            byte[] issued = atA.nonces.issueForVerifiedRequest("ak-1", requestedAt, Duration.ofSeconds(30)).nonce();
            NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                    () -> atB.nonces.issueForVerifiedRequest("ak-1", requestedAt, Duration.ofSeconds(30)));
            assertEquals(NonceService.RequestRefusal.REPLAYED, e.refusal(), e.getMessage());
            assertEquals(null, atB.nonces.consume(issued, "ak-1").refusal(), "the nonce A issued is still good");

            PolicyStore policiesA = new PolicyStore(atA.registry);
            PolicyStore policiesB = new PolicyStore(atB.registry);
            policiesA.load(AttestationPolicy.parse(TpmHost.policy(3)), "configuration");
            policiesB.load(null, "configuration");
            assertEquals(3, policiesB.current().version(), "B loads the version A stored on start");
            assertTrue(policiesA.replace(AttestationPolicy.parse(TpmHost.policy(4)), "operator"),
                    "A stores version 4 over 3");
            assertEquals(4, policiesB.current().version(), "B serves the version A stored");
            assertTrue(!policiesB.replace(AttestationPolicy.parse(TpmHost.policy(4)), "operator"),
                    "B cannot store the same version again");
        }
    }

    /** One appraisal of the host at {@code at}: a nonce from it, a fresh quote, the appraisal. */
    private static Map<String, Object> appraiseAt(Instance at) throws Exception {
        byte[] nonce = at.nonces.issue(host.akId(), at.policy.nonceTtl());
        TpmQuote quote = host.quote(at.policy.requiredPcrSelection(), nonce);
        return at.appraisals.appraise(host.appraisalRequest(nonce, quote, host.log(), Map.of()));
    }

    private static byte[] activate(CredentialBlob c) throws Exception {
        SecretBytes s = host.tpm().activateCredential(PersistentHandle.AK, EkType.RSA_2048.defaultHandle(),
                c.integrityHmac(), c.encIdentity(), c.encryptedSecret());
        try {
            return s.reveal();
        } finally {
            s.destroy();
        }
    }

    private static void copyKeys(Path from, Path to) throws Exception {
        Path keys = Files.createDirectories(to.resolve("keys"));
        Files.setPosixFilePermissions(to, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        Files.setPosixFilePermissions(keys, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        try (var files = Files.list(from.resolve("keys"))) {
            for (Path f : files.toList()) {
                Files.copy(f, keys.resolve(f.getFileName()), StandardCopyOption.COPY_ATTRIBUTES);
            }
        }
    }

    /** One server instance's objects on the shared database. */
    private static final class Instance implements AutoCloseable {
        final Registry registry;
        final NonceService nonces;
        final Appraisals appraisals;
        final Registrar registrar;
        final AttestationPolicy policy;
        final List<Map<String, Object>> details = Collections.synchronizedList(new ArrayList<>());

        Instance(String url, Clock registryClock) throws Exception {
            registry = Registry.open(ServerDatabase.postgresql(url, null, 4), registryClock);
            nonces = NonceService.shared(Clock.systemUTC(), registry.database());
            policy = AttestationPolicy.parse(TpmHost.policy(3));
            AuditTrail trail = (type, subject, outcome, detail) -> details.add(detail);
            appraisals = new Appraisals(registry, nonces, new ResultSigner(ec()), new KeyApprover(ec()), trail,
                    Clock.systemUTC(), () -> policy);
            registrar = new Registrar(registry, new EkCertificates(host.ekCaChain(), Clock.systemUTC()), trail,
                    Clock.systemUTC());
        }

        @Override
        public void close() throws Exception {
            registry.close();
        }
    }

    /** The system clock, which stalls the named thread once, until released. */
    private static final class StallingClock extends Clock {
        final CountDownLatch stalled = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        private volatile String thread = "";

        void stallThread(String name) {
            thread = name;
        }

        @Override
        public Instant instant() {
            if (Thread.currentThread().getName().equals(thread)) {
                thread = "";
                stalled.countDown();
                try {
                    if (!release.await(WAIT.toSeconds(), TimeUnit.SECONDS)) {
                        throw new IllegalStateException("not released within " + WAIT);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
            return Instant.now();
        }

        @Override
        public ZoneId getZone() {
            return ZoneId.of("UTC");
        }

        @Override
        public Clock withZone(ZoneId zone) {
            return this;
        }
    }

    private static KeyPair ec() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }
}
