package io.tpmphone.server.internal.console;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.server.audit.AuditException;
import io.tpmphone.server.audit.AuditRecord;
import io.tpmphone.server.internal.Json;
import java.io.IOException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The console's read model of the audit log, in its own SQLite file ({@code console.db}): which records are about
 * which subject, of which type and of which call, and each host's latest appraisal, so that every console page is a
 * bounded, indexed lookup (keyset pagination over seq or host name) however long the log is. It is derived: built by
 * reading the log forward ({@link #sync}) through {@link RecordSource}, never written by anyone else, and rebuilt from
 * the log when its cursor (seq and hash of the last record it read) no longer matches the log. The records themselves
 * are always read from the log; the index holds only references and a copy of each host's latest level.
 *
 * <p>It also keeps the <em>event-log archive</em>: measurement logs the server appraised, by SHA-256, which APPRAISAL
 * records name ({@code eventLogSha256}); the archive is not trusted, so a reader checks a log against its record's
 * hash ({@link #eventLog}). Thread-safe: one connection, serialized.
 */
public final class ConsoleIndex implements AutoCloseable {
    /** The audit log as the index reads it. */
    public interface RecordSource {
        /** Number of committed records (= last seq). */
        long size();

        /** Up to {@code limit} records from {@code fromSeq} on, in seq order. */
        List<AuditRecord> records(long fromSeq, int limit) throws AuditException;
    }

    /** A host's row in the fleet: enrolled, and its latest appraisal if it had one. */
    public record HostRow(String name, long lastSeq, long lastMillis, String level, String failedCheck,
                          Integer policyVersion, String release, Map<String, String> claims) {
        public boolean appraised() {
            return lastSeq > 0;
        }
    }

    /** Which hosts a fleet page shows; null fields do not filter. */
    public record FleetFilter(String level, String claim, String claimStatus, String release, Integer policyVersion,
                              Long staleBeforeMillis) {
        public static FleetFilter none() {
            return new FleetFilter(null, null, null, null, null, null);
        }
    }

    private static final int SCHEMA = 1;
    /** Largest event log archived; bigger ones are not (the diff then says so). */
    public static final int MAX_ARCHIVED_LOG = 256 * 1024;
    private static final int BATCH = 1000;

    private final Path file;
    private final Connection connection;
    private final RecordSource source;
    private final Set<String> archived = Collections.newSetFromMap(new ConcurrentHashMap<>());
    private long cursorSeq;

    private ConsoleIndex(Path file, Connection connection, RecordSource source) {
        this.file = file;
        this.connection = connection;
        this.source = source;
    }

    /** Opens (creating if needed, owner-only) the index at {@code database} over {@code source}. */
    public static ConsoleIndex open(Path database, RecordSource source) throws SQLException, IOException,
            AuditException {
        for (String suffix : List.of("-wal", "-shm", "-journal")) {
            OwnerOnlyFiles.restrict(database.resolveSibling(database.getFileName() + suffix));
        }
        OwnerOnlyFiles.createPrivateFile(database);
        Connection c = DriverManager.getConnection("jdbc:sqlite:" + database.toAbsolutePath());
        try {
            try (Statement s = c.createStatement()) {
                s.execute("PRAGMA journal_mode=WAL");
                // Derived data: a crash loses at most the last batches, which the next sync reads again.
                s.execute("PRAGMA synchronous=NORMAL");
                s.execute("PRAGMA busy_timeout=5000");
            }
            ConsoleIndex index = new ConsoleIndex(database, c, Objects.requireNonNull(source, "source"));
            index.createOrReset();
            return index;
        } catch (SQLException | AuditException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    private void createOrReset() throws SQLException, AuditException {
        int version;
        try (Statement s = connection.createStatement(); ResultSet rs = s.executeQuery("PRAGMA user_version")) {
            version = rs.next() ? rs.getInt(1) : 0;
        }
        try (Statement s = connection.createStatement()) {
            if (version != SCHEMA) {
                for (String t : List.of("cursor", "host", "by_subject", "by_type", "by_call")) {
                    s.execute("DROP TABLE IF EXISTS " + t);
                }
            }
            s.execute("CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
                    + " hash BLOB NOT NULL)");
            s.execute("CREATE TABLE IF NOT EXISTS host (name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0,"
                    + " last_ms INTEGER, level TEXT, failed_check TEXT, policy_version INTEGER, release TEXT,"
                    + " claims TEXT) WITHOUT ROWID");
            s.execute("CREATE INDEX IF NOT EXISTS host_by_level ON host (level, name)");
            s.execute("CREATE TABLE IF NOT EXISTS by_subject (subject TEXT NOT NULL, seq INTEGER NOT NULL,"
                    + " PRIMARY KEY (subject, seq)) WITHOUT ROWID");
            s.execute("CREATE TABLE IF NOT EXISTS by_type (type TEXT NOT NULL, seq INTEGER NOT NULL,"
                    + " PRIMARY KEY (type, seq)) WITHOUT ROWID");
            s.execute("CREATE TABLE IF NOT EXISTS by_call (call_id TEXT NOT NULL, seq INTEGER NOT NULL,"
                    + " PRIMARY KEY (call_id, seq)) WITHOUT ROWID");
            s.execute("CREATE TABLE IF NOT EXISTS event_log (sha256 BLOB PRIMARY KEY, log BLOB NOT NULL)"
                    + " WITHOUT ROWID");
            s.execute("PRAGMA user_version = " + SCHEMA);
        }
        long seq = 0;
        byte[] hash = null;
        try (Statement s = connection.createStatement();
             ResultSet rs = s.executeQuery("SELECT seq, hash FROM cursor WHERE id = 1")) {
            if (rs.next()) {
                seq = rs.getLong(1);
                hash = rs.getBytes(2);
            }
        }
        if (seq > 0) {
            List<AuditRecord> at = seq <= source.size() ? source.records(seq, 1) : List.of();
            if (at.isEmpty() || !MessageDigest.isEqual(at.get(0).hash(), hash)) {
                // Not the log this index was built from (replaced, restored from a backup): read it anew.
                try (Statement s = connection.createStatement()) {
                    for (String t : List.of("cursor", "host", "by_subject", "by_type", "by_call")) {
                        s.execute("DELETE FROM " + t);
                    }
                }
                seq = 0;
            }
        }
        cursorSeq = seq;
    }

    /** The seq of the last record indexed. */
    public synchronized long indexedSeq() {
        return cursorSeq;
    }

    /**
     * Reads up to {@code maxRecords} new records of the log into the index, in batches of at most 1000, each one
     * transaction under the index's lock (so pages are served between batches while a long backlog is read).
     *
     * @return how many records the index is still behind the log
     */
    public long sync(int maxRecords) throws SQLException, AuditException {
        long target = source.size();
        int done = 0;
        while (done < maxRecords) {
            int n = syncBatch(target, Math.min(BATCH, maxRecords - done));
            if (n == 0) {
                break;
            }
            done += n;
        }
        return Math.max(0, target - indexedSeq());
    }

    private synchronized int syncBatch(long target, int limit) throws SQLException, AuditException {
        if (cursorSeq >= target) {
            return 0;
        }
        List<AuditRecord> batch = source.records(cursorSeq + 1, (int) Math.min(limit, target - cursorSeq));
        if (batch.isEmpty()) {
            return 0;
        }
        apply(batch);
        return batch.size();
    }

    private void apply(List<AuditRecord> batch) throws SQLException {
        connection.setAutoCommit(false);
        try (PreparedStatement subject = connection.prepareStatement(
                "INSERT OR IGNORE INTO by_subject (subject, seq) VALUES (?, ?)");
             PreparedStatement type = connection.prepareStatement(
                     "INSERT OR IGNORE INTO by_type (type, seq) VALUES (?, ?)");
             PreparedStatement call = connection.prepareStatement(
                     "INSERT OR IGNORE INTO by_call (call_id, seq) VALUES (?, ?)");
             PreparedStatement enrolled = connection.prepareStatement(
                     "INSERT OR IGNORE INTO host (name) VALUES (?)");
             PreparedStatement appraised = connection.prepareStatement("INSERT INTO host (name, last_seq, last_ms,"
                     + " level, failed_check, policy_version, release, claims) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                     + " ON CONFLICT (name) DO UPDATE SET last_seq = excluded.last_seq, last_ms = excluded.last_ms,"
                     + " level = excluded.level, failed_check = excluded.failed_check,"
                     + " policy_version = excluded.policy_version, release = excluded.release,"
                     + " claims = excluded.claims WHERE excluded.last_seq > host.last_seq");
             PreparedStatement cursor = connection.prepareStatement(
                     "INSERT INTO cursor (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                             + " seq = excluded.seq, hash = excluded.hash")) {
            AuditRecord last = null;
            for (AuditRecord r : batch) {
                if (r.seq() != (last == null ? cursorSeq : last.seq()) + 1) {
                    throw new SQLException("the audit log skipped from " + (last == null ? cursorSeq : last.seq())
                            + " to " + r.seq() + ": not indexing past a gap");
                }
                last = r;
                subject.setString(1, r.subject());
                subject.setLong(2, r.seq());
                subject.addBatch();
                type.setString(1, r.type().name());
                type.setLong(2, r.seq());
                type.addBatch();
                switch (r.type()) {
                    case CALL_DECISION -> {
                        JsonNode d = detail(r);
                        if (d.hasNonNull("callId")) {
                            call.setString(1, d.get("callId").asText());
                            call.setLong(2, r.seq());
                            call.addBatch();
                        }
                    }
                    case ENROLLMENT -> {
                        if (r.outcome().equals("ACCEPTED")) {
                            enrolled.setString(1, r.subject());
                            enrolled.addBatch();
                        }
                    }
                    case APPRAISAL -> {
                        JsonNode d = detail(r);
                        appraised.setString(1, r.subject());
                        appraised.setLong(2, r.seq());
                        appraised.setLong(3, r.timestamp().toEpochMilli());
                        appraised.setString(4, r.outcome());
                        appraised.setString(5, d.hasNonNull("failedCheck") ? d.get("failedCheck").asText() : null);
                        if (d.has("policyVersion") && d.get("policyVersion").canConvertToInt()) {
                            appraised.setInt(6, d.get("policyVersion").asInt());
                        } else {
                            appraised.setNull(6, java.sql.Types.INTEGER);
                        }
                        appraised.setString(7, d.hasNonNull("release") ? d.get("release").asText() : null);
                        appraised.setString(8, d.has("claims") && d.get("claims").isObject()
                                ? d.get("claims").toString() : null);
                        appraised.addBatch();
                    }
                    default -> {
                    }
                }
            }
            subject.executeBatch();
            type.executeBatch();
            call.executeBatch();
            enrolled.executeBatch();
            appraised.executeBatch();
            cursor.setLong(1, last.seq());
            cursor.setBytes(2, last.hash());
            cursor.executeUpdate();
            connection.commit();
            cursorSeq = last.seq();
        } catch (SQLException | RuntimeException e) {
            connection.rollback();
            throw e;
        } finally {
            connection.setAutoCommit(true);
        }
    }

    private static JsonNode detail(AuditRecord r) {
        try {
            return Json.MAPPER.readTree(r.detailJson());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            // The log stores canonical JSON it parsed itself; anything else is not ours to interpret.
            return Json.MAPPER.createObjectNode();
        }
    }

    /** One page of the fleet: hosts after {@code afterName} (null: from the start) in name order. */
    public synchronized List<HostRow> fleet(FleetFilter f, String afterName, int limit) throws SQLException {
        StringBuilder sql = new StringBuilder("SELECT name, last_seq, last_ms, level, failed_check, policy_version,"
                + " release, claims FROM host WHERE name > ?");
        List<Object> args = new ArrayList<>();
        args.add(afterName == null ? "" : afterName);
        if (f.level() != null) {
            sql.append(" AND level = ?");
            args.add(f.level());
        }
        if (f.claim() != null && f.claimStatus() != null) {
            sql.append(" AND json_extract(claims, ?) = ?");
            args.add("$.\"" + f.claim() + "\"");
            args.add(f.claimStatus());
        }
        if (f.release() != null) {
            sql.append(" AND release = ?");
            args.add(f.release());
        }
        if (f.policyVersion() != null) {
            sql.append(" AND policy_version = ?");
            args.add(f.policyVersion());
        }
        if (f.staleBeforeMillis() != null) {
            sql.append(" AND (last_ms IS NULL OR last_ms < ?)");
            args.add(f.staleBeforeMillis());
        }
        sql.append(" ORDER BY name LIMIT ?");
        args.add(limit);
        try (PreparedStatement p = connection.prepareStatement(sql.toString())) {
            for (int i = 0; i < args.size(); i++) {
                p.setObject(i + 1, args.get(i));
            }
            List<HostRow> rows = new ArrayList<>();
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    rows.add(hostRow(rs));
                }
            }
            return rows;
        }
    }

    /** The host's row, if it enrolled or was appraised. */
    public synchronized Optional<HostRow> host(String name) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("SELECT name, last_seq, last_ms, level,"
                + " failed_check, policy_version, release, claims FROM host WHERE name = ?")) {
            p.setString(1, name);
            try (ResultSet rs = p.executeQuery()) {
                return rs.next() ? Optional.of(hostRow(rs)) : Optional.empty();
            }
        }
    }

    /** Number of hosts in the index. */
    public synchronized long hostCount() throws SQLException {
        try (Statement s = connection.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM host")) {
            return rs.next() ? rs.getLong(1) : 0;
        }
    }

    private static HostRow hostRow(ResultSet rs) throws SQLException {
        Map<String, String> claims = new LinkedHashMap<>();
        String json = rs.getString(8);
        if (json != null) {
            try {
                Json.MAPPER.readTree(json).fields().forEachRemaining(e -> claims.put(e.getKey(), e.getValue().asText()));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new SQLException("the console index holds unparseable claims for " + rs.getString(1), e);
            }
        }
        long lastMs = rs.getLong(3);
        Integer policy = rs.getObject(6) == null ? null : rs.getInt(6);
        return new HostRow(rs.getString(1), rs.getLong(2), lastMs, rs.getString(4), rs.getString(5), policy,
                rs.getString(7), claims);
    }

    /** Seqs of records about {@code subject} before {@code beforeSeq}, newest first (keyset). */
    public synchronized List<Long> bySubject(String subject, long beforeSeq, int limit) throws SQLException {
        return seqs("SELECT seq FROM by_subject WHERE subject = ? AND seq < ? ORDER BY seq DESC LIMIT ?", subject,
                beforeSeq, limit);
    }

    /** Seqs of records of {@code type} before {@code beforeSeq}, newest first (keyset). */
    public synchronized List<Long> byType(String type, long beforeSeq, int limit) throws SQLException {
        return seqs("SELECT seq FROM by_type WHERE type = ? AND seq < ? ORDER BY seq DESC LIMIT ?", type, beforeSeq,
                limit);
    }

    /** Seqs of records about {@code subject} of {@code type} before {@code beforeSeq}, newest first (keyset). */
    public synchronized List<Long> bySubjectAndType(String subject, String type, long beforeSeq, int limit)
            throws SQLException {
        return seqs("SELECT s.seq FROM by_subject s JOIN by_type t ON t.type = ? AND t.seq = s.seq"
                + " WHERE s.subject = ? AND s.seq < ? ORDER BY s.seq DESC LIMIT ?", type, subject, beforeSeq, limit);
    }

    /** Seqs of the CALL_DECISION records of one call (at most {@code limit}), oldest first. */
    public synchronized List<Long> byCall(String callId, int limit) throws SQLException {
        return seqs("SELECT seq FROM by_call WHERE call_id = ? ORDER BY seq LIMIT ?", callId, limit);
    }

    private List<Long> seqs(String sql, Object... args) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) {
                p.setObject(i + 1, args[i]);
            }
            List<Long> out = new ArrayList<>();
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    out.add(rs.getLong(1));
                }
            }
            return out;
        }
    }

    /**
     * Archives an appraised measurement log under its SHA-256 (no-op if known or larger than
     * {@value #MAX_ARCHIVED_LOG} bytes). Called on the appraisal path: one insert per new log, none for a known one.
     */
    public void archive(byte[] sha256, byte[] log) throws SQLException {
        if (log.length > MAX_ARCHIVED_LOG) {
            return;
        }
        String key = java.util.HexFormat.of().formatHex(sha256);
        if (archived.contains(key)) {
            return;
        }
        synchronized (this) {
            try (PreparedStatement p = connection.prepareStatement(
                    "INSERT OR IGNORE INTO event_log (sha256, log) VALUES (?, ?)")) {
                p.setBytes(1, sha256);
                p.setBytes(2, log);
                p.executeUpdate();
            }
        }
        if (archived.size() > 100_000) {
            archived.clear(); // a cache of what is stored, not the store: dropping it only costs an insert
        }
        archived.add(key);
    }

    /** The archived log whose SHA-256 is {@code sha256}, checked against it; empty if not archived or altered. */
    public synchronized Optional<byte[]> eventLog(byte[] sha256) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("SELECT log FROM event_log WHERE sha256 = ?")) {
            p.setBytes(1, sha256);
            try (ResultSet rs = p.executeQuery()) {
                if (!rs.next()) {
                    return Optional.empty();
                }
                byte[] log = rs.getBytes(1);
                byte[] actual = io.tpmphone.attestation.HashAlgorithm.SHA256.digest(log);
                return MessageDigest.isEqual(actual, sha256) ? Optional.of(log) : Optional.empty();
            }
        }
    }

    @Override
    public synchronized void close() throws SQLException {
        connection.close();
    }

    @Override
    public String toString() {
        return "ConsoleIndex{" + file + "}";
    }
}
