package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The keystore approval's wire format, version 1: the bytes, and one refusal per rule of the strict decoder. */
@Timeout(10)
class KeystoreApprovalTest {
    /** An authority's TPMT_PUBLIC (ECC P-256, ECDSA-SHA256), as KeyApprover builds it. */
    private static final String AUTHORITY = "ACMACwAEAEAAAAAQABgACwADABAAIPjP//3vUY8k3W64Eg1DVMnSo/+KI+5O15xxv+7/n+Te"
            + "ACDNIIxOhzih9Ecll3uz5FD5mMY5jjoQtJ2VAbd/tjGVdA==";
    /** A TPMT_SIGNATURE: ECDSA, SHA-256, r = 32 x 0x5a, s = 32 x 0x3c (the TPM verifies it, not the decoder). */
    private static final String SIGNATURE = "ABgACwAgWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWloAIDw8PDw8PDw8PDw8PDw8"
            + "PDw8PDw8PDw8PDw8PDw8PDw8";
    /** The state and lifetime of KeystorePolicyTest, whose digests came from tpm2-tools. */
    private static final String GOLDEN = "{\"version\":1,\"pcrSelection\":\"sha256:0,7,14\","
            + "\"pcrPolicy\":\"2ec14a7c49c1b56cf4968937e47f75a32c33fcbfca5bfa6deaa210f8d1428620\","
            + "\"resetCount\":3,\"clockBefore\":1234567890,"
            + "\"approvedPolicy\":\"bf7f358f638c8416265a2ad85deaffd2537b37bc9cafb7c60d81e0085da47fa8\","
            + "\"policyRef\":\"e1467f500a4d57d15b664b5ab2a4c80fc473fbc6757aac52ca95fbf9d1607b18\","
            + "\"signature\":\"" + SIGNATURE + "\",\"authorityPublic\":\"" + AUTHORITY + "\"}";

    private static KeystoreApproval approval() throws Exception {
        HexFormat hex = HexFormat.of();
        return KeystoreApproval.of(PcrSelection.parse("sha256:0,7,14"), PolicyDigest.of(HashAlgorithm.SHA256,
                        hex.parseHex("2ec14a7c49c1b56cf4968937e47f75a32c33fcbfca5bfa6deaa210f8d1428620")), 3,
                1_234_567_890L, hex.parseHex("e1467f500a4d57d15b664b5ab2a4c80fc473fbc6757aac52ca95fbf9d1607b18"),
                TpmtSignature.parse(Base64.getDecoder().decode(SIGNATURE)),
                TpmtPublic.parse(Base64.getDecoder().decode(AUTHORITY)));
    }

    private static MalformedStructureException refused(String json) {
        return assertThrows(MalformedStructureException.class, () -> KeystoreApproval.decode(json),
                () -> "should be refused: " + json);
    }

    @Test
    void encode_isTheDocumentedVersion1Object() throws Exception {
        assertEquals(GOLDEN, new String(approval().encode(), StandardCharsets.UTF_8));
    }

    @Test
    void decode_readsTheGoldenObject_andItsComposition() throws Exception {
        KeystoreApproval a = KeystoreApproval.decode(GOLDEN);
        assertEquals(approval(), a);
        assertEquals("sha256:bf7f358f638c8416265a2ad85deaffd2537b37bc9cafb7c60d81e0085da47fa8",
                a.approvedPolicy().toString());
        assertEquals("59ce6de213d78bb5c2732a5c87610ed8fc4d566e5ca96bf494f280b3bcc68bfb",
                HexFormat.of().formatHex(a.signedDigest()));
        assertEquals(3, a.resetCount());
        assertEquals(1_234_567_890L, a.clockBefore());
    }

    @Test
    void anotherVersion_isRefused_beforeItsMembersAreRead() {
        MalformedStructureException e = refused(GOLDEN.replace("\"version\":1,", "\"version\":2,\"next\":true,"));
        assertEquals("version", e.field());
        assertTrue(e.getMessage().contains("version 2 is not supported"), e.getMessage());
    }

