package io.tpmphone.server.internal.console;

import io.tpmphone.server.internal.ServerDatabase;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The console's server-side sessions. A session id is 32 random bytes (base64url), given to the browser once in the
 * {@code __Host-} cookie and kept here only as its SHA-256, so the table holds nothing a reader could present. A session
 * ends at sign-out, after {@code idle} without a request, or {@code absolute} after sign-in, whichever comes first;
 * an ended session is removed and its cookie refused. The table holds at most {@code capacity} sessions: when it is
 * full after removing ended ones, the oldest auditor session makes room, and a sign-in is refused only when every live
 * session is an admin's. Each session's CSRF token is derived from its id (SHA-256 under its own label), so it is
 * stored nowhere, differs from the stored hash, and is compared in constant time.
 *
 * <p>Where the sessions live: {@link #inMemory} for one server (SQLite: a restart signs everyone out), or
 * {@link #shared} in the cluster's PostgreSQL database, so that behind a load balancer a session made at one instance
 * works at every other and a sign-out at one ends it at all (docs/console.md). The instances' clocks must agree (the
 * timeouts compare one instance's sign-in time with another's clock). Thread-safe.
 */
public final class ConsoleSessions {
    /** A live session as of the request that found it. */
    public static final class Session {
        private final String key;
        private final ConsoleRole role;
        private final Instant signedInAt;
        private final String csrfToken;

        private Session(String key, ConsoleRole role, Instant signedInAt, String csrfToken) {
            this.key = key;
            this.role = role;
            this.signedInAt = signedInAt;
            this.csrfToken = csrfToken;
        }

        public ConsoleRole role() {
            return role;
        }

        public Instant signedInAt() {
            return signedInAt;
        }

        /** The token forms of this session carry (not a secret of the user's; it only proves same-origin). */
        public String csrfToken() {
            return csrfToken;
        }

        /** A short, non-secret reference for the audit log: the first 12 hex digits of the id's SHA-256. */
        public String reference() {
            return key.substring(0, 12);
        }

        /** Whether {@code presented} is this session's CSRF token (constant time). */
        public boolean csrfMatches(String presented) {
            return presented != null && MessageDigest.isEqual(presented.getBytes(StandardCharsets.US_ASCII),
                    csrfToken.getBytes(StandardCharsets.US_ASCII));
        }

        @Override
        public String toString() {
            return "Session{" + role.label() + ", " + reference() + "}";
        }
    }

    /** A new session and the id the browser keeps (given out once). */
    public record Started(Session session, String id) {
        @Override
        public String toString() {
            return "Started{" + session + "}"; // never the id
        }
    }

    /** A stored session: the SHA-256 of its id (hex), its role and times. */
    record Row(String key, ConsoleRole role, Instant signedInAt, Instant lastUsed) {
    }

    /**
     * Where sessions are kept. Every method removes what ended by {@code idleCutoff} (last used at or before it) or
     * {@code absoluteCutoff} (signed in at or before it) where it looks.
     */
    interface Store {
        /** Inserts {@code row} unless the table is full of live admin sessions (then false); an auditor's makes room. */
        boolean insert(Row row, int capacity, Instant idleCutoff, Instant absoluteCutoff) throws SQLException;

        /** The live session {@code key}, marked used at {@code now}; empty (and removed) if it ended. */
        Optional<Row> touch(String key, Instant now, Instant idleCutoff, Instant absoluteCutoff) throws SQLException;

        void delete(String key) throws SQLException;

        int live(Instant idleCutoff, Instant absoluteCutoff) throws SQLException;
    }

    /** The console cannot reach where its sessions are kept: no session is made or found (the request is 503). */
    public static final class Unavailable extends Exception {
        private static final long serialVersionUID = 1L;

        Unavailable(SQLException cause) {
            super("the console's session store is unavailable: " + cause.getMessage(), cause);
        }
    }

    private static final String CSRF_LABEL = "tpmphone.console.csrf.v1:";
    private final Store store;
    private final Clock clock;
    private final Duration idle;
    private final Duration absolute;
    private final int capacity;
    private final SecureRandom random = new SecureRandom();

    ConsoleSessions(Store store, Clock clock, Duration idle, Duration absolute, int capacity) {
        this.store = Objects.requireNonNull(store, "store");
        this.clock = Objects.requireNonNull(clock, "clock");
        if (idle.isNegative() || idle.isZero() || absolute.compareTo(idle) < 0) {
            throw new IllegalArgumentException("session timeouts must be positive with idle <= absolute, got idle "
                    + idle + ", absolute " + absolute);
        }
        if (capacity < 1) {
            throw new IllegalArgumentException("session capacity must be >= 1, got " + capacity);
        }
        this.idle = idle;
        this.absolute = absolute;
        this.capacity = capacity;
    }

    /** Sessions in this server's memory: one instance (a restart signs everyone out). */
    public static ConsoleSessions inMemory(Clock clock, Duration idle, Duration absolute, int capacity) {
        return new ConsoleSessions(new MemoryStore(), clock, idle, absolute, capacity);
    }

    /**
     * Sessions in the table {@code console_session} of the cluster's PostgreSQL database (migration
     * {@code db/postgresql/registry/V2__console_sessions.sql}), shared by every instance.
     */
    public static ConsoleSessions shared(ServerDatabase database, Clock clock, Duration idle, Duration absolute,
            int capacity) {
        if (!database.shared()) {
            throw new IllegalArgumentException("shared console sessions need the cluster's PostgreSQL database");
        }
        return new ConsoleSessions(new DatabaseStore(database), clock, idle, absolute, capacity);
    }

    /** Starts a session for {@code role}; empty if every one of the {@code capacity} live sessions is an admin's. */
    public Optional<Started> start(ConsoleRole role) throws Unavailable {
        Objects.requireNonNull(role, "role");
        Instant now = clock.instant();
        String id = randomToken();
        Row row = new Row(key(id), role, now, now);
        try {
            if (!store.insert(row, capacity, now.minus(idle), now.minus(absolute))) {
                return Optional.empty();
            }
        } catch (SQLException e) {
            throw new Unavailable(e);
        }
        return Optional.of(new Started(new Session(row.key(), role, now, csrf(id)), id));
    }

    /** The live session with cookie value {@code id}, marked used now; empty (and removed) if it ended. */
    public Optional<Session> find(String id) throws Unavailable {
        if (id == null || id.length() != 43) {
            return Optional.empty();
        }
        Instant now = clock.instant();
        try {
            return store.touch(key(id), now, now.minus(idle), now.minus(absolute))
                    .map(r -> new Session(r.key(), r.role(), r.signedInAt(), csrf(id)));
        } catch (SQLException e) {
            throw new Unavailable(e);
        }
    }

    /** Ends the session (sign-out), at every instance. */
    public void end(Session s) throws Unavailable {
        try {
            store.delete(s.key);
        } catch (SQLException e) {
            throw new Unavailable(e);
        }
    }

    /** Live sessions now (ended ones are removed first). */
    public int size() throws Unavailable {
        Instant now = clock.instant();
        try {
            return store.live(now.minus(idle), now.minus(absolute));
        } catch (SQLException e) {
            throw new Unavailable(e);
        }
    }

    /** Whether {@code s} signed in within {@code window} (policy changes need a fresh sign-in). */
    public boolean signedInWithin(Session s, Duration window) {
        return !s.signedInAt.plus(window).isBefore(clock.instant());
    }

    private String randomToken() {
        byte[] b = new byte[32];
        random.nextBytes(b);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }

    private static byte[] sha256(String text) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.US_ASCII));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JRE", e);
        }
    }

    private static String key(String id) {
        return HexFormat.of().formatHex(sha256(id));
    }

    private static String csrf(String id) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(sha256(CSRF_LABEL + id));
    }

    private static boolean ended(Row r, Instant idleCutoff, Instant absoluteCutoff) {
        return !r.lastUsed().isAfter(idleCutoff) || !r.signedInAt().isAfter(absoluteCutoff);
    }

    /** One server's sessions. */
    private static final class MemoryStore implements Store {
        private final Map<String, Row> rows = new ConcurrentHashMap<>();

        @Override
        public synchronized boolean insert(Row row, int capacity, Instant idleCutoff, Instant absoluteCutoff) {
            if (rows.size() >= capacity) {
                rows.values().removeIf(r -> ended(r, idleCutoff, absoluteCutoff));
                if (rows.size() >= capacity) {
                    Optional<Row> oldestAuditor = rows.values().stream().filter(r -> r.role() == ConsoleRole.AUDITOR)
                            .min(java.util.Comparator.comparing(Row::signedInAt));
                    if (oldestAuditor.isEmpty()) {
                        return false;
                    }
                    rows.remove(oldestAuditor.get().key());
                }
            }
            rows.put(row.key(), row);
            return true;
        }

        @Override
        public Optional<Row> touch(String key, Instant now, Instant idleCutoff, Instant absoluteCutoff) {
            Row r = rows.get(key);
            if (r == null) {
                return Optional.empty();
            }
            if (ended(r, idleCutoff, absoluteCutoff)) {
                rows.remove(key, r);
                return Optional.empty();
            }
            Row used = new Row(key, r.role(), r.signedInAt(), now);
            // Only if nobody ended it meanwhile: a sign-out is never undone by a request racing it.
            return rows.replace(key, r, used) ? Optional.of(used) : Optional.empty();
        }

        @Override
        public void delete(String key) {
            rows.remove(key);
        }

        @Override
        public synchronized int live(Instant idleCutoff, Instant absoluteCutoff) {
            rows.values().removeIf(r -> ended(r, idleCutoff, absoluteCutoff));
            return rows.size();
        }
    }

    /** The cluster's sessions, in PostgreSQL. */
    private static final class DatabaseStore implements Store {
        /** pg_advisory_xact_lock key that serialises sign-ins across instances, so the capacity holds. */
        private static final long SIGN_IN_LOCK = 0x7470_6d63_6f6e_736cL; // "tpmconsl"
        private static final String ENDED = "last_used_millis <= ? OR signed_in_millis <= ?";
        private final ServerDatabase database;

        DatabaseStore(ServerDatabase database) {
            this.database = database;
        }

        private static void removeEnded(Connection c, Instant idleCutoff, Instant absoluteCutoff) throws SQLException {
            try (PreparedStatement delete = c.prepareStatement("DELETE FROM console_session WHERE " + ENDED)) {
                delete.setLong(1, idleCutoff.toEpochMilli());
                delete.setLong(2, absoluteCutoff.toEpochMilli());
                delete.executeUpdate();
            }
        }

        @Override
        public boolean insert(Row row, int capacity, Instant idleCutoff, Instant absoluteCutoff) throws SQLException {
            return database.transaction(c -> {
                try (PreparedStatement lock = c.prepareStatement("SELECT pg_advisory_xact_lock(?)")) {
                    lock.setLong(1, SIGN_IN_LOCK);
                    lock.execute();
                }
                removeEnded(c, idleCutoff, absoluteCutoff);
                long count;
                try (PreparedStatement q = c.prepareStatement("SELECT COUNT(*) FROM console_session");
                        ResultSet rs = q.executeQuery()) {
                    rs.next();
                    count = rs.getLong(1);
                }
                if (count >= capacity) {
                    try (PreparedStatement evict = c.prepareStatement("DELETE FROM console_session WHERE key_sha256 ="
                            + " (SELECT key_sha256 FROM console_session WHERE role = 'auditor'"
                            + " ORDER BY signed_in_millis LIMIT 1)")) {
                        if (evict.executeUpdate() == 0) {
                            return false;
                        }
                    }
                }
                try (PreparedStatement insert = c.prepareStatement("INSERT INTO console_session (key_sha256, role,"
                        + " signed_in_millis, last_used_millis) VALUES (?, ?, ?, ?)")) {
                    insert.setString(1, row.key());
                    insert.setString(2, row.role().label());
                    insert.setLong(3, row.signedInAt().toEpochMilli());
                    insert.setLong(4, row.lastUsed().toEpochMilli());
                    insert.executeUpdate();
                }
                return true;
            });
        }

        @Override
        public Optional<Row> touch(String key, Instant now, Instant idleCutoff, Instant absoluteCutoff)
                throws SQLException {
            return database.transaction(c -> {
                // One statement: a sign-out committed at another instance is never undone by this request.
                try (PreparedStatement update = c.prepareStatement("UPDATE console_session SET last_used_millis ="
                        + " GREATEST(last_used_millis, ?) WHERE key_sha256 = ? AND NOT (" + ENDED + ")"
                        + " RETURNING role, signed_in_millis, last_used_millis")) {
                    update.setLong(1, now.toEpochMilli());
                    update.setString(2, key);
                    update.setLong(3, idleCutoff.toEpochMilli());
                    update.setLong(4, absoluteCutoff.toEpochMilli());
                    try (ResultSet rs = update.executeQuery()) {
                        if (rs.next()) {
                            return Optional.of(new Row(key, role(rs.getString(1)),
                                    Instant.ofEpochMilli(rs.getLong(2)), Instant.ofEpochMilli(rs.getLong(3))));
                        }
                    }
                }
                try (PreparedStatement delete = c.prepareStatement("DELETE FROM console_session WHERE key_sha256 = ?"
                        + " AND (" + ENDED + ")")) {
                    delete.setString(1, key);
                    delete.setLong(2, idleCutoff.toEpochMilli());
                    delete.setLong(3, absoluteCutoff.toEpochMilli());
                    delete.executeUpdate();
                }
                return Optional.empty();
            });
        }

        @Override
        public void delete(String key) throws SQLException {
            database.transaction(c -> {
                try (PreparedStatement delete = c.prepareStatement("DELETE FROM console_session WHERE key_sha256 = ?")) {
                    delete.setString(1, key);
                    return delete.executeUpdate();
                }
            });
        }

        @Override
        public int live(Instant idleCutoff, Instant absoluteCutoff) throws SQLException {
            return database.transaction(c -> {
                removeEnded(c, idleCutoff, absoluteCutoff);
                try (PreparedStatement q = c.prepareStatement("SELECT COUNT(*) FROM console_session");
                        ResultSet rs = q.executeQuery()) {
                    rs.next();
                    return (int) Math.min(Integer.MAX_VALUE, rs.getLong(1));
                }
            });
        }

        private static ConsoleRole role(String label) throws SQLException {
            for (ConsoleRole r : ConsoleRole.values()) {
                if (r.label().equals(label)) {
                    return r;
                }
            }
            throw new SQLException("console_session holds an unknown role '" + label + "'");
        }
    }
}
