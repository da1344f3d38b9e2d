package io.tpmphone.server.audit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

class CanonicalJsonTest {
    @Test
    void nestedKeys_areSortedAndWhitespaceRemoved() {
        assertEquals("{\"a\":[{\"x\":1,\"y\":2}],\"b\":{\"c\":null,\"d\":true},\"\u00e9\":\"\u20ac\"}",
                CanonicalJson.canonicalize("{ \"\u00e9\":\"\u20ac\", \"b\": {\"d\": true, \"c\": null},\n"
                        + " \"a\": [ {\"y\":2, \"x\":1} ] }"));
    }

    @Test
    void objectNodeInInsertionOrder_isSorted() {
        // ObjectMapper's ORDER_MAP_ENTRIES_BY_KEYS does not reorder ObjectNode members; the canonicalizer must.
        ObjectNode node = new ObjectMapper().createObjectNode().put("z", 1).put("a", 2);
        node.putObject("m").put("q", "x").put("b", "y");
        assertEquals("{\"a\":2,\"m\":{\"b\":\"y\",\"q\":\"x\"},\"z\":1}", CanonicalJson.canonicalize(node));
    }

    @Test
    void sameContent_sameText() {
        assertEquals(CanonicalJson.canonicalize("{\"b\":1.5,\"a\":\"x\"}"),
                CanonicalJson.canonicalize("{\"a\":\"x\",   \"b\":1.5}"));
    }

    @Test
    void duplicateKeysTrailingDataAndNonObjects_areRejected() {
        assertThrows(IllegalArgumentException.class, () -> CanonicalJson.canonicalize("{\"a\":1,\"a\":1}"));
        assertThrows(IllegalArgumentException.class, () -> CanonicalJson.canonicalize("{} {}"));
        assertThrows(IllegalArgumentException.class, () -> CanonicalJson.canonicalize("\"text\""));
        assertThrows(IllegalArgumentException.class, () -> CanonicalJson.canonicalize(""));
        assertThrows(IllegalArgumentException.class,
                () -> CanonicalJson.canonicalize(new ObjectMapper().createObjectNode().put("n", Double.NaN)));
    }
}
