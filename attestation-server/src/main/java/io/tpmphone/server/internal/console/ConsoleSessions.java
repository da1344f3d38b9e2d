package io.tpmphone.server.internal.console;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
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
 * full after removing ended ones, a sign-in is refused (never another user's session evicted). Each session has its
 * own CSRF token (32 random bytes), compared in constant time. Thread-safe.
 */
public final class ConsoleSessions {
    /** A live session. Immutable except for its last-use time. */
    public static final class Session {
        private final String key;
        private final ConsoleRole role;
        private final Instant signedInAt;
        private final String csrfToken;
        private volatile Instant lastUsed;

        private Session(String key, ConsoleRole role, Instant signedInAt, String csrfToken) {
            this.key = key;
            this.role = role;
            this.signedInAt = signedInAt;
            this.csrfToken = csrfToken;
            this.lastUsed = signedInAt;
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

    private final Map<String, Session> sessions = new ConcurrentHashMap<>();
    private final Clock clock;
    private final Duration idle;
    private final Duration absolute;
    private final int capacity;
    private final SecureRandom random = new SecureRandom();

    public ConsoleSessions(Clock clock, Duration idle, Duration absolute, int capacity) {
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

    /**
     * Starts a session for {@code role}. When the table is full of live sessions, the oldest auditor session makes
     * room (the auditor credential must not be able to lock the operator out); empty only if every live session is
     * an admin's.
     */
    public synchronized Optional<Started> start(ConsoleRole role) {
        Objects.requireNonNull(role, "role");
        if (sessions.size() >= capacity) {
            removeEnded();
            if (sessions.size() >= capacity) {
                Optional<Session> oldestAuditor = sessions.values().stream()
                        .filter(x -> x.role == ConsoleRole.AUDITOR)
                        .min(java.util.Comparator.comparing(x -> x.signedInAt));
                if (oldestAuditor.isEmpty()) {
                    return Optional.empty();
                }
                sessions.remove(oldestAuditor.get().key);
            }
        }
        String id = randomToken();
        Session s = new Session(key(id), role, clock.instant(), randomToken());
        sessions.put(s.key, s);
        return Optional.of(new Started(s, id));
    }

    /** The live session with cookie value {@code id}, marked used now; empty (and removed) if it ended. */
    public Optional<Session> find(String id) {
        if (id == null || id.length() != 43) {
            return Optional.empty();
        }
        String key = key(id);
        Session s = sessions.get(key);
        if (s == null) {
            return Optional.empty();
        }
        Instant now = clock.instant();
        if (ended(s, now)) {
            sessions.remove(key, s);
            return Optional.empty();
        }
        s.lastUsed = now;
        return Optional.of(s);
    }

    /** Ends the session (sign-out). */
    public void end(Session s) {
        sessions.remove(s.key, s);
    }

    /** Live sessions now (ended ones are removed first). */
    public synchronized int size() {
        removeEnded();
        return sessions.size();
    }

    /** Whether {@code s} signed in within {@code window} (policy changes need a fresh sign-in). */
    public boolean signedInWithin(Session s, Duration window) {
        return !s.signedInAt.plus(window).isBefore(clock.instant());
    }

    private boolean ended(Session s, Instant now) {
        return !now.isBefore(s.lastUsed.plus(idle)) || !now.isBefore(s.signedInAt.plus(absolute));
    }

    private void removeEnded() {
        Instant now = clock.instant();
        sessions.values().removeIf(s -> ended(s, now));
    }

    private String randomToken() {
        byte[] b = new byte[32];
        random.nextBytes(b);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }

    private static String key(String id) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(id.getBytes(StandardCharsets.US_ASCII)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JRE", e);
        }
    }
}
