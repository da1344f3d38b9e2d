package io.tpmphone.server.testing;

import io.tpmphone.swtpm.testing.PostgresServer;
import io.tpmphone.server.internal.NonceService;
import io.tpmphone.server.internal.Registry;
import io.tpmphone.server.internal.ServerDatabase;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Clock;
import java.util.function.Supplier;

/**
 * One storage backend for one test run: SQLite files in the test's directory, or a PostgreSQL database of the run's
 * own on the JVM's {@link PostgresServer} (created on first use; every registry or verifier the run opens shares it,
 * as server instances of one cluster do).
 */
public final class TestBackend {
    /** The server's storage backends. */
    public enum Kind { SQLITE, POSTGRESQL }

    private final Kind kind;
    private final String name;
    private final Supplier<PostgresServer> server;
    private String url;

    TestBackend(Kind kind, String name, Supplier<PostgresServer> server) {
        this.kind = kind;
        this.name = name;
        this.server = server;
    }

    public Kind kind() {
        return kind;
    }

    /** Whether several server instances may share this backend (PostgreSQL). */
    public boolean shared() {
        return kind == Kind.POSTGRESQL;
    }

    /** The run's PostgreSQL database (created on first call). */
    public synchronized String databaseUrl() throws SQLException {
        if (kind != Kind.POSTGRESQL) {
            throw new IllegalStateException("an SQLite backend has no database URL");
        }
        if (url == null) {
            url = server.get().createDatabase(name);
        }
        return url;
    }

    /** Opens the server's database: {@code dir/registry.db}, or the run's PostgreSQL database. */
    public ServerDatabase open(Path dir) throws Exception {
        return kind == Kind.SQLITE ? ServerDatabase.sqlite(dir.resolve("registry.db"))
                : ServerDatabase.postgresql(databaseUrl(), null, 4);
    }

    /** A registry on {@link #open(Path)}; another call opens another instance's view of the same data. */
    public Registry registry(Path dir, Clock clock) throws Exception {
        return Registry.open(open(dir), clock);
    }

    /** The nonces a server on {@code registry} uses: in memory on SQLite, in the shared database on PostgreSQL. */
    public static NonceService nonces(Registry registry, Clock clock) {
        return NonceService.shared(clock, registry.database());
    }

    @Override
    public String toString() {
        return kind.name().toLowerCase();
    }
}
