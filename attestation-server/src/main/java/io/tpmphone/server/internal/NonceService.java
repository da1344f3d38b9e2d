package io.tpmphone.server.internal;

import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Map;

/**
 * Single-use appraisal nonces, <b>at most one outstanding per attestation key</b>, valid for at most 30 s. Nonces are
 * issued only for nonce requests the AK signed (V1Routes verifies the signature, this class the freshness): a new
 * request for an AK replaces its outstanding nonce, and since only the AK's holder can make one, nobody else can
 * evict it (docs/attestation.md, "Nonce requests"). A nonce is consumed by the first appraisal or device-certificate
 * request that presents it, whether that passes or not.
 *
 * <p>Freshness of a signed request: its {@code requestedAt} must be at most {@link #MAX_AGE} behind the server's clock
 * and at most {@link #MAX_AHEAD} ahead of it, and not one already accepted for the AK — so a captured request cannot
 * be replayed to take the nonce of a later one. The client chooses its time, so the check must not let one request
 * dated ahead lock the AK out until that time comes (as "strictly after the last accepted time" did, for up to
 * 5 min): per AK the server remembers a floor, the newest accepted time but never more than the server's clock when
 * it accepted it, and the few accepted times above the floor (requests dated ahead). A request at or below the
 * floor, or equal to a remembered time, is a replay. An honest request made after a request dated ahead is above
 * the floor and accepted. If an AK sends more than {@value #MAX_AHEAD_REMEMBERED} requests dated ahead whose times
 * the floor has not passed, the floor rises to the oldest of them: only the AK's holder can do that, and it holds
 * itself to its own times for at most {@link #MAX_AHEAD}. A request older than {@link #MAX_AGE} is refused by time
 * alone, so an AK's times are remembered only that long.
 *
 * <p>Where this state lives: in memory ({@link #NonceService(Clock)}, one server instance on SQLite), or in a database
 * that several instances share ({@link #shared}: PostgreSQL). Shared, the outstanding nonce of an AK (its SHA-256) and
 * the AK's accepted request times are rows: issuing checks and updates the AK's request times under a row lock and
 * replaces its nonce in one transaction, and consuming deletes the nonce's row, so a nonce issued by one instance is
 * redeemed exactly once, at any instance, and a request replayed to another instance is refused as at the first.
 *
 * <p>Memory: one outstanding nonce and at most {@value #MAX_AHEAD_REMEMBERED} + 1 times per AK that made a verified
 * request, i.e. bounded by the number of enrolled AKs; expired entries are dropped as new ones arrive (in memory) or
 * by {@link #sweep()} (shared). Thread-safe (in memory: one lock, every operation is a few map lookups).
 */
public final class NonceService {
    public static final Duration MAX_TTL = Duration.ofSeconds(30);
    /** How far a request's {@code requestedAt} may be behind the server's clock (network delay, clock drift). */
    public static final Duration MAX_AGE = Duration.ofMinutes(5);
    /**
     * How far a request's {@code requestedAt} may be ahead of the server's clock. Small: the client chooses its time,
     * and a host whose clock runs further ahead should set it (NTP) rather than be trusted with times to come.
     */
    public static final Duration MAX_AHEAD = Duration.ofSeconds(30);
    /** Accepted times above an AK's floor (requests dated ahead) remembered per AK. */
    static final int MAX_AHEAD_REMEMBERED = 16;
    /** Sweep expired entries when a map grows past this (amortised; the maps hold one entry per active AK). */
    private static final int SWEEP_ABOVE = 1024;
    /** Above {@link #SWEEP_ABOVE}, sweep at most this often (a sweep is linear in the AKs). */
    private static final long SWEEP_EVERY_MILLIS = 1000;

    /** Why a nonce was not accepted. */
    public enum Refusal { UNKNOWN, EXPIRED, OTHER_KEY }

    /** Why a signed nonce request was not accepted. */
    public enum RequestRefusal {
        /** requestedAt is more than {@link #MAX_AGE} behind or {@link #MAX_AHEAD} ahead of the server's clock. */
        TIME,
        /** requestedAt was accepted for this AK already, or is not after its floor: a replay (or a clock gone back). */
        REPLAYED
    }

    /**
     * A nonce request refused for its freshness; {@link #refusal()} says why, {@link #serverTime()} the server's
     * clock when it refused it. Carries no secret.
     */
    public static final class RequestRefusedException extends Exception {
        private static final long serialVersionUID = 1L;
        private final RequestRefusal refusal;
        private final Instant serverTime;

