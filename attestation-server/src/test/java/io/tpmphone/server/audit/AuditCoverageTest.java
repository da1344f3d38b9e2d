package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.entry;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static io.tpmphone.server.audit.AuditTestSupport.signHead;
import static io.tpmphone.server.audit.AuditTestSupport.tamper;
import static io.tpmphone.server.audit.AuditTestSupport.withTriggersDropped;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.Signature;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What the writer signs when (open, age, close) and how open, closed and legacy (v1) logs are judged. */
class AuditCoverageTest {
    @TempDir
    Path dir;
    Path db;
    KeyPair keys;
    MutableClock clock;

    @BeforeEach
    void setUp() throws Exception {
        db = dir.resolve("audit.db");
        keys = ecKeyPair();
        clock = new MutableClock(Instant.parse("2025-01-31T12:00:00Z"));
    }

    private AuditLog open(int every) throws AuditException {
        return AuditLog.open(db, AuditSigner.ecdsa(keys), AuditLog.Options.builder().checkpointEvery(every)
                .maxUnsignedAge(Duration.ofSeconds(10)).clock(clock).build());
    }

    private List<AuditCheckpoint> checkpoints() throws AuditException {
        try (AuditReader reader = AuditReader.open(db)) {
            return reader.checkpoints();
        }
    }

    @Test
    void aRecordUnsignedForMaxUnsignedAge_isSignedByTheNextAppend() throws Exception {
        try (AuditLog log = open(1000)) {
            log.append(entry(1));
            clock.advance(Duration.ofSeconds(9));
            log.append(entry(2));
            assertEquals(List.of(), log.checkpoints(), "record 1 is 9 s old: not yet due");
            clock.advance(Duration.ofSeconds(1));
            log.append(entry(3));
            List<AuditCheckpoint> signed = log.checkpoints();
            // Record 1 is 10 s old: the head is signed, by this append or, if it got there first, by the idle
            // writer's own check (then at 2).
            assertEquals(1, signed.size(), "record 1 is 10 s old: the head is signed: " + signed);
            assertTrue(signed.get(0).seq() == 3 || signed.get(0).seq() == 2, signed.toString());
            assertFalse(signed.get(0).closed());
            assertEquals(10_000, signed.get(0).maxUnsignedMillis());
        }
        List<AuditCheckpoint> all = checkpoints();
        assertEquals(2, all.size(), all.toString());
        assertTrue(all.get(1).closed(), "close writes the closing checkpoint: " + all);
        assertArrayEquals(all.get(0).digest(), all.get(1).prevDigest(), "the closing checkpoint covers the one before");
        assertTrue(AuditVerifier.verify(db, Optional.of(keys.getPublic())).intact());
    }

