package io.tpmphone.server.audit;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.GeneralSecurityException;
import java.security.Signature;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.sqlite.SQLiteDataSource;

/**
 * The attestation server's tamper-evident audit log: an append-only, hash-chained table of {@link AuditRecord}s in
 * an SQLite database (WAL, {@code synchronous=FULL}), with signed {@link AuditCheckpoint}s every
 * {@link Options#checkpointEvery()} records and on {@link #close()}. Encodings and threat model:
 * {@code docs/audit.md}.
 *
 * <p><b>Durability:</b> {@link #append} returns only after the record's transaction is committed and fsynced. A
 * single writer thread owns the database connection and commits whatever is queued in one transaction (group
 * commit), so concurrent callers share an fsync.
 *
 * <p><b>Thread-safety:</b> all methods may be called from any thread. Appends are ordered by the writer; the seq a
 * caller gets reflects commit order. Only one {@code AuditLog} may write a database at a time (enforced with a
 * lock on {@code <database>.lock}, across processes too); {@link AuditReader} and {@link AuditVerifier} may read
 * concurrently.
 *
 * <p><b>On open</b> the schema is created or migrated (Flyway, {@code classpath:db/audit}) and the chain head is
 * checked (last record's hash recomputes and links to the one before, seq has no gaps, last checkpoint matches); a
 * broken head is refused with {@link AuditException.Code#CORRUPT}, because extending it would hide the damage.
 * Only the head is checked: run {@link AuditVerifier} for the whole chain.
 */