        RequestRefusedException(RequestRefusal refusal, Instant serverTime, String message) {
            super(message);
            this.refusal = refusal;
            this.serverTime = serverTime;
        }

        public RequestRefusal refusal() {
            return refusal;
        }

        /** The server's time when the request was refused: a client whose clock is off corrects by it. */
        public Instant serverTime() {
            return serverTime;
        }
    }

    private record Issued(String akId, String nonce, Instant expiresAt) {
    }

    /** A consumed nonce: the refusal, or null if the nonce was good. */
    public record Consumed(Refusal refusal) {
    }

    /** A nonce handed out: the value and when it expires. */
    public record Grant(byte[] nonce, Instant expiresAt) {
        public Grant {
            nonce = nonce.clone();
        }

        @Override
        public byte[] nonce() {
            return nonce.clone();
        }
    }

    private final SecureRandom random = new SecureRandom();
    private final Clock clock;
    private final Store store;
    private volatile ServerMetrics metrics;

    /** Nonces in this server's memory: for one server instance. */
    public NonceService(Clock clock) {
        this.clock = clock;
        this.store = new MemoryStore();
    }

    private NonceService(Clock clock, Store store) {
        this.clock = clock;
        this.store = store;
    }

    /**
     * Nonces in {@code db}, where several server instances share them: on a database that is not shared (SQLite),
     * in memory as {@link #NonceService(Clock)}.
     */
    public static NonceService shared(Clock clock, ServerDatabase db) {
        return db.shared() ? new NonceService(clock, new DatabaseStore(db)) : new NonceService(clock);
    }

    /**
     * Issues the nonce for a nonce request whose AK signature the caller verified: checks {@code requestedAt}
     * (milliseconds since the epoch, as signed), then replaces the AK's outstanding nonce, if any, with a fresh one.
     *
     * @throws RequestRefusedException if the request is not fresh; nothing changes then
     */
    public Grant issueForVerifiedRequest(String akId, long requestedAt, Duration ttl)
            throws RequestRefusedException {
        Instant now = clock.instant();
        long nowMillis = now.toEpochMilli();
        if (requestedAt < nowMillis - MAX_AGE.toMillis()) {
            throw new RequestRefusedException(RequestRefusal.TIME, now, "the request was made at "
                    + Instant.ofEpochMilli(requestedAt) + " but the server's time is " + now + "; requests more than "
                    + MAX_AGE.toMinutes() + " min old are refused: set the host's clock (NTP)");
        }
        if (requestedAt > nowMillis + MAX_AHEAD.toMillis()) {
            throw new RequestRefusedException(RequestRefusal.TIME, now, "the request is dated "
                    + Instant.ofEpochMilli(requestedAt) + ", " + (requestedAt - nowMillis) / 1000 + " s ahead of the"
                    + " server's time " + now + "; requests more than " + MAX_AHEAD.toSeconds() + " s ahead are"
                    + " refused: set the host's clock (NTP)");
        }
        return store.issue(akId, requestedAt, now, nonceFor(ttl, now));
    }

    /** A fresh nonce for an AK, expiring after {@code ttl} (at most {@link #MAX_TTL}). */
    private Grant nonceFor(Duration ttl, Instant now) {
        Duration effective = ttl.compareTo(MAX_TTL) > 0 ? MAX_TTL : ttl;
        byte[] nonce = new byte[32];
        random.nextBytes(nonce);
        return new Grant(nonce, now.plus(effective));
    }

    /** Refuses a request time that {@code times} has seen (a replay), naming the floor. */
    private static void refuseIfSeen(AcceptedTimes times, long requestedAt, Instant now)
            throws RequestRefusedException {
        if (times != null && times.seen(requestedAt)) {
            throw new RequestRefusedException(RequestRefusal.REPLAYED, now, "a request of this AK dated "
                    + Instant.ofEpochMilli(requestedAt) + " was accepted already, or is not after "
                    + Instant.ofEpochMilli(times.floor) + " (its newest accepted request, at most the server's time"
                    + " then): a replayed request, or the host's clock went back; send the current time");
        }
    }

