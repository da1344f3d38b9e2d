package io.tpmphone.swtpm.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.UserPrincipalLookupService;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real PostgreSQL server from Debian's {@code postgresql} package, for tests: its own cluster in a temporary
 * directory, on a free port on 127.0.0.1 and a private Unix socket directory, trust authentication for the
 * {@code postgres} user. {@code initdb} and {@code postgres} refuse to run as root, so as root the cluster belongs to
 * the {@code postgres} user the package creates and the commands run through {@code runuser}. One server per test JVM
 * ({@link #shared()}), stopped by a shutdown hook (and by {@link PostgresExtension} when the tests end); each test gets
 * a database of its own ({@link #createDatabase}).
 *
 * <p>Missing binaries are an error, never a skip: {@code apt-get install postgresql} ({@code ./tpmphone test} does).
 * Thread-safe.
 */
public final class PostgresServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PostgresServer.class);
    private static final long COMMAND_SECONDS = 120;
    private static PostgresServer shared;

    private final Path bin;
    private final Path directory;
    private final Path data;
    private final int port;
    private final boolean asPostgresUser;
    private final AtomicInteger databases = new AtomicInteger();
    private boolean stopped;

    private PostgresServer(Path bin, Path directory, int port, boolean asPostgresUser) {
        this.bin = bin;
        this.directory = directory;
        this.data = directory.resolve("data");
        this.port = port;
        this.asPostgresUser = asPostgresUser;
    }

    /** The server of this JVM, started on first use. */
    public static synchronized PostgresServer shared() throws IOException, InterruptedException {
        if (shared == null || shared.stopped) {
            PostgresServer s = start();
            Runtime.getRuntime().addShutdownHook(new Thread(s::close, "postgres-test-stop"));
            shared = s;
        }
        return shared;
    }

    /** Starts a new cluster; the caller closes it. */
    public static PostgresServer start() throws IOException, InterruptedException {
        Path bin = binaries();
        boolean root = "root".equals(System.getProperty("user.name"));
        Path dir = Files.createTempDirectory("tpmphone-pg-");
        if (root) {
            // initdb refuses root: the cluster is the postgres user's (the package creates it).
            UserPrincipalLookupService users = dir.getFileSystem().getUserPrincipalLookupService();
            PosixFileAttributeView view = Files.getFileAttributeView(dir, PosixFileAttributeView.class);
            try {
                view.setOwner(users.lookupPrincipalByName("postgres"));
                GroupPrincipal group = users.lookupPrincipalByGroupName("postgres");
                view.setGroup(group);
            } catch (java.nio.file.attribute.UserPrincipalNotFoundException e) {
                delete(dir);
                throw new IllegalStateException("there is no 'postgres' user to run PostgreSQL as (initdb refuses"
                        + " root): install Debian's postgresql package, which creates it (apt-get install postgresql)",
                        e);
            }
        }
        IOException last = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            PostgresServer s = new PostgresServer(bin, dir, FreePorts.tcp(), root);
            try {
                if (attempt == 0) {
                    s.run(List.of(bin.resolve("initdb").toString(), "-D", s.data.toString(), "-A", "trust", "-U",
                            "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"));
                }
                s.run(List.of(bin.resolve("pg_ctl").toString(), "-D", s.data.toString(), "-l",
                        dir.resolve("server.log").toString(), "-w", "-t", "60", "-o", "-p " + s.port + " -k " + dir
                                // Commits stay synchronous (the server checks synchronous_commit), but the test
                                // cluster does not wait for the disk: the tests kill clients, never this server.
                                + " -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
                                + " -c full_page_writes=off", "start"));
                return s;
            } catch (IOException e) {
                last = e; // most likely the port was taken between choosing and binding it: another port
            }
        }
        delete(dir);
        throw last;
    }

    /**
     * The newest {@code /usr/lib/postgresql/N/bin} holding {@code initdb}, {@code pg_ctl} and {@code postgres}: where
     * Debian's package puts them (they are not on PATH).
     */
    static Path binaries() throws IOException {
        Path root = Path.of("/usr/lib/postgresql");
        List<Path> found = new ArrayList<>();
        if (Files.isDirectory(root)) {
            try (DirectoryStream<Path> versions = Files.newDirectoryStream(root)) {
                for (Path v : versions) {
                    Path bin = v.resolve("bin");
                    if (Stream.of("initdb", "pg_ctl", "postgres").allMatch(n -> Files.isExecutable(bin.resolve(n)))
                            && v.getFileName().toString().matches("\\d+")) {
                        found.add(bin);
                    }
                }
            }
        }
        return found.stream().max(Comparator.comparingInt(b -> Integer.parseInt(b.getParent().getFileName()
                .toString()))).orElseThrow(() -> new IllegalStateException("PostgreSQL's server binaries (initdb,"
                + " pg_ctl, postgres) are not in " + root + "/N/bin: install Debian's postgresql package"
                + " (apt-get install postgresql; ./tpmphone test does). These tests need a real PostgreSQL and fail"
                + " without one"));
    }

    private void run(List<String> command) throws IOException, InterruptedException {
        List<String> argv = new ArrayList<>();
        if (asPostgresUser) {
            argv.addAll(List.of("runuser", "-u", "postgres", "--"));
        }
        argv.addAll(command);
        Path out = Files.createTempFile("tpmphone-pg-cmd-", ".log");
        try {
            Process p = new ProcessBuilder(argv).directory(directory.toFile()).redirectErrorStream(true)
                    .redirectOutput(out.toFile()).start();
            if (!p.waitFor(COMMAND_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", argv) + " did not finish within " + COMMAND_SECONDS + " s: "
                        + Files.readString(out, StandardCharsets.UTF_8));
            }
            if (p.exitValue() != 0) {
                Path log = directory.resolve("server.log");
                throw new IOException(String.join(" ", argv) + " exited with " + p.exitValue() + ": "
                        + Files.readString(out, StandardCharsets.UTF_8)
                        + (Files.isReadable(log) ? "\nserver log:\n" + Files.readString(log, StandardCharsets.UTF_8)
                        : ""));
            }
        } finally {
            Files.deleteIfExists(out);
        }
    }

    public int port() {
        return port;
    }

    /** A JDBC URL for {@code database} as the {@code postgres} superuser. */
    public String url(String database) {
        return "jdbc:postgresql://127.0.0.1:" + port + "/" + database + "?user=postgres";
    }

    /** Creates a new, empty database (named after {@code hint}) and returns its JDBC URL. */
    public String createDatabase(String hint) throws SQLException {
        String name = ("t" + databases.incrementAndGet() + "_" + hint.toLowerCase().replaceAll("[^a-z0-9]+", "_"));
        name = name.length() > 60 ? name.substring(0, 60) : name;
        try (Connection c = DriverManager.getConnection(url("postgres")); Statement s = c.createStatement()) {
            s.execute("CREATE DATABASE " + name);
        }
        return url(name);
    }

    /**
     * Stops the server process and keeps its data ({@code pg_ctl stop -m fast}): clients see the database go away.
     * {@link #resume} starts it again on the same port.
     */
    public synchronized void pause() throws IOException, InterruptedException {
        if (stopped) {
            throw new IllegalStateException("this PostgreSQL was closed");
        }
        run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-m", "fast", "-w", "-t", "30", "stop"));
    }

    /** Starts the server {@link #pause}d, on the same port, with the same data. */
    public synchronized void resume() throws IOException, InterruptedException {
        if (stopped) {
            throw new IllegalStateException("this PostgreSQL was closed");
        }
        run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-l",
                directory.resolve("server.log").toString(), "-w", "-t", "60", "-o", "-p " + port + " -k " + directory
                        + " -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
                        + " -c full_page_writes=off", "start"));
    }

    /** Stops the server ({@code pg_ctl stop -m fast}) and deletes its directory. Idempotent. */
    @Override
    public synchronized void close() {
        if (stopped) {
            return;
        }
        stopped = true;
        try {
            run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-m", "fast", "-w", "-t", "30",
                    "stop"));
        } catch (IOException e) {
            LOG.warn("stopping the test PostgreSQL failed: {}", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            delete(directory);
        } catch (IOException e) {
            LOG.warn("deleting {} failed: {}", directory, e.getMessage());
        }
    }

    private static void delete(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
