package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.IntegrityLevel;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What the agent reads from the server's answers: a refusal is recognised by its status and check, never by words in
 * its message; an appraisal's level must be one of the levels.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class HostAttestationTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static AttestationClientException refusal(int status, String check, String message) {
        return new AttestationClientException(status, status == 0 ? "unreachable" : "bad_request", check,
                "/v1/appraisals refused (" + status + "): " + message, null);
    }

    @Test
    void a400WithCheckKeyEvents_isAReportRefusal_whateverItsMessage() {
        assertTrue(HostAttestation.keyEventsRefused(refusal(400, "KEY_EVENTS", "keyEvents[0]: not an object")));
        assertTrue(HostAttestation.keyEventsRefused(refusal(400, "KEY_EVENTS", "the report is not readable")),
                "the message need not name the field");
    }

    @Test
    void aRefusalThatOnlyMentionsKeyEvents_isNotAReportRefusal() {
        List<AttestationClientException> others = List.of(
                // a server before the typed check, or any other 400 that happens to name the field
                refusal(400, null, "keyEvents: expected a JSON array of events"),
                refusal(400, null, "unknown field 'extra' (allowed: [akId, nonce] [keyApprovalPcrs, keyEvents])"),
                refusal(400, "POLICY", "keyEvents"),
                // the right check with another status is not this refusal either
                refusal(403, "KEY_EVENTS", "keyEvents"),
                refusal(403, "QUALIFYING_DATA", "the key events are not the ones the quote covers: keyEvents"),
                refusal(0, null, "attestation server unreachable for /v1/appraisals: keyEvents"));
        for (AttestationClientException e : others) {
            assertFalse(HostAttestation.keyEventsRefused(e), () -> "taken for a report refusal: " + e.status() + " "
                    + e.check() + " " + e.getMessage());
        }
    }

    @Test
    void anAgentExceptionCarriesTheServersRefusal_onlyWhenTheServerRefused() {
        AttestationClientException refused = refusal(400, "KEY_EVENTS", "keyEvents: too many");
        AgentException server = new AgentException(AgentException.Reason.SERVER, "having this host appraised failed",
                refused);
        assertEquals(Optional.of(refused), server.serverRefusal());
        assertTrue(server.getMessage().startsWith("SERVER: "), server.getMessage());
        AgentException tpm = new AgentException(AgentException.Reason.TPM, "quoting failed",
                new io.tpmphone.tpm.TpmException("TPM_RC_FAILURE"));
        assertEquals(Optional.empty(), tpm.serverRefusal());
        assertEquals(AgentException.Reason.TPM, tpm.reason());
    }

    @Test
    void anAppraisalsLevel_isOneOfTheLevels() throws Exception {
        for (IntegrityLevel l : IntegrityLevel.values()) {
            assertEquals(l, HostAttestation.level(JSON.readTree("{\"level\":\"" + l.name() + "\"}")));
        }
    }

    @Test
    void anAppraisalWithoutAKnownLevel_isABadResponse() throws Exception {
        for (String answer : List.of("{}", "{\"level\":null}", "{\"level\":3}", "{\"level\":\"SUPREME\"}",
                "{\"level\":\"measured\"}", "{\"level\":\"NOT_APPRAISED\"}")) {
            AttestationClientException e = assertThrows(AttestationClientException.class,
                    () -> HostAttestation.level(JSON.readTree(answer)), answer);
            assertEquals("bad_response", e.error(), () -> answer + ": " + e.getMessage());
            assertEquals(200, e.status(), () -> answer + ": " + e.getMessage());
        }
    }
}
