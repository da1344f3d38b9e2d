package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.testing.ManualClock;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import org.junit.jupiter.api.io.TempDir;

/**
 * Enrollment ({@link Registrar}) with real objects: the EK, its certificate and the AK of a real swtpm, the TPM's own
 * answer to the server's credential (TPM2_ActivateCredential), a registry on each backend (SQLite in a temporary
 * directory, a PostgreSQL database of the test's own), and an audit
 * trail that keeps what it is given. One test per check the registrar makes.
 */
@Timeout(60)
class RegistrarIT {
    private static final String SOURCE = "192.0.2.1";
    private static TpmHost tpm;

    @TempDir
    Path dir;
    private final ManualClock clock = new ManualClock(Instant.now());
    private final List<String> audited = new ArrayList<>();
    private Registry registry;
    private Registrar registrar;

    @BeforeAll
    static void startTpm() throws Exception {
        tpm = TpmHost.start();
    }

    @AfterAll
    static void stopTpm() {
        if (tpm != null) {
            tpm.close();
        }
    }

    @BeforeEach
    void open(TestBackend backend) throws Exception {
        registry = backend.registry(dir, clock);
        registrar = new Registrar(registry, new EkCertificates(tpm.ekCaChain(), clock),
                (type, subject, outcome, detail) -> audited.add(type + " " + subject + " " + outcome + " "
                        + detail.getOrDefault("check", "")), clock);
    }

    @AfterEach
    void close() throws Exception {
        registry.close();
    }

    @OnEachBackend
    void aNewHostWithItsToken_isEnrolled_onceTheTpmAnswersTheCredential() throws Exception {
        String token = registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        Registrar.Challenge c = registrar.enroll("alice", tpm.ek().encoded(), tpm.ekCertificate(),
                tpm.ak().encoded(), token, SOURCE);
        Registry.Host h = registrar.activate(c.enrollmentId(), answer(c.credential()), SOURCE);

        assertEquals("alice", h.host());
        assertEquals(tpm.akId(), h.akId());
        assertArrayEquals(tpm.ek().name(), h.ekName());
        assertEquals("alice", registry.hostByAkId(tpm.akId()).orElseThrow().host());
        assertEquals(List.of("ADMIN operator ENROLLMENT_TOKEN_ISSUED ", "ENROLLMENT alice ACCEPTED "), audited);
    }

