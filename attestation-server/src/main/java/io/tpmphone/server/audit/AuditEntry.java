package io.tpmphone.server.audit;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.CharBuffer;
import java.util.Map;
import java.util.Objects;

/**
 * One event to be appended: type, subject, outcome and a JSON detail, which is canonicalized (sorted keys, no
 * whitespace) when the entry is made. The log assigns sequence number, timestamp and hashes.
 *
 * <p>Immutable and thread-safe. The detail must never hold secret material (nonces-as-secrets, keys, unsealed
 * data): record digests of evidence, not the evidence's secrets. The audit log is readable by operators.
 *
 * @param type    the kind of event
 * @param subject who or what it is about: host name, AK id, admin user (1..{@value #MAX_SUBJECT_CHARS} chars)
 * @param outcome the result, e.g. {@code ACCEPTED}, {@code REFUSED} or an integrity level
 *                (1..{@value #MAX_OUTCOME_CHARS} chars)
 * @param detailJson canonical JSON text of the detail (at most {@value #MAX_DETAIL_CHARS} chars)
 */
public record AuditEntry(AuditEventType type, String subject, String outcome, String detailJson) {
    /** Longest subject accepted. */
    public static final int MAX_SUBJECT_CHARS = 1024;
    /** Longest outcome accepted. */
    public static final int MAX_OUTCOME_CHARS = 256;
    /** Longest canonical detail accepted. */
    public static final int MAX_DETAIL_CHARS = 65_536;

    /**
     * Validates the fields and canonicalizes {@code detailJson}.
     *
     * @throws IllegalArgumentException naming the rule that failed
     */
    public AuditEntry {
        Objects.requireNonNull(type, "type");
        subject = checkText("subject", subject, MAX_SUBJECT_CHARS);
        outcome = checkText("outcome", outcome, MAX_OUTCOME_CHARS);
        detailJson = CanonicalJson.canonicalize(Objects.requireNonNull(detailJson, "detailJson"));
        checkText("detail", detailJson, MAX_DETAIL_CHARS);
    }

    /** An entry whose detail is the JSON tree {@code detail} (copied into canonical text). */
    public static AuditEntry of(AuditEventType type, String subject, String outcome, JsonNode detail) {
        return new AuditEntry(type, subject, outcome,
                CanonicalJson.canonicalize(Objects.requireNonNull(detail, "detail")));
    }

    /** An entry whose detail is {@code detail} as a JSON object (values: strings, numbers, booleans, lists, maps). */
    public static AuditEntry of(AuditEventType type, String subject, String outcome, Map<String, ?> detail) {
        return new AuditEntry(type, subject, outcome,
                CanonicalJson.canonicalize(Objects.requireNonNull(detail, "detail")));
    }

    /** An entry whose detail is the JSON object text {@code detailJson}, parsed strictly and canonicalized. */
    public static AuditEntry ofJson(AuditEventType type, String subject, String outcome, String detailJson) {
        return new AuditEntry(type, subject, outcome, detailJson);
    }

    /** An entry with an empty detail ({@code {}}). */
    public static AuditEntry of(AuditEventType type, String subject, String outcome) {
        return new AuditEntry(type, subject, outcome, "{}");
    }

    private static String checkText(String field, String value, int maxChars) {
        Objects.requireNonNull(value, field);
        if (value.isEmpty()) {
            throw new IllegalArgumentException("audit entry " + field + " must not be empty");
        }
        if (value.length() > maxChars) {
            throw new IllegalArgumentException("audit entry " + field + " is " + value.length()
                    + " chars, at most " + maxChars + " allowed");
        }
        try {
            // An unpaired surrogate would be encoded as '?', so two different strings would hash alike.
            StandardCharsets.UTF_8.newEncoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).encode(CharBuffer.wrap(value));
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("audit entry " + field + " is not valid Unicode (unpaired surrogate)", e);
        }
        return value;
    }
}