    @Test
    void aVersionThatIsNotAnInteger_isRefused() {
        assertEquals("version", refused(GOLDEN.replace("\"version\":1", "\"version\":\"1\"")).field());
        assertEquals("version", refused(GOLDEN.replace("\"version\":1", "\"version\":1.0")).field());
    }

    @Test
    void anUnknownMember_isRefused() {
        MalformedStructureException e = refused(GOLDEN.replace("{\"version\":1,", "{\"version\":1,\"host\":\"a\","));
        assertEquals("host", e.field());
        assertTrue(e.getMessage().contains("unknown member"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"pcrSelection", "pcrPolicy", "resetCount", "clockBefore", "approvedPolicy", "policyRef",
        "signature", "authorityPublic"})
    void aMissingMember_isRefused(String member) {
        String json = GOLDEN.replaceAll(",\"" + member + "\":(\"[^\"]*\"|[0-9]+)", "");
        MalformedStructureException e = refused(json);
        assertEquals(member, e.field(), e::getMessage);
        assertTrue(e.getMessage().endsWith("missing"), e.getMessage());
    }

    @Test
    void mistypedMembers_areRefused() {
        assertEquals("resetCount", refused(GOLDEN.replace("\"resetCount\":3", "\"resetCount\":\"3\"")).field());
        assertEquals("resetCount", refused(GOLDEN.replace("\"resetCount\":3", "\"resetCount\":3.0")).field());
        assertEquals("resetCount", refused(GOLDEN.replace("\"resetCount\":3", "\"resetCount\":-1")).field());
        assertEquals("resetCount", refused(GOLDEN.replace("\"resetCount\":3", "\"resetCount\":4294967296")).field());
        assertEquals("clockBefore", refused(GOLDEN.replace("\"clockBefore\":1234567890",
                "\"clockBefore\":null")).field());
        assertEquals("pcrSelection", refused(GOLDEN.replace("\"sha256:0,7,14\"", "[0,7,14]")).field());
    }

    @Test
    void upperCaseOrShortHex_isRefused() {
        assertEquals("pcrPolicy", refused(GOLDEN.replace("2ec14a7c", "2EC14A7C")).field());
        assertEquals("approvedPolicy", refused(GOLDEN.replace("bf7f358f638c", "bf7f358f")).field());
    }

    @Test
    void aPolicyRefLongerThanPolicyAuthorizeTakes_isRefused() {
        assertEquals("policyRef", refused(GOLDEN.replace("e1467f500a4d", "00e1467f500a4d")).field());
    }

    @Test
    void anApprovedPolicyThatIsNotTheComposition_isRefused() {
        // the clock limit raised without changing the approved policy: the host would think it holds longer
        MalformedStructureException e = refused(GOLDEN.replace("1234567890", "1234567891"));
        assertEquals("approvedPolicy", e.field());
    }

    @Test
    void aSignatureOrPublicAreaThatDoesNotParse_isRefused() {
        assertEquals("signature", refused(GOLDEN.replace(SIGNATURE, "AAAA")).field());
        assertEquals("signature", refused(GOLDEN.replace(SIGNATURE, "not base64!")).field());
        assertEquals("authorityPublic", refused(GOLDEN.replace(AUTHORITY, SIGNATURE)).field());
    }

    @Test
    void duplicateMembers_trailingContent_andNonObjects_areRefused() {
        refused(GOLDEN.replace("{\"version\":1,", "{\"version\":1,\"version\":1,"));
        refused(GOLDEN + "{}");
        refused("[" + GOLDEN + "]");
        refused("");
    }

    @Test
    void toPolicyApprovalMembers_areCopies() throws Exception {
        KeystoreApproval a = approval();
        byte[] ref = a.policyRef();
        ref[0] ^= 1;
        assertArrayEquals(HexFormat.of().parseHex("e1467f500a4d57d15b664b5ab2a4c80fc473fbc6757aac52ca95fbf9d1607b18"),
                a.policyRef());
        assertEquals(List.of("sha256:0,7,14"), List.of(a.pcrSelection().toString()));
    }
}
