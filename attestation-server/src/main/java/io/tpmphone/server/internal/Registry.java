package io.tpmphone.server.internal;

import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.flywaydb.core.Flyway;

/**
 * The server's registry of enrolled hosts (host ↔ EK ↔ AK), the last TPM clock state per AK, and policy versions,
 * in SQLite (WAL) with Flyway migrations. Enrolled AKs and clock states are cached in memory for the appraisal hot
 * path; writes go through one connection under one lock. Enrollment and policy writes are durable on return
 * ({@code synchronous=FULL}). Thread-safe.
 */
public final class Registry implements AutoCloseable {

    /** One enrolled host. Byte arrays are TPM wire encodings. */
    public record Host(String host, byte[] ekName, byte[] ekPublic, byte[] ekCertificate, byte[] akName,
                       byte[] akPublic, String enrolledAt) {
        public String akId() {
            return HexFormat.of().formatHex(akName);
        }
    }

    /**
     * What the server knows of one TPM (by EK): its newest (resetCount, restartCount, clock) and the measurement log
     * it last accepted in that boot.
     */
    public record TpmState(long resetCount, long restartCount, long clock, byte[] acceptedLog) {
        public boolean sameBoot(long reset, long restart) {
            return resetCount == reset && restartCount == restart;
        }

        /** (resetCount, restartCount, clock) compared in that order; a TPM reset may restart the clock. */
        public boolean isAfter(long reset, long restart, long clk) {
            if (reset != resetCount) {
                return resetCount > reset;
            }
            if (restart != restartCount) {
                return restartCount > restart;
            }
            return clock > clk;
        }
    }

    /** An operator's permission to enroll a new host name. */
    public record EnrollmentToken(String host, byte[] tokenSha256, java.time.Instant expiresAt) {
    }

    private final Connection connection;
    private final Clock clock;
    private final Map<String, Host> byAkId = new ConcurrentHashMap<>();
    private final Map<String, TpmState> stateByEk = new ConcurrentHashMap<>();
    private final java.util.Set<String> dirtyStates = ConcurrentHashMap.newKeySet();

    private Registry(Connection connection, Clock clock) {
        this.connection = connection;
        this.clock = clock;
    }

    /**
     * Opens (creating if needed) the registry database. It and the files SQLite keeps next to it are owner-only
     * (0600) from their creation; existing ones are restricted. Put it in an owner-only directory.
     */
    public static Registry open(Path database, Clock clock) throws SQLException, IOException {
        // SQLite creates its -wal, -shm and -journal files with the mode of the database file: create that 0600
        // before SQLite opens it (an empty file is a new database), and restrict files of earlier versions.
        for (String suffix : List.of("-wal", "-shm", "-journal")) {
            OwnerOnlyFiles.restrict(database.resolveSibling(database.getFileName() + suffix));
        }
        OwnerOnlyFiles.createPrivateFile(database);
        String url = "jdbc:sqlite:" + database.toAbsolutePath();
        Flyway.configure().dataSource(url, null, null).locations("classpath:db/registry")
                .failOnMissingLocations(true).load().migrate();
        Connection c = DriverManager.getConnection(url);
        try (Statement s = c.createStatement()) {
            s.execute("PRAGMA journal_mode=WAL");
            s.execute("PRAGMA synchronous=FULL");
            s.execute("PRAGMA foreign_keys=ON");
            s.execute("PRAGMA busy_timeout=5000");
        }
        Registry r = new Registry(c, clock);
        r.loadCaches();
        return r;
    }

