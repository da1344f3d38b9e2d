package io.tpmphone.server.audit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class OcsfExportTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static List<JsonNode> lines(String text) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (String l : text.split("\n")) {
            if (!l.isEmpty()) {
                out.add(JSON.readTree(l));
            }
        }
        return out;
    }

    private static List<JsonNode> export(OcsfExport.Source source, long after, long checkpointsAfter, int limit)
            throws Exception {
        StringWriter out = new StringWriter();
        OcsfExport.write(source, after, checkpointsAfter, limit, out);
        return lines(out.toString());
    }

    private static JsonNode raw(JsonNode line, String kind) {
        return line.path("unmapped").path(kind);
    }

    private static Options options() {
        return new Options();
    }

    /** Checkpoints every 4 records, so a short log has several. */
    private static final class Options {
        AuditLog.Options build() {
            return AuditLog.Options.builder().checkpointEvery(4).build();
        }
    }

    @Test
    void eachTypeMapsToItsOcsfClass_andCarriesTheRecordAsHashed() throws Exception {
        KeyPair keys = AuditTestSupport.ecKeyPair();
        try (AuditLog log = AuditLog.open(dir.resolve("audit.db"), AuditSigner.ecdsa(keys), options().build())) {
            log.append(AuditEntry.of(AuditEventType.ENROLLMENT, "alice", "ACCEPTED"));
            log.append(AuditEntry.of(AuditEventType.APPRAISAL, "alice", "FAILED", Map.of("level", "FAILED")));
            log.append(AuditEntry.of(AuditEventType.CALL_DECISION, "alice", "REJECT", Map.of("callId", "c@x",
                    "direction", "OUT", "peer", "sips:bob@x")));
            log.append(AuditEntry.of(AuditEventType.KEY_RELEASE, "alice", "REFUSED", Map.of("operation", "SRTP_KEY")));
            log.append(AuditEntry.of(AuditEventType.POLICY_CHANGE, "admin", "ACCEPTED", Map.of("version", 2)));
            log.append(AuditEntry.of(AuditEventType.ADMIN, "console:admin", "CONSOLE_SIGN_IN"));
            log.append(AuditEntry.of(AuditEventType.REFUSAL, "ak:00ab", "APPRAISAL_REFUSED"));
            List<JsonNode> lines = export(OcsfExport.of(log), 0, -1, 100);
            List<JsonNode> records = lines.stream().filter(l -> !raw(l, "tpmphone_audit_record").isMissingNode())
                    .toList();
            assertEquals(7, records.size(), lines.toString());
            int[][] expected = {{3004, 1}, {5019, 1}, {4001, 5}, {6003, 2}, {3004, 3}, {3002, 1}, {0, 99}};
            List<AuditRecord> stored = log.records(1, 10);
            for (int i = 0; i < 7; i++) {
                JsonNode l = records.get(i);
                assertEquals(expected[i][0], l.get("class_uid").asInt(), l.toString());
                assertEquals(expected[i][1], l.get("activity_id").asInt(), l.toString());
                assertEquals(expected[i][0] * 100L + expected[i][1], l.get("type_uid").asLong());
                JsonNode r = raw(l, "tpmphone_audit_record");
                AuditRecord s = stored.get(i);
                assertEquals(s.seq(), r.get("seq").asLong());
                assertEquals(s.timestamp().toEpochMilli(), r.get("ts_millis").asLong());
                assertEquals(s.detailJson(), r.get("detail").asText(), "the detail exactly as hashed");
                assertEquals(s.prevHashHex(), r.get("prev_hash").asText());
                assertEquals(s.hashHex(), r.get("hash").asText());
                assertEquals(s.hashHex(), AuditEncoding.hex(AuditEncoding.recordHash(r.get("seq").asLong(),
                        r.get("ts_millis").asLong(), r.get("type").asText(), r.get("subject").asText(),
                        r.get("outcome").asText(), r.get("detail").asText(),
                        AuditEncoding.unhex(r.get("prev_hash").asText()))), "a SIEM can recompute the hash");
            }
            JsonNode call = records.get(2);
            assertEquals("security_control", call.at("/metadata/profiles/0").asText());
            assertEquals(2, call.get("action_id").asInt(), "a refused call is Denied");
            assertEquals("sips:bob@x", call.at("/dst_endpoint/name").asText());
            assertTrue(lines.stream().anyMatch(l -> !raw(l, "tpmphone_audit_checkpoint").isMissingNode()),
                    "the checkpoint at record 4 is exported: " + lines);
        }
    }

    @Test
    void pagesFromACursor_haveNoGapAndNoDuplicate_andEachCheckpointOnce() throws Exception {
        KeyPair keys = AuditTestSupport.ecKeyPair();
        try (AuditLog log = AuditLog.open(dir.resolve("audit.db"), AuditSigner.ecdsa(keys), options().build())) {
            AuditTestSupport.fill(log, 23);
            List<Long> seqs = new ArrayList<>();
            Set<Long> checkpointNumbers = new HashSet<>();
            long after = 0;
            long checkpointsAfter = -1;
            for (int page = 0; page < 20; page++) {
                StringWriter out = new StringWriter();
                OcsfExport.Result r = OcsfExport.write(OcsfExport.of(log), after, checkpointsAfter, 5, out);
                for (JsonNode l : lines(out.toString())) {
                    if (!raw(l, "tpmphone_audit_record").isMissingNode()) {
                        seqs.add(raw(l, "tpmphone_audit_record").get("seq").asLong());
                    }
                    if (!raw(l, "tpmphone_audit_checkpoint").isMissingNode()) {
                        assertTrue(checkpointNumbers.add(raw(l, "tpmphone_audit_checkpoint").get("n").asLong()),
                                "a checkpoint twice: " + l);
                    }
                    assertTrue(raw(l, "tpmphone_audit_chain_break").isMissingNode(), "no break: " + l);
                }
                after = r.nextAfter();
                checkpointsAfter = r.nextCheckpointsAfter();
                if (r.records() == 0) {
                    break;
                }
            }
            List<Long> expected = new ArrayList<>();
            for (long i = 1; i <= 23; i++) {
                expected.add(i);
            }
            assertEquals(expected, seqs);
            assertEquals(log.checkpoints().size(), checkpointNumbers.size(), "every checkpoint once");
        }
    }

    @Test
    void aRecordRemovedFromTheDatabase_orEdited_showsUpAsABreak() throws Exception {
        KeyPair keys = AuditTestSupport.ecKeyPair();
        Path db = dir.resolve("audit.db");
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), options().build())) {
            AuditTestSupport.fill(log, 10);
        }
        AuditTestSupport.tamper(db, "DROP TRIGGER audit_record_no_delete", "DELETE FROM audit_record WHERE seq = 6",
                "DROP TRIGGER audit_record_no_update", "UPDATE audit_record SET outcome = 'HARDENED' WHERE seq = 3");
        try (AuditReader reader = AuditReader.open(db)) {
            List<JsonNode> breaks = export(OcsfExport.of(reader), 0, -1, 100).stream()
                    .filter(l -> !raw(l, "tpmphone_audit_chain_break").isMissingNode()).toList();
            assertEquals(2, breaks.size(), breaks.toString());
            assertEquals(3, raw(breaks.get(0), "tpmphone_audit_chain_break").get("seq").asLong());
            assertTrue(breaks.get(0).get("message").asText().contains("altered"), breaks.get(0).toString());
            assertEquals(7, raw(breaks.get(1), "tpmphone_audit_chain_break").get("seq").asLong());
            assertTrue(breaks.get(1).get("message").asText().contains("records 6 are missing"),
                    breaks.get(1).toString());
            assertEquals(2, breaks.get(1).get("status_id").asInt());
            List<JsonNode> fromCursor = export(OcsfExport.of(reader), 6, -1, 100);
            assertTrue(raw(fromCursor.get(0), "tpmphone_audit_chain_break").get("seq").asLong() == 7
                    && fromCursor.get(0).get("message").asText().contains("record 6, which the cursor names, is"
                    + " missing"), "resuming after the removed record: " + fromCursor.get(0));
        }
    }

    @Test
    void theFileSink_resumesWhereTheFileEnds_acrossRestarts_andAfterACutLine() throws Exception {
        KeyPair keys = AuditTestSupport.ecKeyPair();
        Path db = dir.resolve("audit.db");
        Path file = dir.resolve("siem/audit.ocsf.jsonl");
        Files.createDirectories(file.getParent());
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), options().build());
             OcsfFileSink sink = OcsfFileSink.open(file, OcsfExport.of(log))) {
            AuditTestSupport.fill(log, 9);
            assertEquals(9, sink.flush());
            assertEquals(0, sink.flush(), "nothing new");
        } // closing signs a checkpoint at record 9, after the sink read it
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        Files.writeString(file, "{\"class_uid\":5019,\"unmapped\":{\"tpmphone_audit_rec", StandardCharsets.UTF_8,
                StandardOpenOption.APPEND); // a crash in the middle of a line
        int checkpointsAtLastFlush;
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), options().build());
             OcsfFileSink sink = OcsfFileSink.open(file, OcsfExport.of(log))) {
            assertEquals(9, sink.exportedSeq());
            AuditTestSupport.fill(log, 5);
            assertEquals(5, sink.flush());
            checkpointsAtLastFlush = log.checkpoints().size();
        }
        List<Long> seqs = new ArrayList<>();
        Set<Long> checkpoints = new HashSet<>();
        for (JsonNode l : lines(Files.readString(file, StandardCharsets.UTF_8))) {
            if (!raw(l, "tpmphone_audit_record").isMissingNode()) {
                seqs.add(raw(l, "tpmphone_audit_record").get("seq").asLong());
            }
            if (!raw(l, "tpmphone_audit_checkpoint").isMissingNode()) {
                assertTrue(checkpoints.add(raw(l, "tpmphone_audit_checkpoint").get("n").asLong()), "twice: " + l);
            }
        }
        List<Long> expected = new ArrayList<>();
        for (long i = 1; i <= 14; i++) {
            expected.add(i);
        }
        assertEquals(expected, seqs, "every record once, in order, across the restart and the cut line");
        try (AuditReader reader = AuditReader.open(db)) {
            long closingAt9 = reader.checkpoints().stream().filter(c -> c.seq() == 9).count();
            assertTrue(closingAt9 >= 1, "a checkpoint signs record 9");
            assertEquals(checkpointsAtLastFlush, checkpoints.size(), "every checkpoint signed before the last"
                    + " flush, the closing one signed after the first export too");
        }
    }
}