    @OnEachBackend
    void aNewHostWithoutAToken_isRefused_andNothingIsChallenged() throws Exception {
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ek().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), null, SOURCE));
        assertEquals(403, e.status());
        assertEquals("ENROLLMENT_TOKEN", e.check(), e::getMessage);
        assertTrue(e.getMessage().contains("tpmphone enrollment-token --host alice"), e::getMessage);
    }

    @OnEachBackend
    void anotherHostsToken_isRefused() throws Exception {
        registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        String bobs = registrar.issueToken("bob", Duration.ofMinutes(10), "operator");
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ek().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), bobs, SOURCE));
        assertEquals("ENROLLMENT_TOKEN", e.check(), e::getMessage);
    }

    @OnEachBackend
    void anExpiredToken_isRefused() throws Exception {
        String token = registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        clock.advance(Duration.ofMinutes(10));
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ek().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), token, SOURCE));
        assertEquals("ENROLLMENT_TOKEN", e.check(), e::getMessage);
        assertTrue(e.getMessage().contains("expired"), e::getMessage);
    }

    @OnEachBackend
    void anEkCertificateFromAnUntrustedCa_isRefused() throws Exception {
        registrar = new Registrar(registry, new EkCertificates(List.of(), clock),
                (type, subject, outcome, detail) -> audited.add(type + " " + outcome), clock);
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ek().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), "t", SOURCE));
        assertEquals(403, e.status());
        assertEquals("EK_CERTIFICATE", e.check(), e::getMessage);
    }

    @OnEachBackend
    void anEkThatIsNotTheCertificatesKey_isRefused() throws Exception {
        // The AK's public area offered as the EK: the certificate names another key.
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ak().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), "t", SOURCE));
        assertEquals("EK_CERTIFICATE", e.check(), e::getMessage);
    }

    @OnEachBackend
    void anAkThatIsNotRestricted_isRefusedAtTheTemplate() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        TpmtPublic signAnything = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256)
                .attributes(ObjectAttribute.FIXED_TPM, ObjectAttribute.FIXED_PARENT,
                        ObjectAttribute.SENSITIVE_DATA_ORIGIN, ObjectAttribute.USER_WITH_AUTH,
                        ObjectAttribute.SIGN_ENCRYPT)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(g.generateKeyPair().getPublic())
                .build();
        String token = registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ek().encoded(),
                tpm.ekCertificate(), signAnything.encoded(), token, SOURCE));
        assertEquals(403, e.status());
        assertEquals("AK_TEMPLATE", e.check(), e::getMessage);
        assertTrue(e.getMessage().contains("attribute RESTRICTED is not set"), e::getMessage);
    }

    @OnEachBackend
    void aHostEnrolledWithAnotherEk_isRefused() throws Exception {
        byte[] otherEk = new byte[34];
        otherEk[1] = 0x0b;
        registry.enroll(new Registry.Host("alice", otherEk, new byte[] {1}, new byte[] {1}, otherEk, new byte[] {1},
                "2025-01-31T12:00:00Z"));
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice", tpm.ek().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), null, SOURCE));
        assertEquals(409, e.status());
        assertEquals("HOST_EK", e.check(), e::getMessage);
    }

    @OnEachBackend
    void aWrongAnswer_isRefused_andTheChallengeIsUsedUp() throws Exception {
        String token = registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        Registrar.Challenge c = registrar.enroll("alice", tpm.ek().encoded(), tpm.ekCertificate(),
                tpm.ak().encoded(), token, SOURCE);
        ApiException wrong = assertThrows(ApiException.class, () -> registrar.activate(c.enrollmentId(),
                new byte[32], SOURCE));
        assertEquals(403, wrong.status());
        assertEquals("ACTIVATION", wrong.check(), wrong::getMessage);
        byte[] right = answer(c.credential());
        ApiException again = assertThrows(ApiException.class, () -> registrar.activate(c.enrollmentId(), right,
                SOURCE));
        assertEquals(404, again.status(), again::getMessage);
        assertTrue(registry.hostByAkId(tpm.akId()).isEmpty(), "nothing enrolled");
    }

    @OnEachBackend
    void anAnswerAfterTheChallengeExpired_isRefused() throws Exception {
        String token = registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        Registrar.Challenge c = registrar.enroll("alice", tpm.ek().encoded(), tpm.ekCertificate(),
                tpm.ak().encoded(), token, SOURCE);
        byte[] right = answer(c.credential());
        clock.advance(Duration.ofSeconds(61));
        ApiException e = assertThrows(ApiException.class, () -> registrar.activate(c.enrollmentId(), right, SOURCE));
        assertEquals("ACTIVATION", e.check(), e::getMessage);
        assertTrue(e.getMessage().contains("expired"), e::getMessage);
    }

    @OnEachBackend
    void reEnrollingWithTheSameEk_needsNoToken() throws Exception {
        String token = registrar.issueToken("alice", Duration.ofMinutes(10), "operator");
        Registrar.Challenge first = registrar.enroll("alice", tpm.ek().encoded(), tpm.ekCertificate(),
                tpm.ak().encoded(), token, SOURCE);
        registrar.activate(first.enrollmentId(), answer(first.credential()), SOURCE);
        Registrar.Challenge again = registrar.enroll("alice", tpm.ek().encoded(), tpm.ekCertificate(),
                tpm.ak().encoded(), null, SOURCE);
        assertEquals("alice", registrar.activate(again.enrollmentId(), answer(again.credential()), SOURCE).host());
    }

    @OnEachBackend
    void aHostNameThatIsNotOne_isABadRequest() {
        ApiException e = assertThrows(ApiException.class, () -> registrar.enroll("alice; rm", tpm.ek().encoded(),
                tpm.ekCertificate(), tpm.ak().encoded(), null, SOURCE));
        assertEquals(400, e.status());
        assertEquals("HOST_NAME", e.check(), e::getMessage);
    }

    /** What the agent sends back: the TPM's ActivateCredential of the server's credential. */
    private static byte[] answer(CredentialBlob c) throws Exception {
        SecretBytes s = tpm.tpm().activateCredential(PersistentHandle.AK, EkType.RSA_2048.defaultHandle(),
                c.integrityHmac(), c.encIdentity(), c.encryptedSecret());
        try {
            return s.reveal();
        } finally {
            s.destroy();
        }
    }
}
