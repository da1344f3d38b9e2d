package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A summed-up rejection (a call decision with a count) is accepted; a count anywhere else is refused. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class KeyEventsTest {
    private static final String DECISION = "{\"at\":\"2026-12-06T12:00:00Z\",\"operation\":\"CALL_DECISION\","
            + "\"outcome\":\"REJECT\",\"direction\":\"IN\",\"peer\":\"(12 calls)\",\"peerLevel\":\"UNATTESTED\","
            + "\"requiredLevel\":\"MEASURED\"";

    private static List<KeyEvents.Event> parse(String json) throws ApiException {
        return KeyEvents.parse(json.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void aCallDecisionWithACount_becomesOneRecordCarryingIt() throws Exception {
        List<KeyEvents.Event> events = parse("[" + DECISION + ",\"count\":12}]");
        assertEquals(1, events.size());
        assertEquals(12L, events.get(0).auditDetail("ak").get("count"), events.get(0).toString());
        assertEquals("CALL_DECISION", events.get(0).auditType());
    }

    @Test
    void everyMalformedReport_isRefusedWithCheckKeyEvents() {
        for (String bad : List.of("not json", "{}", "[1]", "[" + DECISION + ",\"count\":0}]",
                "[" + DECISION.replace("UNATTESTED", "SUPREME") + "}]", "[" + DECISION + ",\"extra\":1}]",
                "[" + DECISION + "}]".repeat(2),
                "[" + (DECISION + "},").repeat(KeyEvents.MAX_EVENTS) + DECISION + "}]")) {
            ApiException e = assertThrows(ApiException.class, () -> parse(bad), bad);
            assertEquals(400, e.status(), e.getMessage());
            assertEquals(KeyEvents.CHECK, e.check(), () -> "check of " + e.getMessage());
        }
    }

    @Test
    void aKeyEventsFieldThatIsNotBase64OfAtMost64KiB_isRefusedWithCheckKeyEvents() throws Exception {
        String tooLarge = java.util.Base64.getEncoder().encodeToString(new byte[KeyEvents.MAX_BYTES + 3]);
        for (String field : List.of("{\"keyEvents\":\"not base64!\"}", "{\"keyEvents\":42}", "{\"keyEvents\":null}",
                "{\"keyEvents\":\"" + tooLarge + "\"}")) {
            com.fasterxml.jackson.databind.JsonNode request = Json.MAPPER.readTree(field);
            ApiException e = assertThrows(ApiException.class, () -> KeyEvents.bytes(request), field.substring(0,
                    Math.min(40, field.length())));
            assertEquals(400, e.status(), e.getMessage());
            assertEquals(KeyEvents.CHECK, e.check(), () -> "check of " + e.getMessage());
        }
        String exact = java.util.Base64.getEncoder().encodeToString(new byte[KeyEvents.MAX_BYTES]);
        assertEquals(KeyEvents.MAX_BYTES, KeyEvents.bytes(Json.MAPPER.readTree("{\"keyEvents\":\"" + exact + "\"}"))
                .length, "64 KiB is taken");
    }

    @Test
    void aCountThatIsNotAPositiveInteger_orNotOnACallDecision_isRefused() {
        for (String bad : List.of("[" + DECISION + ",\"count\":0}]", "[" + DECISION + ",\"count\":1.5}]",
                "[" + DECISION + ",\"count\":\"12\"}]", "[" + DECISION + ",\"count\":10000000000}]",
                "[{\"at\":\"2026-12-06T12:00:00Z\",\"operation\":\"SIGN\",\"outcome\":\"RELEASED\",\"count\":3}]")) {
            ApiException e = assertThrows(ApiException.class, () -> parse(bad), bad);
            assertTrue(e.getMessage().contains("count"), e.getMessage());
        }
    }
    @Test
    void aCallDecisionWithHowItWasEstablished_theEvidenceDigestAndTheResultAge_carriesThemIntoTheRecord()
            throws Exception {
        String digest = "0123456789abcdef".repeat(4);
        List<KeyEvents.Event> events = parse("[" + DECISION + ",\"established\":\"end-to-end DTLS\","
                + "\"evidenceSha256\":\"" + digest + "\",\"resultAgeSeconds\":42}]");
        var detail = events.get(0).auditDetail("ak");
        assertEquals("end-to-end DTLS", detail.get("established"), detail.toString());
        assertEquals(digest, detail.get("evidenceSha256"), detail.toString());
        assertEquals(42L, detail.get("resultAgeSeconds"), detail.toString());
        assertEquals("one hop", parse("[" + DECISION + ",\"established\":\"one hop\",\"resultAgeSeconds\":0}]")
                .get(0).auditDetail("ak").get("established"));
    }

    @Test
    void establishedOutsideItsValues_aDigestThatIsNot64Hex_orANegativeOrFractionalAge_isRefused() {
        String digest = "0123456789abcdef".repeat(4);
        for (String bad : List.of("[" + DECISION + ",\"established\":\"magic\"}]",
                "[" + DECISION + ",\"established\":7}]",
                "[" + DECISION + ",\"evidenceSha256\":\"" + digest.substring(1) + "\"}]",
                "[" + DECISION + ",\"evidenceSha256\":\"" + digest.toUpperCase(java.util.Locale.ROOT) + "\"}]",
                "[" + DECISION + ",\"evidenceSha256\":\"" + digest + "00\"}]",
                "[" + DECISION + ",\"resultAgeSeconds\":-1}]", "[" + DECISION + ",\"resultAgeSeconds\":1.5}]",
                "[" + DECISION + ",\"resultAgeSeconds\":\"42\"}]",
                "[{\"at\":\"2026-12-06T12:00:00Z\",\"operation\":\"SIGN\",\"outcome\":\"RELEASED\","
                        + "\"resultAgeSeconds\":3}]")) {
            ApiException e = assertThrows(ApiException.class, () -> parse(bad), bad);
            assertEquals(400, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("established") || e.getMessage().contains("evidenceSha256")
                    || e.getMessage().contains("resultAgeSeconds"), bad + ": " + e.getMessage());
        }
    }
}
