package io.tpmphone.server.internal.console;

import io.tpmphone.server.internal.Registry;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Every policy version the server ever loaded, read from the registry's {@code policies} table through the registry
 * (SQLite, or the PostgreSQL database the cluster shares; this class never writes it). Thread-safe.
 */
public final class PolicyVersions implements AutoCloseable {
    /** One stored version: who loaded it and when (the registry's text, UTC ISO-8601). */
    public record Version(int version, String createdAt, String createdBy) {
    }

    private final Registry registry;

    private PolicyVersions(Registry registry) {
        this.registry = registry;
    }

    /** Reads the policy versions through the registry (SQLite or the shared PostgreSQL database). */
    public static PolicyVersions of(Registry registry) {
        return new PolicyVersions(java.util.Objects.requireNonNull(registry, "registry"));
    }

    /** Versions below {@code beforeVersion}, newest first (keyset). */
    public List<Version> page(int beforeVersion, int limit) throws SQLException {
        List<Version> out = new ArrayList<>();
        for (String[] row : registry.policyVersions(beforeVersion, limit)) {
            out.add(new Version(Integer.parseInt(row[0]), row[1], row[2]));
        }
        return out;
    }

    /** The version just before {@code version}, if any. */
    public Optional<Integer> previous(int version) throws SQLException {
        List<String[]> rows = registry.policyVersions(version, 1);
        return rows.isEmpty() ? Optional.empty() : Optional.of(Integer.parseInt(rows.get(0)[0]));
    }

    /** The stored document of {@code version}. */
    public Optional<String> document(int version) throws SQLException {
        return registry.policyDocument(version);
    }

    /** Nothing to close: the registry is the server's. */
    @Override
    public void close() {
    }
}
