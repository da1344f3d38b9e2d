package io.tpmphone.server.audit;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.FlywayException;
import org.flywaydb.core.api.output.MigrateResult;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.sqlite.SQLiteConfig;
import org.sqlite.SQLiteDataSource;

/**
 * SQLite access of the audit log: connection settings, Flyway migration, reads. The only class that knows the
 * schema besides {@code db/audit/V*.sql}.
 *
 * <p>Stateless and thread-safe; each {@link Connection} it hands out belongs to one thread at a time.
 */
final class AuditDatabase {
    private static final Logger LOG = LoggerFactory.getLogger(AuditDatabase.class);
    static final String MIGRATIONS = "classpath:db/audit";
    static final String RECORD_COLUMNS = "seq, ts_millis, type, subject, outcome, detail, prev_hash, hash";
    /** Raw bytes of the text columns, exactly as stored, so verification hashes what is on disk. */
    static final String RAW_RECORD_COLUMNS = "seq, ts_millis, CAST(type AS BLOB), CAST(subject AS BLOB), "
            + "CAST(outcome AS BLOB), CAST(detail AS BLOB), prev_hash, hash";
    /** The same raw bytes on PostgreSQL (the shared chain, {@link SharedAuditLog}). */
    static final String RAW_RECORD_COLUMNS_POSTGRESQL = "seq, ts_millis, convert_to(type, 'UTF8'),"
            + " convert_to(subject, 'UTF8'), convert_to(outcome, 'UTF8'), convert_to(detail, 'UTF8'), prev_hash, hash";
    /** Schema 2 (V2__chained_checkpoints.sql): checkpoints in written order {@code n}, v1 or v2. */
    static final String CHECKPOINT_COLUMNS = "n, seq, hash, ts_millis, key_id, signature, version, every, "
            + "max_unsigned_millis, closed, prev_digest";

    private AuditDatabase() {
    }

    /** Whether {@code connection} is to PostgreSQL (the shared chain) rather than an SQLite file. */
    static boolean postgresql(Connection connection) throws SQLException {
        return "PostgreSQL".equals(connection.getMetaData().getDatabaseProductName());
    }

    /** {@link #RAW_RECORD_COLUMNS} in the connection's dialect. */
    static String rawRecordColumns(Connection connection) throws SQLException {
        return postgresql(connection) ? RAW_RECORD_COLUMNS_POSTGRESQL : RAW_RECORD_COLUMNS;
    }

    /** Read-write: WAL, synchronous=FULL (every commit is fsynced), bounded lock waits. */
    static SQLiteDataSource writerDataSource(Path file, Duration busyTimeout) {
        SQLiteConfig config = new SQLiteConfig();
        config.setJournalMode(SQLiteConfig.JournalMode.WAL);
        config.setSynchronous(SQLiteConfig.SynchronousMode.FULL);
        config.setBusyTimeout(toMillis(busyTimeout));
        config.setTransactionMode(SQLiteConfig.TransactionMode.IMMEDIATE);
        SQLiteDataSource dataSource = new SQLiteDataSource(config);
        dataSource.setUrl("jdbc:sqlite:" + file.toAbsolutePath());
        return dataSource;
    }

    /** Opens {@code file} read-only (SQLITE_OPEN_READONLY, query_only): never creates, migrates or writes. */
    static Connection openReadOnly(Path file, Duration busyTimeout) throws AuditException {
        if (!Files.isRegularFile(file)) {
            throw new AuditException(AuditException.Code.STORAGE, "audit database " + file
                    + " does not exist or is not a regular file");
        }
        SQLiteConfig config = new SQLiteConfig();
        config.setReadOnly(true);
        config.setBusyTimeout(toMillis(busyTimeout));
        SQLiteDataSource dataSource = new SQLiteDataSource(config);
        dataSource.setUrl("jdbc:sqlite:" + file.toAbsolutePath());
        Connection connection = null;
        try {
            connection = dataSource.getConnection();
            try (Statement statement = connection.createStatement()) {
                statement.execute("PRAGMA query_only = ON");
            }
            requireAuditSchema(connection, file);
            return connection;
        } catch (SQLException e) {
            closeQuietly(connection);
            throw new AuditException(AuditException.Code.STORAGE, "cannot open audit database " + file
                    + " read-only: " + e.getMessage(), e);
        } catch (AuditException e) {
            closeQuietly(connection);
            throw e;
        }
    }

