package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.swtpm.SwtpmExtension;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmCertification;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmObjectBlob;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmUri;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Attacks on the key side of the server, from a MEASURED host's own TPM: device certificates for keys that could sign
 * outside an approved state or that the Certify does not cover, and key-event reports not bound to a quote. Each is
 * refused with the check named and leaves an audit record; none leaves a KEY_RELEASE record.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KeyAttacksIT {
    @RegisterExtension
    static final SwtpmExtension TPM = SwtpmExtension.builder().withEkCertificate(true).build();
    private static final PersistentHandle ROGUE = new PersistentHandle(0x81000011);

    @TempDir
    static Path dir;
    private AttestationServer server;
    private AttestationClient client;
    private TpmClient tpm;
    private Agent agent;
    private String akId;

    @BeforeAll
    void start() throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        server = Fixture.server(dir.resolve("server"), TPM.process(), Fixture.policy(1, spec), Clock.systemUTC());
        client = Fixture.client(server);
        tpm = TpmClient.open(TpmUri.parse(TPM.process().tpmUri()));
        agent = new Agent(tpm, client, dir.resolve("agent"), "host-x", Fixture.PCR, spec, Duration.ofHours(1),
                Clock.systemUTC()).withEnrollmentToken(Fixture.enrollmentToken(client, "host-x"));
        Agent.Status s = agent.start();
        assertEquals(Optional.of(IntegrityLevel.MEASURED), s.level(), () -> "reasons: " + s.reasons());
        akId = s.akId();
        // A signing key that any local process could use: no policy, userWithAuth.
        TpmObjectBlob rogue = tpm.createSigningKey(PersistentHandle.SRK_ECC, Optional.empty());
        tpm.persist(PersistentHandle.SRK_ECC, rogue, ROGUE);
    }

    @AfterAll
    void stop() throws Exception {
        agent.close();
        tpm.evict(ROGUE);
        tpm.close();
        server.close();
    }

    private String nonce() throws Exception {
        return HexFormat.of().formatHex(new HostAttestation(tpm, client).requestNonce(akId).nonce());
    }

    private Map<String, Object> certificateRequest(String nonce, PersistentHandle certified, TpmtPublic offered)
            throws Exception {
        TpmCertification c = tpm.certify(certified, HostAttestation.AK, HexFormat.of().parseHex(nonce));
        Base64.Encoder b64 = Base64.getEncoder();
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("akId", akId);
        r.put("nonce", nonce);
        r.put("tikPublic", b64.encodeToString(offered.encoded()));
        r.put("certifyInfo", b64.encodeToString(c.attest()));
        r.put("signature", b64.encodeToString(c.signature()));
        return r;
    }

    private void assertRefused(Map<String, Object> request, String check) throws Exception {
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client.post("/v1/device-certificates", request, null));
        assertEquals(403, e.status(), e.getMessage());
        assertEquals(Optional.of(check), e.check(), e.getMessage());
        JsonNode records = client.get("/v1/audit?from=1&limit=1000", Fixture.ADMIN_TOKEN).get("records");
        JsonNode last = records.get(records.size() - 1);
        assertEquals("DEVICE_CERTIFICATE_REFUSED", last.get("outcome").asText(), last.toString());
        assertEquals(check, last.at("/detail/check").asText(), () -> "the refusal's audit record: " + last);
    }

    @Test
    void aKeyThatSignsWithoutAnApprovedState_getsNoDeviceCertificate() throws Exception {
        TpmtPublic rogue = tpm.readPublic(ROGUE).orElseThrow();
        assertRefused(certificateRequest(nonce(), ROGUE, rogue), "KEY_POLICY");
    }

    @Test
    void aCertifyOfOneKeyOfferedForAnother_isRefusedAtCertify() throws Exception {
        TpmtPublic rogue = tpm.readPublic(ROGUE).orElseThrow();
        assertRefused(certificateRequest(nonce(), PersistentHandle.TIK, rogue), "CERTIFY");
    }

    @Test
    void aReusedNonce_isRefused_andTheGenuineRequestStillWorksOnce() throws Exception {
        TpmtPublic tik = agent.keys().keystore().identityKey();
        String nonce = nonce();
        Map<String, Object> genuine = certificateRequest(nonce, PersistentHandle.TIK, tik);
        JsonNode issued = client.post("/v1/device-certificates", genuine, null);
        assertTrue(issued.get("certificate").asText()
                .startsWith("-----BEGIN CERTIFICATE-----"), () -> "the genuine request gets a PEM certificate; the "
                        + "answer: " + issued);
        assertRefused(genuine, "NONCE");
    }

    @Test
    void keyEventsNotBoundToTheQuote_areRefused_andNotRecorded() throws Exception {
        byte[] nonce = HexFormat.of().parseHex(nonce());
        TpmQuote quote = tpm.quote(HostAttestation.AK, PcrSelection.parse("sha256:0-7,14"), nonce);
        Map<String, Object> request = HostAttestation.appraisalRequest(akId, nonce, quote, agent.store().log());
        String forged = "[{\"at\":\"2026-01-01T00:00:00Z\",\"operation\":\"SRTP_KEY\",\"outcome\":\"RELEASED\","
                + "\"callId\":\"forged-call\"}]";
        request.put("keyEvents", Base64.getEncoder().encodeToString(forged.getBytes(StandardCharsets.UTF_8)));
        AttestationClientException e = assertThrows(AttestationClientException.class,
                () -> client.post("/v1/appraisals", request, null));
        assertEquals(403, e.status(), e.getMessage());
        assertEquals(Optional.of("QUALIFYING_DATA"), e.check(), e.getMessage());
        JsonNode records = client.get("/v1/audit?from=1&limit=1000", Fixture.ADMIN_TOKEN).get("records");
        for (JsonNode r : records) {
            assertFalse(r.toString().contains("forged-call") && r.get("type").asText().equals("KEY_RELEASE"),
                    "a forged key event was recorded: " + r);
        }
    }

    @Test
    void malformedKeyEvents_are400WithCheckKeyEvents_beforeAnyNonceIsUsed() throws Exception {
        for (String bad : List.of("not json", "{}", "[1]", "[{\"at\":\"x\",\"operation\":\"STEAL\",\"outcome\":\"RELEASED\"}]",
                "[{\"at\":\"x\",\"operation\":\"SIGN\",\"outcome\":\"RELEASED\",\"extra\":1}]",
                "[{\"at\":\"x\",\"operation\":\"SIGN\",\"outcome\":\"REFUSED\",\"reason\":\"lower case\"}]",
                "[{\"operation\":\"SIGN\",\"outcome\":\"REFUSED\"}]")) {
            byte[] nonce = HexFormat.of().parseHex(nonce());
            TpmQuote quote = tpm.quote(HostAttestation.AK, PcrSelection.parse("sha256:0-7,14"), nonce);
            Map<String, Object> request = HostAttestation.appraisalRequest(akId, nonce, quote, agent.store().log());
            request.put("keyEvents", Base64.getEncoder().encodeToString(bad.getBytes(StandardCharsets.UTF_8)));
            AttestationClientException e = assertThrows(AttestationClientException.class,
                    () -> client.post("/v1/appraisals", request, null), bad);
            assertEquals(400, e.status(), bad + ": " + e.getMessage());
            assertEquals(Optional.of("KEY_EVENTS"), e.check(), () -> bad + ": the 400 carries the check KEY_EVENTS: "
                    + e.getMessage());
            assertTrue(e.getMessage().contains("keyEvents"), () -> bad + ": the 400 names keyEvents: "
                    + e.getMessage());
            request.remove("keyEvents");
            JsonNode appraisal = client.post("/v1/appraisals", request, null);
            assertEquals("MEASURED", appraisal.get("level").asText(), () -> "the refused request did not use up the "
                    + "nonce; failedCheck " + appraisal.path("failedCheck").asText("none") + ", reasons "
                    + appraisal.path("reasons"));
        }
    }
}
