package io.tpmphone.server.audit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.security.KeyPair;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Concurrent durable appends through group commit, on a real SQLite file. */
class AuditLogConcurrencyIT {
    static final int THREADS = 16;
    static final int PER_THREAD = 200;

    @TempDir
    Path dir;

    @Test
    void sixteenThreadsTimesTwoHundred_allLandWithContiguousSeqAndAValidChain() throws Exception {
        Path db = dir.resolve("audit.db");
        KeyPair keys = AuditTestSupport.ecKeyPair();
        ConcurrentLinkedQueue<AuditRecord> returned = new ConcurrentLinkedQueue<>();
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        // Only the interval and close sign here: a time-based checkpoint would depend on how fast this machine is.
        AuditLog.Options options = AuditLog.Options.builder().maxUnsignedAge(java.time.Duration.ofHours(1)).build();
        try (AuditLog log = AuditLog.open(db, AuditSigner.ecdsa(keys), options)) {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int thread = t;
                futures.add(pool.submit(() -> {
                    start.await();
                    for (int i = 0; i < PER_THREAD; i++) {
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
            assertEquals(THREADS * PER_THREAD, log.size(), () -> THREADS + " threads × " + PER_THREAD
                    + " appends stored; the callers were told of " + returned.size());
            TreeSet<Long> seqs = new TreeSet<>();
            returned.forEach(r -> seqs.add(r.seq()));
            assertEquals(THREADS * PER_THREAD, seqs.size(), () -> "every caller got its own seq; " + returned.size()
                    + " appends returned " + seqs.size() + " distinct seqs from " + seqs.first() + " to "
                    + seqs.last());
            assertEquals(1L, seqs.first(), () -> "the seqs start at 1; " + seqs.size() + " distinct up to "
                    + seqs.last());
            assertEquals((long) THREADS * PER_THREAD, seqs.last(), () -> "the seqs are contiguous; " + seqs.size()
                    + " distinct from " + seqs.first());
            // what callers were told is what is stored
            for (AuditRecord r : returned) {
                if (r.seq() % 97 == 0) {
                    assertEquals(r, log.records(r.seq(), 1).get(0), () -> "record " + r.seq() + " as stored is as "
                            + "its caller was told");
                }
            }
            List<AuditRecord> page = log.records(1000, 2);
            assertArrayEquals(page.get(0).hash(), page.get(1).prevHash(), () -> "record " + page.get(1).seq()
                    + " chains to record " + page.get(0).seq() + ": " + page);
        } finally {
            pool.shutdownNow();
        }
        VerificationReport report = AuditVerifier.verify(db, Optional.of(keys.getPublic()));
        assertTrue(report.intact(), report.summary());
        assertEquals(THREADS * PER_THREAD, report.recordsChecked(), report::summary);
        assertEquals(4, report.checkpointsChecked(), "1000, 2000, 3000 and 3200 on close: " + report.summary());
    }
}