public final class AuditLog implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AuditLog.class);
    private static final long POLL_MILLIS = 50;
    /** The database file and the files SQLite keeps next to it. */
    private static final List<String> SQLITE_FILE_SUFFIXES = List.of("", "-wal", "-shm", "-journal");
    private static final String INSERT_RECORD = "INSERT INTO audit_record (" + AuditDatabase.RECORD_COLUMNS
            + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    private static final String INSERT_CHECKPOINT = "INSERT INTO audit_checkpoint ("
            + AuditDatabase.CHECKPOINT_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, 3, ?, ?, ?, ?)";
    // Update, and insert only the first time: the table refuses a second INSERT (INSERT OR REPLACE would bypass
    // its other triggers).
    private static final String UPDATE_HEAD = "UPDATE audit_head SET seq = ?, hash = ?, ts_millis = ?, checkpoints = ?,"
            + " checkpoint_digest = ?, refresh_millis = ?, closed = ?, key_id = ?, signature = ? WHERE id = 1";
    private static final String INSERT_HEAD = "INSERT INTO audit_head (seq, hash, ts_millis, checkpoints, "
            + "checkpoint_digest, refresh_millis, closed, key_id, signature, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)";

    /** The shared chain on PostgreSQL this log delegates to, or null for an SQLite file. */
    private final SharedAuditLog shared;
    private final Path file;
    private final AuditSigner signer;
    private final Options options;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Connection connection;
    private final PreparedStatement insertRecord;
    private final PreparedStatement insertCheckpoint;
    private final PreparedStatement updateHead;
    private final PreparedStatement insertHead;
    private final AuditReader reader;
    private final BlockingQueue<Pending> queue;
    private final ReentrantReadWriteLock gate = new ReentrantReadWriteLock();
    private final Thread writer;
    private volatile boolean closed;
    private volatile boolean draining;
    private volatile long committedSeq;
    /** The last checkpoint's seq and time (-1: none), published after its commit for {@link #checkpointState()}. */
    private volatile long signedSeq;
    private volatile long signedMillis = -1;

    // Owned by the writer thread after construction.
    private long headSeq;
    private byte[] headHash;
    private long headMillis;
    private long lastCheckpointSeq;
    private long checkpointCount;
    /** SHA-256 of the last checkpoint's signed data; zeros if there is none. The next checkpoint covers it. */
    private byte[] lastCheckpointDigest;
    private boolean lastCheckpointClosed;
    /** Whether the last checkpoint is v3 (so the log is committed to its signed head). */
    private boolean lastCheckpointV3;
    /** The seq at which the interval requires the next checkpoint. */
    private long nextCheckpointSeq;
    /** When the head was last signed (committed), or -1: the writer re-signs it every {@code headRefresh}. */
    private long headSignedMillis = -1;
    /** Timestamp of record lastCheckpointSeq + 1 if it exists (the oldest unsigned record), else -1. */
    private long firstUnsignedMillis;

    private AuditLog(Path file, AuditSigner signer, Options options, FileChannel lockChannel, FileLock lock,
            Connection connection, AuditReader reader, Head head) throws SQLException {
        this.shared = null;
        this.file = file;
        this.signer = signer;
        this.options = options;
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.connection = connection;
        this.reader = reader;
        this.insertRecord = connection.prepareStatement(INSERT_RECORD);
        this.insertCheckpoint = connection.prepareStatement(INSERT_CHECKPOINT);
        this.updateHead = connection.prepareStatement(UPDATE_HEAD);
        this.insertHead = connection.prepareStatement(INSERT_HEAD);
        this.queue = new ArrayBlockingQueue<>(options.queueCapacity());
        this.headSeq = head.seq;
        this.headHash = head.hash;
        this.headMillis = head.millis;
        this.headSignedMillis = head.signedHead == null ? -1 : head.signedHead.timestamp().toEpochMilli();
        this.lastCheckpointSeq = head.lastCheckpointSeq;
        this.checkpointCount = head.checkpointCount;
        this.lastCheckpointDigest = head.lastCheckpoint == null ? AuditEncoding.zeroHash()
                : head.lastCheckpoint.digest();
        this.lastCheckpointClosed = head.lastCheckpoint != null && head.lastCheckpoint.closed();
        this.lastCheckpointV3 = head.lastCheckpoint != null && head.lastCheckpoint.version() == 3;
        int interval = head.lastCheckpoint != null && head.lastCheckpoint.chained() ? head.lastCheckpoint.every()
                : options.checkpointEvery();
        this.nextCheckpointSeq = nextMultiple(head.lastCheckpointSeq, interval);
        this.firstUnsignedMillis = head.firstUnsignedMillis;
        this.committedSeq = head.seq;
        this.signedSeq = head.lastCheckpointSeq;
        this.signedMillis = head.lastCheckpoint == null ? -1 : head.lastCheckpoint.timestamp().toEpochMilli();
        this.writer = new Thread(this::writeLoop, "audit-writer-" + file.getFileName());
        this.writer.setDaemon(true); // close() drains; a daemon never keeps a JVM alive for an unclosed log
    }

    private AuditLog(SharedAuditLog shared, AuditSigner signer) {
        this.shared = shared;
        this.signer = signer;
        this.file = null;
        this.options = null;
        this.lockChannel = null;
        this.lock = null;
        this.connection = null;
        this.insertRecord = null;
        this.insertCheckpoint = null;
        this.updateHead = null;
        this.insertHead = null;
        this.reader = null;
        this.queue = null;
        this.writer = null;
    }

    /**
     * Opens the audit log on a PostgreSQL database that several server instances share, creating or migrating its
     * schema ({@code db/postgresql/audit}): one hash chain for all of them. Each instance appends in batches under a
     * row lock on the chain's tip (gapless seqs in commit order); interval checkpoints are signed in the batch that
     * reaches them, time-based checkpoints and the signed head by the one instance that holds the signer's lease; the
     * last instance to close signs the closing checkpoint (docs/audit.md, "Several instances"). Every instance must
     * sign with the same key.
     *
     * @param database    a pool of connections to the database (the caller closes it after this log)
     * @param description the database for messages, without credentials
     * @throws AuditException {@code STORAGE} if it cannot be reached, migrated, or commits are not durable,
     *                        {@code CORRUPT} if the chain's tip does not check out
     */
    public static AuditLog openShared(javax.sql.DataSource database, String description, AuditSigner signer,
            Options options) throws AuditException {
        Objects.requireNonNull(database, "database");
        Objects.requireNonNull(description, "description");
        Objects.requireNonNull(signer, "signer");
        Objects.requireNonNull(options, "options");
        return new AuditLog(SharedAuditLog.open(database, description, signer, options), signer);
    }

    /**
     * Opens (creating if needed) the audit database at {@code databaseFile} for appending. The database, the files
     * SQLite keeps next to it and the lock file are owner-only (0600) from their creation; existing ones are
     * restricted. Put it in an owner-only directory.
     *
     * @param signer  signs checkpoints; its key id is stored with each
     * @param options timeouts, checkpoint interval, batch sizes
     * @throws AuditException {@code ALREADY_OPEN} if another log writes the file, {@code STORAGE} if it cannot be
     *                        created or migrated, {@code CORRUPT} if its chain head does not check out
     */
    public static AuditLog open(Path databaseFile, AuditSigner signer, Options options) throws AuditException {
        Objects.requireNonNull(databaseFile, "databaseFile");
        Objects.requireNonNull(signer, "signer");
        Objects.requireNonNull(options, "options");
        Path file = databaseFile.toAbsolutePath();
        // A separate lock file: a JVM lock on the database itself is a POSIX fcntl lock, and closing that
        // descriptor would drop SQLite's own locks on the file.
        Path lockFile = file.resolveSibling(file.getFileName() + ".lock");
        FileChannel lockChannel = null;
        FileLock lock = null;
        Connection connection = null;
        AuditReader reader = null;
        try {
            // SQLite creates its -wal, -shm and -journal files with the mode of the database file: create that 0600
            // before SQLite opens it (an empty file is a new database), and restrict files of earlier versions.
            for (String suffix : SQLITE_FILE_SUFFIXES) {
                OwnerOnlyFiles.restrict(file.resolveSibling(file.getFileName() + suffix));
            }
            OwnerOnlyFiles.createPrivateFile(file);
            OwnerOnlyFiles.createPrivateFile(lockFile);
            lockChannel = FileChannel.open(lockFile, StandardOpenOption.WRITE);
            try {
                lock = lockChannel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null;
            }
            if (lock == null) {
                throw new AuditException(AuditException.Code.ALREADY_OPEN, "audit database " + file
                        + " is already open for appending by another AuditLog (lock " + lockFile
                        + "); close it first, or read with AuditReader");
            }
            SQLiteDataSource dataSource = AuditDatabase.writerDataSource(file, options.busyTimeout());
            AuditDatabase.migrate(dataSource, file);
            connection = dataSource.getConnection();
            AuditDatabase.requireDurableSettings(connection, file);
            connection.setAutoCommit(false);
            Head head = checkHead(connection, file, signer);
            connection.rollback(); // end the read transaction of checkHead
            reader = AuditReader.open(file, options.busyTimeout());
            AuditLog log = new AuditLog(file, signer, options, lockChannel, lock, connection, reader, head);
            if (head.seq > 0 && (!log.lastCheckpointV3 || head.lastCheckpointSeq < head.seq)) {
                // Sign what a crash or an older version left unsigned (or signed only in v1 or v2) before appending:
                // from here on, every record is covered by the chain, and a v3 checkpoint commits the log to its
                // signed head, so cutting the log back and deleting the head shows.
                log.openCheckpoint();
            } else {
                // A fresh signed head on every open: a verifier of the running log needs one younger than the
                // refresh interval, and a restart is when an older copy of the file would be brought back.
                log.openHead();
            }
            log.writer.start();
            LOG.info("audit log {} open: {} records, last checkpoint at {}, signer key id {}", file, head.seq,
                    head.lastCheckpointSeq, signer.keyId());
            return log;
        } catch (IOException e) {
            release(lock, lockChannel, connection, reader);
            throw new AuditException(AuditException.Code.STORAGE, "cannot create owner-only or lock " + file
                    + " (lock " + lockFile + "): " + e.getMessage(), e);
        } catch (SQLException e) {
            release(lock, lockChannel, connection, reader);
            throw new AuditException(AuditException.Code.STORAGE, "cannot open audit database " + file + ": "
                    + e.getMessage(), e);
        } catch (AuditException | RuntimeException e) {
            release(lock, lockChannel, connection, reader);
            throw e;
        }
    }

    /**
     * Appends {@code entry} and returns the record once it is durably committed, waiting at most
     * {@link Options#appendTimeout()}.
     *
     * @throws AuditException {@code TIMEOUT} (the message says whether the record may still be committed),
     *                        {@code INTERRUPTED}, {@code CLOSED}, {@code STORAGE} or {@code SIGNING}
     */
    public AuditRecord append(AuditEntry entry) throws AuditException {
        Objects.requireNonNull(entry, "entry");
        if (shared != null) {
            return shared.append(entry);
        }
        long timeoutNanos = options.appendTimeout().toNanos();
        long deadline = System.nanoTime() + timeoutNanos;
        Pending pending = new Pending(entry);
        gate.readLock().lock();
        try {
            if (closed) {
                throw new AuditException(AuditException.Code.CLOSED, "audit log " + file + " is closed; "
                        + entry.type() + " record for " + entry.subject() + " not recorded");
            }
            if (!queue.offer(pending, timeoutNanos, TimeUnit.NANOSECONDS)) {
                throw new AuditException(AuditException.Code.TIMEOUT, "audit queue of " + file + " stayed full for "
                        + options.appendTimeout() + "; record not recorded (is the disk stalled?)");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AuditException(AuditException.Code.INTERRUPTED, "interrupted while queueing an audit record; "
                    + "not recorded", e);
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

    private AuditException abandoned(Pending pending, AuditException.Code code, String what, Exception cause) {
        if (pending.state.compareAndSet(Pending.QUEUED, Pending.CANCELLED)) {
            return new AuditException(code, what + "; it was withdrawn and will not be recorded", cause);
        }
        return new AuditException(code, what + "; the writer was already committing it, so it may still appear in "
                + "the log (check with tail)", cause);
    }

    /**
     * Number of committed records, which is also the last seq (0 for an empty log). Does not block. On a shared
     * chain ({@link #openShared}): the highest seq this instance committed or saw, which others may have passed.
     */
    public long size() {
        if (shared != null) {
            return shared.size();
        }
        return committedSeq;
    }

    /**
     * Why this log cannot commit a record now (closed, or its writer stopped after a failure), or empty when its
     * writer runs. Does not block; says nothing about a database that is slow (check that separately).
     */
    public Optional<String> unavailableReason() {
        if (shared != null) {
            return shared.unavailableReason();
        }
        if (closed || draining) {
            return Optional.of("the audit log is closed");
        }
        if (!writer.isAlive()) {
            return Optional.of("the audit writer has stopped");
        }
        return Optional.empty();
    }

    /**
     * How far the signed checkpoints have come: when the last one was signed and how many committed records follow
     * it unsigned. On a shared chain the cluster's (one read of the database), else this log's own (no I/O).
     */
    public CheckpointState checkpointState() throws AuditException {
        if (shared != null) {
            return shared.checkpointState();
        }
        long millis = signedMillis;
        long signed = signedSeq;
        return new CheckpointState(millis < 0 ? Optional.empty() : Optional.of(Instant.ofEpochMilli(millis)),
                Math.max(0, committedSeq - signed));
    }

    /**
     * The signed checkpoints' progress (metrics: checkpoint age).
     *
     * @param lastCheckpoint  when the newest checkpoint was signed (its timestamp); empty if there is none yet
     * @param unsignedRecords committed records after it, which no checkpoint covers yet
     */
    public record CheckpointState(Optional<Instant> lastCheckpoint, long unsignedRecords) {
        public CheckpointState {
            Objects.requireNonNull(lastCheckpoint, "lastCheckpoint");
        }
    }

    /** The last {@code n} (0..{@value AuditReader#MAX_PAGE}) committed records in seq order. */
    public List<AuditRecord> tail(int n) throws AuditException {
        if (shared != null) {
            return shared.tail(n);
        }
        return reader.tail(n);
    }

    /** One page: up to {@code limit} (0..{@value AuditReader#MAX_PAGE}) records from {@code fromSeq} on. */
    public List<AuditRecord> records(long fromSeq, int limit) throws AuditException {
        if (shared != null) {
            return shared.records(fromSeq, limit);
        }
        return reader.records(fromSeq, limit);
    }

    /** All committed checkpoints in seq order. */
    public List<AuditCheckpoint> checkpoints() throws AuditException {
        if (shared != null) {
            return shared.checkpoints();
        }
        return reader.checkpoints();
    }

    /** The signed head as stored (on the shared chain: the cluster's), if the log has one. */
    public java.util.Optional<AuditHead> signedHead() throws AuditException {
        if (shared != null) {
            return shared.head();
        }
        return reader.head();
    }

    /**
     * All committed records and checkpoints as JSON for {@link AuditVerifier#verifyExport}, with this log's checkpoint
     * key as {@code "publicKey"}. Does not close out.
     */
    public void exportJson(OutputStream out) throws AuditException {
        if (shared != null) {
            shared.exportJson(out, signer.publicKey());
            return;
        }
        reader.exportJson(out, java.util.Optional.of(signer.publicKey()));
    }

    /** The public key that verifies this log's new checkpoints. */
    public java.security.PublicKey checkpointKey() {
        return signer.publicKey();
    }

    /**
     * Stops accepting appends, commits everything already queued, writes the closing checkpoint (v2, marked
     * closed, at the head — also for an empty log, at seq 0) unless the last checkpoint already is one at the head,
     * and closes the database. A verifier refuses a log whose last checkpoint is not a closing one at its head
     * (unless told the log is open). Waits at most {@link Options#closeTimeout()} for the writer.
     * Idempotent.
     */
    @Override
    public void close() throws AuditException {
        if (shared != null) {
            shared.close();
            return;
        }
        if (closed) {
            return;
        }
        closed = true;
        gate.writeLock().lock(); // waits for appends that passed the closed check to finish queueing
        gate.writeLock().unlock();
        // The writer's connection must be the last one to close: only then does SQLite checkpoint the WAL into the
        // database file and delete it, so that the .db file alone holds every record.
        reader.close();
        draining = true;
        try {
            writer.join(options.closeTimeout().toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        boolean stopped = !writer.isAlive();
        if (stopped) {
            release(lock, lockChannel, null, null);
        } else {
            throw new AuditException(AuditException.Code.TIMEOUT, "audit writer of " + file + " did not finish within "
                    + options.closeTimeout() + "; queued records may not be committed");
        }
        LOG.info("audit log {} closed at {} records", file, committedSeq);
    }

    private void writeLoop() {
        List<Pending> batch = new ArrayList<>(options.maxBatch());
        try {
            while (true) {
                Pending first = queue.poll(POLL_MILLIS, TimeUnit.MILLISECONDS);
                if (first == null) {
                    if (draining && queue.isEmpty()) {
                        break;
                    }
                    signIfAged();
                    refreshHeadIfDue();
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, options.maxBatch() - 1);
                writeBatch(batch);
                batch.clear();
            }
            if (!(lastCheckpointClosed && lastCheckpointSeq == headSeq)) {
                writeFinalCheckpoint();
            } else {
                writeClosedHead(); // reopened and closed without appends: the head still says "closed here"
            }
        } catch (InterruptedException e) {
            LOG.warn("audit writer of {} interrupted; {} queued records fail", file, queue.size());
            Thread.currentThread().interrupt();
        } catch (RuntimeException | Error e) {
            LOG.error("audit writer of {} failed; appends will fail", file, e);
            closed = true;
            fail(batch, new AuditException(AuditException.Code.STORAGE, "audit writer failed: " + e, e));
            throw e;
        } finally {
            List<Pending> left = new ArrayList<>();
            queue.drainTo(left);
            fail(left, new AuditException(AuditException.Code.CLOSED, "audit log " + file + " closed before this "
                    + "record was committed; not recorded"));
            AuditDatabase.closeQuietly(insertRecord);
            AuditDatabase.closeQuietly(insertCheckpoint);
            AuditDatabase.closeQuietly(updateHead);
            AuditDatabase.closeQuietly(insertHead);
            AuditDatabase.closeQuietly(connection);
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
        // Timestamps never go back, so seq order and time order agree even if the wall clock is set back.
        long millis = Math.max(options.clock().millis(), headMillis);
        Instant timestamp = Instant.ofEpochMilli(millis);
        long seq = headSeq;
        byte[] prev = headHash;
        long checkpointSeq = lastCheckpointSeq;
        long count = checkpointCount;
        byte[] digest = lastCheckpointDigest;
        long next = nextCheckpointSeq;
        List<AuditRecord> records = new ArrayList<>(live.size());
        try {
            for (Pending pending : live) {
                AuditEntry entry = pending.entry;
                seq++;
                byte[] hash = AuditEncoding.recordHash(seq, millis, entry.type().name(), entry.subject(),
                        entry.outcome(), entry.detailJson(), prev);
                records.add(new AuditRecord(seq, timestamp, entry.type(), entry.subject(), entry.outcome(),
                        entry.detailJson(), prev, hash));
                insertRecord.setLong(1, seq);
                insertRecord.setLong(2, millis);
                insertRecord.setString(3, entry.type().name());
                insertRecord.setString(4, entry.subject());
                insertRecord.setString(5, entry.outcome());
                insertRecord.setString(6, entry.detailJson());
                insertRecord.setBytes(7, prev);
                insertRecord.setBytes(8, hash);
                insertRecord.addBatch();
                if (seq == next) {
                    insertRecord.executeBatch();
                    digest = addCheckpoint(++count, seq, hash, millis, false, digest).digest();
                    checkpointSeq = seq;
                    next = nextMultiple(seq, options.checkpointEvery());
                }
                prev = hash;
            }
            insertRecord.executeBatch();
            long signedAt = -1;
            if (count != checkpointCount) {
                signedAt = writeHead(seq, prev, count, digest, false);
            }
            connection.commit();
            if (signedAt != -1) {
                headSignedMillis = signedAt;
            }
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            rollback();
            AuditException.Code code = e instanceof GeneralSecurityException ? AuditException.Code.SIGNING
                    : AuditException.Code.STORAGE;
            LOG.warn("audit batch of {} records (seq {}..{}) not committed to {}: {}", live.size(), headSeq + 1,
                    headSeq + live.size(), file, e.toString());
            fail(live, new AuditException(code, "audit record not committed to " + file + ": " + e.getMessage(), e));
            return;
        }
        if (checkpointSeq != lastCheckpointSeq) {
            lastCheckpointClosed = false;
            lastCheckpointV3 = true;
            firstUnsignedMillis = checkpointSeq == seq ? -1 : millis;
        } else if (firstUnsignedMillis < 0) {
            firstUnsignedMillis = millis;
        }
        headSeq = seq;
        headHash = prev;
        headMillis = millis;
        long checkpointsBefore = checkpointCount;
        lastCheckpointSeq = checkpointSeq;
        checkpointCount = count;
        lastCheckpointDigest = digest;
        nextCheckpointSeq = next;
        if (count != checkpointsBefore) {
            signedSeq = checkpointSeq;
            signedMillis = millis;
        }
        committedSeq = seq;
        signIfAged(); // before the callers return, so a quiet log's old tail is signed by the next append at latest
        refreshHeadIfDue();
        for (int i = 0; i < live.size(); i++) {
            live.get(i).future.complete(records.get(i));
        }
    }

    private AuditCheckpoint addCheckpoint(long n, long seq, byte[] hash, long millis, boolean closed,
            byte[] prevDigest) throws SQLException, GeneralSecurityException {
        int every = options.checkpointEvery();
        long maxUnsigned = options.maxUnsignedAge().toMillis();
        byte[] signature = signer.sign(AuditEncoding.checkpointV3SignedData(seq, hash, millis, every, maxUnsigned,
                closed, prevDigest));
        insertCheckpoint.setLong(1, n);
        insertCheckpoint.setLong(2, seq);
        insertCheckpoint.setBytes(3, hash);
        insertCheckpoint.setLong(4, millis);
        insertCheckpoint.setString(5, signer.keyId());
        insertCheckpoint.setBytes(6, signature);
        insertCheckpoint.setInt(7, every);
        insertCheckpoint.setLong(8, maxUnsigned);
        insertCheckpoint.setInt(9, closed ? 1 : 0);
        insertCheckpoint.setBytes(10, prevDigest);
        insertCheckpoint.executeUpdate();
        LOG.debug("audit checkpoint {} at {}{} signed by {}", n, seq, closed ? " (closed)" : "", signer.keyId());
        return new AuditCheckpoint(3, seq, hash, Instant.ofEpochMilli(millis), signer.keyId(), signature, every,
                maxUnsigned, closed, prevDigest);
    }

    /** Signs the head in its own transaction and makes it the last checkpoint. */
    private void checkpointHead(boolean closed) throws SQLException, GeneralSecurityException {
        long millis = Math.max(options.clock().millis(), headMillis);
        AuditCheckpoint checkpoint = addCheckpoint(checkpointCount + 1, headSeq, headHash, millis, closed,
                lastCheckpointDigest);
        long signedAt = writeHead(headSeq, headHash, checkpointCount + 1, checkpoint.digest(), closed);
        connection.commit();
        headSignedMillis = signedAt;
        checkpointCount++;
        lastCheckpointSeq = headSeq;
        lastCheckpointDigest = checkpoint.digest();
        lastCheckpointClosed = closed;
        lastCheckpointV3 = true;
        firstUnsignedMillis = -1;
        nextCheckpointSeq = nextMultiple(headSeq, options.checkpointEvery());
        signedSeq = headSeq;
        signedMillis = millis;
    }

    /** On open, before the writer starts: signs an unsigned (or only v1-signed) head. */
    private void openCheckpoint() throws AuditException {
        try {
            checkpointHead(false);
            LOG.info("audit log {}: signed the head at {} on open", file, headSeq);
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            throw failedOnOpen(e);
        }
    }

    /** Undoes a failed signing on open and releases the statements: the log is not opened. */
    private AuditException failedOnOpen(Exception e) {
        rollback();
        AuditDatabase.closeQuietly(insertRecord);
        AuditDatabase.closeQuietly(insertCheckpoint);
        AuditDatabase.closeQuietly(updateHead);
        AuditDatabase.closeQuietly(insertHead);
        return new AuditException(e instanceof GeneralSecurityException ? AuditException.Code.SIGNING
                : AuditException.Code.STORAGE, "cannot sign the head of " + file + " on open: " + e.getMessage(), e);
    }

    /** On open, before the writer starts, when no checkpoint is due: signs the head alone. */
    private void openHead() throws AuditException {
        try {
            long signedAt = writeHead(headSeq, headHash, checkpointCount, lastCheckpointDigest, false);
            connection.commit();
            headSignedMillis = signedAt;
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            throw failedOnOpen(e);
        }
    }

    /**
     * Signs and stores the head (seq, hash, checkpoint count and last digest, closed) in the current transaction; the
     * caller commits. Returns the head's timestamp: the clock's time, even if that went back (unlike record times,
     * which never do), so a verifier on the same clock sees a fresh head after a clock step.
     */
    private long writeHead(long seq, byte[] hash, long checkpoints, byte[] checkpointDigest, boolean closed)
            throws SQLException, GeneralSecurityException {
        long millis = options.clock().millis();
        long refresh = options.headRefresh().toMillis();
        byte[] signature = signer.sign(AuditEncoding.headSignedData(seq, hash, millis, checkpoints, checkpointDigest,
                refresh, closed));
        for (PreparedStatement statement : List.of(updateHead, insertHead)) {
            statement.setLong(1, seq);
            statement.setBytes(2, hash);
            statement.setLong(3, millis);
            statement.setLong(4, checkpoints);
            statement.setBytes(5, checkpointDigest);
            statement.setLong(6, refresh);
            statement.setInt(7, closed ? 1 : 0);
            statement.setString(8, signer.keyId());
            statement.setBytes(9, signature);
        }
        if (updateHead.executeUpdate() == 0) {
            insertHead.executeUpdate();
        }
        return millis;
    }

    /**
     * Re-signs the head once it is {@code headRefresh} old, so a running log's head is never older than that; at once
     * if the clock went back behind it.
     */
    private void refreshHeadIfDue() {
        long now = options.clock().millis();
        if (headSignedMillis != -1 && now >= headSignedMillis
                && now - headSignedMillis < options.headRefresh().toMillis()) {
            return;
        }
        try {
            long signedAt = writeHead(headSeq, headHash, checkpointCount, lastCheckpointDigest, false);
            connection.commit();
            headSignedMillis = signedAt;
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            rollback();
            LOG.warn("signed head of {} not refreshed (retrying): {}", file, e.toString());
        }
    }

    /** Time-based checkpoint: signs the head once its oldest unsigned record reaches {@code maxUnsignedAge}. */
    private void signIfAged() {
        if (headSeq <= lastCheckpointSeq || firstUnsignedMillis < 0
                || options.clock().millis() - firstUnsignedMillis < options.maxUnsignedAge().toMillis()) {
            return;
        }
        try {
            checkpointHead(false);
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            rollback();
            LOG.warn("time checkpoint at {} of {} not written (retrying): {}", headSeq, file, e.toString());
        }
    }

    private void writeFinalCheckpoint() {
        try {
            checkpointHead(true);
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            rollback();
            LOG.warn("closing audit checkpoint at {} of {} not written: {}", headSeq, file, e.toString());
        }
    }

    private void writeClosedHead() {
        try {
            headSignedMillis = writeHead(headSeq, headHash, checkpointCount, lastCheckpointDigest, true);
            connection.commit();
        } catch (SQLException | GeneralSecurityException | RuntimeException e) {
            rollback();
            LOG.warn("closing signed head of {} not written: {}", file, e.toString());
        }
    }

    /** The first multiple of {@code every} above {@code seq}. */
    static long nextMultiple(long seq, long every) {
        return (seq / every + 1) * every;
    }

    private void rollback() {
        try {
            insertRecord.clearBatch();
            connection.rollback();
        } catch (SQLException e) {
            LOG.warn("rollback of audit batch on {} failed: {}", file, e.toString());
        }
    }

    private static void fail(List<Pending> pendings, AuditException failure) {
        for (Pending pending : pendings) {
            pending.future.completeExceptionally(failure);
        }
    }

    private static Head checkHead(Connection connection, Path file, AuditSigner signer) throws SQLException,
            AuditException {
        long lastSeq;
        long count;
        try (PreparedStatement query = connection.prepareStatement(
                "SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM audit_record");
                ResultSet rows = query.executeQuery()) {
            rows.next();
            lastSeq = rows.getLong(1);
            count = rows.getLong(2);
        }
        if (lastSeq != count) {
            throw corrupt(file, "it has " + count + " records but the last seq is " + lastSeq + " (records missing)");
        }
        List<AuditCheckpoint> checkpoints = AuditDatabase.checkpoints(connection);
        AuditCheckpoint lastCheckpoint = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);
        if (lastSeq == 0) {
            if (lastCheckpoint != null && (lastCheckpoint.seq() != 0 || (lastCheckpoint.keyId().equals(signer.keyId())
                    && !signatureValid(lastCheckpoint, signer)))) {
                throw corrupt(file, "it has no records but a checkpoint at " + lastCheckpoint.seq()
                        + " (records were removed)");
            }
            AuditHead signedHead = checkSignedHead(connection, file, signer, checkpoints, 0);
            return new Head(0, AuditEncoding.zeroHash(), 0, 0, checkpoints.size(), lastCheckpoint, -1, signedHead);
        }
        byte[] lastHash = null;
        byte[] expectedPrev = null;
        long lastMillis = 0;
        try (PreparedStatement query = connection.prepareStatement("SELECT " + AuditDatabase.RAW_RECORD_COLUMNS
                + " FROM audit_record WHERE seq >= ? ORDER BY seq")) {
            query.setLong(1, lastSeq - 1);
            try (ResultSet rows = query.executeQuery()) {
                while (rows.next()) {
                    long seq = rows.getLong(1);
                    byte[] prevHash = rows.getBytes(7);
                    byte[] hash = rows.getBytes(8);
                    if (seq == lastSeq) {
                        if (!Arrays.equals(prevHash, expectedPrev == null ? AuditEncoding.zeroHash() : expectedPrev)) {
                            throw corrupt(file, "record " + seq + ": prev_hash does not match record " + (seq - 1)
                                    + "'s hash");
                        }
                        byte[] recomputed = AuditEncoding.recordHash(seq, rows.getLong(2), rows.getBytes(3),
                                rows.getBytes(4), rows.getBytes(5), rows.getBytes(6), prevHash);
                        if (!Arrays.equals(recomputed, hash)) {
                            throw corrupt(file, "record " + seq + ": stored hash does not match its contents");
                        }
                        lastHash = hash;
                        lastMillis = rows.getLong(2);
                    } else {
                        expectedPrev = hash;
                    }
                }
            }
        }
        long lastCheckpointSeq = 0;
        long firstUnsignedMillis = -1;
        if (lastCheckpoint != null) {
            AuditCheckpoint checkpoint = lastCheckpoint;
            lastCheckpointSeq = checkpoint.seq();
            if (checkpoint.seq() > lastSeq) {
                throw corrupt(file, "checkpoint at " + checkpoint.seq() + " is beyond the last record " + lastSeq
                        + " (records were removed)");
            }
            byte[] recordHash = checkpoint.seq() == 0 ? AuditEncoding.zeroHash() : recordHash(connection,
                    checkpoint.seq());
            if (!Arrays.equals(recordHash, checkpoint.hash())) {
                throw corrupt(file, "checkpoint at " + checkpoint.seq() + ": hash does not match record "
                        + checkpoint.seq() + "'s hash");
            }
            if (checkpoint.keyId().equals(signer.keyId()) && !signatureValid(checkpoint, signer)) {
                throw corrupt(file, "checkpoint at " + checkpoint.seq() + ": signature invalid");
            }
        }
        if (lastSeq > lastCheckpointSeq) {
            try (PreparedStatement query = connection.prepareStatement(
                    "SELECT ts_millis FROM audit_record WHERE seq = ?")) {
                query.setLong(1, lastCheckpointSeq + 1);
                try (ResultSet rows = query.executeQuery()) {
                    firstUnsignedMillis = rows.next() ? rows.getLong(1) : lastMillis;
                }
            }
        }
        AuditHead signedHead = checkSignedHead(connection, file, signer, checkpoints, lastSeq);
        if (lastCheckpoint == null || !lastCheckpoint.closed() || lastCheckpoint.seq() != lastSeq) {
            LOG.warn("audit log {} was not closed cleanly: {} records, last checkpoint {}, signed head {}", file,
                    lastSeq, lastCheckpoint == null ? "none" : "at " + lastCheckpoint.seq(),
                    signedHead == null ? "none" : "at " + signedHead.seq() + " signed " + signedHead.timestamp());
        }
        return new Head(lastSeq, lastHash, lastMillis, lastCheckpointSeq, checkpoints.size(), lastCheckpoint,
                firstUnsignedMillis, signedHead);
    }

    /**
     * The stored signed head, checked against the log: a head that names records or checkpoints the log no longer
     * has means the log was cut back (or an older copy of it put in place) while the head was left, and the writer
     * must not sign over that.
     */
    private static AuditHead checkSignedHead(Connection connection, Path file, AuditSigner signer,
            List<AuditCheckpoint> checkpoints, long lastSeq) throws SQLException, AuditException {
        AuditHead head = AuditDatabase.head(connection).orElse(null);
        if (head == null) {
            if (checkpoints.stream().anyMatch(c -> c.version() == 3)) {
                throw corrupt(file, "its signed head is missing, though its v3 checkpoints commit the log to one: "
                        + "the log was cut back and the head removed");
            }
            return null;
        }
        String signed = "its signed head (signed " + head.timestamp() + ") ";
        if (!head.keyId().equals(signer.keyId())) {
            throw corrupt(file, signed + "is signed by key id '" + head.keyId() + "', not by this server's key ("
                    + signer.keyId() + "), so nothing shows it was not forged. A log continues under one key: to "
                    + "change the result-signing key, archive this log and start a new one");
        }
        if (!signatureValid(head.signedData(), head.signature(), signer)) {
            throw corrupt(file, signed + "has an invalid signature");
        }
        if (head.closed() && lastSeq > head.seq()) {
            throw corrupt(file, "records " + (head.seq() + 1) + ".." + lastSeq + " follow the head that closed the "
                    + "log at record " + head.seq() + ": they were appended by someone other than the server");
        }
        if (head.seq() > lastSeq || head.checkpoints() > checkpoints.size()) {
            throw corrupt(file, signed + "covers record " + head.seq() + " and " + head.checkpoints()
                    + " checkpoints, but the log ends at record " + lastSeq + " with " + checkpoints.size()
                    + " checkpoints: it was cut back, or an older copy was put in place");
        }
        if (head.checkpoints() < checkpoints.size()) {
            throw corrupt(file, signed + "counts " + head.checkpoints() + " checkpoints, but the log has "
                    + checkpoints.size() + ": checkpoints were added after it");
        }
        byte[] expectedDigest = checkpoints.isEmpty() ? AuditEncoding.zeroHash()
                : checkpoints.get(checkpoints.size() - 1).digest();
        if (!Arrays.equals(expectedDigest, head.checkpointDigest())) {
            throw corrupt(file, signed + "names another last checkpoint than the log's: checkpoints were replaced");
        }
        byte[] recordHash = head.seq() == 0 ? AuditEncoding.zeroHash() : recordHash(connection, head.seq());
        if (!Arrays.equals(recordHash, head.hash())) {
            throw corrupt(file, signed + "names another hash for record " + head.seq() + ": records were rewritten");
        }
        return head;
    }

    private static byte[] recordHash(Connection connection, long seq) throws SQLException {
        try (PreparedStatement query = connection.prepareStatement("SELECT hash FROM audit_record WHERE seq = ?")) {
            query.setLong(1, seq);
            try (ResultSet rows = query.executeQuery()) {
                return rows.next() ? rows.getBytes(1) : null;
            }
        }
    }

    private static boolean signatureValid(AuditCheckpoint checkpoint, AuditSigner signer) {
        return signatureValid(checkpoint.signedData(), checkpoint.signature(), signer);
    }

    static boolean signatureValid(byte[] signedData, byte[] signature, AuditSigner signer) {
        try {
            Signature verifier = Signature.getInstance(AuditVerifier.SIGNATURE_ALGORITHM);
            verifier.initVerify(signer.publicKey());
            verifier.update(signedData);
            return verifier.verify(signature);
        } catch (GeneralSecurityException e) {
            return false;
        }
    }

    private static AuditException corrupt(Path file, String what) {
        return new AuditException(AuditException.Code.CORRUPT, "audit database " + file + " has a broken chain head: "
                + what + "; not appending to it. Run `tpmphone audit verify --db " + file + "` and keep the file as "
                + "evidence");
    }

    private static void release(FileLock lock, FileChannel channel, Connection connection, AuditReader reader) {
        AuditDatabase.closeQuietly(reader);
        AuditDatabase.closeQuietly(connection);
        AuditDatabase.closeQuietly(lock);
        AuditDatabase.closeQuietly(channel);
    }

    private record Head(long seq, byte[] hash, long millis, long lastCheckpointSeq, long checkpointCount,
            AuditCheckpoint lastCheckpoint, long firstUnsignedMillis, AuditHead signedHead) {
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

    /**
     * Settings of an {@link AuditLog}. Immutable and thread-safe; {@link #defaults()} or {@link #builder()}.
     */
    public static final class Options {
        /** The documented default interval; a verifier assumes it for a log that has no v2 checkpoint at all. */
        public static final int DEFAULT_CHECKPOINT_EVERY = 1000;
        /** The documented default bound on how long a record stays unsigned; assumed likewise. */
        public static final Duration DEFAULT_MAX_UNSIGNED_AGE = Duration.ofSeconds(10);
        /** The default for {@link #headRefresh()}. */
        public static final Duration DEFAULT_HEAD_REFRESH = Duration.ofSeconds(60);
        /** The default for {@link #signerLease()}. */
        public static final Duration DEFAULT_SIGNER_LEASE = Duration.ofSeconds(3);
        /** The default for {@link #writerLease()}. */
        public static final Duration DEFAULT_WRITER_LEASE = Duration.ofSeconds(10);
        /** Shortest {@link #signerLease()}: leases are renewed about every second, so a lease must outlast that. */
        public static final Duration MIN_SIGNER_LEASE = Duration.ofSeconds(2);
        /**
         * Shortest {@link #writerLease()}, which must also be longer than {@link #signerLease()}: a writer lease not
         * renewed for a signer lease's length counts as a dead (or hung) instance's.
         */
        public static final Duration MIN_WRITER_LEASE = Duration.ofSeconds(4);
        /** Longest lease of either kind: a dead instance keeps the chain from closing (or signing) at most this. */
        public static final Duration MAX_LEASE = Duration.ofMinutes(5);
        private final Duration appendTimeout;
        private final Duration headRefresh;
        private final int checkpointEvery;
        private final int maxBatch;
        private final int queueCapacity;
        private final Duration busyTimeout;
        private final Duration closeTimeout;
        private final Duration maxUnsignedAge;
        private final Duration signerLease;
        private final Duration writerLease;
        private final Clock clock;

        private Options(Builder b) {
            this.appendTimeout = b.appendTimeout;
            this.checkpointEvery = b.checkpointEvery;
            this.maxBatch = b.maxBatch;
            this.queueCapacity = b.queueCapacity;
            this.busyTimeout = b.busyTimeout;
            this.closeTimeout = b.closeTimeout;
            this.maxUnsignedAge = b.maxUnsignedAge;
            this.headRefresh = b.headRefresh;
            this.signerLease = b.signerLease;
            this.writerLease = b.writerLease;
            this.clock = b.clock;
        }

        /**
         * Append timeout 5 s, checkpoint every {@value #DEFAULT_CHECKPOINT_EVERY} records and whenever a record has
         * been unsigned for {@link #DEFAULT_MAX_UNSIGNED_AGE}, batches of up to 1024, queue of 65,536.
         */
        public static Options defaults() {
            return builder().build();
        }

        public static Builder builder() {
            return new Builder();
        }

        /** How long {@link AuditLog#append} waits for queueing plus the durable commit. */
        public Duration appendTimeout() {
            return appendTimeout;
        }

        /**
         * A signed checkpoint is written at every seq that is a multiple of this (in the same transaction as that
         * record), on open if the head is unsigned, when a record has been unsigned for {@link #maxUnsignedAge()},
         * and on close. Signed into every checkpoint, so a verifier knows where checkpoints must be.
         */
        public int checkpointEvery() {
            return checkpointEvery;
        }

        /** Most records committed in one transaction. */
        public int maxBatch() {
            return maxBatch;
        }

        /** Most appends waiting for the writer; beyond it {@link AuditLog#append} waits (bounded). */
        public int queueCapacity() {
            return queueCapacity;
        }

        /** SQLite busy timeout: how long a statement waits for a lock held by another connection. */
        public Duration busyTimeout() {
            return busyTimeout;
        }

        /** How long {@link AuditLog#close()} waits for the writer to commit what is queued. */
        public Duration closeTimeout() {
            return closeTimeout;
        }

        /**
         * The longest a committed record stays unsigned while the log is open: the writer then signs the head
         * (checked after every batch and every 50 ms when idle). Signed into every
         * checkpoint; {@code audit verify --open} refuses an unsigned tail older than this (plus a grace period).
         */
        public Duration maxUnsignedAge() {
            return maxUnsignedAge;
        }

        /**
         * The longest the signed head ({@link AuditHead}) goes without being re-signed while the log is open, even
         * with no records arriving. Signed into the head; {@code audit verify --open} refuses a head older than this
         * (plus a grace period), which is what shows a log cut back to an older state.
         */
        public Duration headRefresh() {
            return headRefresh;
        }

        /**
         * On a shared (PostgreSQL) chain: how long the checkpoint signer's lease lasts without renewal (renewed about
         * every second), so how long after the signer dies or hangs another instance takes over time checkpoints and
         * head refreshes. Default {@link #DEFAULT_SIGNER_LEASE}; {@link #MIN_SIGNER_LEASE} to {@link #MAX_LEASE}.
         * Every instance of a cluster should use the same value. Unused on SQLite.
         */
        public Duration signerLease() {
            return signerLease;
        }

        /**
         * On a shared (PostgreSQL) chain: how long an instance's writer lease lasts without renewal. An instance
         * that died counts as a writer until it lapses, and the last instance to stop waits (at most this) for it to
         * lapse so as to sign the closing checkpoint; a writer lease not renewed for {@link #signerLease()} counts as
         * a dead instance's (so an instance that took over a dead signer's lease also finds its writer lease dead).
         * An instance stalled for longer than this (a GC pause, SIGSTOP) counts as gone too: if the last other
         * instance stops meanwhile, it closes the chain, and the stalled instance re-opens it before it next appends
         * (logged; the chain reads as a stop and a restart, nothing is lost). So a short lease costs a re-open after
         * a long stall, not a broken chain. Default {@link #DEFAULT_WRITER_LEASE}; {@link #MIN_WRITER_LEASE} to
         * {@link #MAX_LEASE}, longer than the signer lease. Every instance of a cluster should use the same value.
         * Unused on SQLite.
         */
        public Duration writerLease() {
            return writerLease;
        }

        /** Source of record and checkpoint timestamps (UTC, millisecond precision) and of checkpoint ages. */
        public Clock clock() {
            return clock;
        }

        /** Builds {@link Options}; each setter says which rule a value breaks. Not thread-safe. */
        public static final class Builder {
            private Duration appendTimeout = Duration.ofSeconds(5);
            private int checkpointEvery = DEFAULT_CHECKPOINT_EVERY;
            private Duration maxUnsignedAge = DEFAULT_MAX_UNSIGNED_AGE;
            private Duration headRefresh = DEFAULT_HEAD_REFRESH;
            private int maxBatch = 1024;
            private int queueCapacity = 65_536;
            private Duration busyTimeout = Duration.ofSeconds(5);
            private Duration closeTimeout = Duration.ofSeconds(10);
            private Duration signerLease = DEFAULT_SIGNER_LEASE;
            private Duration writerLease = DEFAULT_WRITER_LEASE;
            private Clock clock = Clock.systemUTC();

            private Builder() {
            }

            public Builder appendTimeout(Duration value) {
                this.appendTimeout = positive("appendTimeout", value);
                return this;
            }

            public Builder checkpointEvery(int value) {
                this.checkpointEvery = atLeastOne("checkpointEvery", value);
                return this;
            }

            public Builder maxUnsignedAge(Duration value) {
                this.maxUnsignedAge = positive("maxUnsignedAge", value);
                if (value.toMillis() < 1) {
                    throw new IllegalArgumentException("maxUnsignedAge must be at least 1 ms, got " + value);
                }
                return this;
            }

            public Builder headRefresh(Duration value) {
                this.headRefresh = positive("headRefresh", value);
                if (value.toMillis() < 1) {
                    throw new IllegalArgumentException("headRefresh must be at least 1 ms, got " + value);
                }
                return this;
            }

            public Builder maxBatch(int value) {
                this.maxBatch = atLeastOne("maxBatch", value);
                return this;
            }

            public Builder queueCapacity(int value) {
                this.queueCapacity = atLeastOne("queueCapacity", value);
                return this;
            }

            public Builder busyTimeout(Duration value) {
                this.busyTimeout = positive("busyTimeout", value);
                return this;
            }

            public Builder closeTimeout(Duration value) {
                this.closeTimeout = positive("closeTimeout", value);
                return this;
            }

            /** @throws IllegalArgumentException outside {@link #MIN_SIGNER_LEASE} to {@link #MAX_LEASE} */
            public Builder signerLease(Duration value) {
                this.signerLease = within("signerLease", value, MIN_SIGNER_LEASE, MAX_LEASE);
                return this;
            }

            /** @throws IllegalArgumentException outside {@link #MIN_WRITER_LEASE} to {@link #MAX_LEASE} */
            public Builder writerLease(Duration value) {
                this.writerLease = within("writerLease", value, MIN_WRITER_LEASE, MAX_LEASE);
                return this;
            }

            public Builder clock(Clock value) {
                this.clock = Objects.requireNonNull(value, "clock");
                return this;
            }

            /** @throws IllegalArgumentException if the writer lease is not longer than the signer lease */
            public Options build() {
                if (writerLease.compareTo(signerLease) <= 0) {
                    throw new IllegalArgumentException("writerLease (" + writerLease.toMillis() + " ms) must be longer"
                            + " than signerLease (" + signerLease.toMillis() + " ms)");
                }
                return new Options(this);
            }

            private static Duration positive(String name, Duration value) {
                Objects.requireNonNull(value, name);
                if (value.isNegative() || value.isZero()) {
                    throw new IllegalArgumentException(name + " must be positive, got " + value);
                }
                return value;
            }

            private static Duration within(String name, Duration value, Duration min, Duration max) {
                Objects.requireNonNull(value, name);
                if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
                    throw new IllegalArgumentException(name + " must be " + min.toSeconds() + " to " + max.toSeconds()
                            + " s, got " + value.toMillis() + " ms");
                }
                return value;
            }

            private static int atLeastOne(String name, int value) {
                if (value < 1) {
                    throw new IllegalArgumentException(name + " must be >= 1, got " + value);
                }
                return value;
            }
        }
    }
}
