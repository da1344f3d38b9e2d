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
 * host TPM's signature. Each event becomes one {@code KEY_RELEASE} (or {@code CALL_DECISION}) audit record; a call
 * decision with a {@code count} stands for that many rejected calls the agent summed up. A report that is not
 * readable or breaks a rule is refused with 400 and the check {@link #CHECK} ({@code KEY_EVENTS}), before anything
 * else in the request is looked at: the agent acts on that check (it drops the report, counted, and attests without
 * it), never on the message. Immutable.
 */
public final class KeyEvents {
    /**
     * The check a 400 names when the report itself is malformed ({@code "check": "KEY_EVENTS"} in the refusal's
     * body, docs/api.md): not base64, too large, not a JSON array of valid events.
     */
    public static final String CHECK = "KEY_EVENTS";
    /** The largest report, in bytes. */
    public static final int MAX_BYTES = 64 * 1024;
    /** The most events in one report. */
    public static final int MAX_EVENTS = 256;
    private static final byte[] LABEL = "tpmphone-key-events-v1".getBytes(StandardCharsets.US_ASCII);
    private static final Set<String> OPERATIONS = Set.of("SRTP_KEY", "OFFERED_KEY", "SIGN", "CALL_DECISION");
    private static final Set<String> OUTCOMES = Set.of("RELEASED", "REFUSED");
    private static final Set<String> DECISIONS = Set.of("ACCEPT", "REJECT", "RESTRICT");
    private static final Set<String> LEVELS = Set.of("FAILED", "UNATTESTED", "IDENTIFIED", "MEASURED", "HARDENED");
    private static final Set<String> DIRECTIONS = Set.of("IN", "OUT");
    private static final Pattern REASON = Pattern.compile("[A-Z_]{1,32}");
    private static final Set<String> ESTABLISHED = Set.of("one hop", "end-to-end DTLS");
    private static final Pattern SHA256_HEX = Pattern.compile("[0-9a-f]{64}");

    /**
     * One event: when (the host's clock), which operation, the outcome, the keystore's reason and message; for a call
     * decision also the direction, the peer's URI and level and the level the policy required.
     */
    public record Event(String at, String operation, String outcome, String reason, String tpmCode, String callId,
                        String message, Map<String, String> call, Long count, Long resultAgeSeconds) {
        /** The audit record type: CALL_DECISION for call decisions, KEY_RELEASE for key operations. */
        String auditType() {
            return operation.equals("CALL_DECISION") ? "CALL_DECISION" : "KEY_RELEASE";
        }

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
            m.putAll(call);
            if (count != null) {
                m.put("count", count);
            }
            if (resultAgeSeconds != null) {
                m.put("resultAgeSeconds", resultAgeSeconds);
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
                Set.of("reason", "tpmCode", "callId", "message", "direction", "peer", "peerLevel", "requiredLevel",
                        "count", "established", "evidenceSha256", "resultAgeSeconds"));
        String operation = Json.text(e, "operation", 16);
        String outcome = Json.text(e, "outcome", 16);
        boolean decision = operation.equals("CALL_DECISION");
        if (!OPERATIONS.contains(operation) || !(decision ? DECISIONS : OUTCOMES).contains(outcome)) {
            throw ApiException.badRequest("operation must be one of " + OPERATIONS + " and outcome one of "
                    + (decision ? DECISIONS : OUTCOMES));
        }
        Map<String, String> call = new LinkedHashMap<>();
        if (decision) {
            String direction = Json.text(e, "direction", 3);
            String peerLevel = Json.text(e, "peerLevel", 10);
            String required = Json.text(e, "requiredLevel", 10);
            if (!DIRECTIONS.contains(direction) || !LEVELS.contains(peerLevel) || !LEVELS.contains(required)) {
                throw ApiException.badRequest("a call decision needs direction IN|OUT and peerLevel and"
                        + " requiredLevel from " + LEVELS);
            }
            call.put("direction", direction);
            call.put("peer", Json.text(e, "peer", 256));
            call.put("peerLevel", peerLevel);
            call.put("requiredLevel", required);
        }
        // What the console's call view shows (docs/console.md, "Calls"): how the level was established (the
        // softphone's CallPolicy.ONE_HOP / END_TO_END), the digest of the evidence appraised, the result's age.
        if ((e.has("established") || e.has("evidenceSha256") || e.has("resultAgeSeconds")) && !decision) {
            throw ApiException.badRequest("established, evidenceSha256 and resultAgeSeconds are only on a call"
                    + " decision");
        }
        if (e.has("established")) {
            String how = Json.text(e, "established", 16);
            if (!ESTABLISHED.contains(how)) {
                throw ApiException.badRequest("established must be one of " + ESTABLISHED);
            }
            call.put("established", how);
        }
        if (e.has("evidenceSha256")) {
            String digest = Json.text(e, "evidenceSha256", 64);
            if (!SHA256_HEX.matcher(digest).matches()) {
                throw ApiException.badRequest("evidenceSha256 must be 64 lower-case hex digits");
            }
            call.put("evidenceSha256", digest);
        }
        Long resultAge = null;
        if (e.has("resultAgeSeconds")) {
            JsonNode a = e.get("resultAgeSeconds");
            if (!a.isIntegralNumber() || !a.canConvertToLong() || a.asLong() < 0 || a.asLong() > 1_000_000_000L) {
                throw ApiException.badRequest("resultAgeSeconds must be an integer 0..1000000000");
            }
            resultAge = a.asLong();
        }
        String reason = e.has("reason") ? Json.text(e, "reason", 32) : null;
        String tpmCode = e.has("tpmCode") ? Json.text(e, "tpmCode", 32) : null;
        if ((reason != null && !REASON.matcher(reason).matches())
                || (tpmCode != null && !REASON.matcher(tpmCode).matches())) {
            throw ApiException.badRequest("reason and tpmCode are upper-case names");
        }
        Long count = null;
        if (e.has("count")) {
            JsonNode c = e.get("count");
            if (!decision || !c.canConvertToLong() || !c.isIntegralNumber() || c.asLong() < 1
                    || c.asLong() > 1_000_000_000L) {
                throw ApiException.badRequest("count (rejected calls summed up in one call decision) must be an "
                        + "integer 1..1000000000, and only on a call decision");
            }
            count = c.asLong();
        }
        String at = Json.text(e, "at", 40);
        try {
            java.time.Instant.parse(at);
        } catch (java.time.format.DateTimeParseException ex) {
            throw ApiException.badRequest("at is not an ISO-8601 instant");
        }
        return new Event(at, operation, outcome, reason, tpmCode,
                e.has("callId") ? Json.text(e, "callId", 256) : null,
                e.has("message") ? Json.text(e, "message", 512) : null, call, count, resultAge);
    }

    /**
     * The report's bytes from the {@code keyEvents} field of an appraisal request: base64 of at most
     * {@link #MAX_BYTES} bytes. Anything else is a 400 with check {@link #CHECK}.
     */
    public static byte[] bytes(JsonNode request) throws ApiException {
        try {
            return Json.base64(request, "keyEvents", MAX_BYTES);
        } catch (ApiException e) {
            throw refused(e.getMessage());
        }
    }

    /** Parses a report strictly; a malformed one is a 400 with check {@link #CHECK}, naming what is wrong. */
    public static List<Event> parse(byte[] report) throws ApiException {
        JsonNode root;
        try {
            root = Json.MAPPER.readTree(report);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw refused("keyEvents: not a JSON array: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw refused("keyEvents: unreadable: " + e.getMessage());
        }
        if (root == null || !root.isArray()) {
            throw refused("keyEvents: expected a JSON array of events");
        }
        if (root.size() > MAX_EVENTS) {
            throw refused("keyEvents: " + root.size() + " events; at most " + MAX_EVENTS);
        }
        List<Event> events = new ArrayList<>();
        for (int i = 0; i < root.size(); i++) {
            JsonNode n = root.get(i);
            if (!(n instanceof ObjectNode o)) {
                throw refused("keyEvents[" + i + "]: not an object");
            }
            try {
                events.add(event(o));
            } catch (ApiException e) {
                throw refused("keyEvents[" + i + "]: " + e.getMessage());
            }
        }
        return events;
    }

    private static ApiException refused(String message) {
        return new ApiException(400, "bad_request", CHECK, message);
    }
}
