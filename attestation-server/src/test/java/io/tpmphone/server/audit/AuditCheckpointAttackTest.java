package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static io.tpmphone.server.audit.AuditTestSupport.tamper;
import static io.tpmphone.server.audit.AuditTestSupport.withTriggersDropped;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyPair;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The attacks of finding 3 ("audit verify accepts a rewritten history whose checkpoints were deleted"), each on a
 * database and on an export. Assertions use only the one-line summary, so this class also runs against the code
 * before checkpoint v2, where every one of them said OK.
 *
 * <p>Each attack is judged twice: with the signed head left in place, which names what was cut
 * ({@code SIGNED_HEAD_MISMATCH}), and by a more thorough attacker who also drops the head with its table: then the
 * checkpoint rules refuse it, or the v3 checkpoints left, which commit the log to a head.
 */
class AuditCheckpointAttackTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    Path db;
    KeyPair keys;

    @BeforeEach
    void setUp() throws Exception {
        db = dir.resolve("audit.db");
        keys = ecKeyPair();
    }

    private void write(int every, int records) throws Exception {
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys),
                AuditLog.Options.builder().checkpointEvery(every).build())) {
            fill(log, records);
        }
    }

    private VerificationReport verifyDb() throws Exception {
        return AuditVerifier.verify(db, Optional.of(keys.getPublic()));
    }

    /**
     * Runs the attack on the database, and on a copy also without the signed head; asserts that the first is
     * refused for its head and the second with {@code expectedWithoutHead}.
     */
    private void attackDb(String expectedWithoutHead, String... sql) throws Exception {
        Path stripped = dir.resolve("stripped.db");
        Files.copy(db, stripped, StandardCopyOption.REPLACE_EXISTING);
        tamper(db, sql);
        List<String> more = new ArrayList<>(List.of(sql));
        more.add(AuditTestSupport.DROP_HEAD);
        tamper(stripped, more.toArray(String[]::new));
        assertRefusedFor(verifyDb(), expectedWithoutHead);
        assertRefusedFor(AuditVerifier.verify(stripped, Optional.of(keys.getPublic())), expectedWithoutHead);
    }

    /** The same for an export: with its head, and without it (as a version 2 export). */
    private void attackExport(byte[] export, Consumer<ObjectNode> edit, String expectedWithoutHead)
            throws Exception {
        assertRefusedFor(verifyExport(export, edit), expectedWithoutHead);
        assertRefusedFor(verifyExport(export, edit.andThen(doc -> doc.remove("head"))), expectedWithoutHead);
    }

    private byte[] export() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (AuditReader reader = AuditReader.open(db)) {
            reader.exportJson(out);
        }
        return out.toByteArray();
    }

    private VerificationReport verifyExport(byte[] export, Consumer<ObjectNode> edit) throws Exception {
        ObjectNode doc = (ObjectNode) JSON.readTree(export);
        edit.accept(doc);
        return AuditVerifier.verifyExport(new ByteArrayInputStream(JSON.writeValueAsBytes(doc)),
                Optional.of(keys.getPublic()));
    }

    private static void assertRefused(VerificationReport report, String expected) {
        assertFalse(report.intact(), "the attack went unnoticed: " + report.summary());
        assertTrue(report.summary().contains(expected), "expected the summary to name '" + expected + "', got: "
                + report.summary());
    }

    /**
     * Refused either by the checkpoint rule or by the signed head: one that names what was cut, or a missing one
     * where v3 checkpoints are left (they commit the log to a head).
     */
    private static void assertRefusedFor(VerificationReport report, String checkpointRule) {
        assertFalse(report.intact(), "the attack went unnoticed: " + report.summary());
        assertTrue(report.summary().contains(checkpointRule) || report.summary().contains("SIGNED_HEAD_MISMATCH")
                || report.summary().contains("SIGNED_HEAD_MISSING"), "expected '" + checkpointRule
                + "' or SIGNED_HEAD_MISMATCH/MISSING, got: " + report.summary());
    }

    /** SQL that rewrites record {@code seq}'s detail and recomputes every later hash, as the attacker did. */
    private String[] rewriteFrom(int seq) throws Exception {
        List<AuditRecord> records = new ArrayList<>();
        try (AuditReader reader = AuditReader.open(db)) {
            for (long from = 1; ; from += AuditReader.MAX_PAGE) {
                List<AuditRecord> page = reader.records(from, AuditReader.MAX_PAGE);
                records.addAll(page);
                if (page.size() < AuditReader.MAX_PAGE) {
                    break;
                }
            }
        }
        byte[] prev = records.get(seq - 2).hash();
        List<String> sql = new ArrayList<>();
        for (AuditRecord r : records.subList(seq - 1, records.size())) {
            String detail = r.seq() == seq ? "{\"i\":0}" : r.detailJson();
            byte[] hash = AuditEncoding.recordHash(r.seq(), r.timestamp().toEpochMilli(), r.type().name(),
                    r.subject(), r.outcome(), detail, prev);
            sql.add("UPDATE audit_record SET detail = '" + detail + "', prev_hash = x'" + AuditEncoding.hex(prev)
                    + "', hash = x'" + AuditEncoding.hex(hash) + "' WHERE seq = " + r.seq());
            prev = hash;
        }
        return withTriggersDropped(sql.toArray(String[]::new));
    }

    @Test
    void rewrittenRecord5_withEveryCheckpointDeleted_isRefused() throws Exception {
        write(AuditLog.Options.defaults().checkpointEvery(), 4039); // the reviewer's log: checkpoints 1000..4000, 4039
        byte[] honestExport = export();
        List<String> sql = new ArrayList<>(List.of(rewriteFrom(5)));
        sql.add("DELETE FROM audit_checkpoint");
        attackDb("CHECKPOINT_MISSING at 1000", sql.toArray(String[]::new));
        VerificationReport report = AuditVerifier.verify(dir.resolve("stripped.db"), Optional.of(keys.getPublic()));
        assertEquals(999, report.recordsChecked() - 3040, "every record still links: " + report.summary());

        // The same attack on an export: the rewritten records with no checkpoints at all.
        byte[] rewrittenExport = export();
        attackExport(rewrittenExport, doc -> { }, "CHECKPOINT_MISSING at 1000");
        // And the honest export with its checkpoints removed.
        attackExport(honestExport, doc -> doc.putArray("checkpoints"), "CHECKPOINT_MISSING at 1000");
    }

    @Test
    void oneMiddleCheckpointDeleted_isRefused() throws Exception {
        write(10, 25); // checkpoints 10, 20, 25 (closing)
        byte[] export = export();
        attackDb("CHECKPOINT_MISSING at 20", withTriggersDropped("DELETE FROM audit_checkpoint WHERE seq = 20"));
        attackExport(export, doc -> ((ArrayNode) doc.get("checkpoints")).remove(1), "CHECKPOINT_MISSING at 20");
    }

    @Test
    void checkpointOffTheIntervalDeleted_breaksTheChain() throws Exception {
        write(10, 25); // 10, 20, 25 (closing)
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys),
                AuditLog.Options.builder().checkpointEvery(10).build())) {
            fill(log, 2); // 27 (closing)
        }
        byte[] export = export();
        // The closing checkpoint at 25 is on no interval: only the chain shows it is gone.
        attackDb("CHECKPOINT_CHAIN_BROKEN at 27", withTriggersDropped("DELETE FROM audit_checkpoint WHERE seq = 25"));
        attackExport(export, doc -> ((ArrayNode) doc.get("checkpoints")).remove(2), "CHECKPOINT_CHAIN_BROKEN at 27");
    }

    @Test
    void tailCutWithItsCheckpoints_fromAClosedLog_isRefused() throws Exception {
        write(10, 25);
        byte[] export = export();
        attackDb("NOT_CLOSED at 21", withTriggersDropped("DELETE FROM audit_record WHERE seq > 22",
                "DELETE FROM audit_checkpoint WHERE seq > 22"));
        attackExport(export, doc -> {
            ArrayNode records = (ArrayNode) doc.get("records");
            while (records.size() > 22) {
                records.remove(22);
            }
            ((ArrayNode) doc.get("checkpoints")).remove(2);
            doc.put("recordCount", 22);
        }, "NOT_CLOSED at 21");
    }

    @Test
    void tailCutBackToAnIntervalCheckpoint_isRefused() throws Exception {
        write(10, 25);
        attackDb("NOT_CLOSED at 20", withTriggersDropped("DELETE FROM audit_record WHERE seq > 20",
                "DELETE FROM audit_checkpoint WHERE seq > 20"));
    }

    @Test
    void closingCheckpointDropped_isRefused() throws Exception {
        write(10, 25);
        byte[] export = export();
        attackDb("NOT_CLOSED at 21", withTriggersDropped("DELETE FROM audit_checkpoint WHERE seq = 25"));
        attackExport(export, doc -> ((ArrayNode) doc.get("checkpoints")).remove(2), "NOT_CLOSED at 21");
    }

    @Test
    void closingCheckpointOnAnIntervalCheckpointDropped_isRefused() throws Exception {
        write(5, 25); // 5, 10, 15, 20, 25 and the closing one at 25 too
        byte[] export = export();
        attackDb("NOT_CLOSED at 25",
                withTriggersDropped("DELETE FROM audit_checkpoint WHERE n = (SELECT MAX(n) FROM audit_checkpoint)"));
        attackExport(export, doc -> ((ArrayNode) doc.get("checkpoints")).remove(5), "NOT_CLOSED at 25");
    }

    @Test
    void reorderedCheckpoints_areRefused() throws Exception {
        write(10, 25);
        byte[] export = export();
        // Swap the stored order of the checkpoints at 20 and 25.
        tamper(db, withTriggersDropped("UPDATE audit_checkpoint SET n = 100 WHERE seq = 20",
                "UPDATE audit_checkpoint SET n = 2 WHERE seq = 25", "UPDATE audit_checkpoint SET n = 3 WHERE n = 100"));
        assertRefused(verifyDb(), "CHECKPOINT_CHAIN_BROKEN at 20");
        assertRefused(verifyExport(export, doc -> {
            ArrayNode checkpoints = (ArrayNode) doc.get("checkpoints");
            checkpoints.insert(1, checkpoints.remove(2));
        }), "CHECKPOINT_CHAIN_BROKEN at 20");
    }

    @Test
    void allRecordsAndCheckpointsDeleted_isRefused() throws Exception {
        write(10, 25);
        attackDb("NOT_CLOSED at 0", withTriggersDropped("DELETE FROM audit_record", "DELETE FROM audit_checkpoint"));
    }
}
