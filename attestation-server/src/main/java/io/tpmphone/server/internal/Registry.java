package io.tpmphone.server.internal;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.IOException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The server's registry: enrolled hosts (host ↔ EK ↔ AK), the newest TPM state per EK, the last appraisal per host,
 * policy versions, enrollment tokens and pending enrollment challenges, in a {@link ServerDatabase}.
 *
 * <p>Two modes, chosen by the database:
 * <ul>
 *   <li><b>SQLite</b> (one server instance): enrolled hosts, TPM states and last appraisals are also kept in memory
 *       for the appraisal hot path. TPM states are moved in memory by compare-and-set and written in one
 *       transaction every second ({@link #flushClocks()}) and on close: a crash loses at most the last second, and
 *       the checks then compare against a slightly older state, still never going backwards. Last appraisals are not
 *       persisted (a restart forgets them, as before).</li>
 *   <li><b>PostgreSQL</b> (several instances share it): nothing is kept in memory; every read goes to the database
 *       and a TPM state moves only by a compare-and-set on its version in the database, so that any instance can
 *       serve any request and concurrent appraisals of one TPM through different instances never move it back.</li>
 * </ul>
 * Enrollments, tokens, challenges and policies are written through to the database in both modes, durable on return.
 * Thread-safe.
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
     * What the server knows of one TPM (by EK): its newest (resetCount, restartCount, clock), the measurement log
     * it last accepted in that boot, and the version of this state (1 for the first, one more for every change), on
     * which {@link #compareAndSetTpmState} compares.
     */
    public record TpmState(long resetCount, long restartCount, long clock, byte[] acceptedLog, long version) {
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

        /**
         * The state after a quote at (reset, restart, clk) that is not behind this one (the caller checked): its
         * clock, and the accepted log of this boot — {@code replayedLog} if the quote's log replayed and extends the
         * one accepted in the same boot (the wire format is a concatenation of events, so "extends" is a byte
         * prefix), else the one accepted before in the same boot, else none. {@code before} may be null.
         */
        public static TpmState next(TpmState before, long reset, long restart, long clk, byte[] replayedLog) {
            byte[] kept = before != null && before.sameBoot(reset, restart) ? before.acceptedLog() : null;
            byte[] log = kept;
            if (replayedLog != null && (kept == null || (replayedLog.length >= kept.length
                    && Arrays.equals(replayedLog, 0, kept.length, kept, 0, kept.length)))) {
                log = replayedLog.clone();
            }
            return new TpmState(reset, restart, clk, log, before == null ? 1 : before.version() + 1);
        }
    }

    /** An operator's permission to enroll a new host name. */
    public record EnrollmentToken(String host, byte[] tokenSha256, Instant expiresAt) {
    }

    /** The last appraisal of a host, for operators and the device CA. */
    public record LastAppraisal(String host, IntegrityLevel level, String failedCheck, Instant at, Instant expiresAt) {
    }

    /**
     * An enrollment challenge waiting for the agent's answer. Only the SHA-256 of the credential secret is kept;
     * public areas are TPM wire encodings.
     */
    public record Challenge(String id, String host, byte[] ekPublic, byte[] ekCertificate, byte[] akPublic,
                            byte[] secretSha256, Instant expiresAt, boolean newHost) {
    }

    /** What the SQLite mode keeps in memory. */
    private static final class Memory {
        final Map<String, Host> byAkId = new ConcurrentHashMap<>();
        /** The same hosts by name and by EK name (hex): enrollment looks both up, once per host of a fleet. */
        final Map<String, Host> byHost = new ConcurrentHashMap<>();
        final Map<String, Host> byEk = new ConcurrentHashMap<>();

        /** Adds or replaces {@code h} (a host's new AK replaces its old one). */
        synchronized void put(Host h) {
            Host old = byHost.put(h.host(), h);
            if (old != null) {
                byAkId.remove(old.akId(), old);
                byEk.remove(HexFormat.of().formatHex(old.ekName()), old);
            }
            byAkId.put(h.akId(), h);
            byEk.put(HexFormat.of().formatHex(h.ekName()), h);
        }
        final Map<String, TpmState> stateByEk = new ConcurrentHashMap<>();
        final Set<String> dirtyStates = ConcurrentHashMap.newKeySet();
        final Map<String, LastAppraisal> lastByHost = new ConcurrentHashMap<>();
    }

    private static final String HOST_COLUMNS = "host, ek_name, ek_public, ek_certificate, ak_name, ak_public,"
            + " enrolled_at";

    private final ServerDatabase db;
    private final Clock clock;
    /** The SQLite mode's caches; null on a shared (PostgreSQL) database. */
    private final Memory memory;

    private Registry(ServerDatabase db, Clock clock) {
        this.db = db;
        this.clock = clock;
        this.memory = db.shared() ? null : new Memory();
    }

    /**
     * Opens (creating if needed) the SQLite registry {@code database}. It and the files SQLite keeps next to it are
     * owner-only (0600) from their creation; existing ones are restricted. Put it in an owner-only directory.
     */
    public static Registry open(Path database, Clock clock) throws SQLException, IOException {
        return open(ServerDatabase.sqlite(database), clock);
    }

    /** A registry in {@code db}, which it owns from now on (closed with it). */
    public static Registry open(ServerDatabase db, Clock clock) throws SQLException {
        Registry r = new Registry(db, clock);
        try {
            if (r.memory != null) {
                r.loadCaches();
            }
        } catch (SQLException | RuntimeException e) {
            db.close();
            throw e;
        }
        return r;
    }

    /** Whether several server instances share this registry (then nothing authoritative is kept in memory). */
    public boolean shared() {
        return memory == null;
    }

    /** The database, for the other stores of the server (nonces). */
    public ServerDatabase database() {
        return db;
    }

    private void loadCaches() throws SQLException {
        for (Host h : db.read(c -> queryHosts(c, "", null))) {
            memory.put(h);
        }
        db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT ek_name, reset_count, restart_count, clock,"
                    + " accepted_log FROM tpm_state"); ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    memory.stateByEk.put(HexFormat.of().formatHex(rs.getBytes(1)),
                            new TpmState(rs.getLong(2), rs.getLong(3), rs.getLong(4), rs.getBytes(5), 1));
                }
            }
            return null;
        });
    }

    private static List<Host> queryHosts(Connection c, String where, Object parameter) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("SELECT " + HOST_COLUMNS + " FROM hosts" + where)) {
            if (parameter instanceof byte[] bytes) {
                p.setBytes(1, bytes);
            } else if (parameter != null) {
                p.setString(1, (String) parameter);
            }
            List<Host> hosts = new ArrayList<>();
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    hosts.add(new Host(rs.getString(1), rs.getBytes(2), rs.getBytes(3), rs.getBytes(4),
                            rs.getBytes(5), rs.getBytes(6), rs.getString(7)));
                }
            }
            return hosts;
        }
    }

    private <T> T read(String what, ServerDatabase.Work<T> work) {
        try {
            return db.read(work);
        } catch (SQLException e) {
            throw new StorageUnavailableException("cannot read " + what + " from the registry", e);
        }
    }

    /**
     * Runs {@code work} as one database transaction on a shared (PostgreSQL) database, the registry's and nonces'
     * reads and writes on this thread joined to it ({@link ServerDatabase#inOneTransaction}); in the SQLite mode
     * {@code work} simply runs.
     *
     * @throws StorageUnavailableException if the database fails, or the commit does
     */
    public <T> T inOneTransaction(java.util.function.Supplier<T> work) {
        try {
            return db.inOneTransaction(work);
        } catch (SQLException e) {
            throw new StorageUnavailableException("cannot commit an appraisal's registry changes", e);
        }
    }

    public Optional<Host> hostByAkId(String akId) {
        if (memory != null) {
            return Optional.ofNullable(memory.byAkId.get(akId));
        }
        byte[] akName;
        try {
            akName = HexFormat.of().parseHex(akId);
        } catch (IllegalArgumentException e) {
            return Optional.empty(); // not an AK id anybody could have enrolled
        }
        return read("the host of an AK", c -> queryHosts(c, " WHERE ak_name = ?", akName)).stream().findFirst();
    }

    /** Every enrolled host. */
    public Collection<Host> hosts() {
        if (memory != null) {
            return List.copyOf(memory.byAkId.values());
        }
        return read("the hosts", c -> queryHosts(c, " ORDER BY host", null));
    }

    public Optional<Host> hostByName(String host) {
        if (memory != null) {
            return Optional.ofNullable(memory.byHost.get(host));
        }
        return read("a host", c -> queryHosts(c, " WHERE host = ?", host)).stream().findFirst();
    }

    /** The host enrolled with this EK, if any. */
    public Optional<Host> hostByEkName(byte[] ekName) {
        if (memory != null) {
            return Optional.ofNullable(memory.byEk.get(HexFormat.of().formatHex(ekName)));
        }
        return read("a host", c -> queryHosts(c, " WHERE ek_name = ?", ekName)).stream().findFirst();
    }

    /**
     * Records an enrollment: a new host, or a new AK for a host with the same EK.
     *
     * @throws SQLException if the host is enrolled with another EK, or the EK or AK as another host
     */
    public void enroll(Host h) throws SQLException {
        db.transaction(c -> {
            try (PreparedStatement p = c.prepareStatement("INSERT INTO hosts (" + HOST_COLUMNS + ") VALUES"
                    + " (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET ak_name = excluded.ak_name,"
                    + " ak_public = excluded.ak_public, enrolled_at = excluded.enrolled_at"
                    + " WHERE hosts.ek_name = excluded.ek_name")) {
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
            return null;
        });
        if (memory != null) {
            memory.put(h);
        }
    }

    public Optional<TpmState> tpmState(byte[] ekName) {
        if (memory != null) {
            return Optional.ofNullable(memory.stateByEk.get(HexFormat.of().formatHex(ekName)));
        }
        return read("a TPM state", c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT reset_count, restart_count, clock, accepted_log,"
                    + " version FROM tpm_state WHERE ek_name = ?")) {
                p.setBytes(1, ekName);
                try (ResultSet rs = p.executeQuery()) {
                    return rs.next() ? Optional.of(new TpmState(rs.getLong(1), rs.getLong(2), rs.getLong(3),
                            rs.getBytes(4), rs.getLong(5))) : Optional.<TpmState>empty();
                }
            }
        });
    }

    /**
     * Replaces the TPM's state {@code expected} (null: there is none yet) with {@code next}, only if it is still
     * {@code expected} (same version): false if another appraisal changed it since it was read, and nothing is
     * written then. Durable on return on PostgreSQL; in the SQLite mode written within a second.
     */
    public boolean compareAndSetTpmState(byte[] ekName, TpmState expected, TpmState next) {
        if (memory != null) {
            String key = HexFormat.of().formatHex(ekName);
            boolean set = expected == null ? memory.stateByEk.putIfAbsent(key, next) == null
                    : memory.stateByEk.replace(key, expected, next);
            if (set) {
                memory.dirtyStates.add(key);
            }
            return set;
        }
        try {
            return db.read(c -> {
                if (expected == null) {
                    try (PreparedStatement p = c.prepareStatement("INSERT INTO tpm_state (ek_name, reset_count,"
                            + " restart_count, clock, accepted_log, version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                            + " ON CONFLICT (ek_name) DO NOTHING")) {
                        p.setBytes(1, ekName);
                        p.setLong(2, next.resetCount());
                        p.setLong(3, next.restartCount());
                        p.setLong(4, next.clock());
                        p.setBytes(5, next.acceptedLog());
                        p.setLong(6, next.version());
                        p.setString(7, clock.instant().toString());
                        return p.executeUpdate() == 1;
                    }
                }
                try (PreparedStatement p = c.prepareStatement("UPDATE tpm_state SET reset_count = ?,"
                        + " restart_count = ?, clock = ?, accepted_log = ?, version = ?, updated_at = ?"
                        + " WHERE ek_name = ? AND version = ?")) {
                    p.setLong(1, next.resetCount());
                    p.setLong(2, next.restartCount());
                    p.setLong(3, next.clock());
                    p.setBytes(4, next.acceptedLog());
                    p.setLong(5, next.version());
                    p.setString(6, clock.instant().toString());
                    p.setBytes(7, ekName);
                    p.setLong(8, expected.version());
                    return p.executeUpdate() == 1;
                }
            });
        } catch (SQLException e) {
            throw new StorageUnavailableException("cannot record a TPM state", e);
        }
    }

    /**
     * Moves a TPM's clock state to the newer of the stored and the given one (compare-and-set until it holds), so
     * that it never goes back; within the same boot the accepted log is kept.
     */
    public void advanceClock(byte[] ekName, long reset, long restart, long clk) {
        while (true) {
            TpmState before = tpmState(ekName).orElse(null);
            if (before != null && before.isAfter(reset, restart, clk)) {
                return;
            }
            if (compareAndSetTpmState(ekName, before, TpmState.next(before, reset, restart, clk, null))) {
                return;
            }
        }
    }

    /**
     * SQLite mode: writes changed TPM states in one transaction; called every second and on close. On failure the
     * changes stay pending. Nothing to do on a shared database, where every change is written at once.
     */
    public void flushClocks() throws SQLException {
        if (memory == null || memory.dirtyStates.isEmpty()) {
            return;
        }
        List<String> batch = new ArrayList<>(memory.dirtyStates);
        memory.dirtyStates.removeAll(batch);
        try {
            db.transaction(c -> {
                try (PreparedStatement p = c.prepareStatement("INSERT INTO tpm_state (ek_name, reset_count,"
                        + " restart_count, clock, accepted_log, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT"
                        + " (ek_name) DO UPDATE SET reset_count = excluded.reset_count, restart_count ="
                        + " excluded.restart_count, clock = excluded.clock, accepted_log = excluded.accepted_log,"
                        + " updated_at = excluded.updated_at")) {
                    for (String key : batch) {
                        TpmState state = memory.stateByEk.get(key);
                        p.setBytes(1, HexFormat.of().parseHex(key));
                        p.setLong(2, state.resetCount());
                        p.setLong(3, state.restartCount());
                        p.setLong(4, state.clock());
                        p.setBytes(5, state.acceptedLog());
                        p.setString(6, clock.instant().toString());
                        p.addBatch();
                    }
                    p.executeBatch();
                }
                return null;
            });
        } catch (SQLException | RuntimeException e) {
            memory.dirtyStates.addAll(batch);
            throw e;
        }
    }

    /** Records the last appraisal of a host (replacing the one before). */
    public void recordAppraisal(LastAppraisal a) {
        if (memory != null) {
            memory.lastByHost.put(a.host(), a);
            return;
        }
        try {
            db.read(c -> {
                try (PreparedStatement p = c.prepareStatement("INSERT INTO last_appraisals (host, level,"
                        + " failed_check, at_millis, expires_millis) VALUES (?, ?, ?, ?, ?) ON CONFLICT (host)"
                        + " DO UPDATE SET level = excluded.level, failed_check = excluded.failed_check,"
                        + " at_millis = excluded.at_millis, expires_millis = excluded.expires_millis"
                        + " WHERE last_appraisals.at_millis <= excluded.at_millis")) {
                    p.setString(1, a.host());
                    p.setString(2, a.level().name());
                    p.setString(3, a.failedCheck());
                    p.setLong(4, a.at().toEpochMilli());
                    p.setLong(5, a.expiresAt().toEpochMilli());
                    p.executeUpdate();
                }
                return null;
            });
        } catch (SQLException e) {
            throw new StorageUnavailableException("cannot record the appraisal of " + a.host(), e);
        }
    }

    /**
     * Enrolled hosts whose last appraisal is before {@code since}, or that were never appraised: one query, for the
     * metrics scrape.
     */
    public long staleHosts(Instant since) {
        long sinceMillis = since.toEpochMilli();
        if (memory != null) {
            return memory.byAkId.values().stream().map(Host::host).distinct().filter(h -> {
                LastAppraisal a = memory.lastByHost.get(h);
                return a == null || a.at().toEpochMilli() < sinceMillis;
            }).count();
        }
        return read("the stale hosts", c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT count(DISTINCT h.host) FROM hosts h WHERE NOT EXISTS (SELECT 1"
                    + " FROM last_appraisals a WHERE a.host = h.host AND a.at_millis >= ?)")) {
                p.setLong(1, sinceMillis);
                try (ResultSet rs = p.executeQuery()) {
                    rs.next();
                    return rs.getLong(1);
                }
            }
        });
    }

    public Optional<LastAppraisal> lastAppraisal(String host) {
        if (memory != null) {
            return Optional.ofNullable(memory.lastByHost.get(host));
        }
        return read("the last appraisal of a host", c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT level, failed_check, at_millis, expires_millis"
                    + " FROM last_appraisals WHERE host = ?")) {
                p.setString(1, host);
                try (ResultSet rs = p.executeQuery()) {
                    return rs.next() ? Optional.of(new LastAppraisal(host, IntegrityLevel.valueOf(rs.getString(1)),
                            rs.getString(2), Instant.ofEpochMilli(rs.getLong(3)),
                            Instant.ofEpochMilli(rs.getLong(4)))) : Optional.<LastAppraisal>empty();
                }
            }
        });
    }

    public void storeEnrollmentToken(String host, byte[] tokenSha256, Instant expiresAt, String by)
            throws SQLException {
        db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("INSERT INTO enrollment_tokens (host, token_sha256,"
                    + " expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                    + " token_sha256 = excluded.token_sha256, expires_at = excluded.expires_at,"
                    + " created_by = excluded.created_by, created_at = excluded.created_at")) {
                p.setString(1, host);
                p.setBytes(2, tokenSha256);
                p.setString(3, expiresAt.toString());
                p.setString(4, by);
                p.setString(5, clock.instant().toString());
                return p.executeUpdate();
            }
        });
    }

    public Optional<EnrollmentToken> enrollmentToken(String host) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT token_sha256, expires_at FROM enrollment_tokens WHERE host = ?")) {
                p.setString(1, host);
                try (ResultSet rs = p.executeQuery()) {
                    return rs.next() ? Optional.of(new EnrollmentToken(host, rs.getBytes(1),
                            Instant.parse(rs.getString(2)))) : Optional.<EnrollmentToken>empty();
                }
            }
        });
    }

    /**
     * Deletes the host's enrollment token if it is still the one with {@code tokenSha256}: true for exactly one
     * caller, whichever instance it runs on, so a token enrolls one host once.
     */
    public boolean consumeEnrollmentToken(String host, byte[] tokenSha256) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement(
                    "DELETE FROM enrollment_tokens WHERE host = ? AND token_sha256 = ?")) {
                p.setString(1, host);
                p.setBytes(2, tokenSha256);
                return p.executeUpdate() == 1;
            }
        });
    }

    /** Stores a pending enrollment challenge. */
    public void storeChallenge(Challenge ch) throws SQLException {
        db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("INSERT INTO enrollment_challenges (id, host, ek_public,"
                    + " ek_certificate, ak_public, secret_sha256, expires_millis, new_host) VALUES"
                    + " (?, ?, ?, ?, ?, ?, ?, ?)")) {
                p.setString(1, ch.id());
                p.setString(2, ch.host());
                p.setBytes(3, ch.ekPublic());
                p.setBytes(4, ch.ekCertificate());
                p.setBytes(5, ch.akPublic());
                p.setBytes(6, ch.secretSha256());
                p.setLong(7, ch.expiresAt().toEpochMilli());
                p.setBoolean(8, ch.newHost());
                return p.executeUpdate();
            }
        });
    }

    /** Takes (deletes and returns) a pending challenge: only one caller, at any instance, gets it. */
    public Optional<Challenge> takeChallenge(String id) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("DELETE FROM enrollment_challenges WHERE id = ? RETURNING"
                    + " host, ek_public, ek_certificate, ak_public, secret_sha256, expires_millis, new_host")) {
                p.setString(1, id);
                try (ResultSet rs = p.executeQuery()) {
                    return rs.next() ? Optional.of(new Challenge(id, rs.getString(1), rs.getBytes(2), rs.getBytes(3),
                            rs.getBytes(4), rs.getBytes(5), Instant.ofEpochMilli(rs.getLong(6)), rs.getBoolean(7)))
                            : Optional.<Challenge>empty();
                }
            }
        });
    }

    /** Deletes expired challenges; returns how many pending ones are left. */
    public int purgeChallenges(Instant now) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement(
                    "DELETE FROM enrollment_challenges WHERE expires_millis <= ?")) {
                p.setLong(1, now.toEpochMilli());
                p.executeUpdate();
            }
            try (PreparedStatement p = c.prepareStatement("SELECT count(*) FROM enrollment_challenges");
                 ResultSet rs = p.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        });
    }

    /** The newest policy document and its version, if any was stored. */
    public Optional<Map.Entry<Integer, String>> latestPolicy() throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT version, document FROM policies ORDER BY version DESC LIMIT 1");
                 ResultSet rs = p.executeQuery()) {
                return rs.next() ? Optional.of(Map.entry(rs.getInt(1), rs.getString(2)))
                        : Optional.<Map.Entry<Integer, String>>empty();
            }
        });
    }

    /** Stored policy versions below {@code beforeVersion}, newest first: version, created_at, created_by. */
    public List<String[]> policyVersions(int beforeVersion, int limit) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT version, created_at, created_by FROM policies"
                    + " WHERE version < ? ORDER BY version DESC LIMIT ?")) {
                p.setInt(1, beforeVersion);
                p.setInt(2, limit);
                List<String[]> out = new java.util.ArrayList<>();
                try (ResultSet rs = p.executeQuery()) {
                    while (rs.next()) {
                        out.add(new String[] {Integer.toString(rs.getInt(1)), rs.getString(2), rs.getString(3)});
                    }
                }
                return out;
            }
        });
    }

    /** The stored document of policy {@code version}. */
    public Optional<String> policyDocument(int version) throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT document FROM policies WHERE version = ?")) {
                p.setInt(1, version);
                try (ResultSet rs = p.executeQuery()) {
                    return rs.next() ? Optional.of(rs.getString(1)) : Optional.<String>empty();
                }
            }
        });
    }

    /** The newest stored policy version, or 0. */
    public int latestPolicyVersion() throws SQLException {
        return db.read(c -> {
            try (PreparedStatement p = c.prepareStatement("SELECT COALESCE(MAX(version), 0) FROM policies");
                 ResultSet rs = p.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        });
    }

    /**
     * Stores a policy version if it is newer than every stored one: false (nothing stored) if one at least as new
     * is there, e.g. stored by another instance meanwhile.
     */
    public boolean storePolicy(int version, String document, String by) throws SQLException {
        return db.transaction(c -> {
            if (db.shared()) {
                try (PreparedStatement lock = c.prepareStatement("LOCK TABLE policies IN EXCLUSIVE MODE")) {
                    lock.execute(); // readers go on; two instances storing at once are serialised
                }
            }
            try (PreparedStatement p = c.prepareStatement("INSERT INTO policies (version, document, created_at,"
                    + " created_by) SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM policies WHERE version >= ?)")) {
                p.setInt(1, version);
                p.setString(2, document);
                p.setString(3, clock.instant().toString());
                p.setString(4, by);
                p.setInt(5, version);
                return p.executeUpdate() == 1;
            }
        });
    }

    /**
     * On a shared database: records the ids of the keys every instance must share ({@code role → key id}) if none
     * are recorded, else refuses (IllegalStateException, naming the role and both ids) keys that differ. Results,
     * keystore approvals and device certificates of one cluster must verify under one set of keys, whichever
     * instance signed them. Nothing to do on SQLite.
     */
    public void requireClusterKeys(Map<String, String> keyIds) throws SQLException {
        if (memory != null) {
            return;
        }
        Map<String, String> recorded = db.transaction(c -> {
            for (Map.Entry<String, String> k : keyIds.entrySet()) {
                try (PreparedStatement p = c.prepareStatement("INSERT INTO cluster_keys (role, key_id, recorded_at)"
                        + " VALUES (?, ?, ?) ON CONFLICT (role) DO NOTHING")) {
                    p.setString(1, k.getKey());
                    p.setString(2, k.getValue());
                    p.setString(3, clock.instant().toString());
                    p.executeUpdate();
                }
            }
            Map<String, String> all = new java.util.TreeMap<>();
            try (PreparedStatement p = c.prepareStatement("SELECT role, key_id FROM cluster_keys");
                 ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    all.put(rs.getString(1), rs.getString(2));
                }
            }
            return all;
        });
        for (Map.Entry<String, String> k : keyIds.entrySet()) {
            String theirs = recorded.get(k.getKey());
            if (!k.getValue().equals(theirs)) {
                throw new IllegalStateException("this instance's " + k.getKey() + " key (id " + k.getValue() + ") is"
                        + " not the one the other instances on " + db.description() + " use (id " + theirs + "):"
                        + " every instance must have the same keys. Copy the keys/ directory of a running instance"
                        + " (server-keys.p12, server-keys.pass and the certificates) into this one's state directory,"
                        + " owner-only, before starting it");
            }
        }
    }

    @Override
    public void close() throws SQLException {
        try {
            flushClocks();
        } finally {
            db.close();
        }
    }
}
