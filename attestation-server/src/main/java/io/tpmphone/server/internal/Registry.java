package io.tpmphone.server.internal;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.util.HexFormat;
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

    /** TPM clock state from a TPMS_ATTEST clockInfo. */
    public record ClockState(long resetCount, long restartCount, long clock) {
    }

    private final Connection connection;
    private final Clock clock;
    private final Map<String, Host> byAkId = new ConcurrentHashMap<>();
    private final Map<String, ClockState> clockByAkId = new ConcurrentHashMap<>();
    private final java.util.Set<String> dirtyClocks = ConcurrentHashMap.newKeySet();

    private Registry(Connection connection, Clock clock) {
        this.connection = connection;
        this.clock = clock;
    }

    public static Registry open(Path database, Clock clock) throws SQLException {
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
             ResultSet rs = s.executeQuery("SELECT ak_name, reset_count, restart_count, clock FROM ak_clock")) {
            while (rs.next()) {
                clockByAkId.put(HexFormat.of().formatHex(rs.getBytes(1)),
                        new ClockState(rs.getLong(2), rs.getLong(3), rs.getLong(4)));
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

    public Optional<ClockState> clockState(String akId) {
        return Optional.ofNullable(clockByAkId.get(akId));
    }

    /**
     * Records the newest clock state of an AK in memory at once; {@link #flushClocks()} (every second, and on close)
     * writes the changed ones in one transaction. A crash loses at most the last second of updates, after which the
     * monotonicity check compares against a slightly older state: still never backwards.
     */
    public void updateClock(String akId, ClockState state) {
        clockByAkId.put(akId, state);
        dirtyClocks.add(akId);
    }

    /** Writes changed clock states. */
    public synchronized void flushClocks() throws SQLException {
        if (dirtyClocks.isEmpty()) {
            return;
        }
        boolean auto = connection.getAutoCommit();
        connection.setAutoCommit(false);
        try (PreparedStatement p = connection.prepareStatement("INSERT INTO ak_clock (ak_name, reset_count,"
                + " restart_count, clock, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (ak_name) DO UPDATE SET"
                + " reset_count = excluded.reset_count, restart_count = excluded.restart_count,"
                + " clock = excluded.clock, updated_at = excluded.updated_at")) {
            for (java.util.Iterator<String> it = dirtyClocks.iterator(); it.hasNext(); ) {
                String akId = it.next();
                it.remove();
                ClockState state = clockByAkId.get(akId);
                p.setBytes(1, HexFormat.of().parseHex(akId));
                p.setLong(2, state.resetCount());
                p.setLong(3, state.restartCount());
                p.setLong(4, state.clock());
                p.setString(5, clock.instant().toString());
                p.addBatch();
            }
            p.executeBatch();
            connection.commit();
        } catch (SQLException e) {
            connection.rollback();
            throw e;
        } finally {
            connection.setAutoCommit(auto);
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
