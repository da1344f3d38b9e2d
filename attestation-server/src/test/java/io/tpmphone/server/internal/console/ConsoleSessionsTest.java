package io.tpmphone.server.internal.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.internal.ServerDatabase;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import java.nio.file.Path;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Console sessions in memory (one server, SQLite) and in the cluster's PostgreSQL database: the same rules. */
@Timeout(60)
class ConsoleSessionsTest {
    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-07T10:00:00Z"));
    @TempDir
    Path dir;
    private ServerDatabase database;
    private ConsoleSessions sessions;

    /** Each test's first step (a plain {@code @Test} here has no backend to resolve). */
    private void open(TestBackend backend) throws Exception {
        if (backend.shared()) {
            database = backend.open(dir);
            sessions = sessions(database);
        } else {
            sessions = ConsoleSessions.inMemory(clock, Duration.ofMinutes(15), Duration.ofHours(8), 3);
        }
    }

    /** Another instance on the same database: its own ConsoleSessions, the same table. */
    private ConsoleSessions sessions(ServerDatabase db) {
        return ConsoleSessions.shared(db, clock, Duration.ofMinutes(15), Duration.ofHours(8), 3);
    }

    @AfterEach
    void close() throws Exception {
        if (database != null) {
            database.close();
        }
    }

    @OnEachBackend
    void aStartedSession_isFoundByItsId_andHasItsRole(TestBackend backend) throws Exception {
        open(backend);
        ConsoleSessions.Started s = sessions.start(ConsoleRole.AUDITOR).orElseThrow();
        assertEquals(43, s.id().length(), "32 random bytes, base64url");
        assertEquals(ConsoleRole.AUDITOR, sessions.find(s.id()).orElseThrow().role());
        assertFalse(s.toString().contains(s.id()), "the id never shows in toString: " + s);
        assertFalse(s.session().reference().isEmpty());
        assertFalse(s.id().startsWith(s.session().reference()), "the reference is not a prefix of the id");
        assertEquals(s.session().csrfToken(), sessions.find(s.id()).orElseThrow().csrfToken(),
                "the CSRF token is the session's, whichever request finds it");
    }

    @OnEachBackend
    void unknownOrMalformedIds_findNothing(TestBackend backend) throws Exception {
        open(backend);
        sessions.start(ConsoleRole.ADMIN).orElseThrow();
        assertTrue(sessions.find(null).isEmpty());
        assertTrue(sessions.find("").isEmpty());
        assertTrue(sessions.find("A".repeat(43)).isEmpty());
        assertTrue(sessions.find("A".repeat(10_000)).isEmpty());
    }

    @OnEachBackend
    void theIdleTimeout_endsASessionNotUsed_andUseKeepsItAlive(TestBackend backend) throws Exception {
        open(backend);
        String id = sessions.start(ConsoleRole.ADMIN).orElseThrow().id();
        clock.advance(Duration.ofMinutes(14));
        assertTrue(sessions.find(id).isPresent(), "14 minutes idle");
        clock.advance(Duration.ofMinutes(14));
        assertTrue(sessions.find(id).isPresent(), "used 14 minutes ago");
        clock.advance(Duration.ofMinutes(15));
        assertTrue(sessions.find(id).isEmpty(), "15 minutes idle end it");
        assertEquals(0, sessions.size());
    }

    @OnEachBackend
    void theAbsoluteTimeout_endsEvenABusySession(TestBackend backend) throws Exception {
        open(backend);
        String id = sessions.start(ConsoleRole.ADMIN).orElseThrow().id();
        for (int i = 0; i < 47; i++) {
            clock.advance(Duration.ofMinutes(10));
            assertTrue(sessions.find(id).isPresent(), "after " + (i + 1) * 10 + " minutes");
        }
        clock.advance(Duration.ofMinutes(10));
        assertTrue(sessions.find(id).isEmpty(), "8 hours after sign-in");
    }

    @OnEachBackend
    void aFullTable_refusesNewSessions_untilOneEnds_neverEvictingALiveOne(TestBackend backend) throws Exception {
        open(backend);
        String first = sessions.start(ConsoleRole.ADMIN).orElseThrow().id();
        sessions.start(ConsoleRole.ADMIN).orElseThrow();
        sessions.start(ConsoleRole.ADMIN).orElseThrow();
        assertTrue(sessions.start(ConsoleRole.ADMIN).isEmpty(), "the fourth is refused");
        assertTrue(sessions.find(first).isPresent(), "nobody was evicted");
        sessions.end(sessions.find(first).orElseThrow());
        assertTrue(sessions.start(ConsoleRole.ADMIN).isPresent(), "a sign-out made room");
        clock.advance(Duration.ofMinutes(16));
        assertTrue(sessions.start(ConsoleRole.ADMIN).isPresent(), "ended sessions are removed to make room");
    }

