package io.tpmphone.server.audit;

import java.io.IOException;
import java.io.OutputStream;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import javax.sql.DataSource;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.FlywayException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link AuditLog} on a PostgreSQL database that several server instances share: one hash chain for all of them
 * (docs/audit.md, "Several instances"; docs/decisions/0008).
 *
 * <p>Each instance keeps its group commit: one writer thread commits whatever is queued in one transaction. A batch
 * locks the chain's tip row ({@code audit_tip}, {@code SELECT … FOR UPDATE}), appends its records with the next
 * seqs (gapless, in commit order, never from a database sequence), signs an interval checkpoint in the same
 * transaction when a seq is a multiple of the cluster's interval (any instance may: they share the key), moves the tip
 * and commits. One instance at a time is the <em>signer</em>, elected by a lease row ({@code audit_signer}, renewed
 * every second, taken over once it has lapsed: {@link AuditLog.Options#signerLease()}, default 3 s): it signs
 * time-based checkpoints (a record unsigned for {@code maxUnsignedAge}) and keeps the signed head fresh
 * ({@code headRefresh}). Every instance holds a writer lease ({@code audit_writer}, {@link
 * AuditLog.Options#writerLease()}, default 10 s); the last instance to close signs the closing checkpoint, the others a
 * plain one over what is unsigned. Lease times are the database's clock, record times the instances' (never going
 * back along the chain).
 *
 * <p>A lease only says who is probably alive: an instance stalled for longer than its writer lease (a GC pause,
 * SIGSTOP, a preempted VM) is counted as gone, and an instance that stops meanwhile closes the chain under it. So the
 * tip row carries the close ({@code audit_tip.closed}, kept equal to the signed head's by a trigger), and every
 * transaction that appends or signs reads it under the tip's lock: a batch that finds the chain closed re-opens it
 * first, as {@link #open} does after a clean close (its writer lease re-registered, a fresh signed head that is not
 * closed), and says so in the log; the chain then reads as a close followed by a restart. A head refresh re-signs a
 * closed head as closed.
 *
 * <p>Durable on return: {@link #append} returns after the batch's commit, and the database must run with
 * {@code synchronous_commit} on. Thread-safe.
 */
final class SharedAuditLog {
    private static final Logger LOG = LoggerFactory.getLogger(SharedAuditLog.class);
    static final String MIGRATIONS = "classpath:db/postgresql/audit";
    private static final long LEASE_POLL_MILLIS = 200;
    private static final long POLL_MILLIS = 50;
    private static final long HOUSEKEEPING_MILLIS = 1000;
    /**
     * A writer lease last renewed longer ago than this (housekeeping renews it every second) may have lapsed: this
     * instance was stalled, or its renewals failed. The next batch renews it under the tip's lock, so that an instance
     * closing after that batch counts this one. Half the shortest writer lease (2 s): a lease renewed more recently
     * has at least that long left.
     */
    private static final long LEASE_DOUBT_NANOS = AuditLog.Options.MIN_WRITER_LEASE.toNanos() / 2;
    private static final String INSERT_RECORD = "INSERT INTO audit_record (" + AuditDatabase.RECORD_COLUMNS
            + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    private static final String INSERT_CHECKPOINT = "INSERT INTO audit_checkpoint ("
            + AuditDatabase.CHECKPOINT_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, 3, ?, ?, ?, ?)";
    private static final String TIP_COLUMNS = "seq, hash, ts_millis, checkpoints, last_checkpoint_seq,"
            + " last_checkpoint_digest, first_unsigned_millis, every, max_unsigned_millis, closed";

    /** The chain's tip as locked by one transaction. Mutable within that transaction only. */
    private static final class Tip {
        long seq;
        byte[] hash;
        long millis;
        long checkpoints;
        long lastCheckpointSeq;
        byte[] lastCheckpointDigest;
        long firstUnsignedMillis;
        int every;
        long maxUnsignedMillis;
        /**
         * Whether the signed head closed the chain: {@code audit_tip.closed}, which the database keeps equal to the
         * head's (V2 migration's trigger); {@link #writeHead} updates this copy the same way.
         */
        boolean closed;
    }

    private final DataSource db;
    private final String description;
    private final AuditSigner signer;
    private final AuditLog.Options options;
    private final String instance;
    private final BlockingQueue<Pending> queue;
    private final ReentrantReadWriteLock gate = new ReentrantReadWriteLock();
    private final Thread writer;
    private volatile boolean closed;
    private volatile boolean draining;
    private volatile long committedSeq;
    private volatile AuditException writerFailure;
    /** For tests only ({@link #stallWriter}): the writer thread parks on it before its next turn. Null otherwise. */
    private volatile Stall stall;
    /** Whether this instance holds the signer's lease (writer thread only). */
    private boolean signing;
    private long housekeptAt;
    /** When this instance sent its last committed writer lease renewal ({@link System#nanoTime}; writer thread). */
    private long leaseRenewedAt;

    private SharedAuditLog(DataSource db, String description, AuditSigner signer, AuditLog.Options options,
            String instance, long seq) {
        this.db = db;
        this.description = description;
        this.signer = signer;
        this.options = options;
        this.instance = instance;
        this.queue = new ArrayBlockingQueue<>(options.queueCapacity());
        this.committedSeq = seq;
        this.leaseRenewedAt = System.nanoTime();
        this.writer = new Thread(this::writeLoop, "audit-writer-shared");
        this.writer.setDaemon(true);
    }

    /**
     * Opens the shared chain in {@code db} for appending, creating or migrating its schema, checking its tip, and
     * registering this instance as a writer.
     */
    static SharedAuditLog open(DataSource db, String description, AuditSigner signer, AuditLog.Options options)
            throws AuditException {
        try {
            Flyway.configure(SharedAuditLog.class.getClassLoader()).dataSource(db).locations(MIGRATIONS)
                    .table("audit_schema_history").failOnMissingLocations(true)
                    // The registry's tables (own history) share the database: start this history at 0, then V1.
                    .baselineOnMigrate(true).baselineVersion("0").load().migrate();
        } catch (FlywayException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot create or migrate the audit schema of "
                    + description + ": " + e.getMessage(), e);
        }
        byte[] id = new byte[8];
        new SecureRandom().nextBytes(id);
        String instance = HexFormat.of().formatHex(id);
        long leaseSent = System.nanoTime();
        try (Connection c = db.getConnection()) {
            requireDurableCommits(c, description);
            c.setAutoCommit(false);
            try {
                try (PreparedStatement p = c.prepareStatement("INSERT INTO audit_tip (id, " + TIP_COLUMNS
                        + ") VALUES (1, 0, ?, 0, 0, 0, ?, -1, ?, ?, false) ON CONFLICT (id) DO NOTHING")) {
                    p.setBytes(1, AuditEncoding.zeroHash());
                    p.setBytes(2, AuditEncoding.zeroHash());
                    p.setInt(3, options.checkpointEvery());
                    p.setLong(4, options.maxUnsignedAge().toMillis());
                    p.executeUpdate();
                }
                Tip tip = lockTip(c);
                checkTip(c, tip, description, signer);
                try (PreparedStatement p = c.prepareStatement("INSERT INTO audit_writer (instance, lease_until)"
                        + " VALUES (?, clock_timestamp() + make_interval(secs => ?))")) {
                    p.setString(1, instance);
                    p.setDouble(2, seconds(options.writerLease()));
                    p.executeUpdate();
                }
                SharedAuditLog log = new SharedAuditLog(db, description, signer, options, instance, tip.seq);
                // A fresh signed head on every open, as on SQLite: a restart is when an older copy could be put back.
                // It re-opens a closed chain (the tip's closed flag follows the head: V2's trigger).
                log.writeHead(c, tip, false);
                c.commit();
                log.leaseRenewedAt = leaseSent;
                log.writer.start();
                LOG.info("shared audit log on {} open: {} records, last checkpoint at {}, instance {}, signer key id"
                        + " {}", description, tip.seq, tip.lastCheckpointSeq, instance, signer.keyId());
                return log;
            } catch (SQLException | GeneralSecurityException | AuditException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        } catch (SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot open the audit log on " + description + ": "
                    + e.getMessage(), e);
        } catch (GeneralSecurityException e) {
            throw new AuditException(AuditException.Code.SIGNING, "cannot sign the head of the audit log on "
                    + description + ": " + e.getMessage(), e);
        }
    }

    private static void requireDurableCommits(Connection c, String description) throws SQLException,
            AuditException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW synchronous_commit")) {
            rs.next();
            if ("off".equalsIgnoreCase(rs.getString(1))) {
                throw new AuditException(AuditException.Code.STORAGE, description + " runs with"
                        + " synchronous_commit=off: an acknowledged audit record could be lost. Set it to on");
            }
        }
    }

    private static Tip lockTip(Connection c) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("SELECT " + TIP_COLUMNS + " FROM audit_tip WHERE id = 1"
                + " FOR UPDATE"); ResultSet rs = p.executeQuery()) {
            if (!rs.next()) {
                throw new SQLException("the audit chain's tip row is missing");
            }
            Tip t = new Tip();
            t.seq = rs.getLong(1);
            t.hash = rs.getBytes(2);
            t.millis = rs.getLong(3);
            t.checkpoints = rs.getLong(4);
            t.lastCheckpointSeq = rs.getLong(5);
            t.lastCheckpointDigest = rs.getBytes(6);
            t.firstUnsignedMillis = rs.getLong(7);
            t.every = rs.getInt(8);
            t.maxUnsignedMillis = rs.getLong(9);
            t.closed = rs.getBoolean(10);
            return t;
        }
    }

    private static void storeTip(Connection c, Tip t) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("UPDATE audit_tip SET seq = ?, hash = ?, ts_millis = ?,"
                + " checkpoints = ?, last_checkpoint_seq = ?, last_checkpoint_digest = ?, first_unsigned_millis = ?"
                + " WHERE id = 1")) {
            p.setLong(1, t.seq);
            p.setBytes(2, t.hash);
            p.setLong(3, t.millis);
            p.setLong(4, t.checkpoints);
            p.setLong(5, t.lastCheckpointSeq);
            p.setBytes(6, t.lastCheckpointDigest);
            p.setLong(7, t.firstUnsignedMillis);
            p.executeUpdate();
        }
    }

    /**
     * The tip against the tables: the last record is the tip's, recomputes, and nothing follows it; the last
     * checkpoint is the tip's; the signed head is this key's, valid, and names nothing the log does not have. A
     * broken tip is refused: extending it would hide the damage.
     */
    private static void checkTip(Connection c, Tip tip, String description, AuditSigner signer)
            throws SQLException, AuditException {
        try (PreparedStatement p = c.prepareStatement("SELECT " + AuditDatabase.rawRecordColumns(c)
                + " FROM audit_record ORDER BY seq DESC LIMIT 1"); ResultSet rs = p.executeQuery()) {
            if (!rs.next()) {
                if (tip.seq != 0) {
                    throw corrupt(description, "the tip names record " + tip.seq + " but there are no records");
                }
            } else {
                long seq = rs.getLong(1);
                byte[] recomputed = AuditEncoding.recordHash(seq, rs.getLong(2), rs.getBytes(3), rs.getBytes(4),
                        rs.getBytes(5), rs.getBytes(6), rs.getBytes(7));
                if (seq != tip.seq || !Arrays.equals(recomputed, rs.getBytes(8))
                        || !Arrays.equals(recomputed, tip.hash)) {
                    throw corrupt(description, "the last record (" + seq + ") is not the tip's (" + tip.seq
                            + ") or its hash does not recompute");
                }
            }
        }
        List<AuditCheckpoint> checkpoints = AuditDatabase.checkpoints(c);
        AuditCheckpoint last = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);
        if (checkpoints.size() != tip.checkpoints || !Arrays.equals(last == null ? AuditEncoding.zeroHash()
                : last.digest(), tip.lastCheckpointDigest)) {
            throw corrupt(description, "its checkpoints (" + checkpoints.size() + ") are not the tip's ("
                    + tip.checkpoints + "): checkpoints were removed or replaced");
        }
        AuditHead head = AuditDatabase.head(c).orElse(null);
        if (head != null) {
            if (!head.keyId().equals(signer.keyId())) {
                throw corrupt(description, "its signed head is signed by key id '" + head.keyId() + "', not this"
                        + " server's (" + signer.keyId() + "): every instance must share the keys");
            }
            if (!AuditLog.signatureValid(head.signedData(), head.signature(), signer)) {
                throw corrupt(description, "its signed head has an invalid signature");
            }
            if (head.seq() > tip.seq || head.checkpoints() > tip.checkpoints) {
                throw corrupt(description, "its signed head covers record " + head.seq() + " and "
                        + head.checkpoints() + " checkpoints, but the chain ends at " + tip.seq + " with "
                        + tip.checkpoints + ": it was cut back");
            }
            if (head.closed() && tip.seq > head.seq()) {
                throw corrupt(description, "records follow the head that closed the log at " + head.seq());
            }
        } else if (!checkpoints.isEmpty()) {
            throw corrupt(description, "its signed head is missing, though checkpoints commit the log to one");
        }
    }

    private static AuditException corrupt(String description, String what) {
        return new AuditException(AuditException.Code.CORRUPT, "the audit log on " + description + " has a broken"
                + " chain head: " + what + "; not appending to it. Run `tpmphone audit verify --database URL` and"
                + " keep the database as evidence");
    }

    AuditRecord append(AuditEntry entry) throws AuditException {
        long timeoutNanos = options.appendTimeout().toNanos();
        long deadline = System.nanoTime() + timeoutNanos;
        Pending pending = new Pending(entry);
        gate.readLock().lock();
        try {
            if (closed) {
                throw new AuditException(AuditException.Code.CLOSED, "the audit log on " + description
                        + " is closed; " + entry.type() + " record for " + entry.subject() + " not recorded");
            }
            if (!queue.offer(pending, timeoutNanos, TimeUnit.NANOSECONDS)) {
                throw new AuditException(AuditException.Code.TIMEOUT, "the audit queue stayed full for "
                        + options.appendTimeout() + "; record not recorded (is the database stalled?)");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AuditException(AuditException.Code.INTERRUPTED, "interrupted while queueing an audit record;"
                    + " not recorded", e);
        } finally {
            gate.readLock().unlock();
        }
        try {
            return pending.future.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw abandoned(pending, AuditException.Code.TIMEOUT, "audit record not committed within "
                    + options.appendTimeout(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw abandoned(pending, AuditException.Code.INTERRUPTED, "interrupted while waiting for an audit commit",
                    e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof AuditException failure) {
                throw new AuditException(failure.code(), failure.getMessage(), failure);
            }
            throw new AuditException(AuditException.Code.STORAGE, "audit writer failed: " + e.getCause(), e);
        }
    }

    private static AuditException abandoned(Pending pending, AuditException.Code code, String what,
            Exception cause) {
        if (pending.state.compareAndSet(Pending.QUEUED, Pending.CANCELLED)) {
            return new AuditException(code, what + "; it was withdrawn and will not be recorded", cause);
        }
        return new AuditException(code, what + "; the writer was already committing it, so it may still appear in "
                + "the log (check with tail)", cause);
    }

    /** The last seq this instance committed or saw at its tip. */
    long size() {
        return committedSeq;
    }

    List<AuditRecord> tail(int n) throws AuditException {
        checkPage(n);
        return read("read the last records", c -> AuditDatabase.tail(c, n));
    }

    List<AuditRecord> records(long fromSeq, int limit) throws AuditException {
        checkPage(limit);
        return read("read records", c -> AuditDatabase.records(c, fromSeq, limit));
    }

    List<AuditCheckpoint> checkpoints() throws AuditException {
        return read("read checkpoints", AuditDatabase::checkpoints);
    }

    java.util.Optional<AuditHead> head() throws AuditException {
        return read("read the signed head", AuditDatabase::head);
    }

    /** The cluster's: the newest checkpoint's time and the records after the tip's last checkpoint. */
    AuditLog.CheckpointState checkpointState() throws AuditException {
        return read("read the checkpoint state", c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT t.seq - t.last_checkpoint_seq, (SELECT k.ts_millis"
                    + " FROM audit_checkpoint k ORDER BY k.n DESC LIMIT 1) FROM audit_tip t WHERE t.id = 1");
                 ResultSet rs = p.executeQuery()) {
                if (!rs.next()) {
                    throw new SQLException("the audit chain's tip row is missing");
                }
                long unsigned = rs.getLong(1);
                long millis = rs.getLong(2);
                boolean none = rs.wasNull();
                return new AuditLog.CheckpointState(none ? Optional.empty()
                        : Optional.of(java.time.Instant.ofEpochMilli(millis)), Math.max(0, unsigned));
            }
        });
    }

    void exportJson(OutputStream out, java.security.PublicKey publicKey) throws AuditException {
        try (Connection c = db.getConnection()) {
            c.setReadOnly(true);
            c.setAutoCommit(false);
            c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ); // one snapshot
            try {
                AuditExport.write(c, out, java.util.Optional.of(publicKey));
            } finally {
                c.rollback();
            }
        } catch (SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot export the audit log on " + description
                    + ": " + e.getMessage(), e);
        } catch (IOException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot write the audit export: "
                    + e.getMessage(), e);
        }
    }

    private interface Reading<T> {
        T run(Connection c) throws SQLException, AuditException;
    }

    private <T> T read(String what, Reading<T> reading) throws AuditException {
        try (Connection c = db.getConnection()) {
            return reading.run(c);
        } catch (SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot " + what + " of the audit log on "
                    + description + ": " + e.getMessage(), e);
        }
    }

    private static void checkPage(int n) {
        if (n < 0 || n > AuditReader.MAX_PAGE) {
            throw new IllegalArgumentException("page size must be 0.." + AuditReader.MAX_PAGE + ", got " + n);
        }
    }

    /**
     * Stops accepting appends, commits what is queued, then leaves the cluster: the closing checkpoint if no other
     * instance holds a writer lease, else a plain checkpoint over what is unsigned; gives up the signer's lease.
     */
    void close() throws AuditException {
        if (closed) {
            return;
        }
        closed = true;
        gate.writeLock().lock();
        gate.writeLock().unlock();
        draining = true;
        try {
            // Plus the longest wait for a dead instance's writer lease (awaitDeadWriters).
            writer.join(options.closeTimeout().toMillis() + options.writerLease().toMillis() + 2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (writer.isAlive()) {
            throw new AuditException(AuditException.Code.TIMEOUT, "the audit writer did not finish within "
                    + options.closeTimeout() + "; queued records may not be committed");
        }
        if (writerFailure != null) {
            throw writerFailure;
        }
        LOG.info("shared audit log on {} closed by instance {} at {} records", description, instance, committedSeq);
    }

    /** See {@link AuditLog#unavailableReason()}. */
    Optional<String> unavailableReason() {
        if (closed || draining) {
            return Optional.of("the audit log is closed");
        }
        if (writerFailure != null || !writer.isAlive()) {
            return Optional.of("the audit writer has stopped after a failure");
        }
        return Optional.empty();
    }

    /** This instance's id, as in {@code audit_writer} and {@code audit_signer}. */
    String instance() {
        return instance;
    }

    /** Appends queued for the writer, not yet taken into a batch (for tests). */
    int queued() {
        return queue.size();
    }

    /**
     * For tests: parks the writer thread at the top of its loop, between batches, until the returned stall is
     * released; it neither appends nor renews its leases meanwhile, as in a GC pause or under SIGSTOP.
     */
    Stall stallWriter() {
        Stall s = new Stall();
        stall = s;
        return s;
    }

    /** A test's stall of the writer thread: {@code parked} counts down once the writer waits on {@code release}. */
    static final class Stall {
        final java.util.concurrent.CountDownLatch parked = new java.util.concurrent.CountDownLatch(1);
        final java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    }

    private void writeLoop() {
        List<Pending> batch = new ArrayList<>(options.maxBatch());
        try {
            while (true) {
                Stall s = stall;
                if (s != null) {
                    stall = null;
                    s.parked.countDown();
                    s.release.await();
                }
                Pending first = queue.poll(POLL_MILLIS, TimeUnit.MILLISECONDS);
                if (first == null) {
                    if (draining && queue.isEmpty()) {
                        break;
                    }
                    housekeep();
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, options.maxBatch() - 1);
                writeBatch(batch);
                batch.clear();
                housekeep();
            }
            leave();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException | Error e) {
            LOG.error("shared audit writer on {} failed; appends will fail", description, e);
            closed = true;
            fail(batch, new AuditException(AuditException.Code.STORAGE, "audit writer failed: " + e, e));
            throw e;
        } finally {
            List<Pending> left = new ArrayList<>();
            queue.drainTo(left);
            fail(left, new AuditException(AuditException.Code.CLOSED, "the audit log closed before this record was"
                    + " committed; not recorded"));
        }
    }

    private void writeBatch(List<Pending> batch) {
        List<Pending> live = new ArrayList<>(batch.size());
        for (Pending pending : batch) {
            if (pending.state.compareAndSet(Pending.QUEUED, Pending.TAKEN)) {
                live.add(pending);
            }
        }
        if (live.isEmpty()) {
            return;
        }
        List<AuditRecord> records = new ArrayList<>(live.size());
        long last;
        long sentAt = 0;
        boolean renewed = false;
        boolean closedUnder = false;
        long closedAt = 0;
        try (Connection c = db.getConnection()) {
            c.setAutoCommit(false);
            try {
                Tip tip = lockTip(c);
                sentAt = System.nanoTime();
                closedUnder = tip.closed;
                closedAt = tip.seq;
                renewed = closedUnder || sentAt - leaseRenewedAt >= LEASE_DOUBT_NANOS;
                if (renewed) {
                    // Counted from this commit on by an instance that closes: it takes the tip's lock after us.
                    renewWriterLease(c);
                }
                if (closedUnder) {
                    // Another instance closed the chain while this one counted as gone (its writer lease lapsed: it
                    // was stalled). Re-open it as an open after a clean close does, then append: the chain reads as
                    // a close followed by a restart, not as records after the head that closed it.
                    writeHead(c, tip, false);
                }
                // Timestamps never go back along the chain, whichever instance's clock is behind.
                long millis = Math.max(options.clock().millis(), tip.millis);
                java.time.Instant timestamp = java.time.Instant.ofEpochMilli(millis);
                long checkpointsBefore = tip.checkpoints;
                long signedBefore = tip.lastCheckpointSeq;
                try (PreparedStatement insert = c.prepareStatement(INSERT_RECORD)) {
                    for (Pending pending : live) {
                        AuditEntry entry = pending.entry;
                        long seq = tip.seq + 1;
                        byte[] hash = AuditEncoding.recordHash(seq, millis, entry.type().name(), entry.subject(),
                                entry.outcome(), entry.detailJson(), tip.hash);
                        records.add(new AuditRecord(seq, timestamp, entry.type(), entry.subject(), entry.outcome(),
                                entry.detailJson(), tip.hash, hash));
                        insert.setLong(1, seq);
                        insert.setLong(2, millis);
                        insert.setString(3, entry.type().name());
                        insert.setString(4, entry.subject());
                        insert.setString(5, entry.outcome());
                        insert.setString(6, entry.detailJson());
                        insert.setBytes(7, tip.hash);
                        insert.setBytes(8, hash);
                        insert.addBatch();
                        tip.seq = seq;
                        tip.hash = hash;
                        tip.millis = millis;
                        if (seq % tip.every == 0) {
                            insert.executeBatch();
                            addCheckpoint(c, tip, false);
                        }
                    }
                    insert.executeBatch();
                }
                if (tip.lastCheckpointSeq == tip.seq) {
                    tip.firstUnsignedMillis = -1;
                } else if (tip.lastCheckpointSeq != signedBefore || tip.firstUnsignedMillis < 0) {
                    tip.firstUnsignedMillis = millis;
                }
                if (tip.checkpoints != checkpointsBefore) {
                    writeHead(c, tip, false);
                }
                storeTip(c, tip);
                c.commit();
                last = tip.seq;
            } catch (SQLException | GeneralSecurityException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            AuditException.Code code = e instanceof GeneralSecurityException ? AuditException.Code.SIGNING
                    : AuditException.Code.STORAGE;
            LOG.warn("audit batch of {} records not committed to {}: {}", live.size(), description, e.toString());
            fail(live, new AuditException(code, "audit record not committed to " + description + ": "
                    + e.getMessage(), e));
            return;
        }
        if (renewed) {
            leaseRenewed(sentAt);
        }
        if (closedUnder) {
            LOG.warn("instance {}: another instance closed the audit chain on {} at record {} while this one counted"
                    + " as gone (its writer lease had lapsed: it was stalled, e.g. a GC pause, SIGSTOP or a preempted"
                    + " VM, or could not renew it); this instance re-opened the chain, as an open after a clean close"
                    + " does, and appended records {}..{}", instance, description, closedAt, closedAt + 1, last);
        }
        committedSeq = Math.max(committedSeq, last);
        for (int i = 0; i < live.size(); i++) {
            live.get(i).future.complete(records.get(i));
        }
    }

    /** Signs a checkpoint at the tip, in the caller's transaction, and moves the tip's checkpoint fields. */
    private void addCheckpoint(Connection c, Tip tip, boolean closing) throws SQLException,
            GeneralSecurityException {
        long n = tip.checkpoints + 1;
        long millis = Math.max(options.clock().millis(), tip.millis);
        byte[] signature = signer.sign(AuditEncoding.checkpointV3SignedData(tip.seq, tip.hash, millis, tip.every,
                tip.maxUnsignedMillis, closing, tip.lastCheckpointDigest));
        try (PreparedStatement p = c.prepareStatement(INSERT_CHECKPOINT)) {
            p.setLong(1, n);
            p.setLong(2, tip.seq);
            p.setBytes(3, tip.hash);
            p.setLong(4, millis);
            p.setString(5, signer.keyId());
            p.setBytes(6, signature);
            p.setInt(7, tip.every);
            p.setLong(8, tip.maxUnsignedMillis);
            p.setInt(9, closing ? 1 : 0);
            p.setBytes(10, tip.lastCheckpointDigest);
            p.executeUpdate();
        }
        AuditCheckpoint checkpoint = new AuditCheckpoint(3, tip.seq, tip.hash, java.time.Instant.ofEpochMilli(millis),
                signer.keyId(), signature, tip.every, tip.maxUnsignedMillis, closing, tip.lastCheckpointDigest);
        tip.checkpoints = n;
        tip.lastCheckpointSeq = tip.seq;
        tip.lastCheckpointDigest = checkpoint.digest();
        tip.firstUnsignedMillis = -1;
        LOG.debug("audit checkpoint {} at {}{} signed by instance {}", n, tip.seq, closing ? " (closed)" : "",
                instance);
    }

    /**
     * Signs and stores the head at the tip in the caller's transaction (inserted the first time, then updated). The
     * database sets the tip row's closed flag to match (V2's trigger); this sets {@code tip.closed} likewise.
     */
    private void writeHead(Connection c, Tip tip, boolean closing) throws SQLException, GeneralSecurityException {
        long seq = tip.seq;
        byte[] hash = tip.hash;
        long checkpoints = tip.checkpoints;
        byte[] checkpointDigest = tip.lastCheckpointDigest;
        tip.closed = closing;
        long millis = options.clock().millis();
        long refresh = options.headRefresh().toMillis();
        byte[] signature = signer.sign(AuditEncoding.headSignedData(seq, hash, millis, checkpoints, checkpointDigest,
                refresh, closing));
        // Update, and insert only the first time: the table's trigger refuses a second INSERT (PostgreSQL fires it
        // for INSERT ... ON CONFLICT too).
        try (PreparedStatement update = c.prepareStatement("UPDATE audit_head SET seq = ?, hash = ?, ts_millis = ?,"
                + " checkpoints = ?, checkpoint_digest = ?, refresh_millis = ?, closed = ?, key_id = ?, signature = ?"
                + " WHERE id = 1");
             PreparedStatement insert = c.prepareStatement("INSERT INTO audit_head (seq, hash, ts_millis,"
                     + " checkpoints, checkpoint_digest, refresh_millis, closed, key_id, signature, id)"
                     + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)")) {
            for (PreparedStatement p : List.of(update, insert)) {
                p.setLong(1, seq);
                p.setBytes(2, hash);
                p.setLong(3, millis);
                p.setLong(4, checkpoints);
                p.setBytes(5, checkpointDigest);
                p.setLong(6, refresh);
                p.setInt(7, closing ? 1 : 0);
                p.setString(8, signer.keyId());
                p.setBytes(9, signature);
            }
            if (update.executeUpdate() == 0) {
                insert.executeUpdate();
            }
        }
    }

    /**
     * About once a second: renews this instance's writer lease, takes or renews the signer's lease, and as the
     * signer signs an aged unsigned tail and refreshes a head that is due. Failures are logged and retried.
     */
    private void housekeep() {
        long now = System.nanoTime() / 1_000_000;
        if (now - housekeptAt < HOUSEKEEPING_MILLIS && housekeptAt != 0) {
            return;
        }
        housekeptAt = now;
        try (Connection c = db.getConnection()) {
            long sent = System.nanoTime();
            renewWriterLease(c);
            leaseRenewed(sent);
            boolean was = signing;
            try (PreparedStatement p = c.prepareStatement("INSERT INTO audit_signer (id, instance, lease_until)"
                    + " VALUES (1, ?, clock_timestamp() + make_interval(secs => ?)) ON CONFLICT (id) DO UPDATE SET"
                    + " instance = excluded.instance, lease_until = excluded.lease_until"
                    + " WHERE audit_signer.instance = excluded.instance OR audit_signer.lease_until < clock_timestamp()")) {
                p.setString(1, instance);
                p.setDouble(2, seconds(options.signerLease()));
                signing = p.executeUpdate() == 1;
            }
            if (signing != was) {
                LOG.info("instance {} {} the audit log's checkpoint signer", instance, signing ? "is now" : "is no"
                        + " longer");
            }
            if (signing) {
                signDue(c);
            }
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            LOG.warn("audit housekeeping on {} failed (retrying): {}", description, e.toString());
        }
    }

    /**
     * Renews this instance's writer lease in the caller's transaction, re-registering it if it was deleted and
     * extending it from now if it lapsed (an instance that closes counts it again once this commits).
     */
    private void renewWriterLease(Connection c) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("INSERT INTO audit_writer (instance, lease_until) VALUES"
                + " (?, clock_timestamp() + make_interval(secs => ?)) ON CONFLICT (instance) DO UPDATE SET"
                + " lease_until = excluded.lease_until")) {
            p.setString(1, instance);
            p.setDouble(2, seconds(options.writerLease()));
            p.executeUpdate();
        }
    }

    /**
     * Notes a committed writer lease renewal sent at {@code sent} ({@link System#nanoTime}), and says so when the
     * previous one was longer ago than the lease: the lease had lapsed, so this instance counted as gone meanwhile.
     */
    private void leaseRenewed(long sent) {
        long sinceMillis = TimeUnit.NANOSECONDS.toMillis(sent - leaseRenewedAt);
        leaseRenewedAt = sent;
        if (sinceMillis >= options.writerLease().toMillis()) {
            LOG.warn("instance {}: its audit writer lease had lapsed (renewed again {} ms after the previous renewal,"
                    + " lease {} s): it was stalled (GC pause, SIGSTOP, preempted VM?) or could not reach {}; an"
                    + " instance that stopped meanwhile may have closed the chain, which this one re-opens before it"
                    + " appends", instance, sinceMillis, wholeOrFraction(options.writerLease()), description);
        }
    }

    /** The signer's duties, under the tip's lock: a time checkpoint over an aged tail, a fresh head when due. */
    private void signDue(Connection c) throws SQLException, GeneralSecurityException {
        c.setAutoCommit(false);
        try {
            Tip tip = lockTip(c);
            long now = options.clock().millis();
            boolean changed = false;
            if (tip.seq > tip.lastCheckpointSeq && tip.firstUnsignedMillis >= 0
                    && now - tip.firstUnsignedMillis >= tip.maxUnsignedMillis) {
                addCheckpoint(c, tip, false);
                writeHead(c, tip, false);
                storeTip(c, tip);
                changed = true;
            } else {
                AuditHead head = AuditDatabase.head(c).orElse(null);
                long age = head == null ? Long.MAX_VALUE : now - head.timestamp().toEpochMilli();
                // Well before the refresh interval, so a verifier never sees a head older than it.
                if (age < 0 || age >= options.headRefresh().toMillis() / 2) {
                    // A closed head stays closed: re-signing it does not re-open the chain (nothing was appended
                    // since the close; the batch that appends re-opens it).
                    writeHead(c, tip, tip.closed);
                    changed = true;
                }
            }
            if (changed) {
                c.commit();
            } else {
                c.rollback();
            }
            committedSeq = Math.max(committedSeq, tip.seq);
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            c.rollback();
            throw e;
        } finally {
            c.setAutoCommit(true);
        }
    }

    /**
     * On close, under the tip's lock: drops this instance's writer lease; if no other instance holds one, signs the
     * closing checkpoint (and a closed head), else a plain checkpoint over an unsigned tail; gives up the signer's
     * lease.
     */
    private void leave() {
        try (Connection c = db.getConnection()) {
            awaitDeadWriters(c);
            c.setAutoCommit(false);
            try {
                Tip tip = lockTip(c);
                try (PreparedStatement p = c.prepareStatement("DELETE FROM audit_writer WHERE instance = ?")) {
                    p.setString(1, instance);
                    p.executeUpdate();
                }
                int others;
                try (PreparedStatement p = c.prepareStatement(
                        "SELECT count(*) FROM audit_writer WHERE lease_until > clock_timestamp()");
                     ResultSet rs = p.executeQuery()) {
                    rs.next();
                    others = rs.getInt(1);
                }
                if (others > 0) {
                    LOG.info("instance {} leaves the audit chain while {} other instance(s) hold a writer lease: it"
                            + " signs a plain checkpoint; the last instance to stop signs the closing one", instance,
                            others);
                }
                if (others == 0) {
                    AuditCheckpoint lastCheckpoint = lastCheckpoint(c, tip);
                    if (lastCheckpoint == null || !lastCheckpoint.closed() || lastCheckpoint.seq() != tip.seq) {
                        addCheckpoint(c, tip, true);
                    }
                    writeHead(c, tip, true);
                } else if (tip.seq > tip.lastCheckpointSeq) {
                    addCheckpoint(c, tip, false);
                    writeHead(c, tip, false);
                }
                storeTip(c, tip);
                try (PreparedStatement p = c.prepareStatement("DELETE FROM audit_signer WHERE instance = ?")) {
                    p.setString(1, instance);
                    p.executeUpdate();
                }
                c.commit();
                committedSeq = Math.max(committedSeq, tip.seq);
            } catch (SQLException | GeneralSecurityException | RuntimeException e) {
                c.rollback();
                throw e;
            }
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            writerFailure = new AuditException(e instanceof GeneralSecurityException ? AuditException.Code.SIGNING
                    : AuditException.Code.STORAGE, "the closing checkpoint of the audit log on " + description
                    + " was not written: " + e.getMessage(), e);
            LOG.warn("{}", writerFailure.getMessage());
        }
    }

    /**
     * Before leaving: if every other writer lease is one that stopped being renewed (its instance died or hangs: a
     * live instance renews every second), waits until those leases lapse, at most the writer lease
     * ({@link AuditLog.Options#writerLease()}), so that the last instance an operator stops after a crash closes the
     * chain instead of signing a plain checkpoint. Returns at once while any other instance renews its lease (it will
     * close the chain) or when there is none. Polls the database's clock (a lease is a time in the database: there is
     * no event to wait on).
     */
    private void awaitDeadWriters(Connection c) throws SQLException {
        long deadline = System.nanoTime() + options.writerLease().toNanos() + TimeUnit.SECONDS.toNanos(1);
        boolean said = false;
        while (true) {
            int live;
            int stale;
            try (PreparedStatement p = c.prepareStatement("SELECT count(*) FILTER (WHERE lease_until > clock_timestamp()"
                    + " + make_interval(secs => ?)), count(*) FILTER (WHERE lease_until > clock_timestamp())"
                    + " FROM audit_writer WHERE instance <> ?")) {
                // Live: renewed within the last signer lease (a lease not renewed that long is a dead instance's, as
                // the signer's is: whoever took over a dead signer's lease finds its writer lease dead too).
                p.setDouble(1, seconds(options.writerLease()) - seconds(options.signerLease()));
                p.setString(2, instance);
                try (ResultSet rs = p.executeQuery()) {
                    rs.next();
                    live = rs.getInt(1);
                    stale = rs.getInt(2) - live;
                }
            }
            if (live > 0 || stale == 0) {
                if (said) {
                    LOG.info("instance {}: {}", instance, live > 0 ? "another instance renews its writer lease: it"
                            + " will close the chain" : "the stale writer leases lapsed");
                }
                return;
            }
            if (System.nanoTime() - deadline >= 0) {
                LOG.warn("instance {}: {} writer lease(s) not renewed for {} s did not lapse in time; leaving with a"
                        + " plain checkpoint", instance, stale, wholeOrFraction(options.signerLease()));
                return;
            }
            if (!said) {
                LOG.info("instance {}: waiting up to {} s for the writer lease(s) of {} instance(s) that stopped"
                        + " renewing them (died?) to lapse, so as to close the audit chain", instance,
                        wholeOrFraction(options.writerLease()), stale);
                said = true;
            }
            try {
                Thread.sleep(LEASE_POLL_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** A lease as PostgreSQL's {@code make_interval(secs => …)} takes it (double precision seconds). */
    private static double seconds(java.time.Duration lease) {
        return lease.toMillis() / 1000.0;
    }

    /** Seconds for a log line: {@code 10}, or {@code 2.5} for a lease that is not whole seconds. */
    private static String wholeOrFraction(java.time.Duration lease) {
        return lease.toMillis() % 1000 == 0 ? Long.toString(lease.toSeconds()) : Double.toString(seconds(lease));
    }

    private static AuditCheckpoint lastCheckpoint(Connection c, Tip tip) throws SQLException {
        if (tip.checkpoints == 0) {
            return null;
        }
        List<AuditCheckpoint> all = AuditDatabase.checkpoints(c);
        return all.isEmpty() ? null : all.get(all.size() - 1);
    }

    private static void fail(List<Pending> pendings, AuditException failure) {
        for (Pending pending : pendings) {
            pending.future.completeExceptionally(failure);
        }
    }

    /** An append waiting for the writer. The state decides, once, whether the writer or the caller owns it. */
    private static final class Pending {
        static final int QUEUED = 0;
        static final int TAKEN = 1;
        static final int CANCELLED = 2;
        final AuditEntry entry;
        final CompletableFuture<AuditRecord> future = new CompletableFuture<>();
        final AtomicInteger state = new AtomicInteger(QUEUED);

        Pending(AuditEntry entry) {
            this.entry = entry;
        }
    }
}
