package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.entry;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import io.tpmphone.swtpm.testing.Await;
import java.security.KeyPair;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * An instance of the shared audit chain stalled for longer than its writer lease (a GC pause, SIGSTOP, a preempted VM)
 * counts as gone, so another instance that stops meanwhile closes the chain under it (issue 17). When the stalled
 * instance wakes and appends, it must re-open the chain first, as an open after a clean close does: before the fence,
 * its records followed the head that closed the log, the next open refused the chain as CORRUPT and {@code audit
 * verify} reported the head.
 *
 * <p>The stall is the writer thread parked between batches ({@link SharedAuditLog#stallWriter}), so it neither
 * appends nor renews its leases; the lease it would have lost by then is expired in the database rather than waited
 * out.
 */
@Timeout(120)
@ExtendWith(PostgresExtension.class)
class SharedAuditStalledWriterIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    /** No interval or time checkpoints while the test runs: every checkpoint is one an instance signs on leaving. */
    private static final AuditLog.Options OPTIONS = AuditLog.Options.builder().checkpointEvery(1000)
            .maxUnsignedAge(Duration.ofHours(1)).build();
    private final List<ServerDatabase> pools = new ArrayList<>();
    private final ExecutorService background = Executors.newCachedThreadPool();

    @AfterEach
    void closePools() throws Exception {
        background.shutdownNow();
        for (ServerDatabase pool : pools) {
            pool.close();
        }
    }

    /** An instance with a connection pool of its own, as a separate server process would have. */
    private SharedAuditLog instance(TestBackend db, AuditSigner signer) throws Exception {
        ServerDatabase pool = ServerDatabase.postgresql(db.databaseUrl(), null, 4);
        pools.add(pool);
        return SharedAuditLog.open(pool.dataSource(), pool.description(), signer, OPTIONS);
    }

    @Test
    void aWriterStalledPastItsLease_whileAnotherClosesTheChain_reopensItAndAppends(TestBackend db) throws Exception {
        KeyPair keys = ecKeyPair();
        AuditSigner signer = AuditSigner.ecdsa(keys);
        SharedAuditLog a = instance(db, signer);
        SharedAuditLog b = instance(db, signer);
        a.append(entry(1));
        b.append(entry(2));

        SharedAuditLog.Stall stall = a.stallWriter();
        Future<AuditRecord> late;
        VerificationReport closedByB;
        try {
            assertTrue(stall.parked.await(WAIT.toSeconds(), TimeUnit.SECONDS), "A's writer thread did not park");
            expireWriterLease(db, a.instance());
            late = background.submit(() -> a.append(entry(3))); // waits for A's writer, which is stalled
            Await.until("A's append to be queued for its stalled writer", WAIT, () -> a.queued() == 1,
                    () -> a.queued() + " queued");
            b.close(); // A counts as gone: B is the last writer and closes the chain
            closedByB = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()), VerifyOptions.closed());
            assertTrue(closedByB.intact() && closedByB.recordsChecked() == 2, "B closed the chain at record 2 under"
                    + " the stalled A: " + closedByB.summary());
            assertTrue(tipClosed(db), "the tip row carries B's close");
        } finally {
            stall.release.countDown();
        }
        AuditRecord record = late.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertEquals(3, record.seq(), "A's record after B's close: " + record);
        assertTrue(!tipClosed(db), "A's batch re-opened the chain: the tip row is no longer closed");

        // The next open accepts the chain (it refused it as CORRUPT, "records follow the head that closed the log",
        // when A appended past the closed head), and so does verify while A and C run.
        SharedAuditLog c = instance(db, signer);
        VerificationReport running = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.open(java.time.Clock.systemUTC()));
        assertTrue(running.intact(), "the running chain after the stalled instance appended: " + running.summary());
        List<AuditCheckpoint> checkpoints = c.checkpoints();
        assertEquals("2:closed", checkpoints.stream().map(k -> k.seq() + (k.closed() ? ":closed" : ""))
                .collect(Collectors.joining(",")), "B's closing checkpoint, and none since: " + checkpoints);
        AuditHead head = c.head().orElseThrow();
        assertTrue(!head.closed() && head.seq() == 3, "the head C's open signed, at A's record and open: seq "
                + head.seq() + ", closed " + head.closed());

        a.close(); // C still runs: a plain checkpoint over record 3
        c.close(); // the last instance: closes the chain
        VerificationReport closed = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.closed());
        assertTrue(closed.intact(), "one intact chain, closed by the last instance: " + closed.summary());
        assertEquals(3, closed.recordsChecked(), closed.summary());
        assertEquals(0, closed.unsignedRecords(), "every record signed: " + closed.summary());
        assertTrue(closed.checkpointsChecked() >= 2, "B's closing checkpoint and the last one: " + closed.summary());
        assertArrayEquals(record.hash(), storedHash(db, 3), "record 3 is stored as A's append returned it: "
                + record.hashHex());
    }

    /**
     * The other order: B's close holds the tip's lock while A's batch waits for it. A's lock comes back with the tip
     * row as B committed it, closed, so A re-opens the chain before appending (a read of the head in that statement
     * would have been from before B's commit, and missed the close).
     */
    @Test
    void aBatchWaitingForTheTipWhileAnotherCloses_seesTheCloseAndReopens(TestBackend db) throws Exception {
        KeyPair keys = ecKeyPair();
        AuditSigner signer = AuditSigner.ecdsa(keys);
        SharedAuditLog a = instance(db, signer);
        SharedAuditLog b = instance(db, signer);
        a.append(entry(1));
        // The checkpoint signer locks the tip every second: a third party holds its lease, so that the only waiters
        // for the tip below are B's close and A's batch. Both have renewed their writer leases since it did (their
        // housekeeping renews that lease first), so neither is signing.
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement()) {
            s.executeUpdate("INSERT INTO audit_signer (id, instance, lease_until) VALUES (1, 'the-test',"
                    + " clock_timestamp() + interval '1 hour') ON CONFLICT (id) DO UPDATE SET instance = 'the-test',"
                    + " lease_until = excluded.lease_until");
        }
        Await.until("both instances renewing their writer leases after the test took the signer's lease", WAIT,
                () -> writersRenewedSinceSignerTaken(db) == 2, () -> writersRenewedSinceSignerTaken(db)
                        + " of 2 renewed since");

        SharedAuditLog.Stall stall = a.stallWriter();
        Future<AuditRecord> late;
        Future<?> closing;
        try (Connection holder = DriverManager.getConnection(db.databaseUrl())) {
            try {
                assertTrue(stall.parked.await(WAIT.toSeconds(), TimeUnit.SECONDS), "A's writer thread did not park");
                expireWriterLease(db, a.instance());
                holder.setAutoCommit(false);
                try (Statement s = holder.createStatement()) {
                    s.executeQuery("SELECT seq FROM audit_tip WHERE id = 1 FOR UPDATE").close();
                }
                closing = background.submit(() -> {
                    b.close();
                    return null;
                });
                Await.until("B's close to wait for the tip's lock", WAIT, () -> waitingForLocks(db) == 1,
                        () -> waitingForLocks(db) + " backends wait for a lock");
                late = background.submit(() -> a.append(entry(2)));
                // Queued before A's writer wakes, so that it takes the tip for this batch (housekeeping would first
                // renew the lease that B must find lapsed).
                Await.until("A's append to be queued for its stalled writer", WAIT, () -> a.queued() == 1,
                        () -> a.queued() + " queued");
            } finally {
                stall.release.countDown();
            }
            Await.until("A's batch to wait for the tip's lock behind B", WAIT, () -> waitingForLocks(db) == 2,
                    () -> waitingForLocks(db) + " backends wait for a lock");
            holder.commit();
        }
        closing.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        AuditRecord record = late.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertEquals(2, record.seq(), "A's record: " + record);

        SharedAuditLog c = instance(db, signer); // refused as CORRUPT had A appended past B's closed head
        List<AuditCheckpoint> checkpoints = c.checkpoints();
        assertEquals("1:closed", checkpoints.stream().map(k -> k.seq() + (k.closed() ? ":closed" : ""))
                .collect(Collectors.joining(",")), "B closed the chain at record 1, before A's batch got the tip: "
                + checkpoints);
        a.close();
        c.close();
        VerificationReport closed = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.closed());
        assertTrue(closed.intact() && closed.recordsChecked() == 2 && closed.unsignedRecords() == 0,
                "one intact chain of 2 records, all signed: " + closed.summary());
        assertArrayEquals(record.hash(), storedHash(db, 2), "record 2 is stored as A's append returned it: "
                + record.hashHex());
    }

    /**
     * Housekeeping's renewal (every second) re-creates a writer lease row that is gone and extends one that lapsed, so
     * an instance that closes later counts this one.
     */
    @Test
    void aWriterLeaseRowDeletedOrLapsed_isRegisteredAgainByTheRunningInstance(TestBackend db) throws Exception {
        SharedAuditLog a = instance(db, AuditSigner.ecdsa(ecKeyPair()));
        try (Connection c = DriverManager.getConnection(db.databaseUrl());
             PreparedStatement p = c.prepareStatement("DELETE FROM audit_writer WHERE instance = ?")) {
            p.setString(1, a.instance());
            assertEquals(1, p.executeUpdate(), "A's writer lease row");
        }
        Await.until("A's writer lease row to be back and running", WAIT, () -> liveLease(db, a.instance()),
                () -> "live: " + liveLease(db, a.instance()));
        expireWriterLease(db, a.instance());
        Await.until("A's lapsed writer lease to be renewed", WAIT, () -> liveLease(db, a.instance()),
                () -> "live: " + liveLease(db, a.instance()));
        a.close();
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT count(*) FROM audit_writer")) {
            rs.next();
            assertEquals(0, rs.getInt(1), "A dropped its lease on close");
        }
    }

    private static boolean liveLease(TestBackend db, String instance) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl());
             PreparedStatement p = c.prepareStatement("SELECT count(*) FROM audit_writer WHERE instance = ? AND"
                     + " lease_until > clock_timestamp()")) {
            p.setString(1, instance);
            try (ResultSet rs = p.executeQuery()) {
                rs.next();
                return rs.getInt(1) == 1;
            }
        }
    }

    /**
     * The tip's closed flag follows the signed head whoever writes it, also a server still running the code from
     * before the flag (a rolling upgrade): the database keeps it (V2's trigger). Here the head is changed by hand, in
     * a transaction holding the tip's lock as every writer does, and rolled back.
     */
    @Test
    void theTipsClosedFlag_followsTheSignedHead_whoeverWritesIt(TestBackend db) throws Exception {
        SharedAuditLog a = instance(db, AuditSigner.ecdsa(ecKeyPair()));
        a.append(entry(1));
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement()) {
            c.setAutoCommit(false);
            s.executeQuery("SELECT seq FROM audit_tip WHERE id = 1 FOR UPDATE").close();
            assertEquals("false", tipClosedIn(s), "the running chain's tip");
            s.executeUpdate("UPDATE audit_head SET closed = 1 WHERE id = 1");
            assertEquals("true", tipClosedIn(s), "after a writer that knows nothing of the flag closed the head");
            s.executeUpdate("UPDATE audit_head SET ts_millis = ts_millis + 1 WHERE id = 1");
            assertEquals("true", tipClosedIn(s), "after a refresh of the closed head");
            s.executeUpdate("UPDATE audit_head SET closed = 0 WHERE id = 1");
            assertEquals("false", tipClosedIn(s), "after the head was re-opened");
            c.rollback();
        }
        a.close();
        assertTrue(tipClosed(db), "A, the only instance, closed the chain, and the tip says so");
    }

    private static String tipClosedIn(Statement s) throws Exception {
        try (ResultSet rs = s.executeQuery("SELECT closed FROM audit_tip WHERE id = 1")) {
            return rs.next() ? Boolean.toString(rs.getBoolean(1)) : "no tip row";
        }
    }

    private static boolean tipClosed(TestBackend db) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement()) {
            return tipClosedIn(s).equals("true");
        }
    }

    /** What the database shows of an instance stalled for longer than its writer lease. */
    private static void expireWriterLease(TestBackend db, String instance) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl());
             PreparedStatement p = c.prepareStatement("UPDATE audit_writer SET lease_until = clock_timestamp()"
                     + " - interval '1 second' WHERE instance = ?")) {
            p.setString(1, instance);
            assertEquals(1, p.executeUpdate(), "the stalled instance's writer lease row");
        }
    }

    private static int writersRenewedSinceSignerTaken(TestBackend db) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT count(*) FROM audit_writer w, audit_signer g WHERE g.instance ="
                     + " 'the-test' AND w.lease_until - make_interval(secs => " + OPTIONS.writerLease().toMillis()
                     + " / 1000.0) > g.lease_until - interval '1 hour'")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    private static int waitingForLocks(TestBackend db) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                     + " AND wait_event_type = 'Lock'")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    private static byte[] storedHash(TestBackend db, long seq) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl());
             PreparedStatement p = c.prepareStatement("SELECT hash FROM audit_record WHERE seq = ?")) {
            p.setLong(1, seq);
            try (ResultSet rs = p.executeQuery()) {
                return rs.next() ? rs.getBytes(1) : new byte[0];
            }
        }
    }
}
