package io.tpmphone.server.audit;

import java.io.IOException;
import java.io.OutputStream;
import java.io.Writer;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.security.PublicKey;
import java.util.Objects;
import java.util.Optional;

/**
 * Read-only access to an audit database, for tools and for {@link AuditLog}'s own reads: never creates, migrates
 * or writes the file, and may be used while an {@link AuditLog} appends to it (each call reads one committed
 * snapshot). To check integrity use {@link AuditVerifier}; this class only reads.
 *
 * <p>Thread-safe: calls are serialized over one SQLite connection. Lock waits are bounded by the busy timeout.
 */
public final class AuditReader implements AutoCloseable {
    /** Largest page {@link #records} and {@link #tail} return. */
    public static final int MAX_PAGE = 10_000;
    private static final Duration DEFAULT_BUSY_TIMEOUT = Duration.ofSeconds(5);

    /** The file, or the database URL without its parameters: for messages. */
    private final String file;
    private final Connection connection;
    private boolean closed;

    private AuditReader(String file, Connection connection) {
        this.file = file;
        this.connection = connection;
    }

    /**
     * Opens {@code databaseFile} read-only.
     *
     * @throws AuditException {@code STORAGE} if it is missing, unreadable or not an audit database
     */
    public static AuditReader open(Path databaseFile) throws AuditException {
        return open(databaseFile, DEFAULT_BUSY_TIMEOUT);
    }

    static AuditReader open(Path databaseFile, Duration busyTimeout) throws AuditException {
        Objects.requireNonNull(databaseFile, "databaseFile");
        return new AuditReader(databaseFile.toString(), AuditDatabase.openReadOnly(databaseFile, busyTimeout));
    }

    /**
     * Opens the shared audit log of several server instances in the PostgreSQL database at {@code jdbcUrl}
     * ({@code jdbc:postgresql://HOST:PORT/DB?user=USER}; the password as the driver finds it, e.g. {@code ~/.pgpass}),
     * read-only.
     *
     * @throws AuditException {@code STORAGE} if it cannot be reached
     */
    public static AuditReader openDatabase(String jdbcUrl) throws AuditException {
        Objects.requireNonNull(jdbcUrl, "jdbcUrl");
        if (!jdbcUrl.startsWith("jdbc:postgresql://")) {
            throw new IllegalArgumentException("the audit database URL must be jdbc:postgresql://HOST:PORT/DB?user=USER");
        }
        int q = jdbcUrl.indexOf('?');
        String name = q < 0 ? jdbcUrl : jdbcUrl.substring(0, q);
        try {
            Connection connection = java.sql.DriverManager.getConnection(jdbcUrl);
            connection.setReadOnly(true);
            connection.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
            return new AuditReader(name, connection);
        } catch (java.sql.SQLException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot open the audit log on " + name + ": "
                    + e.getMessage(), e);
        }
    }

    /** Number of records, which is also the last seq (seqs run 1..n). */
    public synchronized long size() throws AuditException {
        checkOpen();
        try {
            return AuditDatabase.lastSeq(connection);
        } catch (SQLException e) {
            throw storage("count records", e);
        }
    }

    /** The last {@code n} records (0..{@value #MAX_PAGE}) in seq order. */
    public synchronized List<AuditRecord> tail(int n) throws AuditException {
        checkPage(n);
        checkOpen();
        try {
            return AuditDatabase.tail(connection, n);
        } catch (SQLException e) {
            throw storage("read the last " + n + " records", e);
        }
    }

    /** Up to {@code limit} (0..{@value #MAX_PAGE}) records from {@code fromSeq} on, in seq order: one page. */
    public synchronized List<AuditRecord> records(long fromSeq, int limit) throws AuditException {
        checkPage(limit);
        if (fromSeq < 1) {
            throw new IllegalArgumentException("fromSeq must be >= 1, got " + fromSeq);
        }
        checkOpen();
        try {
            return AuditDatabase.records(connection, fromSeq, limit);
        } catch (SQLException e) {
            throw storage("read records from " + fromSeq, e);
        }
    }

    /** All checkpoints in seq order. */
    public synchronized List<AuditCheckpoint> checkpoints() throws AuditException {
        checkOpen();
        try {
            return AuditDatabase.checkpoints(connection);
        } catch (SQLException e) {
            throw storage("read checkpoints", e);
        }
    }

    /** The signed head ({@link AuditHead}), if the log has one (written by a server since schema 3). */
    public synchronized Optional<AuditHead> head() throws AuditException {
        checkOpen();
        try {
            return AuditDatabase.head(connection);
        } catch (SQLException e) {
            throw storage("read the signed head", e);
        }
    }

    /**
     * Writes all checkpoints and records as one JSON document (format in {@code docs/audit.md}) that
     * {@link AuditVerifier#verifyExport} checks offline. Streams; a consistent snapshot. Does not close {@code out}.
     */
    public synchronized void exportJson(OutputStream out) throws AuditException {
        exportJson(out, Optional.empty());
    }

    /**
     * As {@link #exportJson(OutputStream)}, carrying the checkpoint key as PEM ({@code "publicKey"}, export version
     * 4), so the export is one file for the in-browser verifier.
     *
     * @throws AuditException {@code KEY_MISMATCH} if {@code publicKey} is not the key that signed the log's head
     */
    public synchronized void exportJson(OutputStream out, Optional<PublicKey> publicKey) throws AuditException {
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(publicKey, "publicKey");
        checkOpen();
        try {
            AuditExport.write(connection, out, publicKey);
        } catch (SQLException e) {
            throw storage("export", e);
        } catch (IOException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot write the audit export of " + file + ": "
                    + e.getMessage(), e);
        }
    }

    /** As {@link #exportJson(OutputStream)}, to a character stream (e.g. a command's output). Does not close it. */
    public synchronized void exportJson(Writer out) throws AuditException {
        exportJson(out, Optional.empty());
    }

    /** As {@link #exportJson(OutputStream, Optional)}, to a character stream. Does not close it. */
    public synchronized void exportJson(Writer out, Optional<PublicKey> publicKey) throws AuditException {
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(publicKey, "publicKey");
        checkOpen();
        try {
            AuditExport.write(connection, out, publicKey);
        } catch (SQLException e) {
            throw storage("export", e);
        } catch (IOException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot write the audit export of " + file + ": "
                    + e.getMessage(), e);
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            AuditDatabase.closeQuietly(connection);
        }
    }

    private void checkOpen() throws AuditException {
        if (closed) {
            throw new AuditException(AuditException.Code.CLOSED, "audit reader of " + file + " is closed");
        }
    }

    private static void checkPage(int n) {
        if (n < 0 || n > MAX_PAGE) {
            throw new IllegalArgumentException("page size must be 0.." + MAX_PAGE + ", got " + n);
        }
    }

    private AuditException storage(String what, SQLException e) {
        return new AuditException(AuditException.Code.STORAGE, "cannot " + what + " of audit database " + file
                + ": " + e.getMessage(), e);
    }
}
