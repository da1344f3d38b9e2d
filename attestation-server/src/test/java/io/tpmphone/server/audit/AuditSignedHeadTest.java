package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static io.tpmphone.server.audit.AuditTestSupport.tamper;
import static io.tpmphone.server.audit.AuditTestSupport.withTriggersDropped;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.audit.AuditCoverageTest.MutableClock;
import io.tpmphone.swtpm.testing.Await;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The signed head, and the attacks from the review of checkpoint v2 that it (or {@code expectHead}) closes: a live
 * log cut back to an older checkpoint passed {@code verify --open}; a cut-back log was signed over by the server on
 * its next start; unsigned timestamps chosen to overflow the age check; an upgraded log stripped to its v1 prefix.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AuditSignedHeadTest {
    private static final Duration REFRESH = Duration.ofSeconds(60);

    @TempDir
    Path dir;
    Path db;
    KeyPair keys;
    MutableClock clock;

    @BeforeEach
    void setUp() throws Exception {
        db = dir.resolve("audit.db");
        keys = ecKeyPair();
        clock = new MutableClock(Instant.parse("2026-01-31T12:00:00Z"));
    }

    private AuditLog open() throws AuditException {
        return AuditLog.open(db, AuditSigner.ecdsa(keys), AuditLog.Options.builder().checkpointEvery(10)
                .maxUnsignedAge(Duration.ofSeconds(10)).headRefresh(REFRESH).clock(clock).build());
    }

    private VerificationReport verifyOpen(Path file) throws AuditException {
        return AuditVerifier.verify(file, Optional.of(keys.getPublic()), VerifyOptions.open(clock));
    }

    private VerificationReport verifyClosed(Path file) throws AuditException {
        return AuditVerifier.verify(file, Optional.of(keys.getPublic()));
    }

    private AuditHead head(Path file) throws AuditException {
        try (AuditReader reader = AuditReader.open(file)) {
            return reader.head().orElseThrow(() -> new AssertionError("no signed head in " + file));
        }
    }

    /** A consistent copy of the database as it is now, as an attacker would keep one (and later put back). */
    private Path snapshot(String name) throws Exception {
        Path copy = dir.resolve(name);
        tamper(db, "VACUUM INTO '" + copy + "'");
        return copy;
    }

    private static String kindAndSeq(VerificationReport report) {
        return report.firstProblem().map(p -> p.kind() + " at " + p.seq()).orElse("none");
    }

    @Test
    void aRunningLog_reSignsItsHeadEveryRefreshInterval_withNoRecordsArriving() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 3);
            Instant first = head(db).timestamp();
            clock.advance(REFRESH.plusSeconds(1));
            Instant later = clock.instant();
            AuditHead refreshed = Await.until("the idle writer to re-sign the head at " + later,
                    Duration.ofSeconds(10), () -> head(db), h -> !h.timestamp().isBefore(later));
            assertEquals(3, refreshed.seq(), "the head names the last record: " + refreshed);
            assertEquals(REFRESH.toMillis(), refreshed.refreshMillis(), refreshed.toString());
            assertTrue(refreshed.timestamp().isAfter(first), first + " then " + refreshed);
            VerificationReport report = verifyOpen(db);
            assertTrue(report.intact(), "a quiet live log with a fresh head: " + report.summary());
        }
    }

    @Test
    void aLiveLogCutBackToAnOlderCheckpoint_withTheHeadOfThatTime_isStale() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 20); // checkpoints at 10 and 20; the head was signed with the one at 20
            Path older = snapshot("older.db");
            assertTrue(verifyOpen(older).intact(), "the copy is an honest log of its time: "
                    + verifyOpen(older).summary());
            clock.advance(Duration.ofMinutes(5));
            fill(log, 25); // checkpoints up to 40 (and time checkpoints), the head re-signed
            Instant now = clock.instant();
            Await.until("the head to be re-signed at " + now, Duration.ofSeconds(10), () -> head(db),
                    h -> !h.timestamp().isBefore(now));
            VerificationReport live = verifyOpen(db);
            assertTrue(live.intact(), "the live log: " + live.summary());
            // Before the signed head, this older state (20 records, its last checkpoint at 20) verified as a quiet
            // live log: nothing in it was unsigned.
            VerificationReport cut = verifyOpen(older);
            assertEquals("SIGNED_HEAD_STALE at 20", kindAndSeq(cut), cut.summary());
            assertTrue(cut.summary().contains("cut back or replaced by an older copy"), cut.summary());
        }
    }

    @Test
    void aLogCutBackToAnOlderCheckpoint_withItsHeadLeft_isRefusedOpenAndClosed() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 25);
        }
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq > 20",
                "DELETE FROM audit_checkpoint WHERE seq > 20"));
        VerificationReport open = verifyOpen(db);
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH, open.firstProblem().orElseThrow().kind(),
                open.summary());
        assertTrue(open.summary().contains("covers record 25, but the log ends at record 20"), open.summary());
        VerificationReport closed = verifyClosed(db);
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH, closed.firstProblem().orElseThrow().kind(),
                closed.summary());
    }

    @Test
    void theServer_refusesToSignOverALogCutBackBelowItsHead() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 25);
        }
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq > 20",
                "DELETE FROM audit_checkpoint WHERE seq > 20"));
        AuditException refused = assertThrows(AuditException.class, this::open,
                "a server that opened this log would sign its cut-back head, and verify would then say OK");
        assertEquals(AuditException.Code.CORRUPT, refused.code(), refused.getMessage());
        assertTrue(refused.getMessage().contains("covers record 25 and"), refused.getMessage());
        assertTrue(refused.getMessage().contains("it was cut back"), refused.getMessage());
        VerificationReport still = verifyClosed(db);
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH, still.firstProblem().orElseThrow().kind(),
                "nothing was signed over the cut: " + still.summary());
    }

    @Test
    void aDeletedHead_isRefusedOpenAndClosed() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 12);
        }
        tamper(db, "DROP TRIGGER audit_head_no_delete", "DELETE FROM audit_head");
        assertEquals("SIGNED_HEAD_MISSING at 12", kindAndSeq(verifyClosed(db)), verifyClosed(db).summary());
        assertEquals("SIGNED_HEAD_MISSING at 12", kindAndSeq(verifyOpen(db)), verifyOpen(db).summary());
    }

    @Test
    void aHeadSignedByAnotherKey_orWithAChangedField_isRefused() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 12);
        }
        Path changed = snapshot("changed.db");
        tamper(changed, "DROP TRIGGER audit_head_forward_only", "UPDATE audit_head SET ts_millis = ts_millis + 1");
        VerificationReport report = verifyClosed(changed);
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_INVALID, report.firstProblem().orElseThrow().kind(),
                report.summary());
        VerificationReport otherKey = AuditVerifier.verify(db, Optional.of(ecKeyPair().getPublic()));
        assertTrue(!otherKey.intact() && otherKey.summary().contains("CHECKPOINT_KEY_MISMATCH"),
                "checkpoints and head of another key: " + otherKey.summary());
    }

    @Test
    void unsignedTimestampsChosenToOverflowTheAgeCheck_areRefused() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 13); // checkpoint at 10; 11..13 signed only by the closing checkpoint
        }
        // A writer that stalled after the checkpoint at 10, and records 11..13 dated at the end of time: the age
        // check computed "now - ts", which overflowed, so this tail of any age passed as young.
        List<String> sql = new java.util.ArrayList<>(List.of(withTriggersDropped(
                "DELETE FROM audit_checkpoint WHERE closed = 1")));
        sql.addAll(rewriteTimestamps(11, 13, Long.MAX_VALUE));
        tamper(db, sql.toArray(String[]::new));
        AuditTestSupport.signHead(db, keys, 10, clock.millis(), REFRESH.toMillis());
        VerificationReport future = verifyOpen(db);
        assertEquals("TIMESTAMP_INVALID at 11", kindAndSeq(future), future.summary());
    }

    @Test
    void aRecordDatedBeforeItsPredecessor_isRefused() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 13);
        }
        List<String> sql = new java.util.ArrayList<>(List.of(withTriggersDropped(
                "DELETE FROM audit_checkpoint WHERE closed = 1")));
        sql.addAll(rewriteTimestamps(11, 13, Long.MIN_VALUE));
        tamper(db, sql.toArray(String[]::new));
        AuditTestSupport.signHead(db, keys, 10, clock.millis(), REFRESH.toMillis());
        VerificationReport report = verifyOpen(db);
        assertEquals("TIMESTAMP_INVALID at 11", kindAndSeq(report), report.summary());
    }

    /** SQL that dates records {@code from..to} (the last ones) at {@code millis} and recomputes their hashes. */
    private List<String> rewriteTimestamps(long from, long to, long millis) throws Exception {
        List<AuditRecord> records;
        try (AuditReader reader = AuditReader.open(db)) {
            records = reader.records(from, (int) (to - from + 1));
        }
        List<String> sql = new java.util.ArrayList<>();
        byte[] prev = records.get(0).prevHash();
        for (AuditRecord r : records) {
            byte[] hash = AuditEncoding.recordHash(r.seq(), millis, r.type().name(), r.subject(), r.outcome(),
                    r.detailJson(), prev);
            sql.add("UPDATE audit_record SET ts_millis = " + millis + ", prev_hash = x'" + AuditEncoding.hex(prev)
                    + "', hash = x'" + AuditEncoding.hex(hash) + "' WHERE seq = " + r.seq());
            prev = hash;
        }
        return sql;
    }

    @Test
    void expectHead_showsALogPutBackToAnEarlierCleanShutdown_whichNothingInsideTheFileCan() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 12);
        }
        Path earlier = snapshot("earlier.db");
        try (AuditLog log = open()) {
            fill(log, 5);
        }
        VerificationReport honest = verifyClosed(db);
        assertTrue(honest.intact(), honest.summary());
        byte[] anchor = AuditEncoding.unhex(honest.headHashHex().orElseThrow());
        VerifyOptions anchored = VerifyOptions.closed().expectHead(honest.headSeq(), anchor);
        assertTrue(AuditVerifier.verify(db, Optional.of(keys.getPublic()), anchored).intact(),
                "the log still holds its anchored head");
        // The earlier copy is a complete, cleanly closed log: on its own it verifies.
        assertTrue(verifyClosed(earlier).intact(), verifyClosed(earlier).summary());
        VerificationReport cut = AuditVerifier.verify(earlier, Optional.of(keys.getPublic()), anchored);
        assertEquals("ANCHOR_MISMATCH at 13", kindAndSeq(cut), cut.summary());
        VerificationReport rewritten = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                VerifyOptions.closed().expectHead(12, anchor));
        assertEquals("ANCHOR_MISMATCH at 12", kindAndSeq(rewritten), rewritten.summary());
    }

    @Test
    void anExport_carriesTheHead_andIsJudgedLikeTheDatabase() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 25);
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            log.exportJson(out);
            String json = out.toString(java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(json.contains("\"head\"") && json.contains("\"version\" : 3"), json.substring(0, 300));
            VerificationReport report = AuditVerifier.verifyExport(new java.io.ByteArrayInputStream(out.toByteArray()),
                    Optional.of(keys.getPublic()), VerifyOptions.open(clock));
            assertTrue(report.intact(), report.summary());
            clock.advance(REFRESH.plusSeconds(10));
            VerificationReport later = AuditVerifier.verifyExport(new java.io.ByteArrayInputStream(out.toByteArray()),
                    Optional.of(keys.getPublic()), VerifyOptions.open(clock));
            assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_STALE, later.firstProblem().orElseThrow().kind(),
                    "an export of a live log is verified --open right after it is taken: " + later.summary());
        }
        assertTrue(Files.exists(db));
    }

    @Test
    void aLogCutBackToAnyRecord_withItsHeadDeleted_isRefused_andNotSignedOverOnOpen() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 35);
        }
        // The review's attack: cut at record 17 (no checkpoint there), drop later checkpoints and the head.
        tamper(db, withTriggersDropped("DROP TRIGGER audit_head_no_delete", "DELETE FROM audit_record WHERE seq > 17",
                "DELETE FROM audit_checkpoint WHERE seq > 10", "DELETE FROM audit_head"));
        assertEquals("SIGNED_HEAD_MISSING at 17", kindAndSeq(verifyClosed(db)), verifyClosed(db).summary());
        AuditException refused = assertThrows(AuditException.class, this::open,
                "the server would sign a checkpoint at 17 and a new head over the cut");
        assertEquals(AuditException.Code.CORRUPT, refused.code(), refused.getMessage());
        assertTrue(refused.getMessage().contains("signed head is missing, though its v3 checkpoints"),
                refused.getMessage());
        assertEquals("SIGNED_HEAD_MISSING at 17", kindAndSeq(verifyClosed(db)), "nothing was signed over the cut");
    }

    @Test
    void aHeadUnderAnotherKeyId_isNotTrustedByTheServer() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 35);
        }
        // Cut at 17 and leave a head that matches the cut log, under a key id the server would not check.
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq > 17",
                "DELETE FROM audit_checkpoint WHERE seq > 10"));
        AuditTestSupport.signHead(db, ecKeyPair(), 17, clock.millis(), REFRESH.toMillis());
        tamper(db, "UPDATE audit_head SET key_id = 'ffffffffffffffffffffffffffffffff'");
        AuditException refused = assertThrows(AuditException.class, this::open);
        assertEquals(AuditException.Code.CORRUPT, refused.code(), refused.getMessage());
        assertTrue(refused.getMessage().contains("is signed by key id 'ffffffffffffffffffffffffffffffff'"),
                refused.getMessage());
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_INVALID, verifyClosed(db).firstProblem()
                .orElseThrow().kind(), verifyClosed(db).summary());
    }

    @Test
    void aRecordAppendedAfterTheLogWasClosed_isRefused_andNotSignedOnOpen() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 12);
        }
        AuditRecord last;
        try (AuditReader reader = AuditReader.open(db)) {
            last = reader.records(12, 1).get(0);
        }
        AuditEntry forged = new AuditEntry(AuditEventType.ADMIN, "mallory", "ACCEPTED", "{\"policy\":\"any\"}");
        long millis = last.timestamp().toEpochMilli();
        byte[] hash = AuditEncoding.recordHash(13, millis, forged.type().name(), forged.subject(), forged.outcome(),
                forged.detailJson(), last.hash());
        // The insert trigger lets a chain-continuing record in: no trigger is dropped.
        tamper(db, "INSERT INTO audit_record VALUES (13, " + millis + ", 'ADMIN', 'mallory', 'ACCEPTED', '"
                + forged.detailJson() + "', x'" + AuditEncoding.hex(last.hash()) + "', x'" + AuditEncoding.hex(hash)
                + "')");
        assertEquals("SIGNED_HEAD_MISMATCH at 13", kindAndSeq(verifyClosed(db)), verifyClosed(db).summary());
        AuditException refused = assertThrows(AuditException.class, this::open,
                "the server would sign the forged record on its next start");
        assertTrue(refused.getMessage().contains("records 13..13 follow the head that closed the log at record 12"),
                refused.getMessage());
    }

    @Test
    void aCleanShutdownCutBack_withTheHeadTableDropped_isRefused() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 12);
        }
        try (AuditLog log = open()) {
            fill(log, 5);
        }
        tamper(db, withTriggersDropped("DELETE FROM audit_record WHERE seq > 12",
                "DELETE FROM audit_checkpoint WHERE n > 2", "DROP TABLE audit_head"));
        VerificationReport report = verifyClosed(db);
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_MISSING, report.firstProblem().orElseThrow().kind(),
                "v3 checkpoints commit the log to a head: " + report.summary());
    }

    @Test
    void aServerClockSetBack_reSignsTheHeadAtOnce_soTheRunningLogStillVerifies() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 3);
            clock.advance(Duration.ofMinutes(-10));
            Instant back = clock.instant();
            Await.until("the head to be re-signed at the earlier time " + back, Duration.ofSeconds(10),
                    () -> head(db), h -> h.timestamp().equals(back));
            VerificationReport report = verifyOpen(db);
            assertTrue(report.intact(), "after a clock step back: " + report.summary());
        }
    }

    @Test
    void insertOrReplaceOfTheHead_isRefusedByTheDatabase() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 3);
        }
        java.sql.SQLException refused = assertThrows(java.sql.SQLException.class, () -> tamper(db,
                "INSERT OR REPLACE INTO audit_head SELECT 1, 0, hash, 0, 0, checkpoint_digest, 1, 0, key_id, "
                        + "signature FROM audit_head"));
        assertTrue(refused.getMessage().contains("audit_head has one row"), refused.getMessage());
        assertEquals(3, head(db).seq(), "the head is unchanged");
    }

    @Test
    void anExportHeadDatedBeyondTheMillisecondRange_isAMalformedExport() throws Exception {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        try (AuditLog log = open()) {
            fill(log, 3);
            log.exportJson(out);
        }
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode doc =
                (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(out.toByteArray());
        ((com.fasterxml.jackson.databind.node.ObjectNode) doc.get("head")).put("timestamp",
                "+1000000000-01-01T00:00:00.000Z");
        AuditException refused = assertThrows(AuditException.class, () -> AuditVerifier.verifyExport(
                new java.io.ByteArrayInputStream(json.writeValueAsBytes(doc)), Optional.of(keys.getPublic())));
        assertEquals(AuditException.Code.MALFORMED_EXPORT, refused.code(), refused.getMessage());
        assertTrue(refused.getMessage().contains("outside the range"), refused.getMessage());
    }

    @Test
    void theVerifiersClock_isReadOnceWhenVerificationStarts() throws Exception {
        try (AuditLog log = open()) {
            fill(log, 25);
            // A clock that is an hour later every time it is read: any second read sees a stale head.
            java.util.concurrent.atomic.AtomicInteger reads = new java.util.concurrent.atomic.AtomicInteger();
            java.time.Clock jumping = new java.time.Clock() {
                @Override
                public java.time.ZoneId getZone() {
                    return java.time.ZoneOffset.UTC;
                }

                @Override
                public java.time.Clock withZone(java.time.ZoneId zone) {
                    return this;
                }

                @Override
                public Instant instant() {
                    return clock.instant().plus(Duration.ofHours(reads.getAndIncrement()));
                }
            };
            VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                    VerifyOptions.open(jumping));
            assertTrue(report.intact(), report.summary());
            assertEquals(1, reads.get(), "the clock is read once");
        }
    }
}
