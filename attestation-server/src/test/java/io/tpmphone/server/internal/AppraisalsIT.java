package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.nimbusds.jose.JWSObject;
import com.nimbusds.jose.crypto.ECDSAVerifier;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.KeystoreApproval;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.swtpm.testing.ManualClock;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmObjectBlob;
import io.tpmphone.tpm.TpmQuote;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.interfaces.ECPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import org.junit.jupiter.api.io.TempDir;

/**
 * The verifier ({@link Appraisals}) in the server module itself, with real objects: quotes from a real swtpm, a
 * registry on each backend (SQLite in a temporary directory, a PostgreSQL database of the test's own), generated result and keystore-authority keys, and an audit trail that keeps what
 * it is given. Each test starts from an empty registry with the host enrolled; the TPM (and its measured launch) is
 * shared by the class.
 */
@Timeout(60)
class AppraisalsIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static TpmHost host;

    @TempDir
    Path dir;
    private final ManualClock clock = new ManualClock(Instant.now());
    private final List<String> audited = new ArrayList<>();
    private final List<Map<String, Object>> details = new ArrayList<>();
    private Registry registry;
    private NonceService nonces;
    private AttestationPolicy policy;
    private KeyPair resultKey;
    private KeyApprover approver;
    private Appraisals appraisals;

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

    @BeforeEach
    void openServer(TestBackend backend) throws Exception {
        registry = backend.registry(dir, clock);
        registry.enroll(host.enrolledAs("alice"));
        nonces = TestBackend.nonces(registry, clock);
        policy = AttestationPolicy.parse(TpmHost.policy(3));
        resultKey = ec();
        approver = new KeyApprover(ec());
        AuditTrail trail = (type, subject, outcome, detail) -> {
            audited.add(type + " " + subject + " " + outcome);
            details.add(detail);
        };
        appraisals = new Appraisals(registry, nonces, new ResultSigner(resultKey), approver, trail, clock,
                () -> policy);
    }

    @AfterEach
    void closeServer() throws Exception {
        registry.close();
    }

    @OnEachBackend
    void aMeasuredHost_getsAResult_signedAsTheTypedPassport() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        Map<String, Object> response = appraisals.appraise(host.appraisalRequest(nonce, quote, host.log(), Map.of()));

        assertEquals("MEASURED", response.get("level"), () -> "response " + response);
        JWSObject jws = JWSObject.parse((String) response.get("result"));
        assertTrue(jws.verify(new ECDSAVerifier((ECPublicKey) resultKey.getPublic())), "signed by the result key");
        AttestationResult r = AttestationResult.decode(jws.getPayload().toBytes());
        assertEquals("alice", r.host());
        assertEquals(IntegrityLevel.MEASURED, r.level());
        assertEquals(HexFormat.of().formatHex(nonce), r.nonceHex());
        assertEquals(host.akId(), r.akId());
        assertArrayEquals(TpmsAttest.parse(quote.attest()).quoteInfo().orElseThrow().pcrDigest(), r.pcrDigest(),
                "the passport names the quoted PCR digest");
        assertEquals(3, r.policyVersion());
        assertEquals(java.util.Optional.of(TpmHost.RELEASE), r.release());
        assertEquals(Duration.ofSeconds(300), Duration.between(r.issuedAt(), r.expiresAt()));
        assertEquals(List.of("APPRAISAL alice MEASURED"), audited);
        assertEquals(IntegrityLevel.MEASURED, appraisals.last("alice").orElseThrow().level());
    }

    @OnEachBackend
    void aKeystoreApproval_isTheTypedV1Object_andOpensAKeystoreSealedForThisHostInItsTpm() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        Map<String, Object> response = appraisals.appraise(host.appraisalRequest(nonce, quote, host.log(),
                Map.of("keyApprovalPcrs", TpmHost.KEYSTORE_PCRS.toString())));

        assertEquals("MEASURED", response.get("level"), () -> "response " + response);
        KeystoreApproval a = KeystoreApproval.decode(JSON.writeValueAsBytes(response.get("keyApproval")));
        ClockInfo quoted = TpmsAttest.parse(quote.attest()).clockInfo();
        assertEquals(quoted.resetCount(), a.resetCount());
        assertEquals(quoted.clock() + policy.keyApprovalTtl().toMillis(), a.clockBefore());
        assertEquals(KeystorePolicy.approvedPolicy(quote.pcrValues(), quoted.resetCount(), a.clockBefore()),
                a.approvedPolicy(), "the approval is for the quoted state over the keystore's PCRs");
        assertArrayEquals(KeystorePolicy.hostPolicyRef(host.ek().name()), a.policyRef());
        assertTrue(details.get(0).containsKey("keyApproval"), () -> "audited: " + details.get(0));

        // The TPM is the judge: a secret sealed to this host's keystore policy opens with the server's approval.
        TpmClient tpm = host.tpm();
        tpm.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
        TpmObjectBlob sealed = tpm.seal(PersistentHandle.SRK_ECC, SecretBytes.copyOf(new byte[] {42}),
                KeystorePolicy.sealingPolicy(approver.publicArea().name(), a.policyRef()).value());
        SecretBytes opened = tpm.unsealWithAuthorizedPolicy(PersistentHandle.SRK_ECC, sealed, a.pcrSelection(),
                PolicyApproval.of(a));
        assertArrayEquals(new byte[] {42}, opened.reveal());
        opened.destroy();
    }

    @OnEachBackend
    void aTamperedLaunch_isFailed_andGetsNoKeystoreApproval() throws Exception {
        // The log says another jar was measured than the one the PCR holds: it does not replay.
        List<MeasurementEvent> events = new ArrayList<>(host.log().events());
        MeasurementEvent jar = events.get(2);
        events.set(2, MeasurementEvent.of(jar.sequence(), jar.pcrIndex(), EventType.CLASSPATH_JAR,
                TpmHost.sha256("another jar"), jar.dataAsString()));
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        Map<String, Object> response = appraisals.appraise(host.appraisalRequest(nonce, quote,
                MeasurementLog.of(events), Map.of("keyApprovalPcrs", TpmHost.KEYSTORE_PCRS.toString())));

        assertEquals("FAILED", response.get("level"), () -> "response " + response);
        assertFalse(response.containsKey("keyApproval"), () -> "response " + response);
        assertTrue(String.valueOf(response.get("keyApprovalRefused")).contains("keystore approvals need MEASURED"),
                () -> "response " + response);
        AttestationResult r = AttestationResult.decode(JWSObject.parse((String) response.get("result")).getPayload()
                .toBytes());
        assertEquals(IntegrityLevel.FAILED, r.level());
        assertEquals(java.util.Optional.of("event-log"), r.failedCheck(), () -> "reasons " + r.reasons());
    }

    @OnEachBackend
    void keystorePcrsThatDoNotCoverThePolicy_getNoApproval() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        Map<String, Object> response = appraisals.appraise(host.appraisalRequest(nonce, quote, host.log(),
                Map.of("keyApprovalPcrs", "sha256:14")));

        assertEquals("MEASURED", response.get("level"), () -> "response " + response);
        assertFalse(response.containsKey("keyApproval"), () -> "response " + response);
        assertTrue(String.valueOf(response.get("keyApprovalRefused")).contains("do not cover the policy's"),
                () -> "response " + response);
    }

    @OnEachBackend
    void aReplayedAppraisal_isRefusedAtNonce_andSignsNothing() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        String body = host.appraisalRequest(nonce, host.quote(policy.requiredPcrSelection(), nonce), host.log(),
                Map.of());
        assertEquals("MEASURED", appraisals.appraise(body).get("level"));
        ApiException e = assertThrows(ApiException.class, () -> appraisals.appraise(body));
        assertEquals(403, e.status());
        assertEquals("NONCE", e.check(), e::getMessage);
        assertEquals(List.of("APPRAISAL alice MEASURED", "REFUSAL ak:" + host.akId().substring(0, 20)
                + "\u2026 APPRAISAL_REFUSED"), audited);
    }

    @OnEachBackend
    void aQuoteOverAnotherNonce_isRefusedAtQualifyingData() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        byte[] other = new byte[32];
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), other);
        ApiException e = assertThrows(ApiException.class, () -> appraisals.appraise(host.appraisalRequest(nonce,
                quote, host.log(), Map.of())));
        assertEquals(403, e.status());
        assertEquals("QUALIFYING_DATA", e.check(), e::getMessage);
        assertTrue(appraisals.last("alice").isEmpty(), "nothing is attributed to the host");
    }

    @OnEachBackend
    void anAkNobodyEnrolled_isRefusedAtAkEnrolled() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        com.fasterxml.jackson.databind.node.ObjectNode body = (com.fasterxml.jackson.databind.node.ObjectNode)
                JSON.readTree(host.appraisalRequest(nonce, quote, host.log(), Map.of()));
        body.put("akId", "000b" + "ab".repeat(32)); // a well-formed AK name nobody enrolled
        ApiException e = assertThrows(ApiException.class, () -> appraisals.appraise(JSON.writeValueAsString(body)));
        assertEquals("AK_ENROLLED", e.check(), e::getMessage);
    }

    @OnEachBackend
    void aTpmClockBehindOneTheServerSaw_isFailedAtClock_inASignedResult() throws Exception {
        ClockInfo now = host.tpm().readClock();
        // The server once saw this TPM an hour ahead: the quote now looks rolled back.
        registry.advanceClock(host.ek().name(), now.resetCount(), now.restartCount(), now.clock() + 3_600_000L);
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        Map<String, Object> response = appraisals.appraise(host.appraisalRequest(nonce, quote, host.log(), Map.of()));
        assertEquals("FAILED", response.get("level"), () -> "response " + response);
        assertEquals("CLOCK", response.get("failedCheck"), () -> "response " + response);
        AttestationResult r = AttestationResult.decode(JWSObject.parse((String) response.get("result")).getPayload()
                .toBytes());
        assertEquals(java.util.Optional.of("CLOCK"), r.failedCheck());
        assertTrue(r.reasons().get(0).contains("the TPM clock went back"), () -> "reasons " + r.reasons());
    }

    @OnEachBackend
    void aMalformedRequest_isABadRequest_namingTheField() {
        ApiException e = assertThrows(ApiException.class, () -> appraisals.appraise("{\"akId\":\"x\"}"));
        assertEquals(400, e.status(), e::getMessage);
        ApiException pcrs = assertThrows(ApiException.class, () -> appraisals.appraise(host.appraisalRequest(
                new byte[32], host.quote(policy.requiredPcrSelection(), new byte[32]), host.log(),
                Map.of("keyApprovalPcrs", "sha999:1"))));
        assertEquals(400, pcrs.status(), pcrs::getMessage);
        assertTrue(pcrs.getMessage().contains("keyApprovalPcrs"), pcrs::getMessage);
        assertEquals(null, pcrs.check(), () -> "a malformed field other than keyEvents names no check: " + pcrs);
        // Its message names keyEvents (among the allowed fields), yet it is not a key-event refusal.
        ApiException unknown = assertThrows(ApiException.class, () -> appraisals.appraise(host.appraisalRequest(
                new byte[32], host.quote(policy.requiredPcrSelection(), new byte[32]), host.log(),
                Map.of("extra", 1))));
        assertTrue(unknown.getMessage().contains("keyEvents"), unknown::getMessage);
        assertEquals(400, unknown.status(), unknown::getMessage);
        assertEquals(null, unknown.check(), () -> "an unknown field names no check: " + unknown);
    }

    @OnEachBackend
    void aMalformedKeyEventReport_is400WithCheckKeyEvents_andLeavesTheNonceUnused() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        java.util.Base64.Encoder b64 = java.util.Base64.getEncoder();
        List<Object> bad = List.of("not base64!", 42, b64.encodeToString(new byte[KeyEvents.MAX_BYTES + 3]),
                b64.encodeToString("not json".getBytes(java.nio.charset.StandardCharsets.UTF_8)),
                b64.encodeToString("{}".getBytes(java.nio.charset.StandardCharsets.UTF_8)),
                b64.encodeToString(("[{\"at\":\"2026-12-06T12:00:00Z\",\"operation\":\"CALL_DECISION\","
                        + "\"outcome\":\"ACCEPT\",\"direction\":\"IN\",\"peer\":\"sip:a@b\","
                        + "\"peerLevel\":\"SUPREME\",\"requiredLevel\":\"MEASURED\"}]")
                        .getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        for (Object report : bad) {
            String body = host.appraisalRequest(nonce, quote, host.log(), Map.of("keyEvents", report));
            ApiException e = assertThrows(ApiException.class, () -> appraisals.appraise(body),
                    () -> "keyEvents " + String.valueOf(report).substring(0, Math.min(40, String.valueOf(report)
                            .length())));
            assertEquals(400, e.status(), e::getMessage);
            assertEquals(KeyEvents.CHECK, e.check(), () -> "check of " + e.getMessage());
        }
        assertEquals(List.of(), audited, "a refused report is not recorded");
        Map<String, Object> response = appraisals.appraise(host.appraisalRequest(nonce, quote, host.log(), Map.of()));
        assertEquals("MEASURED", response.get("level"), () -> "the nonce was still unused; response " + response);
    }

    @OnEachBackend
    void theQuotedValuesMustBeTheOnesTheTpmQuoted() throws Exception {
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), nonce);
        List<byte[]> values = new ArrayList<>(quote.pcrValues().values());
        values.set(0, new byte[32]);
        values.get(0)[0] = 1;
        TpmQuote lying = new TpmQuote(quote.attest(), quote.signature(), PcrValues.of(quote.pcrValues().selection(),
                values));
        ApiException e = assertThrows(ApiException.class, () -> appraisals.appraise(host.appraisalRequest(nonce,
                lying, host.log(), Map.of())));
        assertEquals("PCR_DIGEST", e.check(), e::getMessage);
    }

    private static KeyPair ec() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }
}
