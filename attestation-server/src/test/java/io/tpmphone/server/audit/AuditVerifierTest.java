package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static io.tpmphone.server.audit.AuditTestSupport.tamper;
import static io.tpmphone.server.audit.AuditTestSupport.withTriggersDropped;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** One tamper test per thing the verifier checks; every one must name the first broken record. */
class AuditVerifierTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    Path db;
    KeyPair keys;

    @BeforeEach
    void setUp() throws Exception {
        db = dir.resolve("audit.db");
        keys = ecKeyPair();
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys),
                AuditLog.Options.builder().checkpointEvery(10).build())) {
            fill(log, 25); // checkpoints at 10, 20 and 25 (close)
        }
    }

    private VerificationReport.Problem problem(Optional<java.security.PublicKey> key) throws AuditException {
        VerificationReport report = AuditVerifier.verify(db, key);
        assertFalse(report.intact(), "tampering not detected");
        AuditException e = assertThrows(AuditException.class, report::requireIntact);
        assertEquals(AuditException.Code.NOT_INTACT, e.code());
        return report.firstProblem().orElseThrow();
    }

    private VerificationReport.Problem problem() throws AuditException {
        return problem(Optional.of(keys.getPublic()));
    }

    @Test
    void untouchedDatabase_isIntact() throws Exception {
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertTrue(report.intact(), report.summary());
        assertEquals(25, report.recordsChecked());
        assertEquals(3, report.checkpointsChecked());
        assertTrue(report.summary().startsWith("OK "), report.summary());
    }

    @ParameterizedTest
    @ValueSource(strings = {"detail = '{\"i\":999}'", "outcome = 'MEASURED'", "subject = 'other-host'",
            "type = 'ADMIN'", "ts_millis = ts_millis + 1", "hash = zeroblob(32)"})
    void modifiedRow_namesThatRecord(String change) throws Exception {
        tamper(db, withTriggersDropped("UPDATE audit_record SET " + change + " WHERE seq = 15"));
        VerificationReport.Problem p = problem();
        assertEquals(15, p.seq(), p.message());
        assertEquals(VerificationReport.ProblemKind.HASH_MISMATCH, p.kind());
        assertTrue(p.message().startsWith("record 15: stored hash does not match its contents"), p.message());
    }

    @Test
    void modifiedRow_isNamedEvenWithoutTheKey() throws Exception {
        tamper(db, withTriggersDropped("UPDATE audit_record SET detail = '{}' WHERE seq = 3"));
        VerificationReport.Problem p = problem(Optional.empty());
        assertEquals(3, p.seq());
    }

    @Test
    void deletedRow_namesTheGap() throws Exception {
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq = 13"));
        VerificationReport.Problem p = problem();
        assertEquals(VerificationReport.ProblemKind.SEQ_GAP, p.kind());
        assertEquals(13, p.seq());
        assertEquals("record 13 missing (seq jumps from 12 to 14)", p.message());
    }

    @Test
    void deletedFirstRow_namesRecordOne() throws Exception {
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq = 1"));
        assertEquals("record 1 missing (the log starts at seq 2)", problem().message());
    }

    @Test
    void changedPrevHash_namesIt() throws Exception {
        tamper(db, withTriggersDropped("UPDATE audit_record SET prev_hash = randomblob(32) WHERE seq = 18"));
        VerificationReport.Problem p = problem();
        assertEquals(18, p.seq());
        assertEquals(VerificationReport.ProblemKind.PREV_HASH_MISMATCH, p.kind());
        assertTrue(p.message().startsWith("record 18: prev_hash does not match record 17's hash"), p.message());
    }

    @Test
    void rewrittenChain_isCaughtByTheCheckpoint() throws Exception {
        // The attacker edits record 5 and recomputes every hash after it, but cannot re-sign checkpoint 10.
        List<AuditRecord> records;
        try (AuditReader reader = AuditReader.open(db)) {
            records = reader.records(1, 100);
        }
        byte[] prev = records.get(3).hash();
        String[] sql = new String[records.size() - 4];
        for (int i = 4; i < records.size(); i++) {
            AuditRecord r = records.get(i);
            String detail = r.seq() == 5 ? "{\"i\":0}" : r.detailJson();
            byte[] hash = AuditEncoding.recordHash(r.seq(), r.timestamp().toEpochMilli(), r.type().name(),
                    r.subject(), r.outcome(), detail, prev);
            sql[i - 4] = "UPDATE audit_record SET detail = '" + detail + "', prev_hash = x'" + AuditEncoding.hex(prev)
                    + "', hash = x'" + AuditEncoding.hex(hash) + "' WHERE seq = " + r.seq();
            prev = hash;
        }
        tamper(db, withTriggersDropped(sql));
        VerificationReport.Problem p = problem(Optional.empty());
        assertEquals(10, p.seq());
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_HASH_MISMATCH, p.kind());
        assertTrue(p.message().startsWith("checkpoint at 10: hash does not match record 10's hash"), p.message());
    }

    @Test
    void tamperedCheckpointSignature_isDetected() throws Exception {
        tamper(db, withTriggersDropped(
                "UPDATE audit_checkpoint SET signature = substr(signature, 1, 20) || CASE substr(signature, 21, 1)"
                        + " WHEN x'00' THEN x'01' ELSE x'00' END || substr(signature, 22) WHERE seq = 20"));
        VerificationReport.Problem p = problem();
        assertEquals(20, p.seq());
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_SIGNATURE_INVALID, p.kind());
        assertTrue(p.message().startsWith("checkpoint at 20: signature invalid"), p.message());
    }

    @Test
    void tamperedCheckpointTimestamp_breaksItsSignature() throws Exception {
        tamper(db, withTriggersDropped("UPDATE audit_checkpoint SET ts_millis = ts_millis + 1 WHERE seq = 10"));
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_SIGNATURE_INVALID, problem().kind());
    }

    @Test
    void checkpointsOfAnotherKey_areNamed() throws Exception {
        VerificationReport.Problem p = problem(Optional.of(ecKeyPair().getPublic()));
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_KEY_MISMATCH, p.kind());
        assertEquals(10, p.seq());
    }

    @Test
    void truncatedEnd_isCaughtByTheFinalCheckpoint() throws Exception {
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq > 22"));
        VerificationReport.Problem p = problem();
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_BEYOND_END, p.kind());
        assertEquals(25, p.seq());
    }

    @Test
    void firstProblem_isTheLowestSeq() throws Exception {
        tamper(db, withTriggersDropped("UPDATE audit_record SET detail = '{}' WHERE seq = 22",
                "UPDATE audit_checkpoint SET signature = x'00' WHERE seq = 20",
                "UPDATE audit_record SET outcome = 'X' WHERE seq = 21"));
        assertEquals(20, problem().seq());
    }

    @Test
    void verification_isReadOnly() throws Exception {
        Path missing = dir.resolve("nope.db");
        AuditException e = assertThrows(AuditException.class, () -> AuditVerifier.verify(missing, Optional.empty()));
        assertEquals(AuditException.Code.STORAGE, e.code());
        assertFalse(Files.exists(missing), "verify must not create a database");
        byte[] before = Files.readAllBytes(db);
        AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(db)), "verify must not write");
    }

    @Test
    void nonAuditFile_isRefusedClearly() throws Exception {
        Path other = dir.resolve("other.db");
        tamper(other, "CREATE TABLE t (x)");
        AuditException e = assertThrows(AuditException.class, () -> AuditVerifier.verify(other, Optional.empty()));
        assertTrue(e.getMessage().contains("not a tpmphone audit log"), e.getMessage());
        Path text = Files.writeString(dir.resolve("text.db"), "hello");
        e = assertThrows(AuditException.class, () -> AuditVerifier.verify(text, Optional.empty()));
        assertEquals(AuditException.Code.STORAGE, e.code());
    }

    // ---- exports ----

    private byte[] export() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (AuditReader reader = AuditReader.open(db)) {
            reader.exportJson(out);
        }
        return out.toByteArray();
    }

    private VerificationReport verifyEdited(Consumer<ObjectNode> edit) throws Exception {
        ObjectNode doc = (ObjectNode) JSON.readTree(export());
        edit.accept(doc);
        return AuditVerifier.verifyExport(new ByteArrayInputStream(JSON.writeValueAsBytes(doc)),
                Optional.of(keys.getPublic()));
    }

    @Test
    void export_verifies() throws Exception {
        VerificationReport report = AuditVerifier.verifyExport(new ByteArrayInputStream(export()),
                Optional.of(keys.getPublic()));
        assertTrue(report.intact(), report.summary());
        assertEquals(25, report.recordsChecked());
        assertEquals(3, report.checkpointsChecked());
        assertEquals(AuditVerifier.verify(db, Optional.empty()).headHashHex(), report.headHashHex());
    }

    @Test
    void exportWithCheckpointsAfterRecords_stillVerifies() throws Exception {
        VerificationReport report = verifyEdited(doc -> {
            var checkpoints = doc.remove("checkpoints");
            doc.set("checkpoints", checkpoints);
        });
        assertTrue(report.intact(), report.summary());
        assertEquals(3, report.checkpointsChecked());
    }

    @Test
    void tamperedExport_namesTheRecord() throws Exception {
        VerificationReport report = verifyEdited(doc -> ((ObjectNode) doc.get("records").get(6))
                .put("outcome", "MEASURED-ish"));
        assertEquals(7, report.firstProblem().orElseThrow().seq(), report.summary());
        assertTrue(report.summary().contains("record 7: stored hash does not match"), report.summary());
    }

    @Test
    void exportWithARecordRemoved_namesTheGap() throws Exception {
        VerificationReport report = verifyEdited(doc -> ((ArrayNode) doc.get("records")).remove(19));
        assertEquals("record 20 missing (seq jumps from 19 to 21)", report.firstProblem().orElseThrow().message());
    }

    @Test
    void exportTruncatedAtTheEnd_isNamed() throws Exception {
        VerificationReport report = verifyEdited(doc -> {
            ((ArrayNode) doc.get("records")).remove(24);
            ((ArrayNode) doc.get("checkpoints")).remove(2);
        });
        assertEquals(VerificationReport.ProblemKind.SEQ_GAP, report.firstProblem().orElseThrow().kind());
        assertEquals(25, report.firstProblem().orElseThrow().seq());
    }

    @Test
    void exportWithTamperedCheckpoint_isNamed() throws Exception {
        VerificationReport report = verifyEdited(doc -> ((ObjectNode) doc.get("checkpoints").get(0))
                .put("timestamp", "2001-01-01T00:00:00.000Z"));
        assertEquals(VerificationReport.ProblemKind.CHECKPOINT_SIGNATURE_INVALID,
                report.firstProblem().orElseThrow().kind());
        assertEquals(10, report.firstProblem().orElseThrow().seq());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "not json", "[]", "{}", "{\"format\":\"tpmphone-audit-export\"",
            "{\"format\":\"other\",\"checkpoints\":[],\"records\":[]}",
            "{\"format\":\"tpmphone-audit-export\",\"version\":5,\"checkpoints\":[],\"records\":[]}",
            "{\"format\":\"tpmphone-audit-export\",\"version\":3,\"head\":[],\"checkpoints\":[],\"records\":[]}",
            "{\"format\":\"tpmphone-audit-export\",\"version\":3,\"head\":{\"seq\":0},\"checkpoints\":[],"
                    + "\"records\":[]}",
            "{\"format\":\"tpmphone-audit-export\",\"version\":2,\"head\":{\"seq\":0,\"hash\":\"00\"},"
                    + "\"checkpoints\":[],\"records\":[]}",
            "{\"format\":\"tpmphone-audit-export\",\"version\":3,\"checkpoints\":[],\"records\":[],"
                    + "\"head\":{}}",
            "{\"format\":\"tpmphone-audit-export\",\"checkpoints\":[],\"records\":{}}",
            "{\"format\":\"tpmphone-audit-export\",\"checkpoints\":[],\"records\":[1]}",
            "{\"format\":\"tpmphone-audit-export\",\"checkpoints\":[],\"records\":[{\"seq\":1}]}",
            "{\"format\":\"tpmphone-audit-export\",\"checkpoints\":[],\"records\":[]} trailing",
            "{\"format\":\"tpmphone-audit-export\",\"surprise\":1,\"checkpoints\":[],\"records\":[]}"})
    void malformedExport_isAClearError(String json) {
        AuditException e = assertThrows(AuditException.class, () -> AuditVerifier.verifyExport(
                new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), Optional.empty()));
        assertEquals(AuditException.Code.MALFORMED_EXPORT, e.code(), e.getMessage());
        assertTrue(e.getMessage().startsWith("audit export"), e.getMessage());
    }

    @Test
    void malformedRecordFields_areNamed() throws Exception {
        ObjectNode doc = (ObjectNode) JSON.readTree(export());
        ((ObjectNode) doc.get("records").get(4)).put("hash", "zz");
        AuditException e = assertThrows(AuditException.class, () -> AuditVerifier.verifyExport(
                new ByteArrayInputStream(JSON.writeValueAsBytes(doc)), Optional.empty()));
        assertEquals("audit export record #5 (seq 5): \"hash\" is not hex", e.getMessage());
        ((ObjectNode) doc.get("records").get(4)).put("timestamp", "yesterday");
        e = assertThrows(AuditException.class, () -> AuditVerifier.verifyExport(
                new ByteArrayInputStream(JSON.writeValueAsBytes(doc)), Optional.empty()));
        assertTrue(e.getMessage().contains("\"timestamp\" is not ISO-8601"), e.getMessage());
    }

    @Test
    void publicKeyPem_roundTrips() {
        String pem = AuditVerifier.publicKeyPem(keys.getPublic());
        assertTrue(pem.startsWith("-----BEGIN PUBLIC KEY-----\n") && pem.strip().endsWith("-----END PUBLIC KEY-----"),
                pem);
        assertTrue(pem.lines().allMatch(l -> l.length() <= 64), "RFC 7468 lines of at most 64 characters: " + pem);
        assertArrayEquals(keys.getPublic().getEncoded(), AuditVerifier.publicKeyFromPem(pem).getEncoded());
        assertArrayEquals(keys.getPublic().getEncoded(),
                AuditVerifier.publicKeyFromPem("text before the block\n" + pem).getEncoded());
        assertThrows(IllegalArgumentException.class, () -> AuditVerifier.publicKeyFromPem("hello"));
    }

    @Test
    void publicKeyFromPem_takesACertificatesKey_andRejectsRsaAndDamagedBlocks() throws Exception {
        java.security.KeyPairGenerator rsa = java.security.KeyPairGenerator.getInstance("RSA");
        rsa.initialize(2048);
        String rsaPem = AuditVerifier.publicKeyPem(rsa.generateKeyPair().getPublic());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AuditVerifier.publicKeyFromPem(rsaPem));
        assertTrue(e.getMessage().contains("RSA key"), e.getMessage());

        String damaged = AuditVerifier.publicKeyPem(keys.getPublic()).replace("-----END PUBLIC KEY-----", "");
        assertThrows(IllegalArgumentException.class, () -> AuditVerifier.publicKeyFromPem(damaged));

        java.security.KeyPair ca = keys;
        org.bouncycastle.asn1.x500.X500Name name = new org.bouncycastle.asn1.x500.X500Name("CN=audit");
        java.time.Instant now = java.time.Instant.now();
        org.bouncycastle.cert.X509CertificateHolder holder = new org.bouncycastle.cert.jcajce
                .JcaX509v3CertificateBuilder(name, java.math.BigInteger.ONE, java.util.Date.from(now),
                java.util.Date.from(now.plusSeconds(3600)), name, ca.getPublic())
                .build(new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder("SHA256withECDSA")
                        .build(ca.getPrivate()));
        String certificatePem = "-----BEGIN CERTIFICATE-----\n" + java.util.Base64.getMimeEncoder(64,
                new byte[] {'\n'}).encodeToString(holder.getEncoded()) + "\n-----END CERTIFICATE-----\n";
        assertArrayEquals(keys.getPublic().getEncoded(),
                AuditVerifier.publicKeyFromPem(certificatePem).getEncoded());
    }
}
