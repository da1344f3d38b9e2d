package io.tpmphone.server.audit;

import static io.tpmphone.server.audit.AuditTestSupport.ecKeyPair;
import static io.tpmphone.server.audit.AuditTestSupport.entry;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import io.tpmphone.swtpm.testing.Await;
import java.security.KeyPair;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Several server instances on one PostgreSQL database write one audit chain (issue 17, item 3): each instance is an
 * {@link AuditLog#openShared} with a connection pool of its own, as separate server processes would have.
 */
@Timeout(120)
@ExtendWith(PostgresExtension.class)
class SharedAuditChainIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private final List<ServerDatabase> pools = new ArrayList<>();

    @AfterEach
    void closePools() throws Exception {
        for (ServerDatabase pool : pools) {
            pool.close();
        }
    }

    private AuditLog instance(TestBackend db, AuditSigner signer, AuditLog.Options options) throws Exception {
        ServerDatabase pool = ServerDatabase.postgresql(db.databaseUrl(), null, 4);
        pools.add(pool);
        return AuditLog.openShared(pool.dataSource(), pool.description(), signer, options);
    }

    @Test
    void twoInstancesAppendingAtOnce_writeOneGaplessChain_closedByTheLastToStop(TestBackend db) throws Exception {
        KeyPair keys = ecKeyPair();
        AuditSigner signer = AuditSigner.ecdsa(keys);
        AuditLog.Options options = AuditLog.Options.builder().checkpointEvery(50).maxUnsignedAge(Duration.ofHours(1))
                .build();
        AuditLog a = instance(db, signer, options);
        AuditLog b = instance(db, signer, options);
        ConcurrentLinkedQueue<AuditRecord> returned = new ConcurrentLinkedQueue<>();
        ExecutorService workers = Executors.newFixedThreadPool(8);
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                AuditLog log = t % 2 == 0 ? a : b;
                int thread = t;
                futures.add(workers.submit(() -> {
                    start.await();
                    for (int i = 0; i < 60; i++) {
                        returned.add(log.append(entry(thread * 1000 + i)));
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
        assertEquals(480, seqs.size(), "distinct seqs over both instances: " + seqs.size());
        assertEquals(480L, seqs.last(), "gapless from 1: last " + seqs.last() + ", first " + seqs.first());

        VerificationReport running = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.open(java.time.Clock.systemUTC()));
        assertTrue(running.intact(), "the running cluster's chain: " + running.summary());

        a.close();
        VerificationReport oneLeft = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.closed());
        assertEquals(VerificationReport.ProblemKind.NOT_CLOSED, oneLeft.firstProblem().map(
                VerificationReport.Problem::kind).orElse(null), "B still runs, so A did not close the log: "
                + oneLeft.summary());
        b.append(entry(9999));
        b.close();
        VerificationReport closed = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.closed());
        assertTrue(closed.intact(), "closed by the last instance: " + closed.summary());
        assertEquals(481, closed.recordsChecked(), closed.summary());
    }

    /**
     * The signer signs an unsigned tail once it is maxUnsignedAge old. When the signer dies (here: its database
     * connections are cut, so it can neither renew its lease nor write), another instance takes over within the lease
     * and signs what the dead one left unsigned and what it appends itself.
     */
    @Test
    void whenTheCheckpointSignerDies_anotherInstanceTakesOver(TestBackend db) throws Exception {
        KeyPair keys = ecKeyPair();
        AuditSigner signer = AuditSigner.ecdsa(keys);
        // The shortest leases (2 s, 4 s): the take-over and the wait at close are tested, not their default lengths.
        AuditLog.Options options = AuditLog.Options.builder().maxUnsignedAge(Duration.ofMillis(300))
                .signerLease(AuditLog.Options.MIN_SIGNER_LEASE).writerLease(AuditLog.Options.MIN_WRITER_LEASE).build();
        AuditLog first = instance(db, signer, options);
        ServerDatabase firstPool = pools.get(0);
        first.append(entry(1));
        Await.until("the only instance signs its aged record", WAIT, () -> signedUpTo(db) >= 1,
                () -> "signed up to " + signedUpTo(db));
        AuditLog second = instance(db, signer, options);
        firstPool.close(); // the signer dies: no lease renewal, no writes
        AuditRecord late = second.append(entry(2));
        Await.until("another instance takes over and signs record " + late.seq(), WAIT,
                () -> signedUpTo(db) >= late.seq(), () -> "signed up to " + signedUpTo(db));
        // The last live instance stops: it waits for the dead one's writer lease to lapse, then closes the chain
        // (not a plain checkpoint that `audit verify` would call NOT_CLOSED).
        second.close();
        try {
            first.close();
        } catch (AuditException expected) {
            // its database is gone: it could not leave the cluster
        }
        VerificationReport report = AuditVerifier.verify(db.databaseUrl(), Optional.of(keys.getPublic()),
                VerifyOptions.closed());
        assertTrue(report.intact(), "one chain, every record signed, closed by the survivor although the dead"
                + " instance's lease was still running when it was told to stop: " + report.summary());
        assertEquals(0, report.unsignedRecords(), report.summary());
    }

    private static long signedUpTo(TestBackend db) throws Exception {
        try (Connection c = DriverManager.getConnection(db.databaseUrl()); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoint")) {
            rs.next();
            return rs.getLong(1);
        }
    }
}
