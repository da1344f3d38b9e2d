package io.tpmphone.server.internal.console;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.sqlite.SQLiteConfig;
import org.sqlite.SQLiteDataSource;

/**
 * Every policy version the server ever loaded, read from the registry's {@code policies} table over a read-only
 * connection of its own (the registry owns the table; this class never writes it). Thread-safe: serialized.
 */
public final class PolicyVersions implements AutoCloseable {
    /** One stored version: who loaded it and when (the registry's text, UTC ISO-8601). */
    public record Version(int version, String createdAt, String createdBy) {
    }

    private final Connection connection;

    private PolicyVersions(Connection connection) {
        this.connection = connection;
    }

    /** Opens {@code registryDatabase} read-only (it must exist: the registry creates it first). */
    public static PolicyVersions open(Path registryDatabase) throws SQLException {
        SQLiteConfig config = new SQLiteConfig();
        config.setReadOnly(true);
        config.setBusyTimeout(5000);
        SQLiteDataSource ds = new SQLiteDataSource(config);
        ds.setUrl("jdbc:sqlite:" + registryDatabase.toAbsolutePath());
        Connection c = ds.getConnection();
        try (Statement s = c.createStatement()) {
            s.execute("PRAGMA query_only = ON");
        } catch (SQLException e) {
            c.close();
            throw e;
        }
        return new PolicyVersions(c);
    }

    /** Versions below {@code beforeVersion}, newest first (keyset). */
    public synchronized List<Version> page(int beforeVersion, int limit) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("SELECT version, created_at, created_by FROM policies"
                + " WHERE version < ? ORDER BY version DESC LIMIT ?")) {
            p.setInt(1, beforeVersion);
            p.setInt(2, limit);
            List<Version> out = new ArrayList<>();
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    out.add(new Version(rs.getInt(1), rs.getString(2), rs.getString(3)));
                }
            }
            return out;
        }
    }

    /** The version just before {@code version}, if any. */
    public synchronized Optional<Integer> previous(int version) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement(
                "SELECT max(version) FROM policies WHERE version < ?")) {
            p.setInt(1, version);
            try (ResultSet rs = p.executeQuery()) {
                return rs.next() && rs.getObject(1) != null ? Optional.of(rs.getInt(1)) : Optional.empty();
            }
        }
    }

    /** The stored document of {@code version}. */
    public synchronized Optional<String> document(int version) throws SQLException {
        try (PreparedStatement p = connection.prepareStatement("SELECT document FROM policies WHERE version = ?")) {
            p.setInt(1, version);
            try (ResultSet rs = p.executeQuery()) {
                return rs.next() ? Optional.of(rs.getString(1)) : Optional.empty();
            }
        }
    }

    @Override
    public synchronized void close() throws SQLException {
        connection.close();
    }
}
