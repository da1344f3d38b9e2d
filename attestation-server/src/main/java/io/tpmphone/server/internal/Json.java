package io.tpmphone.server.internal;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Set;

/** Strict JSON for the API: unknown fields, wrong types and bad encodings are refused with the field named. */
public final class Json {
    public static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private Json() {
    }

    /** Parses a request body that must be one JSON object with exactly the allowed fields. */
    public static ObjectNode object(String body, Set<String> required, Set<String> optional) throws ApiException {
        JsonNode node;
        try {
            node = MAPPER.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiException.badRequest("request body is not valid JSON: " + e.getOriginalMessage());
        }
        if (node == null || !node.isObject()) {
            throw ApiException.badRequest("request body must be a JSON object");
        }
        ObjectNode object = (ObjectNode) node;
        for (Iterator<String> it = object.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!required.contains(name) && !optional.contains(name)) {
                throw ApiException.badRequest("unknown field '" + name + "' (allowed: " + required + " " + optional + ")");
            }
        }
        for (String name : required) {
            if (!object.hasNonNull(name)) {
                throw ApiException.badRequest("missing field '" + name + "'");
            }
        }
        return object;
    }

    public static String text(JsonNode object, String field, int maxLength) throws ApiException {
        JsonNode v = object.get(field);
        if (v == null || !v.isTextual()) {
            throw ApiException.badRequest("field '" + field + "' must be a string");
        }
        if (v.textValue().length() > maxLength) {
            throw ApiException.badRequest("field '" + field + "' is longer than " + maxLength + " characters");
        }
        return v.textValue();
    }

    public static byte[] base64(JsonNode object, String field, int maxBytes) throws ApiException {
        String text = text(object, field, maxBytes * 4 / 3 + 4);
        try {
            return Base64.getDecoder().decode(text);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("field '" + field + "' is not base64: " + e.getMessage());
        }
    }

    public static byte[] hex(JsonNode object, String field, int maxBytes) throws ApiException {
        String text = text(object, field, maxBytes * 2);
        try {
            return HexFormat.of().parseHex(text);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("field '" + field + "' is not hex: " + e.getMessage());
        }
    }

    public static String write(Object value) {
        try {
            return MAPPER.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize " + value.getClass().getSimpleName(), e);
        }
    }
}
