package io.tpmphone.attestation;

import static io.tpmphone.attestation.Measurements.examplePolicyJson;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

class AttestationPolicyTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The example policy with {@code change} applied to its tree. */
    private static String modified(Consumer<ObjectNode> change) throws Exception {
        ObjectNode root = (ObjectNode) JSON.readTree(examplePolicyJson());
        change.accept(root);
        return JSON.writeValueAsString(root);
    }

    private static ObjectNode release0(ObjectNode root) {
        return (ObjectNode) root.get("releases").get(0);
    }

    private static PolicyException refused(String json) {
        return assertThrows(PolicyException.class, () -> AttestationPolicy.parse(json));
    }

    private static void assertRefused(String pointer, String why, Consumer<ObjectNode> change) throws Exception {
        PolicyException e = refused(modified(change));
        assertEquals(pointer, e.pointer(), e.getMessage());
        assertTrue(e.getMessage().startsWith(pointer + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(why), e.getMessage());
    }

    @Test
    void examplePolicy_parses() throws Exception {
        AttestationPolicy p = AttestationPolicy.parse(examplePolicyJson());
        assertEquals(3, p.version());
        assertEquals(14, p.measurementPcr());
        assertEquals(HashAlgorithm.SHA256, p.pcrBank());
        assertEquals(Set.of(0, 7), p.bootPcrs());
        assertEquals(2, p.bootReferenceValues().get(7).size());
        assertEquals(List.of("softphone-0.1.0", "softphone-0.0.9"),
                p.releases().stream().map(ApprovedRelease::name).toList());
        ApprovedRelease r = p.releases().get(0);
        assertEquals(Set.of("softphone-core.jar", "attestation-protocol.jar", "jain-sip-ri.jar"), r.jars().keySet());
        assertEquals(Measurements.ARGV, r.commandLine());
        assertEquals(Measurements.hex(Measurements.sha256("sip.port=5061\n")),
                r.configuration().get("softphone.properties"));
        assertTrue(p.requireIsolation());
        assertEquals(Duration.ofSeconds(30), p.nonceTtl());
        assertEquals(Duration.ofSeconds(300), p.resultTtl());
        assertEquals(PcrSelection.of(HashAlgorithm.SHA256, 0, 7, 14), p.requiredPcrSelection());
    }

    @Test
    void toJson_isCanonicalAndRoundTrips() throws Exception {
        AttestationPolicy p = AttestationPolicy.parse(examplePolicyJson());
        String canonical = p.toJson();
        AttestationPolicy again = AttestationPolicy.parse(canonical);
        assertEquals(p, again);
        assertEquals(canonical, again.toJson());
        assertTrue(canonical.startsWith("{\"version\":3,\"measurementPcr\":14,\"measurementPcrBaselines\":[\""),
                canonical);
        String upperCaseHex = modified(root -> release0(root).with("jars").put("jain-sip-ri.jar",
                release0(root).get("jars").get("jain-sip-ri.jar").asText().toUpperCase()));
        assertEquals(canonical, AttestationPolicy.parse(upperCaseHex).toJson());
    }

    @Test
    void minimalPolicy_withoutBootPcrs_parses() throws Exception {
        AttestationPolicy p = AttestationPolicy.parse(modified(root -> {
            root.remove("bootPcrs");
            root.remove("bootReferenceValues");
        }));
        assertTrue(p.bootPcrs().isEmpty());
        assertEquals(p, AttestationPolicy.parse(p.toJson()));
    }

    @Test
    void unknownField_isRefusedByPointer() throws Exception {
        assertRefused("/extra", "unknown field", root -> root.put("extra", 1));
        assertRefused("/releases/1/signature", "unknown field",
                root -> ((ObjectNode) root.get("releases").get(1)).put("signature", "x"));
    }

    @Test
    void resettablePcr_isRefusedWithTheReason() throws Exception {
        assertRefused("/measurementPcr", "resettable", root -> root.put("measurementPcr", 16));
        assertRefused("/measurementPcr", "resettable", root -> root.put("measurementPcr", 23));
        assertRefused("/measurementPcr", "outside 0..23", root -> root.put("measurementPcr", 24));
    }

    @Test
    void sha1Bank_isRefused() throws Exception {
        assertRefused("/pcrBank", "SHA-1", root -> root.put("pcrBank", "sha1"));
        assertRefused("/pcrBank", "unsupported", root -> root.put("pcrBank", "sha384"));
    }

    @Test
    void badHexDigest_isRefusedByPointer() throws Exception {
        PolicyException e = refused(modified(root -> release0(root).with("jars").put("softphone-core.jar", "abc")));
        assertEquals("/releases/0/jars/softphone-core.jar: not a 64-hex-digit SHA-256 digest", e.getMessage());
        assertRefused("/releases/0/jvm/~1usr~1lib~1jvm~1java-17-openjdk-amd64~1bin~1java", "SHA-256",
                root -> release0(root).with("jvm").put(Measurements.JAVA, "zz".repeat(32)));
        assertRefused("/bootReferenceValues/7/1", "SHA-256",
                root -> ((ArrayNode) root.get("bootReferenceValues").get("7")).set(1, "00"));
    }

    @Test
    void ttlsOutOfRange_areRefused() throws Exception {
        assertRefused("/nonceTtlSeconds", "1..30", root -> root.put("nonceTtlSeconds", 31));
        assertRefused("/nonceTtlSeconds", "1..30", root -> root.put("nonceTtlSeconds", 0));
        assertRefused("/resultTtlSeconds", "1..300", root -> root.put("resultTtlSeconds", 301));
    }

    @Test
    void negativeOrMistypedVersion_isRefused() throws Exception {
        assertRefused("/version", "not a positive integer", root -> root.put("version", -1));
        assertRefused("/version", "expected an integer, found a string", root -> root.put("version", "3"));
        assertRefused("/version", "non-integer", root -> root.put("version", 3.0));
        assertRefused("/version", "null", root -> root.putNull("version"));
        assertRefused("/version", "required field is missing", root -> root.remove("version"));
        assertRefused("/requireIsolation", "true or false", root -> root.put("requireIsolation", "yes"));
    }

    @Test
    void bootPcrRules_areEnforced() throws Exception {
        assertRefused("/bootPcrs/1", "not a boot PCR", root -> ((ArrayNode) root.get("bootPcrs")).set(1, 8));
        assertRefused("/bootPcrs/1", "twice", root -> ((ArrayNode) root.get("bootPcrs")).set(1, 0));
        assertRefused("/bootReferenceValues/7", "not listed in /bootPcrs",
                root -> ((ArrayNode) root.get("bootPcrs")).remove(1));
        assertRefused("/bootReferenceValues/x", "not a boot PCR index",
                root -> ((ObjectNode) root.get("bootReferenceValues")).putArray("x"));
    }

    @Test
    void releaseRules_areEnforced() throws Exception {
        assertRefused("/releases", "at least one", root -> root.putArray("releases"));
        assertRefused("/releases/1/name", "twice",
                root -> ((ObjectNode) root.get("releases").get(1)).put("name", "softphone-0.1.0"));
        assertRefused("/releases/0/commandLine", "empty", root -> release0(root).putArray("commandLine"));
        assertRefused("/releases/0/commandLine/2", "NUL",
                root -> ((ArrayNode) release0(root).get("commandLine")).set(2, "a\0b"));
        assertRefused("/releases/0/jars", "at least one", root -> release0(root).putObject("jars"));
        assertRefused("/releases/0/configuration", "required", root -> release0(root).remove("configuration"));
    }

    @Test
    void malformedJson_isRefusedAsAWhole() {
        assertEquals("", refused("{\"version\": 1, \"version\": 2}").pointer());
        assertEquals("", refused(examplePolicyJson() + " {}").pointer());
        assertEquals("", refused("[]").pointer());
        assertEquals("", refused("").pointer());
        assertTrue(refused("{").getMessage().startsWith("(policy document): not valid JSON"));
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(ints = {17, 18, 22})
    void drtmPcrs_areRefusedAsMeasurementPcr(int pcr) {
        PolicyException e = org.junit.jupiter.api.Assertions.assertThrows(PolicyException.class,
                () -> AttestationPolicy.parse(modified(root -> root.put("measurementPcr", pcr))));
        assertEquals("/measurementPcr", e.pointer());
    }

    @Test
    void withoutBaselines_onlyTheResetValueIsApproved_andAnEmptyListIsRefused() throws Exception {
        AttestationPolicy p = AttestationPolicy.parse(modified(root -> root.remove("measurementPcrBaselines")));
        assertEquals(java.util.List.of("00".repeat(32)), p.measurementPcrBaselines());
        PolicyException e = org.junit.jupiter.api.Assertions.assertThrows(PolicyException.class,
                () -> AttestationPolicy.parse(modified(root -> root.putArray("measurementPcrBaselines"))));
        assertEquals("/measurementPcrBaselines", e.pointer());
    }
}
