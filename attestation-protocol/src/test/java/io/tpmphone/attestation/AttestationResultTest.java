package io.tpmphone.attestation;

import static io.tpmphone.attestation.Measurements.approvedLaunch;
import static io.tpmphone.attestation.Measurements.log;
import static io.tpmphone.attestation.Measurements.quoteFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Instant;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class AttestationResultTest {
    private static final Instant NOW = Instant.parse("2025-05-01T10:00:00Z");
    private static final String NONCE = "00112233445566778899aabbccddeeff";

    private static AttestationResult.Builder measured() {
        MeasurementLog log = log(approvedLaunch(false));
        PcrValues quoted = quoteFor(log);
        Appraisal a = Appraiser.appraise(Measurements.examplePolicy(), log, quoted,
                AppraisalContext.builder().quoteVerified(true).build());
        return AttestationResult.builder(a).nonceHex(NONCE).akId("ak:000b1234").pcrDigest(quoted)
                .issuedAt(NOW).expiresAt(NOW.plusSeconds(300));
    }

    private static Map<String, Object> mapOf(AttestationResult r) {
        return new LinkedHashMap<>(r.toJsonMap());
    }

    private static MalformedStructureException refused(Map<String, Object> m) {
        return assertThrows(MalformedStructureException.class, () -> AttestationResult.fromJsonMap(m));
    }

    @Test
    void jsonMap_roundTrips_alsoThroughJsonText() throws Exception {
        AttestationResult r = measured().tikId("tik:42").build();
        assertEquals(IntegrityLevel.MEASURED, r.level());
        assertEquals(Optional.of("softphone-0.1.0"), r.release());
        assertEquals(r, AttestationResult.fromJsonMap(r.toJsonMap()));
        ObjectMapper json = new ObjectMapper();
        Map<String, Object> parsed = json.readValue(json.writeValueAsString(r.toJsonMap()),
                new TypeReference<Map<String, Object>>() { });
        assertEquals(r, AttestationResult.fromJsonMap(parsed));
        assertEquals("MEASURED", r.toJsonMap().get("level"));
        assertEquals(NOW.getEpochSecond(), r.toJsonMap().get("iat"));
    }

    @Test
    void validityLongerThan300Seconds_isRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> measured().expiresAt(NOW.plusSeconds(301)).build());
        assertTrue(e.getMessage().contains("301 s exceeds the maximum 300 s"), e.getMessage());
        Map<String, Object> m = mapOf(measured().build());
        m.put("exp", NOW.getEpochSecond() + 301);
        assertTrue(refused(m).getMessage().contains("exceeds"));
    }

    @Test
    void expiryNotAfterIssue_isRejected() {
        assertThrows(IllegalArgumentException.class, () -> measured().expiresAt(NOW).build());
    }

    @Test
    void levelBetterThanTheClaims_isRejected() {
        ClaimVector warned = ClaimVector.empty()
                .with(ClaimName.INSTANCE_IDENTITY, new Claim(ClaimStatus.AFFIRMING, ""))
                .with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.WARNING, "changed"));
        assertThrows(IllegalArgumentException.class, () -> measured().claims(warned).build());
        assertEquals(IntegrityLevel.IDENTIFIED, measured().claims(warned).level(IntegrityLevel.IDENTIFIED).build()
                .level());
        assertThrows(IllegalArgumentException.class,
                () -> measured().claims(ClaimVector.empty()).level(IntegrityLevel.IDENTIFIED).build());
    }

    @Test
    void unknownOrMistypedClaims_areRejected() {
        Map<String, Object> m = mapOf(measured().build());
        m.put("admin", true);
        assertEquals("admin", refused(m).field());

        m = mapOf(measured().build());
        m.put("iat", 1.5e9);
        assertEquals("iat", refused(m).field());

        m = mapOf(measured().build());
        m.put("policyVersion", "3");
        assertEquals("policyVersion", refused(m).field());

        m = mapOf(measured().build());
        m.put("level", "SUPREME");
        assertEquals("level", refused(m).field());

        m = mapOf(measured().build());
        m.put("profile", "other");
        assertEquals("profile", refused(m).field());

        m = mapOf(measured().build());
        m.remove("nonce");
        assertEquals("nonce", refused(m).field());

        m = mapOf(measured().build());
        @SuppressWarnings("unchecked")
        Map<String, Object> claims = new LinkedHashMap<>((Map<String, Object>) m.get("claims"));
        claims.remove("storage-opaque");
        m.put("claims", claims);
        assertEquals("claims", refused(m).field());
    }

    @Test
    void badNonceOrDigest_isRejected() {
        assertThrows(IllegalArgumentException.class, () -> measured().nonceHex("ABCDEF").build());
        assertThrows(IllegalArgumentException.class, () -> measured().nonceHex("00").build());
        assertThrows(IllegalArgumentException.class, () -> measured().pcrDigestHex("00").build());
        assertThrows(IllegalArgumentException.class, () -> measured().akId("a\nb").build());
    }

    @Test
    void registeredJwtClaimsAndDates_areAccepted() throws Exception {
        AttestationResult r = measured().build();
        Map<String, Object> m = mapOf(r);
        m.put("iss", "https://attestation.example");
        m.put("jti", "1");
        m.put("iat", Date.from(NOW));
        m.put("exp", Date.from(NOW.plusSeconds(300)));
        assertEquals(r, AttestationResult.fromJsonMap(m));
    }

    @Test
    void expiry_isExclusive() {
        AttestationResult r = measured().expiresAt(NOW.plusSeconds(60)).build();
        assertFalse(r.isExpiredAt(NOW.plusSeconds(59)));
        assertTrue(r.isExpiredAt(NOW.plusSeconds(60)));
    }
}