    @OnEachBackend
    void auditorsFillingTheTable_cannotLockTheAdminOut_theOldestAuditorMakesRoom(TestBackend backend)
            throws Exception {
        open(backend);
        String oldest = sessions.start(ConsoleRole.AUDITOR).orElseThrow().id();
        clock.advance(Duration.ofSeconds(1));
        String second = sessions.start(ConsoleRole.AUDITOR).orElseThrow().id();
        clock.advance(Duration.ofSeconds(1));
        String admin = sessions.start(ConsoleRole.ADMIN).orElseThrow().id();
        clock.advance(Duration.ofSeconds(1));
        assertTrue(sessions.start(ConsoleRole.ADMIN).isPresent(), "the admin signs in into a full table");
        assertTrue(sessions.find(oldest).isEmpty(), "the oldest auditor session made room");
        assertTrue(sessions.find(second).isPresent(), "only one was ended");
        assertTrue(sessions.find(admin).isPresent(), "an admin's session is never evicted");
    }

    @OnEachBackend
    void csrfTokens_arePerSession_andComparedExactly(TestBackend backend) throws Exception {
        open(backend);
        ConsoleSessions.Session a = sessions.start(ConsoleRole.ADMIN).orElseThrow().session();
        ConsoleSessions.Session b = sessions.start(ConsoleRole.ADMIN).orElseThrow().session();
        assertNotEquals(a.csrfToken(), b.csrfToken());
        assertTrue(a.csrfMatches(a.csrfToken()));
        assertFalse(a.csrfMatches(b.csrfToken()));
        assertFalse(a.csrfMatches(null));
        assertFalse(a.csrfMatches(a.csrfToken().substring(1)));
    }

    @OnEachBackend
    void freshness_isMeasuredFromSignIn(TestBackend backend) throws Exception {
        open(backend);
        ConsoleSessions.Session s = sessions.start(ConsoleRole.ADMIN).orElseThrow().session();
        clock.advance(Duration.ofMinutes(4));
        assertTrue(sessions.signedInWithin(s, Duration.ofMinutes(5)));
        clock.advance(Duration.ofMinutes(2));
        assertFalse(sessions.signedInWithin(s, Duration.ofMinutes(5)));
    }

    @OnEachBackend
    void aSessionMadeAtOneInstance_worksAtAnother_andASignOutAtOneEndsItAtBoth(TestBackend backend)
            throws Exception {
        open(backend);
        if (!backend.shared()) {
            return; // one instance: nothing to share (ConsoleHttpTest covers a restart signing everyone out)
        }
        try (ServerDatabase other = backend.open(dir.resolve("b"))) {
            ConsoleSessions atB = sessions(other);
            ConsoleSessions.Started atA = sessions.start(ConsoleRole.ADMIN).orElseThrow();
            ConsoleSessions.Session found = atB.find(atA.id()).orElseThrow(() -> new AssertionError(
                    "a session made at A is not found at B"));
            assertEquals(ConsoleRole.ADMIN, found.role());
            assertEquals(atA.session().csrfToken(), found.csrfToken(), "B accepts the form token A gave out");
            clock.advance(Duration.ofMinutes(14));
            assertTrue(sessions.find(atA.id()).isPresent(), "used at B 14 minutes ago: alive at A");
            clock.advance(Duration.ofMinutes(14));
            assertTrue(atB.find(atA.id()).isPresent(), "used at A 14 minutes ago: alive at B");
            sessions.end(sessions.find(atA.id()).orElseThrow());
            assertTrue(atB.find(atA.id()).isEmpty(), "signed out at A: refused at B");
            assertEquals(0, atB.size());
        }
    }

    @OnEachBackend
    void theDatabase_holdsOnlyTheSha256OfEachId_andNoCsrfToken(TestBackend backend) throws Exception {
        open(backend);
        if (!backend.shared()) {
            return; // in memory: nothing is stored anywhere
        }
        ConsoleSessions.Started s = sessions.start(ConsoleRole.AUDITOR).orElseThrow();
        List<String> cells = new ArrayList<>();
        database.read(c -> {
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM console_session")) {
                while (rs.next()) {
                    for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
                        cells.add(rs.getString(i));
                    }
                }
            }
            return null;
        });
        assertEquals(4, cells.size(), "one row: key, role, two times: " + cells);
        assertTrue(cells.stream().noneMatch(v -> v.contains(s.id()) || v.contains(s.session().csrfToken())),
                "neither the id nor the CSRF token is stored: " + cells);
        assertTrue(cells.get(0).startsWith(s.session().reference()), "the key is the id's SHA-256: " + cells);
    }

    @Test
    void badTimeouts_areRefused() {
        assertThrows(IllegalArgumentException.class, () -> ConsoleSessions.inMemory(clock, Duration.ZERO,
                Duration.ofHours(1), 1));
        assertThrows(IllegalArgumentException.class, () -> ConsoleSessions.inMemory(clock, Duration.ofHours(2),
                Duration.ofHours(1), 1));
        assertThrows(IllegalArgumentException.class, () -> ConsoleSessions.inMemory(clock, Duration.ofMinutes(1),
                Duration.ofHours(1), 0));
    }
}
