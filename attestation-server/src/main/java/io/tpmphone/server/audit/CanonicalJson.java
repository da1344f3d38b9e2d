package io.tpmphone.server.audit;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Canonical JSON text of an audit detail: object members sorted by name (UTF-16 code unit order, as
 * {@link String#compareTo}), no insignificant whitespace, Jackson's string escaping and number formatting.
 *
 * <p>Jackson's {@code ORDER_MAP_ENTRIES_BY_KEYS} and {@code SORT_PROPERTIES_ALPHABETICALLY} sort {@code Map}s and
 * bean properties but not the members of an {@code ObjectNode}, which serializes itself in insertion order; so the
 * tree is walked here. The hash covers the stored text, so verifiers never need to re-canonicalize.
 *
 * <p>Stateless and thread-safe.
 */
final class CanonicalJson {
    /** Also reads streamed exports element by element, so it must not fail on trailing tokens; see below. */
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(MapperFeature.SORT_PROPERTIES_ALPHABETICALLY)
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();
    private static final JsonFactory FACTORY = MAPPER.getFactory();

    private CanonicalJson() {
    }

    /** The canonical text of {@code node}; rejects NaN and infinite numbers. */
    static String canonicalize(JsonNode node) {
        StringWriter text = new StringWriter();
        try (JsonGenerator out = FACTORY.createGenerator(text)) {
            write(node, out);
        } catch (IOException e) {
            throw new UncheckedIOException("writing JSON to memory cannot fail", e);
        }
        return text.toString();
    }

    /** Parses {@code json} strictly (no duplicate names, no trailing data) and returns its canonical text. */
    static String canonicalize(String json) {
        JsonNode node;
        try (JsonParser parser = FACTORY.createParser(json)) {
            node = MAPPER.readTree(parser);
            if (parser.nextToken() != null) {
                throw new IllegalArgumentException("detail JSON has data after the first value");
            }
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("detail is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("reading JSON from a string cannot fail", e);
        }
        if (node == null) {
            throw new IllegalArgumentException("detail JSON is empty; use {} for no detail");
        }
        if (!node.isObject()) {
            throw new IllegalArgumentException("detail must be a JSON object, got a " + node.getNodeType());
        }
        return canonicalize(node);
    }

    private static void write(JsonNode node, JsonGenerator out) throws IOException {
        switch (node.getNodeType()) {
            case OBJECT -> {
                List<String> names = new ArrayList<>(node.size());
                for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
                    names.add(it.next());
                }
                Collections.sort(names);
                out.writeStartObject();
                for (String name : names) {
                    out.writeFieldName(name);
                    write(node.get(name), out);
                }
                out.writeEndObject();
            }
            case ARRAY -> {
                out.writeStartArray();
                for (JsonNode element : node) {
                    write(element, out);
                }
                out.writeEndArray();
            }
            case NUMBER -> {
                if ((node.isDouble() || node.isFloat()) && !Double.isFinite(node.doubleValue())) {
                    throw new IllegalArgumentException("detail contains a non-finite number, which JSON cannot carry");
                }
                out.writeTree(node);
            }
            case STRING, BOOLEAN, NULL -> out.writeTree(node);
            case BINARY -> out.writeString(node.asText()); // base64, as Jackson writes binary nodes
            case POJO, MISSING -> throw new IllegalArgumentException(
                    "detail contains a " + node.getNodeType() + " node; build it from JSON values only");
        }
    }

    /** A compact, canonical JSON text of a plain map (used for small internal documents). */
    static String canonicalize(Map<String, ?> map) {
        return canonicalize(MAPPER.<JsonNode>valueToTree(map));
    }
}
