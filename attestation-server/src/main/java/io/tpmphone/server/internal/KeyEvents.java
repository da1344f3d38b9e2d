package io.tpmphone.server.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.HashAlgorithm;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * What a host's keystore did since its last report (docs/keystore.md, "Key events"): the agent sends them as
 * base64 of a UTF-8 JSON array in an appraisal request, and its quote's qualifying data is
 * {@code SHA256("tpmphone-key-events-v1" || nonce || SHA256(those bytes))}, so a report is accepted only with the
 * host TPM's signature. Each event becomes one {@code KEY_RELEASE} audit record. Immutable.
 */
public final class KeyEvents {
    /** The largest report, in bytes. */
    public static final int MAX_BYTES = 64 * 1024;
    /** The most events in one report. */
    public static final int MAX_EVENTS = 256;
    private static final byte[] LABEL = "tpmphone-key-events-v1".getBytes(StandardCharsets.US_ASCII);
    private static final Set<String> OPERATIONS = Set.of("SRTP_KEY", "OFFERED_KEY", "SIGN");
    private static final Set<String> OUTCOMES = Set.of("RELEASED", "REFUSED");
    private static final Pattern REASON = Pattern.compile("[A-Z_]{1,32}");

    /** One event: when (the host's clock), which operation, the outcome, the keystore's reason and message. */
    public record Event(String at, String operation, String outcome, String reason, String tpmCode, String callId,
                        String message) {
        Map<String, Object> auditDetail(String akId) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("akId", akId);
            m.put("operation", operation);
            m.put("hostTime", at);
            if (callId != null) {
                m.put("callId", callId);
            }
            if (reason != null) {
                m.put("reason", reason);
            }
            if (tpmCode != null) {
                m.put("tpmCode", tpmCode);
            }
            if (message != null) {
                m.put("message", message);
            }
            return m;
        }
    }

    private KeyEvents() {
    }

    /** The quote's qualifying data for a report. */
    public static byte[] qualifyingData(byte[] nonce, byte[] report) {
        return HashAlgorithm.SHA256.digest(LABEL, nonce, HashAlgorithm.SHA256.digest(report));
    }

    private static Event event(ObjectNode o) throws ApiException {
        ObjectNode e = Json.object(o.toString(), Set.of("at", "operation", "outcome"),
                Set.of("reason", "tpmCode", "callId", "message"));
        String operation = Json.text(e, "operation", 16);
        String outcome = Json.text(e, "outcome", 16);
        if (!OPERATIONS.contains(operation) || !OUTCOMES.contains(outcome)) {
            throw ApiException.badRequest("operation must be one of " + OPERATIONS
                    + " and outcome one of " + OUTCOMES);
        }
        String reason = e.has("reason") ? Json.text(e, "reason", 32) : null;
        String tpmCode = e.has("tpmCode") ? Json.text(e, "tpmCode", 32) : null;
        if ((reason != null && !REASON.matcher(reason).matches())
                || (tpmCode != null && !REASON.matcher(tpmCode).matches())) {
            throw ApiException.badRequest("reason and tpmCode are upper-case names");
        }
        String at = Json.text(e, "at", 40);
        try {
            java.time.Instant.parse(at);
        } catch (java.time.format.DateTimeParseException ex) {
            throw ApiException.badRequest("at is not an ISO-8601 instant");
        }
        return new Event(at, operation, outcome, reason, tpmCode,
                e.has("callId") ? Json.text(e, "callId", 256) : null,
                e.has("message") ? Json.text(e, "message", 512) : null);
    }

    /** Parses a report strictly; a malformed one is a 400 naming what is wrong. */
    public static List<Event> parse(byte[] report) throws ApiException {
        JsonNode root;
        try {
            root = Json.MAPPER.readTree(report);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw ApiException.badRequest("keyEvents: not a JSON array: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw ApiException.badRequest("keyEvents: unreadable: " + e.getMessage());
        }
        if (root == null || !root.isArray()) {
            throw ApiException.badRequest("keyEvents: expected a JSON array of events");
        }
        if (root.size() > MAX_EVENTS) {
            throw ApiException.badRequest("keyEvents: " + root.size() + " events; at most " + MAX_EVENTS);
        }
        List<Event> events = new ArrayList<>();
        for (int i = 0; i < root.size(); i++) {
            JsonNode n = root.get(i);
            if (!(n instanceof ObjectNode o)) {
                throw ApiException.badRequest("keyEvents[" + i + "]: not an object");
            }
            try {
                events.add(event(o));
            } catch (ApiException e) {
                throw ApiException.badRequest("keyEvents[" + i + "]: " + e.getMessage());
            }
        }
        return events;
    }
}