    /** Creates or migrates the schema from {@link #MIGRATIONS}. */
    static void migrate(SQLiteDataSource dataSource, Path file) throws AuditException {
        try {
            MigrateResult result = Flyway.configure(AuditDatabase.class.getClassLoader())
                    .dataSource(dataSource)
                    .locations(MIGRATIONS)
                    .table("audit_schema_history")
                    .load()
                    .migrate();
            if (result.migrationsExecuted > 0) {
                LOG.info("audit database {} migrated to schema version {} ({} migrations)", file,
                        result.targetSchemaVersion, result.migrationsExecuted);
            }
        } catch (FlywayException e) {
            throw new AuditException(AuditException.Code.STORAGE, "cannot create or migrate the audit schema of "
                    + file + ": " + e.getMessage(), e);
        }
    }

    /** Fails unless the connection really is in WAL mode with synchronous=FULL: durability is not optional. */
    static void requireDurableSettings(Connection connection, Path file) throws SQLException, AuditException {
        try (Statement statement = connection.createStatement()) {
            String journalMode;
            int synchronous;
            try (ResultSet rows = statement.executeQuery("PRAGMA journal_mode")) {
                rows.next();
                journalMode = rows.getString(1);
            }
            try (ResultSet rows = statement.executeQuery("PRAGMA synchronous")) {
                rows.next();
                synchronous = rows.getInt(1);
            }
            if (!"wal".equalsIgnoreCase(journalMode) || synchronous != 2) {
                throw new AuditException(AuditException.Code.STORAGE, "audit database " + file + " runs with journal_mode="
                        + journalMode + ", synchronous=" + synchronous + "; expected wal and 2 (FULL). Is the file "
                        + "on a file system without shared memory support (WAL needs it)?");
            }
        }
    }

