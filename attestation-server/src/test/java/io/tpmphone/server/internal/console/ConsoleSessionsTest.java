package io.tpmphone.server.internal.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class ConsoleSessionsTest {
    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-07T10:00:00Z"));
    private final ConsoleSessions sessions = new ConsoleSessions(clock, Duration.ofMinutes(15), Duration.ofHours(8),
            3);

    @Test
    void aStartedSession_isFoundByItsId_andHasItsRole() {
        ConsoleSessions.Started s = sessions.start(ConsoleRole.AUDITOR).orElseThrow();
        assertEquals(43, s.id().length(), "32 random bytes, base64url");
        assertEquals(ConsoleRole.AUDITOR, sessions.find(s.id()).orElseThrow().role());
        assertFalse(s.toString().contains(s.id()), "the id never shows in toString: " + s);
        assertFalse(s.session().reference().isEmpty());
        assertFalse(s.id().startsWith(s.session().reference()), "the reference is not a prefix of the id");
    }

    @Test
    void unknownOrMalformedIds_findNothing() {
        sessions.start(ConsoleRole.ADMIN).orElseThrow();
        assertTrue(sessions.find(null).isEmpty());
        assertTrue(sessions.find("").isEmpty());
        assertTrue(sessions.find("A".repeat(43)).isEmpty());
        assertTrue(sessions.find("A".repeat(10_000)).isEmpty());
    }

    @Test
    void theIdleTimeout_endsASessionNotUsed_andUseKeepsItAlive() {
        String id = sessions.start(ConsoleRole.ADMIN).orElseThrow().id();
        clock.advance(Duration.ofMinutes(14));
        assertTrue(sessions.find(id).isPresent(), "14 minutes idle");
        clock.advance(Duration.ofMinutes(14));
        assertTrue(sessions.find(id).isPresent(), "used 14 minutes ago");
        clock.advance(Duration.ofMinutes(15));
        assertTrue(sessions.find(id).isEmpty(), "15 minutes idle end it");
        assertEquals(0, sessions.size());
    }

    @Test
    void theAbsoluteTimeout_endsEvenABusySession() {
        String id = sessions.start(ConsoleRole.ADMIN).orElseThrow().id();
        for (int i = 0; i < 47; i++) {
            clock.advance(Duration.ofMinutes(10));
            assertTrue(sessions.find(id).isPresent(), "after " + (i + 1) * 10 + " minutes");
        }
        clock.advance(Duration.ofMinutes(10));
        assertTrue(sessions.find(id).isEmpty(), "8 hours after sign-in");
    }

    @Test
    void aFullTable_refusesNewSessions_untilOneEnds_neverEvictingALiveOne() {
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

    @Test
    void auditorsFillingTheTable_cannotLockTheAdminOut_theOldestAuditorMakesRoom() {
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

    @Test
    void csrfTokens_arePerSession_andComparedExactly() {
        ConsoleSessions.Session a = sessions.start(ConsoleRole.ADMIN).orElseThrow().session();
        ConsoleSessions.Session b = sessions.start(ConsoleRole.ADMIN).orElseThrow().session();
        assertNotEquals(a.csrfToken(), b.csrfToken());
        assertTrue(a.csrfMatches(a.csrfToken()));
        assertFalse(a.csrfMatches(b.csrfToken()));
        assertFalse(a.csrfMatches(null));
        assertFalse(a.csrfMatches(a.csrfToken().substring(1)));
    }

    @Test
    void freshness_isMeasuredFromSignIn() {
        ConsoleSessions.Session s = sessions.start(ConsoleRole.ADMIN).orElseThrow().session();
        clock.advance(Duration.ofMinutes(4));
        assertTrue(sessions.signedInWithin(s, Duration.ofMinutes(5)));
        clock.advance(Duration.ofMinutes(2));
        assertFalse(sessions.signedInWithin(s, Duration.ofMinutes(5)));
    }

    @Test
    void badTimeouts_areRefused() {
        assertThrows(IllegalArgumentException.class, () -> new ConsoleSessions(clock, Duration.ZERO,
                Duration.ofHours(1), 1));
        assertThrows(IllegalArgumentException.class, () -> new ConsoleSessions(clock, Duration.ofHours(2),
                Duration.ofHours(1), 1));
        assertThrows(IllegalArgumentException.class, () -> new ConsoleSessions(clock, Duration.ofMinutes(1),
                Duration.ofHours(1), 0));
    }
}