    private void loadCaches() throws SQLException {
        try (Statement s = connection.createStatement();
             ResultSet rs = s.executeQuery("SELECT host, ek_name, ek_public, ek_certificate, ak_name, ak_public,"
                     + " enrolled_at FROM hosts")) {
            while (rs.next()) {
                Host h = new Host(rs.getString(1), rs.getBytes(2), rs.getBytes(3), rs.getBytes(4), rs.getBytes(5),
                        rs.getBytes(6), rs.getString(7));
                byAkId.put(h.akId(), h);
            }
        }
        try (Statement s = connection.createStatement();
             ResultSet rs = s.executeQuery("SELECT ek_name, reset_count, restart_count, clock, accepted_log"
                     + " FROM tpm_state")) {
            while (rs.next()) {
                stateByEk.put(HexFormat.of().formatHex(rs.getBytes(1)),
                        new TpmState(rs.getLong(2), rs.getLong(3), rs.getLong(4), rs.getBytes(5)));
            }
        }
    }

    public Optional<Host> hostByAkId(String akId) {
        return Optional.ofNullable(byAkId.get(akId));
    }

    /** Every enrolled host. */
    public java.util.Collection<Host> hosts() {
        return java.util.List.copyOf(byAkId.values());
    }

    public Optional<Host> hostByName(String host) {
        for (Host h : byAkId.values()) {
            if (h.host().equals(host)) {
                return Optional.of(h);
            }
        }
        return Optional.empty();
    }

