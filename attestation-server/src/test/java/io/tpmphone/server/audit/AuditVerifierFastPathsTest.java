package io.tpmphone.server.audit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The verifier's fast paths (added to verify a million records in seconds) agree with the slow ones exactly. */
@Timeout(60)
class AuditVerifierFastPathsTest {
    @Test
    void theReusedRecordHasher_givesTheKnownAnswer_andTheSameHashesAsRecordHash() {
        AuditEncoding.RecordHasher hasher = new AuditEncoding.RecordHasher();
        byte[] kat = hasher.hash(1, 1700000000123L, bytes("APPRAISAL"), bytes("host-a"), bytes("MEASURED"),
                bytes("{\"evidenceSha256\":\"00ff\",\"level\":\"MEASURED\"}"), new byte[32]);
        assertEquals("694b986d3c73c985c85580ad7e2bb51bb65826953fe825d39f08b5267ef734c4",
                HexFormat.of().formatHex(kat), "docs/audit.md's known answer");
        Random random = new Random(16);
        for (int i = 0; i < 2000; i++) {
            long seq = random.nextLong() >>> 1;
            long millis = random.nextLong();
            byte[] detail = new byte[random.nextInt(300)];
            random.nextBytes(detail);
            byte[] prev = new byte[32];
            random.nextBytes(prev);
            assertArrayEquals(AuditEncoding.recordHash(seq, millis, bytes("ADMIN"), bytes("s" + i), bytes("o"), detail,
                    prev), hasher.hash(seq, millis, bytes("ADMIN"), bytes("s" + i), bytes("o"), detail, prev),
                    "record " + i);
        }
    }

    @Test
    void theTimestampFastPath_readsWhatInstantParseReads_andRefusesWhatItRefuses() throws Exception {
        Random random = new Random(7);
        for (int i = 0; i < 20_000; i++) {
            long millis = random.nextLong() % 253_402_300_799_999L; // years 0001..9999
            millis = Math.abs(millis);
            String text = AuditExport.timestamp(millis);
            assertEquals(Instant.parse(text).toEpochMilli(), AuditVerifier.millis(text, "t"), text);
            assertEquals(millis, AuditVerifier.millis(text, "t"), text);
        }
        for (String edge : new String[] {"2023-02-29T00:00:00.000Z", "2024-13-01T00:00:00.000Z",
                "2024-04-31T00:00:00.000Z", "2024-01-01T24:00:00.000Z", "2024-01-01T24:00:01.000Z",
                "2024-01-01T00:60:00.000Z", "2024-01-01T23:59:60.000Z", "2024-01-01T12:59:60.000Z",
                "2024-01-01T00:00:00.00aZ", "2024-01-01 00:00:00.000Z", "+024-01-01T00:00:00.000Z",
                "2024-01-01t00:00:00.000z", "2024-01-01T00:00:00.000+01:00", "0000-01-01T00:00:00.000Z"}) {
            Long expected;
            try {
                expected = Instant.parse(edge).toEpochMilli();
            } catch (java.time.format.DateTimeParseException e) {
                expected = null;
            }
            if (expected == null) {
                AuditException e = assertThrows(AuditException.class, () -> AuditVerifier.millis(edge, "t"), edge);
                assertEquals(AuditException.Code.MALFORMED_EXPORT, e.code(), edge);
            } else {
                assertEquals(expected, AuditVerifier.millis(edge, "t"), edge + ": as Instant.parse reads it");
            }
        }
        assertEquals(Instant.parse("2024-02-29T23:59:59.999Z").toEpochMilli(),
                AuditVerifier.millis("2024-02-29T23:59:59.999Z", "t"), "a leap day");
        assertEquals(Instant.parse("2024-01-01T00:00:00Z").toEpochMilli(),
                AuditVerifier.millis("2024-01-01T00:00:00Z", "t"), "other forms go to Instant.parse");
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
    @org.junit.jupiter.api.io.TempDir
    java.nio.file.Path dir;

    @Test
    void aDuplicateFieldName_anywhereInTheExport_isMalformed_thoughTheParsersOwnCheckIsOff() throws Exception {
        java.security.KeyPair keys = AuditTestSupport.ecKeyPair();
        java.nio.file.Path db = dir.resolve("audit.db");
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), AuditLog.Options.builder().checkpointEvery(10)
                .build())) {
            AuditTestSupport.fill(log, 15);
        }
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        try (AuditReader reader = AuditReader.open(db)) {
            reader.exportJson(out);
        }
        String export = out.toString(StandardCharsets.UTF_8);
        java.util.Optional<java.security.PublicKey> key = java.util.Optional.of(keys.getPublic());
        assertEquals(true, AuditVerifier.verifyExport(new java.io.ByteArrayInputStream(out.toByteArray()), key)
                .intact(), "the export as written");
        for (String[] dup : new String[][] {{"\"recordCount\"", "\"format\" : \"tpmphone-audit-export\", \"recordCount\""},
                {"\"refreshMillis\"", "\"refreshMillis\" : 1, \"refreshMillis\""},
                {"\"every\"", "\"every\" : 10, \"every\""},
                {"\"seq\" : 7,", "\"seq\" : 7, \"seq\" : 7,"}}) {
            String doubled = export.replaceFirst(java.util.regex.Pattern.quote(dup[0]),
                    java.util.regex.Matcher.quoteReplacement(dup[1]));
            assertEquals(false, doubled.equals(export), "the test changed the export: " + dup[0]);
            AuditException e = assertThrows(AuditException.class, () -> AuditVerifier.verifyExport(
                    new java.io.ByteArrayInputStream(doubled.getBytes(StandardCharsets.UTF_8)), key), dup[1]);
            assertEquals(AuditException.Code.MALFORMED_EXPORT, e.code(), e.getMessage());
            assertTrue(e.getMessage().toLowerCase(java.util.Locale.ROOT).contains("duplicate"), e.getMessage());
        }
    }
}