    /**
     * The request times accepted for one AK: a floor (the newest accepted time, but never more than the server's
     * clock when it was accepted) and the accepted times above it, which only requests dated ahead leave. Guarded by
     * the service's lock.
     */
    private static final class AcceptedTimes {
        long floor = Long.MIN_VALUE;
        final long[] ahead = new long[MAX_AHEAD_REMEMBERED];
        int aheadCount;

        static AcceptedTimes of(long floor, long[] ahead) {
            AcceptedTimes t = new AcceptedTimes();
            t.floor = floor;
            t.aheadCount = Math.min(ahead.length, MAX_AHEAD_REMEMBERED);
            System.arraycopy(ahead, 0, t.ahead, 0, t.aheadCount);
            return t;
        }

        long[] aheadTimes() {
            return Arrays.copyOf(ahead, aheadCount);
        }

        /** Whether {@code t} cannot be accepted again: at or below the floor, or an accepted time above it. */
        boolean seen(long t) {
            if (t <= floor) {
                return true;
            }
            for (int i = 0; i < aheadCount; i++) {
                if (ahead[i] == t) {
                    return true;
                }
            }
            return false;
        }

        void accept(long t, long now) {
            floor = Math.max(floor, Math.min(t, now));
            if (t > floor && aheadCount == ahead.length) {
                // Only the AK's holder can send this many requests dated ahead: hold it to the oldest of them.
                long oldest = Long.MAX_VALUE;
                for (int i = 0; i < aheadCount; i++) {
                    oldest = Math.min(oldest, ahead[i]);
                }
                floor = oldest;
            }
            int kept = 0;
            for (int i = 0; i < aheadCount; i++) {
                if (ahead[i] > floor) {
                    ahead[kept++] = ahead[i];
                }
            }
            aheadCount = kept;
            if (t > floor) {
                ahead[aheadCount++] = t; // room: a full array lost at least its oldest time above
            }
        }

        /** The newest time remembered: a request at or before it is refused by replay or by age. */
        long newest() {
            long newest = floor;
            for (int i = 0; i < aheadCount; i++) {
                newest = Math.max(newest, ahead[i]);
            }
            return newest;
        }
    }

    /**
     * Issues a nonce for {@code akId} without a request: in-process benchmarks and tests only, never reachable
     * over HTTP. It replaces the AK's outstanding nonce like a verified request does.
     */
    public byte[] issue(String akId, Duration ttl) {
        Instant now = clock.instant();
        try {
            return store.issue(akId, null, now, nonceFor(ttl, now)).nonce();
        } catch (RequestRefusedException e) {
            throw new IllegalStateException("a nonce without a request cannot be refused for its time", e);
        }
    }

    /** The number of outstanding nonces (at most one per AK). */
    public int outstanding() {
        return store.outstanding(clock.instant());
    }

    /**
     * Consumes a nonce: no refusal if it is the outstanding one of {@code akId} and not expired. Either way the
     * nonce cannot be used again (a nonce presented for another AK is used up too: it was disclosed).
     */
    public Consumed consume(byte[] nonce, String akId) {
        Issued issued = store.take(nonce);
        Refusal refusal;
        if (issued == null) {
            refusal = Refusal.UNKNOWN;
        } else if (!clock.instant().isBefore(issued.expiresAt())) {
            refusal = Refusal.EXPIRED;
        } else {
            refusal = issued.akId().equals(akId) ? null : Refusal.OTHER_KEY;
        }
        ServerMetrics m = metrics;
        if (m != null) {
            m.nonceRedeemed(java.util.Optional.ofNullable(refusal));
        }
        return new Consumed(refusal);
    }

    /** Counts every nonce presented, by outcome, into {@code metrics}. Call once, before serving. */
    public NonceService withMetrics(ServerMetrics metrics) {
        this.metrics = java.util.Objects.requireNonNull(metrics, "metrics");
        return this;
    }

    /** Drops expired nonces and request times (a shared store; in memory this happens as nonces are issued). */
    public void sweep() {
        store.sweep(clock.instant());
    }

    /** Where outstanding nonces and accepted request times are kept. */
    private interface Store {
        /**
         * Atomically for the AK: refuses {@code requestedAt} (if not null) if seen, records it, and replaces the AK's
         * outstanding nonce with {@code grant}.
         */
        Grant issue(String akId, Long requestedAt, Instant now, Grant grant) throws RequestRefusedException;

        /** Removes and returns the nonce's grant, or null if there is none: one caller gets it. */
        Issued take(byte[] nonce);

        int outstanding(Instant now);

        void sweep(Instant now);
    }

