package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.entry;
import static io.tpmphone.server.audit.AuditTestSupport.fill;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import java.nio.file.Path;
import java.security.KeyPair;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The audit log's core guarantees on each backend: an SQLite file, and the shared chain in PostgreSQL that several
 * server instances write ({@link AuditLog#openShared}). The SQLite-only attacks (file tampering, v1/v2 upgrades,
 * signed-head forgeries) stay in AuditLogTest, AuditSignedHeadTest and AuditCheckpointAttackTest.
 */
@Timeout(120)
class AuditLogOnEachBackendIT {
    @TempDir
    Path dir;
    private KeyPair keys;
    private AuditSigner signer;
    private TestBackend backend;
    private final List<ServerDatabase> pools = new ArrayList<>();

    @BeforeEach
    void setUp(TestBackend b) throws Exception {
        backend = b;
        keys = ecKeyPair();
        signer = AuditSigner.ecdsa(keys);
    }

    @AfterEach
    void closePools() throws Exception {
        for (ServerDatabase pool : pools) {
            pool.close();
        }
    }

    /** An instance's log: the file, or the shared chain through a pool of its own. */
    private AuditLog open(AuditLog.Options options) throws Exception {
        if (backend.kind() == TestBackend.Kind.SQLITE) {
            return AuditLog.open(dir.resolve("audit.db"), signer, options);
        }
        ServerDatabase pool = ServerDatabase.postgresql(backend.databaseUrl(), null, 4);
        pools.add(pool);
        return AuditLog.openShared(pool.dataSource(), pool.description(), signer, options);
    }

    private VerificationReport verify(VerifyOptions options) throws Exception {
        return backend.kind() == TestBackend.Kind.SQLITE
                ? AuditVerifier.verify(dir.resolve("audit.db"), Optional.of(keys.getPublic()), options)
                : AuditVerifier.verify(backend.databaseUrl(), Optional.of(keys.getPublic()), options);
    }

    private void sql(String... statements) throws Exception {
        try (Connection c = backend.kind() == TestBackend.Kind.SQLITE
                ? DriverManager.getConnection("jdbc:sqlite:" + dir.resolve("audit.db"))
                : DriverManager.getConnection(backend.databaseUrl()); Statement s = c.createStatement()) {
            for (String statement : statements) {
                s.execute(statement);
            }
        }
    }

    private static AuditLog.Options every(int n) {
        return AuditLog.Options.builder().checkpointEvery(n).maxUnsignedAge(Duration.ofHours(1)).build();
    }

    @OnEachBackend
    void appendCloseReopenAppend_isOneIntactChain_withCheckpointsAtTheIntervalAndOnClose() throws Exception {
        AuditRecord third;
        try (AuditLog log = open(every(2))) {
            AuditRecord first = log.append(entry(1));
            assertEquals(1, first.seq(), "the first record: " + first);
            assertArrayEquals(new byte[32], first.prevHash(), "the first record chains to zeros: " + first);
            fill(log, 2);
            third = log.tail(1).get(0);
            assertEquals(3, third.seq(), "saw " + third);
            List<Long> at = log.checkpoints().stream().map(AuditCheckpoint::seq).toList();
            assertEquals(List.of(2L), at, "checkpoints at " + at);
        }
        try (AuditLog log = open(every(2))) {
            AuditRecord fourth = log.append(entry(4));
            assertEquals(4, fourth.seq(), "after the restart: " + fourth);
            assertArrayEquals(third.hash(), fourth.prevHash(), "the chain continues across the restart");
            List<AuditRecord> page = log.records(3, 10);
            assertEquals(List.of(third, fourth), page, "records from 3: " + page);
        }
        VerificationReport report = verify(VerifyOptions.closed());
        assertTrue(report.intact(), report.summary());
        assertEquals(4, report.recordsChecked(), report.summary());
        assertEquals(4, report.checkpointsChecked(), "2, 3 (close), 4 (interval), 4 (close): " + report.summary());
    }

    /**
     * What the checkpoint-age metric reads: the records no checkpoint covers, and the last checkpoint's time (the
     * cluster's on PostgreSQL), moving with each interval checkpoint and staying put between them.
     */
    @OnEachBackend
    void checkpointState_countsTheUnsignedRecords_andDatesTheLastCheckpoint() throws Exception {
        try (AuditLog log = open(every(3))) {
            fill(log, 2);
            assertEquals(2, log.checkpointState().unsignedRecords(), "two records, no interval checkpoint yet: "
                    + log.checkpointState());
            AuditRecord third = log.append(entry(3));
            AuditLog.CheckpointState signed = log.checkpointState();
            assertEquals(0, signed.unsignedRecords(), "the third record's batch signed a checkpoint: " + signed);
            AuditCheckpoint last = log.checkpoints().get(log.checkpoints().size() - 1);
            assertEquals(3, last.seq(), "the interval checkpoint at 3: " + log.checkpoints());
            assertEquals(java.util.Optional.of(last.timestamp()), signed.lastCheckpoint(),
                    "dated as the checkpoint " + last + " (record 3 at " + third.timestamp() + ")");
            log.append(entry(4));
            AuditLog.CheckpointState after = log.checkpointState();
            assertEquals(1, after.unsignedRecords(), "one record after it: " + after);
            assertEquals(signed.lastCheckpoint(), after.lastCheckpoint(), "no new checkpoint: " + after);
        }
        try (AuditLog log = open(every(3))) {
            assertEquals(0, log.checkpointState().unsignedRecords(), "closed by a checkpoint over record 4, then"
                    + " reopened: " + log.checkpointState());
            assertEquals(java.util.Optional.of(log.checkpoints().get(log.checkpoints().size() - 1).timestamp()),
                    log.checkpointState().lastCheckpoint(), "the closing checkpoint's time, read on open");
        }
    }

    /** What /health asks the log: it can commit while its writer runs, and says why not once it is closed. */
    @OnEachBackend
    void anOpenLog_canCommit_andAClosedOneSaysWhyNot() throws Exception {
        AuditLog log = open(every(2));
        try {
            assertEquals(java.util.Optional.empty(), log.unavailableReason(), "an open log can commit");
            log.append(entry(1));
            assertEquals(java.util.Optional.empty(), log.unavailableReason(), "and still can after an append");
        } finally {
            log.close();
        }
        assertEquals(java.util.Optional.of("the audit log is closed"), log.unavailableReason(),
                "a closed log cannot commit and says so");
    }

    @OnEachBackend
    void sixteenThreads_allLandWithContiguousSeqs_inAChainThatVerifies() throws Exception {
        int threads = 16;
        int each = 50;
        ConcurrentLinkedQueue<AuditRecord> returned = new ConcurrentLinkedQueue<>();
        ExecutorService workers = Executors.newFixedThreadPool(threads);
        try (AuditLog log = open(every(100))) {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                futures.add(workers.submit(() -> {
                    start.await();
                    for (int i = 0; i < each; i++) {
                        returned.add(log.append(AuditEntry.of(AuditEventType.APPRAISAL, "host-" + thread, "MEASURED",
                                Map.of("thread", thread, "i", i))));
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> f : futures) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            workers.shutdownNow();
        }
        TreeSet<Long> seqs = new TreeSet<>();
        returned.forEach(r -> seqs.add(r.seq()));
        assertEquals(threads * each, seqs.size(), "distinct seqs returned: " + seqs.size());
        assertEquals(1L, seqs.first(), "first seq " + seqs.first());
        assertEquals((long) threads * each, seqs.last(), "last seq " + seqs.last() + " of " + seqs.size());
        VerificationReport report = verify(VerifyOptions.closed());
        assertTrue(report.intact(), report.summary());
        assertEquals(9, report.checkpointsChecked(), "every 100 and on close: " + report.summary());
    }

    @OnEachBackend
    void theDatabaseRefusesEditsDeletionsAndAppendsThatDoNotContinueTheChain() throws Exception {
        try (AuditLog log = open(every(1000))) {
            fill(log, 3);
        }
        for (String edit : List.of("UPDATE audit_record SET outcome = 'X' WHERE seq = 2",
                "DELETE FROM audit_record WHERE seq = 3", "DELETE FROM audit_checkpoint",
                "INSERT INTO audit_record (seq, ts_millis, type, subject, outcome, detail, prev_hash, hash)"
                        + " SELECT 9, ts_millis, type, subject, outcome, detail, prev_hash, hash FROM audit_record"
                        + " WHERE seq = 3")) {
            SQLException e = assertThrows(SQLException.class, () -> sql(edit), "refused: " + edit);
            assertTrue(e.getMessage().contains("append-only"), "says why (" + edit + "): " + e.getMessage());
        }
        VerificationReport report = verify(VerifyOptions.closed());
        assertTrue(report.intact(), report.summary());
    }

    @OnEachBackend
    void aRecordRewrittenBehindTheTriggers_isFoundByVerify() throws Exception {
        try (AuditLog log = open(every(1000))) {
            fill(log, 5);
        }
        if (backend.kind() == TestBackend.Kind.SQLITE) {
            sql(AuditTestSupport.withTriggersDropped("UPDATE audit_record SET outcome = 'HARDENED' WHERE seq = 3"));
        } else {
            sql("ALTER TABLE audit_record DISABLE TRIGGER USER",
                    "UPDATE audit_record SET outcome = 'HARDENED' WHERE seq = 3");
        }
        VerificationReport report = verify(VerifyOptions.closed());
        assertTrue(!report.intact(), "a rewritten record must be found: " + report.summary());
        assertEquals(3, report.firstProblem().orElseThrow().seq(), report.summary());
        assertEquals(VerificationReport.ProblemKind.HASH_MISMATCH, report.firstProblem().orElseThrow().kind(),
                report.summary());
    }
}