    @Test
    void openLog_isAcceptedAsOpenWithItsUnsignedTailCounted_butNotAsClosed() throws Exception {
        try (AuditLog log = open(10)) {
            fill(log, 13);
            VerificationReport open = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                    VerifyOptions.open(clock));
            assertTrue(open.intact(), open.summary());
            assertEquals(3, open.unsignedRecords(), open.summary());
            assertTrue(open.summary().contains("the last 3 records (11..13) are not signed yet"), open.summary());
            VerificationReport closed = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
            assertEquals("NOT_CLOSED at 11", closed.firstProblem().map(p -> p.kind() + " at " + p.seq()).orElse(
                    "none"), closed.summary());
        }
    }

    @Test
    void openLog_whoseUnsignedTailIsOlderThanTheSignedBound_isRefused() throws Exception {
        try (AuditLog log = open(10)) {
            fill(log, 13);
        }
        // A log whose writer signed the head at 10 and then stalled (the closing checkpoint is removed and the head
        // re-signed as it stood), verified as open 16 s later: the head is young enough, but the writer would have
        // signed records 11..13 within 10 s.
        tamper(db, withTriggersDropped("DELETE FROM audit_checkpoint WHERE closed = 1"));
        signHead(db, keys, 10, clock.millis(), 60_000);
        clock.advance(Duration.ofSeconds(16));
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                VerifyOptions.open(clock));
        assertEquals(VerificationReport.ProblemKind.UNSIGNED_TAIL_TOO_OLD, report.firstProblem().orElseThrow()
                .kind(), report.summary());
        assertEquals(11, report.firstProblem().orElseThrow().seq());
    }

    @Test
    void emptyLog_closesWithACheckpointAtSeqZero() throws Exception {
        try (AuditLog log = open(10)) {
            assertEquals(0, log.size());
        }
        List<AuditCheckpoint> all = checkpoints();
        assertEquals(1, all.size());
        assertEquals(0, all.get(0).seq());
        assertTrue(all.get(0).closed());
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertTrue(report.intact(), report.summary());
        try (AuditLog log = open(10)) {
            log.append(entry(1));
        }
        assertTrue(AuditVerifier.verify(db, Optional.of(keys.getPublic())).intact());
    }

    @Test
    void legacyV1Log_isRefusedByDefault_acceptedAsWeakerWhenAsked_andUpgradedOnOpen() throws Exception {
        writeV1Log(25, 10); // 25 records, v1 checkpoints at 10 and 20, as the code before v2 left a log
        VerificationReport strict = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertEquals(VerificationReport.ProblemKind.LEGACY_CHECKPOINT, strict.firstProblem().orElseThrow().kind(),
                strict.summary());
        assertTrue(strict.summary().contains("--accept-v1"), strict.summary());
        VerificationReport legacy = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                VerifyOptions.closed().acceptV1());
        assertTrue(legacy.intact(), legacy.summary());
        assertEquals(2, legacy.legacyCheckpoints());
        assertTrue(legacy.summary().contains("WEAKER: 2 v1 checkpoints"), legacy.summary());

        try (AuditLog log = open(10)) { // migrates, signs the head in v2 chained to the last v1 checkpoint
            fill(log, 7);
        }
        List<AuditCheckpoint> all = checkpoints();
        assertEquals(List.of(1, 1, 3, 3, 3), all.stream().map(AuditCheckpoint::version).toList(), all.toString());
        assertEquals(List.of(10L, 20L, 25L, 30L, 32L), all.stream().map(AuditCheckpoint::seq).toList());
        assertArrayEquals(all.get(1).digest(), all.get(2).prevDigest(), "the first v2 checkpoint covers the last v1");
        VerificationReport upgraded = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                VerifyOptions.closed().acceptV1());
        assertTrue(upgraded.intact(), upgraded.summary());
        // Deleting the last v1 checkpoint now breaks the v2 chain.
        tamper(db, withTriggersDropped("DELETE FROM audit_checkpoint WHERE seq = 20"));
        VerificationReport cut = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                VerifyOptions.closed().acceptV1());
        assertEquals("CHECKPOINT_CHAIN_BROKEN at 25", cut.firstProblem().map(p -> p.kind() + " at " + p.seq())
                .orElse("none"), cut.summary());
    }

    @Test
    void upgradedLog_strippedToItsV1Prefix_isRefusedEvenWithAcceptV1() throws Exception {
        writeV1Log(25, 10);
        try (AuditLog log = open(10)) { // upgrades: v3 checkpoints at 25, 30, 32 and a signed head
            fill(log, 7);
        }
        // The review's attack: strip the newer checkpoints and cut after the last v1 one; with --accept-v1 this
        // looked like a legacy log that no newer server had opened.
        tamper(db, withTriggersDropped("DELETE FROM audit_checkpoint WHERE version >= 2",
                "DELETE FROM audit_record WHERE seq > 20"));
        VerificationReport stripped = AuditVerifier.verify(db, Optional.of(keys.getPublic()),
                VerifyOptions.closed().acceptV1());
        assertEquals(VerificationReport.ProblemKind.SIGNED_HEAD_MISMATCH, stripped.firstProblem().orElseThrow()
                .kind(), stripped.summary());
        // Only the v3 checkpoints commit a log to its head: cutting back to before the upgrade and removing the head
        // too is the residual "older copy" case of docs/audit.md, which only --expect-head shows.
    }

    /** A schema-1 database with v1 checkpoints, built the way the code before checkpoint v2 did. */
    private void writeV1Log(int records, int every) throws Exception {
        String schema;
        try (InputStream in = AuditLog.class.getResourceAsStream("/db/audit/V1__audit.sql")) {
            schema = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        List<String> sql = new ArrayList<>();
        for (String statement : schema.replaceAll("(?m)^--.*$", "").split(";\\s*\\n(?=CREATE|$)")) {
            if (!statement.isBlank()) {
                sql.add(statement.strip().endsWith("END") ? statement.strip() + ";" : statement.strip());
            }
        }
        sql.add("CREATE TABLE audit_schema_history (\"installed_rank\" INT NOT NULL PRIMARY KEY, \"version\" TEXT,"
                + " \"description\" TEXT NOT NULL, \"type\" TEXT NOT NULL, \"script\" TEXT NOT NULL, \"checksum\" INT,"
                + " \"installed_by\" TEXT NOT NULL, \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d"
                + " %H:%M:%f','now')), \"execution_time\" INT NOT NULL, \"success\" BOOLEAN NOT NULL)");
        sql.add("INSERT INTO audit_schema_history VALUES (1, '1', 'audit', 'SQL', 'V1__audit.sql', "
                + v1Checksum() + ", 'test', '2025-01-01 00:00:00.000', 1, 1)");
        byte[] prev = new byte[32];
        long millis = clock.millis();
        Signature signer = Signature.getInstance("SHA256withECDSA");
        for (int seq = 1; seq <= records; seq++) {
            AuditEntry e = entry(seq);
            byte[] hash = AuditEncoding.recordHash(seq, millis, e.type().name(), e.subject(), e.outcome(),
                    e.detailJson(), prev);
            sql.add("INSERT INTO audit_record VALUES (" + seq + ", " + millis + ", '" + e.type().name() + "', '"
                    + e.subject() + "', '" + e.outcome() + "', '" + e.detailJson() + "', x'" + AuditEncoding.hex(prev)
                    + "', x'" + AuditEncoding.hex(hash) + "')");
            if (seq % every == 0) {
                signer.initSign(keys.getPrivate());
                signer.update(AuditEncoding.checkpointSignedData(seq, hash, millis));
                sql.add("INSERT INTO audit_checkpoint VALUES (" + seq + ", x'" + AuditEncoding.hex(hash) + "', "
                        + millis + ", '" + AuditSigner.keyIdOf(keys.getPublic()) + "', x'"
                        + AuditEncoding.hex(signer.sign()) + "')");
            }
            prev = hash;
        }
        tamper(db, sql.toArray(String[]::new));
    }

    /** Flyway's checksum of V1__audit.sql (CRC32 over its lines), so the migration history validates. */
    private static int v1Checksum() throws Exception {
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        try (java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(
                AuditLog.class.getResourceAsStream("/db/audit/V1__audit.sql"), StandardCharsets.UTF_8))) {
            String line;
            boolean first = true;
            while ((line = r.readLine()) != null) {
                if (first && !line.isEmpty() && line.charAt(0) == '\uFEFF') {
                    line = line.substring(1);
                }
                first = false;
                crc.update(line.getBytes(StandardCharsets.UTF_8));
            }
        }
        return (int) crc.getValue();
    }

    /** A clock the test moves; never goes back. */
    static final class MutableClock extends Clock {
        private volatile Instant now;

        MutableClock(Instant start) {
            this.now = start;
        }

        void advance(Duration d) {
            now = now.plus(d);
        }

        @Override
        public java.time.ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return now;
        }
    }
}