    /** One server instance: maps under one lock. */
    private static final class MemoryStore implements Store {
        private final Object lock = new Object();
        private final Map<String, Issued> byAk = new HashMap<>();
        private final Map<String, Issued> byNonce = new HashMap<>();
        private final Map<String, AcceptedTimes> accepted = new HashMap<>();
        /** When the last sweep ran (the service's clock), guarded by the lock. */
        private long sweptAtMillis = Long.MIN_VALUE / 2;

        @Override
        public Grant issue(String akId, Long requestedAt, Instant now, Grant grant) throws RequestRefusedException {
            synchronized (lock) {
                if (requestedAt != null) {
                    AcceptedTimes times = accepted.get(akId);
                    refuseIfSeen(times, requestedAt, now);
                    if (times == null) {
                        times = new AcceptedTimes();
                        accepted.put(akId, times);
                    }
                    times.accept(requestedAt, now.toEpochMilli());
                }
                // At most once a second: a sweep walks every AK's entry, and with thousands of hosts doing that on
                // every issue was an O(hosts) cost per nonce (the fleet benchmark's profile: 13% of the server's CPU
                // at 10,000 hosts). The maps stay bounded by the enrolled AKs either way (only an AK's holder gets
                // a nonce issued).
                if ((byAk.size() > SWEEP_ABOVE || accepted.size() > SWEEP_ABOVE)
                        && (now.toEpochMilli() - sweptAtMillis >= SWEEP_EVERY_MILLIS
                        || now.toEpochMilli() < sweptAtMillis)) {
                    sweep(now);
                }
                String key = HexFormat.of().formatHex(grant.nonce());
                Issued issued = new Issued(akId, key, grant.expiresAt());
                Issued replaced = byAk.put(akId, issued);
                if (replaced != null) {
                    byNonce.remove(replaced.nonce());
                }
                byNonce.put(key, issued);
                return grant;
            }
        }

        @Override
        public Issued take(byte[] nonce) {
            synchronized (lock) {
                Issued issued = byNonce.remove(HexFormat.of().formatHex(nonce));
                if (issued != null) {
                    byAk.remove(issued.akId(), issued);
                }
                return issued;
            }
        }

        @Override
        public int outstanding(Instant now) {
            synchronized (lock) {
                return byAk.size();
            }
        }

        @Override
        public void sweep(Instant now) {
            synchronized (lock) {
                sweptAtMillis = now.toEpochMilli();
                for (Iterator<Issued> it = byAk.values().iterator(); it.hasNext(); ) {
                    Issued i = it.next();
                    if (!now.isBefore(i.expiresAt())) {
                        it.remove();
                        byNonce.remove(i.nonce());
                    }
                }
                long horizon = now.toEpochMilli() - MAX_AGE.toMillis();
                accepted.values().removeIf(t -> t.newest() < horizon);
            }
        }
    }

    /**
     * Several server instances: rows in the shared database. An AK's request times are read and written under a row
     * lock in the transaction that replaces its nonce; a nonce is taken by deleting its row. Only the SHA-256 of a
     * nonce is stored.
     */
    private static final class DatabaseStore implements Store {
        private final ServerDatabase db;

        DatabaseStore(ServerDatabase db) {
            this.db = db;
        }

