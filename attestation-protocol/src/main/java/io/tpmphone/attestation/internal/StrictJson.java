package io.tpmphone.attestation.internal;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.util.ByteArrayBuilder;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.MalformedStructureException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Strict reading and canonical writing of the JSON wire formats (attestation result, keystore approval): one object,
 * no duplicate keys, no trailing content, no unknown or missing members, exact JSON types (an integer is an integral
 * number, never {@code "3"} or {@code 3.0}). Failures are {@link MalformedStructureException}s naming the structure and
 * the member. Thread-safe.
 */
public final class StrictJson {
    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);

    private StrictJson() {
    }

    /** The UTF-8 JSON of {@code value} (maps in their iteration order; no whitespace). */
    public static byte[] write(Map<String, ?> value) {
        try {
            return MAPPER.writeValueAsBytes(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("not serializable as JSON", e);
        }
    }

    /** Writes one JSON document to a generator. */
    @FunctionalInterface
    public interface Document {
        void write(JsonGenerator g) throws IOException;
    }

    /**
     * The UTF-8 JSON that {@code document} writes (no whitespace): a streaming writer for encodings on the appraisal
     * path, which build no intermediate maps.
     */
    public static byte[] write(Document document) {
        // As ObjectMapper.writeValueAsBytes does: the factory's recycled buffers, not a fresh stream per document.
        try (ByteArrayBuilder out = new ByteArrayBuilder(MAPPER.getFactory()._getBufferRecycler())) {
            try (JsonGenerator g = MAPPER.getFactory().createGenerator(out, JsonEncoding.UTF8)) {
                document.write(g);
            }
            byte[] json = out.toByteArray();
            out.release();
            return json;
        } catch (IOException e) {
            throw new IllegalStateException("cannot write JSON to memory", e);
        }
    }

    /**
     * Parses {@code json} (at most {@code maxLength} bytes) as one JSON object of {@code structure}.
     *
     * @throws MalformedStructureException if it is too long, not JSON, not an object, has duplicate keys or trails
     */
    public static Reader read(byte[] json, int maxLength, String structure) throws MalformedStructureException {
        Objects.requireNonNull(json, "json");
        if (json.length > maxLength) {
            throw new MalformedStructureException(structure, "(document)", MalformedStructureException.NO_OFFSET,
                    json.length + " bytes; at most " + maxLength);
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (IOException e) {
            String detail = e instanceof JsonProcessingException j ? j.getOriginalMessage() : e.getMessage();
            throw new MalformedStructureException(structure, "(document)", MalformedStructureException.NO_OFFSET,
                    "not valid JSON: " + detail, e);
        }
        if (!(root instanceof ObjectNode object)) {
            throw new MalformedStructureException(structure, "(document)", MalformedStructureException.NO_OFFSET,
                    "not a JSON object");
        }
        return new Reader(structure, "", object);
    }

    /** Reads the members of one JSON object; each failure names {@code structure} and the member's path. */
    public static final class Reader {
        private final String structure;
        private final String path;
        private final ObjectNode node;

        private Reader(String structure, String path, ObjectNode node) {
            this.structure = structure;
            this.path = path;
            this.node = node;
        }

        /** A failure at {@code member} of this object. */
        public MalformedStructureException bad(String member, String detail) {
            return new MalformedStructureException(structure, path + member, MalformedStructureException.NO_OFFSET,
                    detail);
        }

        /** A failure at {@code member} of this object, with its cause. */
        public MalformedStructureException bad(String member, String detail, Throwable cause) {
            return new MalformedStructureException(structure, path + member, MalformedStructureException.NO_OFFSET,
                    detail, cause);
        }

        /** Every member is in {@code required} or {@code optional}, and every one of {@code required} is present. */
        public void members(Set<String> required, Set<String> optional) throws MalformedStructureException {
            for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
                String name = it.next();
                if (!required.contains(name) && !optional.contains(name)) {
                    Set<String> known = new TreeSet<>(required);
                    known.addAll(optional);
                    throw bad(name, "unknown member; expected only " + known);
                }
            }
            for (String name : new TreeSet<>(required)) {
                if (!node.has(name)) {
                    throw bad(name, "missing");
                }
            }
        }

        public boolean has(String member) {
            return node.has(member);
        }

        /** The member names, in document order. */
        public List<String> names() {
            List<String> names = new ArrayList<>();
            node.fieldNames().forEachRemaining(names::add);
            return names;
        }

        /** A string member. */
        public String text(String member) throws MalformedStructureException {
            JsonNode v = node.get(member);
            if (v == null) {
                throw bad(member, "missing");
            }
            if (!v.isTextual()) {
                throw bad(member, "not a string (found " + type(v) + ")");
            }
            return v.textValue();
        }

        /** An optional string member. */
        public Optional<String> optionalText(String member) throws MalformedStructureException {
            return node.has(member) ? Optional.of(text(member)) : Optional.empty();
        }

        /** An integral number member within {@code min..max}. */
        public long integer(String member, long min, long max) throws MalformedStructureException {
            JsonNode v = node.get(member);
            if (v == null) {
                throw bad(member, "missing");
            }
            if (!v.isIntegralNumber() || !v.canConvertToLong()) {
                throw bad(member, "not an integer (found " + type(v) + ")");
            }
            long value = v.longValue();
            if (value < min || value > max) {
                throw bad(member, value + " is outside " + min + ".." + max);
            }
            return value;
        }

        /** A string of lower-case hexadecimal digits encoding {@code minBytes..maxBytes} bytes. */
        public byte[] hex(String member, int minBytes, int maxBytes) throws MalformedStructureException {
            String s = text(member);
            if (!s.isEmpty() && !Hex.isLowerEven(s)) {
                throw bad(member, "not lower-case hexadecimal digits");
            }
            int n = s.length() / 2;
            if (n < minBytes || n > maxBytes) {
                throw bad(member, n + " bytes; expected " + (minBytes == maxBytes ? minBytes
                        : minBytes + ".." + maxBytes));
            }
            return Hex.parse(s);
        }

        /** A string of standard base64 (RFC 4648 §4, padded) encoding 1..{@code maxBytes} bytes. */
        public byte[] base64(String member, int maxBytes) throws MalformedStructureException {
            String s = text(member);
            byte[] v;
            try {
                v = Base64.getDecoder().decode(s);
            } catch (IllegalArgumentException e) {
                throw bad(member, "not base64: " + e.getMessage(), e);
            }
            if (v.length == 0 || v.length > maxBytes) {
                throw bad(member, v.length + " bytes; expected 1.." + maxBytes);
            }
            if (!Base64.getEncoder().encodeToString(v).equals(s)) {
                throw bad(member, "not in canonical base64 (padded, no line breaks)");
            }
            return v;
        }

        /** An object member. */
        public Reader object(String member) throws MalformedStructureException {
            JsonNode v = node.get(member);
            if (v == null) {
                throw bad(member, "missing");
            }
            if (!(v instanceof ObjectNode o)) {
                throw bad(member, "not an object (found " + type(v) + ")");
            }
            return new Reader(structure, path + member + ".", o);
        }

        /** An array member whose elements are all strings. */
        public List<String> textArray(String member) throws MalformedStructureException {
            JsonNode v = node.get(member);
            if (v == null) {
                throw bad(member, "missing");
            }
            if (!v.isArray()) {
                throw bad(member, "not an array (found " + type(v) + ")");
            }
            List<String> out = new ArrayList<>(v.size());
            for (int i = 0; i < v.size(); i++) {
                if (!v.get(i).isTextual()) {
                    throw bad(member + "[" + i + "]", "not a string (found " + type(v.get(i)) + ")");
                }
                out.add(v.get(i).textValue());
            }
            return out;
        }

        private static String type(JsonNode v) {
            if (v.isNull()) {
                return "null";
            }
            if (v.isTextual()) {
                return "a string";
            }
            if (v.isIntegralNumber()) {
                return "an integer";
            }
            if (v.isNumber()) {
                return "a fractional number";
            }
            if (v.isBoolean()) {
                return "a boolean";
            }
            if (v.isArray()) {
                return "an array";
            }
            return "an object";
        }
    }
}
