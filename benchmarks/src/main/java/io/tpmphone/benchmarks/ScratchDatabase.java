package io.tpmphone.benchmarks;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * A PostgreSQL database made for one benchmark run next to the one an admin URL names, and dropped afterwards (also
 * with sessions still open): the server's registry and audit chain start empty and nothing is left behind.
 */
final class ScratchDatabase implements AutoCloseable {
    private final String admin;
    private final String name;
    private final String url;

    private ScratchDatabase(String admin, String name, String url) {
        this.admin = admin;
        this.name = name;
        this.url = url;
    }

    /**
     * Creates it.
     *
     * @param admin {@code jdbc:postgresql://HOST:PORT/DB?user=USER} of a role that may {@code CREATE DATABASE}
     */
    static ScratchDatabase create(String admin) throws SQLException {
        if (!admin.startsWith("jdbc:postgresql://") || admin.indexOf('/', "jdbc:postgresql://".length()) < 0) {
            throw new IllegalArgumentException("the database must be jdbc:postgresql://HOST:PORT/DB?user=USER");
        }
        String name = "tpmphone_bench_" + Long.toHexString(System.nanoTime());
        try (Connection c = DriverManager.getConnection(admin); Statement s = c.createStatement()) {
            s.execute("CREATE DATABASE " + name);
        }
        int slash = admin.indexOf('/', "jdbc:postgresql://".length());
        int q = admin.indexOf('?');
        return new ScratchDatabase(admin, name, admin.substring(0, slash + 1) + name
                + (q < 0 ? "" : admin.substring(q)));
    }

    /** The scratch database's URL (the admin URL's host, port and parameters). */
    String url() {
        return url;
    }

    @Override
    public void close() throws SQLException {
        try (Connection c = DriverManager.getConnection(admin); Statement s = c.createStatement()) {
            s.execute("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
        }
    }
}