        @Override
        public Grant issue(String akId, Long requestedAt, Instant now, Grant grant) throws RequestRefusedException {
            RequestRefusedException[] refused = new RequestRefusedException[1];
            try {
                // Three round trips (was five): the request times read and row-locked by one upsert, then the new
                // times and the AK's grant written by one statement, then the commit.
                db.transaction(c -> {
                    String grantSql = "INSERT INTO nonce_grants (ak_id, nonce_sha256, expires_millis) VALUES (?, ?, ?)"
                            + " ON CONFLICT (ak_id) DO UPDATE SET nonce_sha256 = excluded.nonce_sha256,"
                            + " expires_millis = excluded.expires_millis";
                    if (requestedAt == null) {
                        try (PreparedStatement p = c.prepareStatement(grantSql)) {
                            setGrant(p, 1, akId, grant);
                            p.executeUpdate();
                        }
                        return null;
                    }
                    AcceptedTimes times;
                    // A new AK's row is inserted; an existing one is locked (the no-op update) and returned as is.
                    try (PreparedStatement p = c.prepareStatement("INSERT INTO nonce_requests (ak_id, floor_millis,"
                            + " ahead_millis, newest_millis) VALUES (?, ?, ?, ?) ON CONFLICT (ak_id) DO UPDATE SET"
                            + " ak_id = excluded.ak_id RETURNING floor_millis, ahead_millis")) {
                        p.setString(1, akId);
                        p.setLong(2, Long.MIN_VALUE);
                        p.setArray(3, c.createArrayOf("bigint", new Long[0]));
                        p.setLong(4, Long.MIN_VALUE);
                        try (ResultSet rs = p.executeQuery()) {
                            if (!rs.next()) {
                                throw new SQLException("the upsert of the AK's request times returned no row");
                            }
                            Long[] ahead = (Long[]) rs.getArray(2).getArray();
                            long[] times0 = new long[ahead.length];
                            for (int i = 0; i < ahead.length; i++) {
                                times0[i] = ahead[i];
                            }
                            times = AcceptedTimes.of(rs.getLong(1), times0);
                        }
                    }
                    try {
                        refuseIfSeen(times, requestedAt, now);
                    } catch (RequestRefusedException e) {
                        refused[0] = e;
                        throw new SQLException("refused");
                    }
                    times.accept(requestedAt, now.toEpochMilli());
                    long[] ahead = times.aheadTimes();
                    Long[] boxed = new Long[ahead.length];
                    for (int i = 0; i < ahead.length; i++) {
                        boxed[i] = ahead[i];
                    }
                    try (PreparedStatement p = c.prepareStatement("WITH times AS (UPDATE nonce_requests SET"
                            + " floor_millis = ?, ahead_millis = ?, newest_millis = ? WHERE ak_id = ?) " + grantSql)) {
                        p.setLong(1, times.floor);
                        p.setArray(2, c.createArrayOf("bigint", boxed));
                        p.setLong(3, times.newest());
                        p.setString(4, akId);
                        setGrant(p, 5, akId, grant);
                        p.executeUpdate();
                    }
                    return null;
                });
            } catch (SQLException e) {
                if (refused[0] != null) {
                    throw refused[0];
                }
                throw new StorageUnavailableException("cannot issue a nonce", e);
            }
            return grant;
        }

        private static void setGrant(PreparedStatement p, int first, String akId, Grant grant) throws SQLException {
            p.setString(first, akId);
            p.setBytes(first + 1, HttpApi.sha256(grant.nonce()));
            p.setLong(first + 2, grant.expiresAt().toEpochMilli());
        }

        @Override
        public Issued take(byte[] nonce) {
            try {
                return db.read(c -> {
                    try (PreparedStatement p = c.prepareStatement("DELETE FROM nonce_grants WHERE nonce_sha256 = ?"
                            + " RETURNING ak_id, expires_millis")) {
                        p.setBytes(1, HttpApi.sha256(nonce));
                        try (ResultSet rs = p.executeQuery()) {
                            return rs.next() ? new Issued(rs.getString(1), "", Instant.ofEpochMilli(rs.getLong(2)))
                                    : null;
                        }
                    }
                });
            } catch (SQLException e) {
                throw new StorageUnavailableException("cannot consume a nonce", e);
            }
        }

        @Override
        public int outstanding(Instant now) {
            try {
                return db.read(c -> {
                    try (PreparedStatement p = c.prepareStatement(
                            "SELECT count(*) FROM nonce_grants WHERE expires_millis > ?")) {
                        p.setLong(1, now.toEpochMilli());
                        try (ResultSet rs = p.executeQuery()) {
                            rs.next();
                            return rs.getInt(1);
                        }
                    }
                });
            } catch (SQLException e) {
                throw new StorageUnavailableException("cannot count nonces", e);
            }
        }

        @Override
        public void sweep(Instant now) {
            try {
                db.read(c -> {
                    try (PreparedStatement p = c.prepareStatement(
                            "DELETE FROM nonce_grants WHERE expires_millis <= ?")) {
                        p.setLong(1, now.toEpochMilli());
                        p.executeUpdate();
                    }
                    try (PreparedStatement p = c.prepareStatement(
                            "DELETE FROM nonce_requests WHERE newest_millis < ?")) {
                        p.setLong(1, now.toEpochMilli() - MAX_AGE.toMillis());
                        p.executeUpdate();
                    }
                    return null;
                });
            } catch (SQLException e) {
                throw new StorageUnavailableException("cannot sweep expired nonces", e);
            }
        }
    }
}
