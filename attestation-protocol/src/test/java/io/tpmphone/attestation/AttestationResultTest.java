package io.tpmphone.attestation;

import static io.tpmphone.attestation.Measurements.approvedLaunch;
import static io.tpmphone.attestation.Measurements.log;
import static io.tpmphone.attestation.Measurements.quoteFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The attestation result (passport payload), version 1: its bytes, and one refusal per rule of the decoder. */
@Timeout(10)
class AttestationResultTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Instant NOW = Instant.parse("2025-05-01T10:00:00Z");
    private static final String NONCE = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    private static final String AK_ID = "000b" + "ab".repeat(32);
    private static final String PCR_DIGEST = "cd".repeat(32);
    /** What the server signs for a MEASURED host: every member, in the documented order. */
    private static final String GOLDEN = "{\"version\":1,\"iss\":\"tpmphone-attestation-server\",\"sub\":\"alice\","
            + "\"iat\":1746093600,\"exp\":1746093900,\"eat_nonce\":\"" + NONCE + "\",\"level\":\"MEASURED\","
            + "\"claims\":{\"INSTANCE_IDENTITY\":{\"status\":\"AFFIRMING\",\"reason\":\"quote verified\"},"
            + "\"EXECUTABLES\":{\"status\":\"AFFIRMING\"},\"CONFIGURATION\":{\"status\":\"AFFIRMING\"},"
            + "\"HARDWARE\":{\"status\":\"NONE\"},\"RUNTIME\":{\"status\":\"AFFIRMING\"},"
            + "\"STORAGE\":{\"status\":\"NONE\"}},\"akId\":\"" + AK_ID + "\",\"pcrDigest\":\"" + PCR_DIGEST + "\","
            + "\"policyVersion\":3,\"release\":\"softphone-0.1.0\",\"reasons\":[\"hardware: no boot reference\"]}";

    private static AttestationResult golden() {
        ClaimVector claims = ClaimVector.empty()
                .with(ClaimName.INSTANCE_IDENTITY, new Claim(ClaimStatus.AFFIRMING, "quote verified"))
                .with(ClaimName.EXECUTABLES, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.RUNTIME, new Claim(ClaimStatus.AFFIRMING, ""));
        return AttestationResult.builder().host("alice").issuedAt(NOW).expiresAt(NOW.plusSeconds(300))
                .nonceHex(NONCE).level(IntegrityLevel.MEASURED).claims(claims).akId(AK_ID).pcrDigestHex(PCR_DIGEST)
                .policyVersion(3).release("softphone-0.1.0").reasons(List.of("hardware: no boot reference")).build();
    }

    private static AttestationResult.Builder appraised() {
        MeasurementLog log = log(approvedLaunch(false));
        PcrValues quoted = quoteFor(log);
        Appraisal a = Appraiser.appraise(Measurements.examplePolicy(), log, quoted,
                AppraisalContext.builder().quoteVerified(true).build());
        return AttestationResult.builder(a).host("alice").nonceHex(NONCE).akId(AK_ID)
                .pcrDigest(quoted.compositeDigest(HashAlgorithm.SHA256)).issuedAt(NOW).expiresAt(NOW.plusSeconds(300));
    }

    /** The golden result with {@code edit} applied to its JSON. */
    private static byte[] edited(Consumer<ObjectNode> edit) throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(GOLDEN);
        edit.accept(n);
        return JSON.writeValueAsBytes(n);
    }

    private static MalformedStructureException refused(byte[] json) {
        return assertThrows(MalformedStructureException.class, () -> AttestationResult.decode(json),
                () -> "should be refused: " + new String(json, StandardCharsets.UTF_8));
    }

    @Test
    void encode_isTheDocumentedVersion1Object() {
        assertEquals(GOLDEN, golden().toJson());
    }

    @Test
    void decode_readsTheGoldenObject() throws Exception {
        AttestationResult r = AttestationResult.decode(GOLDEN.getBytes(StandardCharsets.UTF_8));
        assertEquals(golden(), r);
        assertEquals("alice", r.host());
        assertEquals(IntegrityLevel.MEASURED, r.level());
        assertEquals(Optional.of("softphone-0.1.0"), r.release());
        assertEquals(Optional.empty(), r.failedCheck());
        assertEquals(NOW.plusSeconds(300), r.expiresAt());
    }

    @Test
    void anAppraisal_roundTrips() throws Exception {
        AttestationResult measured = appraised().build();
        assertEquals(measured, AttestationResult.decode(measured.encode()));
        Appraisal failed = Appraisal.failed(ClaimName.HARDWARE, "CLOCK", "the TPM clock went back", 3);
        AttestationResult f = AttestationResult.builder(failed).host("alice").nonceHex(NONCE).akId(AK_ID)
                .pcrDigestHex(PCR_DIGEST).issuedAt(NOW).expiresAt(NOW.plusSeconds(60)).build();
        assertEquals(Optional.of("CLOCK"), f.failedCheck());
        assertEquals(f, AttestationResult.decode(f.encode()));
    }

    @Test
    void anotherVersion_isRefused_whateverElseItHolds() throws Exception {
        MalformedStructureException e = refused(edited(n -> n.put("version", 2).put("tikId", "x")));
        assertEquals("version", e.field());
        assertTrue(e.getMessage().contains("version 2 is not supported; this verifier knows version 1"),
                e.getMessage());
        assertEquals("version", refused(edited(n -> n.put("version", "1"))).field());
        assertEquals("version", refused(edited(n -> n.remove("version"))).field());
    }

    @Test
    void anUnknownClaim_isRefused_byName() throws Exception {
        MalformedStructureException e = refused(edited(n -> n.put("admin", true)));
        assertEquals("admin", e.field());
        assertTrue(e.getMessage().contains("unknown member"), e.getMessage());
        assertEquals("claims.BOOT", refused(edited(n -> ((ObjectNode) n.get("claims")).putObject("BOOT")
                .put("status", "NONE"))).field());
        assertEquals("claims.HARDWARE.score", refused(edited(n -> ((ObjectNode) n.get("claims").get("HARDWARE"))
                .put("score", 1))).field());
    }

    @ParameterizedTest
    @ValueSource(strings = {"iss", "sub", "iat", "exp", "eat_nonce", "level", "claims", "akId", "pcrDigest",
        "policyVersion", "reasons"})
    void aMissingClaim_isRefused_byName(String member) throws Exception {
        MalformedStructureException e = refused(edited(n -> n.remove(member)));
        assertEquals(member, e.field());
        assertTrue(e.getMessage().endsWith("missing"), e.getMessage());
    }

    @Test
    void aMissingClaimInTheVector_isRefused() throws Exception {
        assertEquals("claims.STORAGE", refused(edited(n -> ((ObjectNode) n.get("claims")).remove("STORAGE")))
                .field());
        assertEquals("claims.HARDWARE.status", refused(edited(n -> ((ObjectNode) n.get("claims").get("HARDWARE"))
                .remove("status"))).field());
    }

    @Test
    void mistypedClaims_areRefused_byName() throws Exception {
        assertEquals("iat", refused(edited(n -> n.put("iat", 1.7460936e9))).field());
        assertEquals("exp", refused(edited(n -> n.put("exp", "1746093900"))).field());
        assertEquals("policyVersion", refused(edited(n -> n.put("policyVersion", "3"))).field());
        assertEquals("level", refused(edited(n -> n.put("level", "SUPREME"))).field());
        assertEquals("level", refused(edited(n -> n.putNull("level"))).field());
        assertEquals("reasons", refused(edited(n -> n.put("reasons", "one"))).field());
        assertEquals("reasons[0]", refused(edited(n -> n.putArray("reasons").add(1))).field());
        assertEquals("claims.EXECUTABLES.status", refused(edited(n -> ((ObjectNode) n.get("claims")
                .get("EXECUTABLES")).put("status", "affirming"))).field());
        assertEquals("claims.EXECUTABLES.reason", refused(edited(n -> ((ObjectNode) n.get("claims")
                .get("EXECUTABLES")).put("reason", ""))).field());
        assertEquals("iss", refused(edited(n -> n.put("iss", "https://elsewhere.example"))).field());
    }

    @Test
    void valuesOutOfRange_areRefused_byName() throws Exception {
        assertEquals("exp", refused(edited(n -> n.put("exp", 1746093600 + 301))).field());
        assertEquals("exp", refused(edited(n -> n.put("exp", 1746093600))).field());
        assertEquals("eat_nonce", refused(edited(n -> n.put("eat_nonce", "ABCDEF"))).field());
        assertEquals("pcrDigest", refused(edited(n -> n.put("pcrDigest", "00"))).field());
        assertEquals("akId", refused(edited(n -> n.put("akId", "ak:1"))).field());
        assertEquals("sub", refused(edited(n -> n.put("sub", "a b"))).field());
        assertEquals("policyVersion", refused(edited(n -> n.put("policyVersion", 0))).field());
        assertEquals("level", refused(edited(n -> n.put("level", "UNATTESTED"))).field());
    }

    @Test
    void aLevelBetterThanTheClaims_isRefused() throws Exception {
        MalformedStructureException e = refused(edited(n -> ((ObjectNode) n.get("claims").get("EXECUTABLES"))
                .put("status", "CONTRAINDICATED")));
        assertEquals("level", e.field());
        assertTrue(e.getMessage().contains("better than the claims allow (FAILED)"), e.getMessage());
        ClaimVector warned = ClaimVector.empty()
                .with(ClaimName.INSTANCE_IDENTITY, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.WARNING, "changed"));
        assertThrows(IllegalArgumentException.class, () -> appraised().claims(warned).build());
        assertEquals(IntegrityLevel.IDENTIFIED, appraised().claims(warned).level(IntegrityLevel.IDENTIFIED).build()
                .level());
        assertThrows(IllegalArgumentException.class,
                () -> appraised().claims(ClaimVector.empty()).level(IntegrityLevel.IDENTIFIED).build());
    }

    @Test
    void duplicateMembers_trailingContent_andNonObjects_areRefused() {
        refused(GOLDEN.replace("{\"version\":1,", "{\"version\":1,\"version\":1,").getBytes(StandardCharsets.UTF_8));
        refused((GOLDEN + " {}").getBytes(StandardCharsets.UTF_8));
        refused(("[" + GOLDEN + "]").getBytes(StandardCharsets.UTF_8));
        refused(new byte[0]);
        refused(new byte[AttestationResult.MAX_ENCODED_LENGTH + 1]);
    }

    @Test
    void expiry_isExclusive() {
        AttestationResult r = appraised().expiresAt(NOW.plusSeconds(60)).build();
        assertFalse(r.isExpiredAt(NOW.plusSeconds(59)));
        assertTrue(r.isExpiredAt(NOW.plusSeconds(60)));
    }
}
