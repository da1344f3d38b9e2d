package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.entry;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static io.tpmphone.server.audit.AuditTestSupport.tamper;
import static io.tpmphone.server.audit.AuditTestSupport.withTriggersDropped;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AuditLogTest {
    @TempDir
    Path dir;
    Path db;
    KeyPair keys;
    AuditSigner signer;

    @BeforeEach
    void setUp() throws Exception {
        db = dir.resolve("audit.db");
        keys = ecKeyPair();
        signer = AuditSigner.ecdsa(keys);
    }

    private AuditLog open(int checkpointEvery) throws AuditException {
        return AuditLog.open(db, signer, AuditLog.Options.builder().checkpointEvery(checkpointEvery).build());
    }

    @Test
    void appendThenVerify_isIntact() throws Exception {
        try (AuditLog log = open(1000)) {
            fill(log, 5);
            assertEquals(5, log.size());
        }
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertTrue(report.intact(), report.summary());
        assertEquals(5, report.recordsChecked());
        assertEquals(1, report.checkpointsChecked()); // the one written on close
        assertTrue(report.signaturesChecked());
        assertEquals(5, report.headSeq());
    }

    @Test
    void append_returnsTheCommittedRecordLinkedToThePreviousOne() throws Exception {
        try (AuditLog log = open(1000)) {
            AuditRecord first = log.append(entry(1));
            AuditRecord second = log.append(AuditEntry.ofJson(AuditEventType.POLICY_CHANGE, "admin", "ACCEPTED",
                    "{ \"version\": 7, \"by\" : {\"z\":1, \"a\":2} }"));
            assertEquals(1, first.seq());
            assertArrayEquals(new byte[32], first.prevHash());
            assertEquals(2, second.seq());
            assertArrayEquals(first.hash(), second.prevHash());
            assertEquals("{\"by\":{\"a\":2,\"z\":1},\"version\":7}", second.detailJson());
            assertEquals(0, second.timestamp().getNano() % 1_000_000, "millisecond precision");
            assertEquals(List.of(first, second), log.tail(10));
            assertEquals(List.of(second), log.records(2, 10));
            assertEquals(List.of(first), log.records(1, 1));
        }
    }

    @Test
    void closeAndReopen_continuesTheChain() throws Exception {
        AuditRecord third;
        try (AuditLog log = open(1000)) {
            fill(log, 3);
            third = log.tail(1).get(0);
        }
        try (AuditLog log = open(1000)) {
            assertEquals(3, log.size());
            AuditRecord fourth = log.append(entry(4));
            assertEquals(4, fourth.seq());
            assertArrayEquals(third.hash(), fourth.prevHash());
            log.append(entry(5));
        }
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertTrue(report.intact(), report.summary());
        assertEquals(5, report.recordsChecked());
        try (AuditReader reader = AuditReader.open(db)) {
            assertEquals(List.of(3L, 5L), reader.checkpoints().stream().map(AuditCheckpoint::seq).toList());
        }
    }

    @Test
    void checkpoints_areWrittenEveryNRecordsAndOnClose() throws Exception {
        try (AuditLog log = open(10)) {
            fill(log, 25);
            assertEquals(List.of(10L, 20L), log.checkpoints().stream().map(AuditCheckpoint::seq).toList());
            AuditCheckpoint at10 = log.checkpoints().get(0);
            assertArrayEquals(log.records(10, 1).get(0).hash(), at10.hash());
            assertEquals(signer.keyId(), at10.keyId());
        }
        try (AuditReader reader = AuditReader.open(db)) {
            assertEquals(List.of(10L, 20L, 25L), reader.checkpoints().stream().map(AuditCheckpoint::seq).toList());
        }
    }

    @Test
    void updateAndDelete_areRefusedByTheDatabase() throws Exception {
        try (AuditLog log = open(2)) {
            fill(log, 3);
        }
        for (String sql : new String[] {"UPDATE audit_record SET detail = '{}' WHERE seq = 2",
                "DELETE FROM audit_record WHERE seq = 3", "UPDATE audit_checkpoint SET key_id = 'x'",
                "DELETE FROM audit_checkpoint", "INSERT OR REPLACE INTO audit_record SELECT * FROM audit_record WHERE seq = 1",
                "INSERT INTO audit_record VALUES (5, 0, 'ADMIN', 's', 'o', '{}', zeroblob(32), zeroblob(32))"}) {
            SQLException e = assertThrows(SQLException.class, () -> tamper(db, sql), sql);
            assertTrue(e.getMessage().contains("append-only"), e.getMessage());
        }
        assertTrue(AuditVerifier.verify(db, Optional.of(keys.getPublic())).intact());
    }

    @Test
    void close_leavesEverythingInTheDatabaseFileItself() throws Exception {
        try (AuditLog log = open(1000)) {
            fill(log, 3);
        }
        assertFalse(Files.exists(dir.resolve("audit.db-wal")), "WAL not checkpointed into the database on close");
        assertTrue(AuditVerifier.verify(db, Optional.of(keys.getPublic())).intact());
        try (AuditReader reader = AuditReader.open(db)) {
            assertEquals(3, reader.size());
        }
    }

    @Test
    void database_isInWalMode() throws Exception {
        try (AuditLog log = open(1000)) {
            log.append(entry(1));
            try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db);
                    Statement s = c.createStatement();
                    ResultSet rows = s.executeQuery("PRAGMA journal_mode")) {
                rows.next();
                assertEquals("wal", rows.getString(1));
            }
        }
    }

    @Test
    void secondWriter_isRefused() throws Exception {
        try (AuditLog log = open(1000)) {
            AuditException e = assertThrows(AuditException.class, () -> open(1000));
            assertEquals(AuditException.Code.ALREADY_OPEN, e.code());
            log.append(entry(1));
        }
        try (AuditLog log = open(1000)) {
            assertEquals(1, log.size());
        }
    }

    @Test
    void appendAfterClose_isRefused() throws Exception {
        AuditLog log = open(1000);
        log.close();
        log.close(); // idempotent
        AuditException e = assertThrows(AuditException.class, () -> log.append(entry(1)));
        assertEquals(AuditException.Code.CLOSED, e.code());
    }

    @Test
    void openWithTamperedHead_isRefused() throws Exception {
        try (AuditLog log = open(1000)) {
            fill(log, 4);
        }
        tamper(db, withTriggersDropped("UPDATE audit_record SET outcome = 'ACCEPTED' WHERE seq = 4"));
        AuditException e = assertThrows(AuditException.class, () -> open(1000));
        assertEquals(AuditException.Code.CORRUPT, e.code());
        assertTrue(e.getMessage().contains("record 4"), e.getMessage());
    }

    @Test
    void export_thenVerifyExport_isIntact() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (AuditLog log = open(3)) {
            fill(log, 7);
            log.exportJson(out);
        }
        // Exported while the log was open: record 7 is not signed yet, so it verifies as an open log, saying so,
        // and not as a closed one.
        VerificationReport report = AuditVerifier.verifyExport(new ByteArrayInputStream(out.toByteArray()),
                Optional.of(keys.getPublic()), VerifyOptions.open(java.time.Clock.systemUTC()));
        assertTrue(report.intact(), report.summary());
        assertEquals(7, report.recordsChecked());
        assertEquals(2, report.checkpointsChecked());
        assertEquals(1, report.unsignedRecords(), report.summary());
        VerificationReport closed = AuditVerifier.verifyExport(new ByteArrayInputStream(out.toByteArray()),
                Optional.of(keys.getPublic()));
        assertEquals(VerificationReport.ProblemKind.NOT_CLOSED, closed.firstProblem().orElseThrow().kind(),
                closed.summary());
    }

    @Test
    void invalidEntries_areRejectedNamingTheRule() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AuditEntry.of(AuditEventType.ADMIN, "", "OK"));
        assertTrue(e.getMessage().contains("subject"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> AuditEntry.ofJson(AuditEventType.ADMIN, "a", "OK", "{\"a\":1,\"a\":2}"));
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> AuditEntry.ofJson(AuditEventType.ADMIN, "a", "OK", "[1]"));
        assertTrue(e.getMessage().contains("JSON object"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> AuditEntry.of(AuditEventType.ADMIN, "a\uD800", "OK"));
        assertTrue(e.getMessage().contains("surrogate"), e.getMessage());
    }

    @Test
    void leases_outsideTheirBounds_orAWriterLeaseNotLongerThanTheSigners_areRefused_andDefaultToThreeAndTenSeconds() {
        AuditLog.Options defaults = AuditLog.Options.defaults();
        assertEquals(java.time.Duration.ofSeconds(3), defaults.signerLease(), "default signer lease");
        assertEquals(java.time.Duration.ofSeconds(10), defaults.writerLease(), "default writer lease");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AuditLog.Options.builder().signerLease(java.time.Duration.ofMillis(1999)));
        assertEquals("signerLease must be 2 to 300 s, got 1999 ms", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> AuditLog.Options.builder().writerLease(java.time.Duration.ofSeconds(3)));
        assertEquals("writerLease must be 4 to 300 s, got 3000 ms", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> AuditLog.Options.builder().writerLease(java.time.Duration.ofSeconds(301)));
        assertEquals("writerLease must be 4 to 300 s, got 301000 ms", e.getMessage());
        assertThrows(NullPointerException.class, () -> AuditLog.Options.builder().signerLease(null));
        e = assertThrows(IllegalArgumentException.class, () -> AuditLog.Options.builder()
                .signerLease(java.time.Duration.ofSeconds(20)).build());
        assertEquals("writerLease (10000 ms) must be longer than signerLease (20000 ms)", e.getMessage());
        AuditLog.Options shortest = AuditLog.Options.builder().signerLease(java.time.Duration.ofSeconds(2))
                .writerLease(java.time.Duration.ofSeconds(4)).build();
        assertEquals(java.time.Duration.ofSeconds(4), shortest.writerLease(), "the shortest writer lease is kept");
    }
}