    /** Records an enrollment; the caller has checked that it does not conflict. */
    public synchronized void enroll(Host h) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("INSERT INTO hosts (host, ek_name, ek_public,"
                + " ek_certificate, ak_name, ak_public, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                + " ON CONFLICT (host) DO UPDATE SET ak_name = excluded.ak_name, ak_public = excluded.ak_public,"
                + " enrolled_at = excluded.enrolled_at WHERE hosts.ek_name = excluded.ek_name")) {
            p.setString(1, h.host());
            p.setBytes(2, h.ekName());
            p.setBytes(3, h.ekPublic());
            p.setBytes(4, h.ekCertificate());
            p.setBytes(5, h.akName());
            p.setBytes(6, h.akPublic());
            p.setString(7, h.enrolledAt());
            if (p.executeUpdate() != 1) {
                throw new SQLException("host " + h.host() + " is enrolled with another EK");
            }
        }
        byAkId.values().removeIf(old -> old.host().equals(h.host()));
        byAkId.put(h.akId(), h);
    }

    public Optional<TpmState> tpmState(byte[] ekName) {
        return Optional.ofNullable(stateByEk.get(HexFormat.of().formatHex(ekName)));
    }

    /**
     * Atomically advances a TPM's clock state to the newer of the stored and the given one, so that concurrent
     * appraisals never move it back. Within the same boot the accepted log is kept. (Whether a quote is behind what
     * the server knew is decided by Appraisals against the state before this call, under its per-TPM lock.)
     */
    public void advanceClock(byte[] ekName, long reset, long restart, long clk) {
        String key = HexFormat.of().formatHex(ekName);
        stateByEk.compute(key, (k, old) -> {
            if (old != null && old.isAfter(reset, restart, clk)) {
                return old;
            }
            dirtyStates.add(k);
            byte[] log = old != null && old.sameBoot(reset, restart) ? old.acceptedLog() : null;
            return new TpmState(reset, restart, clk, log);
        });
    }

    /**
     * Records the log accepted for a TPM in its current boot — only if it extends the one accepted before (the wire
     * format is a plain concatenation of events, so "extends" is a byte prefix), so that concurrent appraisals
     * cannot replace a longer accepted log with a shorter one.
     */
    public void acceptLog(byte[] ekName, long reset, long restart, byte[] log) {
        String key = HexFormat.of().formatHex(ekName);
        stateByEk.computeIfPresent(key, (k, old) -> {
            if (!old.sameBoot(reset, restart)) {
                return old;
            }
            byte[] accepted = old.acceptedLog();
            boolean extendsAccepted = accepted == null || (log.length >= accepted.length
                    && java.util.Arrays.equals(log, 0, accepted.length, accepted, 0, accepted.length));
            return extendsAccepted ? new TpmState(old.resetCount(), old.restartCount(), old.clock(), log.clone()) : old;
        });
        dirtyStates.add(key);
    }

    /**
     * Writes changed TPM states in one transaction; called every second and on close. A crash loses at most the
     * last second: the checks then compare against a slightly older state, still never going backwards. On failure
     * the changes stay pending.
     */
    public synchronized void flushClocks() throws SQLException {
        if (dirtyStates.isEmpty()) {
            return;
        }
        java.util.List<String> batch = new java.util.ArrayList<>(dirtyStates);
        dirtyStates.removeAll(batch);
        boolean auto = connection.getAutoCommit();
        connection.setAutoCommit(false);
        try (PreparedStatement p = connection.prepareStatement("INSERT INTO tpm_state (ek_name, reset_count,"
                + " restart_count, clock, accepted_log, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ek_name)"
                + " DO UPDATE SET reset_count = excluded.reset_count, restart_count = excluded.restart_count,"
                + " clock = excluded.clock, accepted_log = excluded.accepted_log, updated_at = excluded.updated_at")) {
            for (String key : batch) {
                TpmState state = stateByEk.get(key);
                p.setBytes(1, HexFormat.of().parseHex(key));
                p.setLong(2, state.resetCount());
                p.setLong(3, state.restartCount());
                p.setLong(4, state.clock());
                p.setBytes(5, state.acceptedLog());
                p.setString(6, clock.instant().toString());
                p.addBatch();
            }
            p.executeBatch();
            connection.commit();
        } catch (SQLException e) {
            connection.rollback();
            dirtyStates.addAll(batch);
            throw e;
        } finally {
            connection.setAutoCommit(auto);
        }
    }

    public synchronized void storeEnrollmentToken(String host, byte[] tokenSha256, java.time.Instant expiresAt,
                                                  String by) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("INSERT INTO enrollment_tokens (host, token_sha256,"
                + " expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                + " token_sha256 = excluded.token_sha256, expires_at = excluded.expires_at,"
                + " created_by = excluded.created_by, created_at = excluded.created_at")) {
            p.setString(1, host);
            p.setBytes(2, tokenSha256);
            p.setString(3, expiresAt.toString());
            p.setString(4, by);
            p.setString(5, clock.instant().toString());
            p.executeUpdate();
        }
    }

    public synchronized Optional<EnrollmentToken> enrollmentToken(String host) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement(
                "SELECT token_sha256, expires_at FROM enrollment_tokens WHERE host = ?")) {
            p.setString(1, host);
            try (ResultSet rs = p.executeQuery()) {
                return rs.next() ? Optional.of(new EnrollmentToken(host, rs.getBytes(1),
                        java.time.Instant.parse(rs.getString(2)))) : Optional.empty();
            }
        }
    }

    public synchronized void deleteEnrollmentToken(String host) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("DELETE FROM enrollment_tokens WHERE host = ?")) {
            p.setString(1, host);
            p.executeUpdate();
        }
    }

    /** The newest policy document and its version, if any was stored. */
    public synchronized Optional<Map.Entry<Integer, String>> latestPolicy() throws SQLException {
        try (Statement s = connection.createStatement();
             ResultSet rs = s.executeQuery("SELECT version, document FROM policies ORDER BY version DESC LIMIT 1")) {
            return rs.next() ? Optional.of(Map.entry(rs.getInt(1), rs.getString(2))) : Optional.empty();
        }
    }

    public synchronized void storePolicy(int version, String document, String by) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement(
                "INSERT INTO policies (version, document, created_at, created_by) VALUES (?, ?, ?, ?)")) {
            p.setInt(1, version);
            p.setString(2, document);
            p.setString(3, clock.instant().toString());
            p.setString(4, by);
            p.executeUpdate();
        }
    }

    @Override
    public synchronized void close() throws SQLException {
        try {
            flushClocks();
        } finally {
            connection.close();
        }
    }
}
