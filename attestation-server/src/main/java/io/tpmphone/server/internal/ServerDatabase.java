package io.tpmphone.server.internal;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.tpmphone.attestation.OwnerOnlyFiles;
import java.io.IOException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.FlywayException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where the server's registry lives (hosts, TPM states, policies, enrollment tokens and challenges, nonces, the last
 * appraisal of each host): an SQLite file in the state directory (the default: one server instance), or a PostgreSQL
 * database that several server instances share ({@code --database jdbc:postgresql://…}, docs/operations.md).
 *
 * <p>SQLite: one connection, used by one thread at a time (callers are serialised on this object), WAL with
 * {@code synchronous=FULL}. PostgreSQL: a HikariCP pool; every statement runs on a pooled connection with
 * {@code synchronous_commit} on, which is checked on open. The schema is migrated by Flyway on open, from
 * {@code db/registry} (SQLite) or {@code db/postgresql/registry}; several instances starting at once are serialised by
 * Flyway's own lock.
 *
 * <p>Thread-safe. Failures of a statement surface as {@link SQLException}; a failure to get a connection in time as
 * well (the pool waits at most {@link #CONNECTION_TIMEOUT}).
 */
public final class ServerDatabase implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ServerDatabase.class);
    /** The longest a statement waits for a pooled connection (then the request gets a 503). */
    public static final Duration CONNECTION_TIMEOUT = Duration.ofSeconds(5);
    /** Connections per server instance to PostgreSQL, unless configured otherwise. */
    public static final int DEFAULT_POOL_SIZE = 10;
    private static final String POSTGRESQL_PREFIX = "jdbc:postgresql://";

    /** Which engine. */
    public enum Kind { SQLITE, POSTGRESQL }

    /** Work on one connection. */
    @FunctionalInterface
    public interface Work<T> {
        T run(Connection connection) throws SQLException;
    }

    private final Kind kind;
    private final String description;
    private final Connection sqlite;
    private final HikariDataSource pool;
    /** The connection of this thread's {@link #inOneTransaction} (PostgreSQL), which its reads and writes join. */
    private final ThreadLocal<Connection> joined = new ThreadLocal<>();

    private ServerDatabase(Kind kind, String description, Connection sqlite, HikariDataSource pool) {
        this.kind = kind;
        this.description = description;
        this.sqlite = sqlite;
        this.pool = pool;
    }

    /**
     * Opens (creating if needed) the SQLite registry {@code file}. It and the files SQLite keeps next to it are
     * owner-only (0600) from their creation; existing ones are restricted. Put it in an owner-only directory.
     */
    public static ServerDatabase sqlite(Path file) throws SQLException, IOException {
        Objects.requireNonNull(file, "file");
        // SQLite creates its -wal, -shm and -journal files with the mode of the database file: create that 0600
        // before SQLite opens it (an empty file is a new database), and restrict files of earlier versions.
        for (String suffix : List.of("-wal", "-shm", "-journal")) {
            OwnerOnlyFiles.restrict(file.resolveSibling(file.getFileName() + suffix));
        }
        OwnerOnlyFiles.createPrivateFile(file);
        String url = "jdbc:sqlite:" + file.toAbsolutePath();
        migrate(Flyway.configure().dataSource(url, null, null).locations("classpath:db/registry"), file.toString());
        Connection c = DriverManager.getConnection(url);
        try (Statement s = c.createStatement()) {
            s.execute("PRAGMA journal_mode=WAL");
            s.execute("PRAGMA synchronous=FULL");
            s.execute("PRAGMA foreign_keys=ON");
            s.execute("PRAGMA busy_timeout=5000");
        } catch (SQLException e) {
            c.close();
            throw e;
        }
        return new ServerDatabase(Kind.SQLITE, file.toString(), c, null);
    }

    /**
     * Opens a PostgreSQL database shared by several server instances, e.g.
     * {@code jdbc:postgresql://db.example:5432/tpmphone?user=tpmphone}, migrating its schema. The password is
     * {@code password} if given, else what the driver finds itself (its {@code password} URL parameter, or the
     * {@code ~/.pgpass} / {@code PGPASSFILE} file); keep it out of command lines.
     *
     * @param poolSize connections this instance keeps at most
     * @throws IllegalArgumentException if {@code url} is not a {@code jdbc:postgresql://} URL
     * @throws SQLException if the database cannot be reached or migrated, or commits are not durable
     */
    public static ServerDatabase postgresql(String url, char[] password, int poolSize) throws SQLException {
        requirePostgresqlUrl(url);
        if (poolSize < 2 || poolSize > 1000) {
            throw new IllegalArgumentException("the database pool size must be 2..1000, got " + poolSize);
        }
        String description = redact(url);
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(url);
        if (password != null) {
            config.setPassword(new String(password));
        }
        config.setPoolName("tpmphone-registry");
        config.setMaximumPoolSize(poolSize);
        config.setMinimumIdle(Math.min(2, poolSize));
        config.setConnectionTimeout(CONNECTION_TIMEOUT.toMillis());
        config.setInitializationFailTimeout(CONNECTION_TIMEOUT.toMillis());
        config.addDataSourceProperty("ApplicationName", "tpmphone-server");
        config.addDataSourceProperty("tcpKeepAlive", "true");
        // A statement the database does not answer within this time fails (and the request with it) instead of
        // holding a pooled connection and a server thread forever.
        config.addDataSourceProperty("socketTimeout", "30");
        HikariDataSource pool;
        try {
            pool = new HikariDataSource(config);
        } catch (RuntimeException e) {
            throw new SQLException("cannot connect to " + description + ": " + rootMessage(e), e);
        }
        try {
            // The audit log's tables (own history) share the database: start this history at 0, then V1.
            migrate(Flyway.configure().dataSource(pool).locations("classpath:db/postgresql/registry")
                    .table("registry_schema_history").baselineOnMigrate(true).baselineVersion("0"), description);
            requireDurableCommits(pool, description);
        } catch (SQLException | RuntimeException e) {
            pool.close();
            throw e;
        }
        LOG.info("registry on {} (pool of {})", description, poolSize);
        return new ServerDatabase(Kind.POSTGRESQL, description, null, pool);
    }

    /** Refuses anything but a {@code jdbc:postgresql://} URL, saying what is accepted. */
    public static void requirePostgresqlUrl(String url) {
        Objects.requireNonNull(url, "url");
        if (!url.startsWith(POSTGRESQL_PREFIX) || url.length() == POSTGRESQL_PREFIX.length()) {
            throw new IllegalArgumentException("the database must be a PostgreSQL JDBC URL such as "
                    + "jdbc:postgresql://HOST:5432/DATABASE?user=USER, got '" + redact(url) + "' (SQLite, the default,"
                    + " needs no URL: its files are in the state directory)");
        }
        requireTransportSecurity(url);
    }

    /**
     * A database off this machine must be reached over TLS that checks its certificate, or the operator must say
     * otherwise: whoever can write to the database decides the policy and the TPMs' rollback state, and pgjdbc's
     * default ({@code sslmode=prefer}) neither checks the certificate nor refuses plaintext. A URL for a host other
     * than loopback needs an explicit {@code sslmode} ({@code verify-full} with {@code sslrootcert}, or, on a network
     * the operator trusts, {@code disable}); {@code prefer}, {@code allow} and {@code require} are refused as
     * unauthenticated.
     */
    static void requireTransportSecurity(String url) {
        String rest = url.substring(POSTGRESQL_PREFIX.length());
        int q = rest.indexOf('?');
        String query = q < 0 ? "" : rest.substring(q + 1);
        String hostPart = q < 0 ? rest : rest.substring(0, q);
        int slash = hostPart.indexOf('/');
        String hosts = (slash < 0 ? hostPart : hostPart.substring(0, slash)).toLowerCase(java.util.Locale.ROOT);
        String sslmode = null;
        for (String kv : query.split("&")) {
            if (kv.toLowerCase(java.util.Locale.ROOT).startsWith("sslmode=")) {
                sslmode = kv.substring("sslmode=".length()).toLowerCase(java.util.Locale.ROOT);
            }
        }
        boolean local = true;
        for (String h : hosts.split(",")) {
            String host = h.startsWith("[") ? h.substring(0, h.indexOf(']') + 1) : h.replaceFirst(":\\d+$", "");
            if (!(host.isEmpty() || host.equals("localhost") || host.startsWith("127.") || host.equals("[::1]"))) {
                local = false;
            }
        }
        if (sslmode == null) {
            if (!local) {
                throw new IllegalArgumentException("the database URL for " + hosts + " names no sslmode: add"
                        + " sslmode=verify-full&sslrootcert=FILE (or sslmode=disable on a network you trust);"
                        + " docs/operations.md");
            }
            return;
        }
        if (!sslmode.equals("verify-full") && !sslmode.equals("verify-ca") && !sslmode.equals("disable")) {
            throw new IllegalArgumentException("sslmode=" + sslmode + " does not check the database's certificate:"
                    + " use verify-full (or disable on a network you trust); docs/operations.md");
        }
    }

    /** The URL without its parameters (which may hold a password), for messages and logs. */
    public static String redact(String url) {
        int q = url.indexOf('?');
        String base = q < 0 ? url : url.substring(0, q) + "?…";
        int at = base.indexOf('@');
        return at < 0 ? base : base.substring(0, base.indexOf("//") + 2) + "…@" + base.substring(at + 1);
    }

    private static void migrate(org.flywaydb.core.api.configuration.FluentConfiguration flyway, String what)
            throws SQLException {
        try {
            flyway.failOnMissingLocations(true).load().migrate();
        } catch (FlywayException e) {
            throw new SQLException("cannot create or migrate the registry schema of " + what + ": "
                    + e.getMessage(), e);
        }
    }

    private static void requireDurableCommits(HikariDataSource pool, String description) throws SQLException {
        try (Connection c = pool.getConnection(); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SHOW synchronous_commit")) {
            rs.next();
            String value = rs.getString(1);
            if ("off".equalsIgnoreCase(value)) {
                throw new SQLException(description + " runs with synchronous_commit=off: a committed enrollment or"
                        + " TPM state could be lost in a crash. Set it to on (ALTER ROLE … SET synchronous_commit = on,"
                        + " or in postgresql.conf)");
            }
        }
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.toString() : t.getMessage();
    }

    public Kind kind() {
        return kind;
    }

    /**
     * Whether several server instances may use this database at once (PostgreSQL). Then nothing authoritative may
     * be kept in one instance's memory.
     */
    public boolean shared() {
        return kind == Kind.POSTGRESQL;
    }

    /** The database for messages: the file, or the URL without its parameters. */
    public String description() {
        return description;
    }

    /**
     * Runs {@code work} on a connection in auto-commit mode; within {@link #inOneTransaction} on this thread, on that
     * transaction's connection (committed with it).
     */
    public <T> T read(Work<T> work) throws SQLException {
        if (sqlite != null) {
            synchronized (this) {
                return work.run(sqlite);
            }
        }
        Connection in = joined.get();
        if (in != null) {
            return work.run(in);
        }
        try (Connection c = pool.getConnection()) {
            return work.run(c);
        }
    }

    /**
     * Runs {@code work} in one transaction: committed if it returns, rolled back if it throws. Within
     * {@link #inOneTransaction} on this thread, part of that transaction (committed or rolled back with it).
     */
    public <T> T transaction(Work<T> work) throws SQLException {
        if (sqlite != null) {
            synchronized (this) {
                return inTransaction(sqlite, work);
            }
        }
        Connection in = joined.get();
        if (in != null) {
            return work.run(in);
        }
        try (Connection c = pool.getConnection()) {
            return inTransaction(c, work);
        }
    }

    /**
     * On PostgreSQL: runs {@code work} in one transaction that every {@link #read} and {@link #transaction} it makes
     * on this thread joins (one connection, one commit: one WAL flush instead of one per statement); committed if it
     * returns, rolled back if it throws. A statement that fails inside aborts the whole transaction, so {@code work}
     * must not go on after catching a failed statement. Nested calls join the outer one. On SQLite, where the
     * registry's hot state is in memory and a transaction holds the single connection's lock, {@code work} simply
     * runs: each of its calls is as without this method.
     */
    public <T> T inOneTransaction(java.util.function.Supplier<T> work) throws SQLException {
        if (sqlite != null || joined.get() != null) {
            return work.get();
        }
        try (Connection c = pool.getConnection()) {
            joined.set(c);
            try {
                return inTransaction(c, unused -> work.get());
            } finally {
                joined.remove();
            }
        }
    }

    private static <T> T inTransaction(Connection c, Work<T> work) throws SQLException {
        boolean auto = c.getAutoCommit();
        c.setAutoCommit(false);
        try {
            T result = work.run(c);
            c.commit();
            return result;
        } catch (SQLException | RuntimeException e) {
            try {
                c.rollback();
            } catch (SQLException rollback) {
                e.addSuppressed(rollback);
            }
            throw e;
        } finally {
            c.setAutoCommit(auto);
        }
    }

    /** The connection pool's state at one moment: connections in use, idle, open, and threads waiting for one. */
    public record PoolState(int active, int idle, int total, int waiting) {
    }

    /** The pool's state now (HikariCP's MXBean), or empty on SQLite (one connection, no pool). */
    public java.util.Optional<PoolState> poolState() {
        if (pool == null || pool.isClosed() || pool.getHikariPoolMXBean() == null) {
            return java.util.Optional.empty();
        }
        com.zaxxer.hikari.HikariPoolMXBean b = pool.getHikariPoolMXBean();
        return java.util.Optional.of(new PoolState(b.getActiveConnections(), b.getIdleConnections(),
                b.getTotalConnections(), b.getThreadsAwaitingConnection()));
    }

    /** The connection pool of a PostgreSQL database (for the shared audit log), or null on SQLite. */
    public javax.sql.DataSource dataSource() {
        return pool;
    }

    /** {@code " FOR UPDATE"} where the engine locks rows that way (PostgreSQL); SQLite locks the whole database. */
    public String forUpdate() {
        return kind == Kind.POSTGRESQL ? " FOR UPDATE" : "";
    }

    @Override
    public void close() throws SQLException {
        if (sqlite != null) {
            synchronized (this) {
                sqlite.close();
            }
        } else {
            pool.close();
        }
    }
}