    static void requireAuditSchema(Connection connection, Path file) throws SQLException, AuditException {
        try (PreparedStatement query = connection.prepareStatement(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('audit_record', 'audit_checkpoint')");
                ResultSet rows = query.executeQuery()) {
            if (!rows.next() || rows.getInt(1) != 2) {
                throw new AuditException(AuditException.Code.STORAGE, file
                        + " is an SQLite database but not a tpmphone audit log (no audit_record/audit_checkpoint tables)");
            }
        }
    }

    static long lastSeq(Connection connection) throws SQLException {
        try (Statement statement = connection.createStatement();
                ResultSet rows = statement.executeQuery("SELECT COALESCE(MAX(seq), 0) FROM audit_record")) {
            rows.next();
            return rows.getLong(1);
        }
    }

    static List<AuditRecord> records(Connection connection, long fromSeq, int limit) throws SQLException,
            AuditException {
        try (PreparedStatement query = connection.prepareStatement("SELECT " + RECORD_COLUMNS
                + " FROM audit_record WHERE seq >= ? ORDER BY seq LIMIT ?")) {
            query.setLong(1, fromSeq);
            query.setInt(2, limit);
            return readRecords(query);
        }
    }

    static List<AuditRecord> tail(Connection connection, int n) throws SQLException, AuditException {
        try (PreparedStatement query = connection.prepareStatement("SELECT " + RECORD_COLUMNS
                + " FROM audit_record ORDER BY seq DESC LIMIT ?")) {
            query.setInt(1, n);
            List<AuditRecord> records = readRecords(query);
            Collections.reverse(records);
            return records;
        }
    }

    /**
     * All checkpoints in the order they were written (schema 2: by {@code n}; a schema-1 database, which a read-only
     * verifier does not migrate, holds only v1 checkpoints, read by seq).
     */
    static List<AuditCheckpoint> checkpoints(Connection connection) throws SQLException {
        List<AuditCheckpoint> checkpoints = new ArrayList<>();
        boolean schema2 = postgresql(connection) || hasColumn(connection, "audit_checkpoint", "version");
        String query = schema2 ? "SELECT seq, hash, ts_millis, key_id, signature, version, every, max_unsigned_millis,"
                + " closed, prev_digest FROM audit_checkpoint ORDER BY n"
                : "SELECT seq, hash, ts_millis, key_id, signature FROM audit_checkpoint ORDER BY seq";
        try (Statement statement = connection.createStatement();
                ResultSet rows = statement.executeQuery(query)) {
            while (rows.next()) {
                byte[] hash = nonNull(rows.getBytes(2));
                byte[] signature = nonNull(rows.getBytes(5));
                Instant at = Instant.ofEpochMilli(rows.getLong(3));
                if (!schema2 || rows.getInt(6) == 1) {
                    checkpoints.add(new AuditCheckpoint(rows.getLong(1), hash, at, rows.getString(4), signature));
                } else {
                    checkpoints.add(new AuditCheckpoint(rows.getInt(6) == 2 ? 2 : 3, rows.getLong(1), hash, at,
                            rows.getString(4), signature,
                            rows.getInt(7), rows.getLong(8), rows.getInt(9) == 1, nonNull(rows.getBytes(10))));
                }
            }
        }
        return checkpoints;
    }

    /** Whether the database has the signed-head table (schema 3 and later). */
    static boolean hasHeadTable(Connection connection) throws SQLException {
        if (postgresql(connection)) {
            return true; // the PostgreSQL schema has had it from its first version
        }
        try (Statement statement = connection.createStatement();
                ResultSet rows = statement.executeQuery(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'")) {
            return rows.next();
        }
    }

    /** The signed head, if the schema has one and it was written. */
    static Optional<AuditHead> head(Connection connection) throws SQLException {
        if (!hasHeadTable(connection)) {
            return Optional.empty();
        }
        try (Statement statement = connection.createStatement();
                ResultSet rows = statement.executeQuery("SELECT seq, hash, ts_millis, checkpoints, checkpoint_digest,"
                        + " refresh_millis, closed, key_id, signature FROM audit_head WHERE id = 1")) {
            if (!rows.next()) {
                return Optional.empty();
            }
            // A NULL key id (the table rebuilt without its constraints) is no key: refused as another key's head.
            String keyId = rows.getString(8);
            return Optional.of(new AuditHead(rows.getLong(1), nonNull(rows.getBytes(2)),
                    Instant.ofEpochMilli(rows.getLong(3)), rows.getLong(4), nonNull(rows.getBytes(5)),
                    rows.getLong(6), rows.getInt(7) == 1, keyId == null ? "" : keyId, nonNull(rows.getBytes(9))));
        }
    }

    private static boolean hasColumn(Connection connection, String table, String column) throws SQLException {
        try (Statement statement = connection.createStatement();
                ResultSet rows = statement.executeQuery("PRAGMA table_info(" + table + ")")) {
            while (rows.next()) {
                if (column.equals(rows.getString("name"))) {
                    return true;
                }
            }
        }
        return false;
    }

    private static byte[] nonNull(byte[] bytes) {
        return bytes == null ? new byte[0] : bytes;
    }

    private static List<AuditRecord> readRecords(PreparedStatement query) throws SQLException, AuditException {
        List<AuditRecord> records = new ArrayList<>();
        try (ResultSet rows = query.executeQuery()) {
            while (rows.next()) {
                records.add(toRecord(rows));
            }
        }
        return records;
    }

    static AuditRecord toRecord(ResultSet rows) throws SQLException, AuditException {
        long seq = rows.getLong(1);
        String type = rows.getString(3);
        AuditEventType eventType;
        try {
            eventType = AuditEventType.valueOf(type);
        } catch (IllegalArgumentException e) {
            throw new AuditException(AuditException.Code.CORRUPT, "record " + seq + ": unknown type '" + type
                    + "'; run `tpmphone audit verify`", e);
        }
        byte[] prevHash = rows.getBytes(7);
        byte[] hash = rows.getBytes(8);
        if (prevHash == null || hash == null || prevHash.length != AuditEncoding.HASH_LENGTH
                || hash.length != AuditEncoding.HASH_LENGTH) {
            throw new AuditException(AuditException.Code.CORRUPT, "record " + seq
                    + ": hash or prev_hash is not 32 bytes; run `tpmphone audit verify`");
        }
        return new AuditRecord(seq, Instant.ofEpochMilli(rows.getLong(2)), eventType, rows.getString(4),
                rows.getString(5), rows.getString(6), prevHash, hash);
    }

    static int toMillis(Duration duration) {
        return (int) Math.min(Integer.MAX_VALUE, Math.max(0, duration.toMillis()));
    }

    static void closeQuietly(AutoCloseable closeable) {
        if (closeable != null) {
            try {
                closeable.close();
            } catch (Exception e) {
                LOG.warn("closing {} failed: {}", closeable.getClass().getSimpleName(), e.toString());
            }
        }
    }
}
