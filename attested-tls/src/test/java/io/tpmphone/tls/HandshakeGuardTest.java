package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.ManualClock;
import java.io.Closeable;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The handshake guard's accounting (issue 12's review, finding 3): which addresses count as one source, the overall
 * allowance that no number of sources can exceed, and a bounded table of sources that new sources cannot use to make
 * the guard forget a busy one. Time is a {@link ManualClock}; deadlines are long enough never to fire here, except in
 * the one test about them.
 */
class HandshakeGuardTest {
    private static final Duration NEVER = Duration.ofHours(1);
    private final ManualClock clock = new ManualClock();
    private final List<HandshakeGuard> guards = new ArrayList<>();

    @AfterEach
    void close() {
        guards.forEach(HandshakeGuard::close);
    }

    private HandshakeGuard guard(int perSource, int total, double perSourcePerSecond, double totalPerSecond,
                                 int sources) {
        HandshakeGuard g = new HandshakeGuard(new HandshakeGuard.Limits(NEVER, perSource, total, perSourcePerSecond,
                totalPerSecond, sources), clock);
        guards.add(g);
        return g;
    }

    private static Optional<HandshakeGuard.Ticket> admit(HandshakeGuard g, String address) throws Exception {
        return g.admit(InetAddress.getByName(address), () -> { });
    }

    @Test
    @Timeout(10)
    void ipv6AddressesInOneSlash64_shareOneSourcesLimits() throws Exception {
        HandshakeGuard g = guard(2, 64, 2.0, 16.0, 4096);
        assertTrue(admit(g, "2001:db8:0:1::1").isPresent());
        assertTrue(admit(g, "2001:db8:0:1:ffff:ffff:ffff:fffe").isPresent());
        // the attacker rotates through its /64: still the same source, now at its limit
        for (String next : List.of("2001:db8:0:1::3", "2001:db8:0:1:1234:5678:9abc:def0", "2001:db8::1:0:0:0:7")) {
            assertTrue(admit(g, next).isEmpty(), next + " was admitted as a new source; in progress "
                    + g.inProgress() + ", sources " + g.sourcesTracked());
        }
        assertTrue(admit(g, "2001:db8:0:2::1").isPresent(), "another /64 is another source");
        assertEquals(2, g.sourcesTracked(), "sources remembered: the two /64s");
    }

    @Test
    @Timeout(10)
    void ipv4Addresses_areSourcesEachAndMappedIpv6CountsAsIpv4() throws Exception {
        HandshakeGuard g = guard(1, 64, 2.0, 16.0, 4096);
        assertTrue(admit(g, "192.0.2.1").isPresent());
        assertTrue(admit(g, "192.0.2.2").isPresent(), "a neighbouring IPv4 address is another source");
        assertEquals(InetAddress.getByName("192.0.2.1"), HandshakeGuard.sourceOf(InetAddress.getByAddress(
                new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xff, (byte) 0xff, (byte) 192, 0, 2, 1})));
        assertTrue(admit(g, "::ffff:192.0.2.1").isEmpty(), "an IPv4-mapped address is that IPv4 source");
        assertEquals("2001:db8:0:1:0:0:0:0", HandshakeGuard.sourceOf(InetAddress.getByName("2001:db8:0:1:a:b:c:d"))
                .getHostAddress());
    }

    @Test
    @Timeout(10)
    void newHandshakesFromAllSourcesTogether_areBoundedByTheOverallAllowance() throws Exception {
        // each source may start 4 at once, 4 overall in a burst, then 1 a second overall
        HandshakeGuard g = guard(4, 4, 1.0, 1.0, 4096);
        List<HandshakeGuard.Ticket> tickets = new ArrayList<>();
        for (int i = 1; i <= 4; i++) {
            tickets.add(admit(g, "198.51.100." + i).orElseThrow());
        }
        tickets.forEach(HandshakeGuard.Ticket::release);
        // nothing in progress now, and every source has its own allowance, but the overall one is spent
        for (int i = 5; i <= 40; i++) {
            assertTrue(admit(g, "198.51.100." + i).isEmpty(), "source " + i + " was admitted with the overall"
                    + " allowance spent; in progress " + g.inProgress());
        }
        clock.advance(Duration.ofMillis(1_000));
        assertTrue(admit(g, "198.51.100.41").isPresent(), "one second later, one more");
        assertTrue(admit(g, "198.51.100.42").isEmpty(), "and only one");
    }

    @Test
    @Timeout(10)
    void theSourceTable_isBounded_andNewSourcesCannotResetABusySource() throws Exception {
        HandshakeGuard g = guard(2, 8, 2.0, 1_000.0, 8);
        // the busy source: its two handshakes in progress, its burst spent
        admit(g, "203.0.113.1").orElseThrow();
        admit(g, "203.0.113.1").orElseThrow();
        // thousands of new sources, each starting a handshake that completes at once (the attacker's rotation)
        int admitted = 0;
        for (int i = 0; i < 2_000; i++) {
            Optional<HandshakeGuard.Ticket> t = admit(g, "10.0." + (i >> 8) + "." + (i & 0xff));
            if (t.isPresent()) {
                admitted++;
                t.get().release();
            }
            assertTrue(g.sourcesTracked() <= 8, "sources remembered: " + g.sourcesTracked() + " after " + i);
            clock.advance(Duration.ofMillis(10));
        }
        assertTrue(admitted > 0, "new sources were admitted while there was room: " + admitted);
        // still remembered with its count: it may not start a third
        assertTrue(admit(g, "203.0.113.1").isEmpty(), "the busy source was forgotten: admitted a third handshake;"
                + " sources remembered " + g.sourcesTracked());
        assertEquals(2, g.inProgress(), "handshakes in progress: the busy source's two");
    }

    @Test
    @Timeout(10)
    void aFullTableOfBusySources_refusesNewSources_untilOneIsIdleAgain() throws Exception {
        HandshakeGuard g = guard(1, 8, 1.0, 1_000.0, 8);
        List<HandshakeGuard.Ticket> busy = new ArrayList<>();
        for (int i = 1; i <= 8; i++) {
            busy.add(admit(g, "192.0.2." + i).orElseThrow());
        }
        assertTrue(admit(g, "192.0.2.100").isEmpty(), "a ninth source with eight busy ones remembered");
        busy.get(0).release();
        // released, but its allowance is not full again yet: still remembered, still no room
        assertTrue(admit(g, "192.0.2.100").isEmpty(), "a source forgotten before its allowance refilled");
        clock.advance(Duration.ofSeconds(1));
        assertTrue(admit(g, "192.0.2.100").isPresent(), "once a source is as good as new, it makes room");
        assertEquals(8, g.sourcesTracked());
    }

    @Test
    @Timeout(10)
    void onlyASourceAsGoodAsNew_isForgotten_whenTheTableIsFull() throws Exception {
        HandshakeGuard g = guard(1, 2, 1.0, 100.0, 2);
        HandshakeGuard.Ticket a = admit(g, "192.0.2.1").orElseThrow();
        a.release();
        a.release();
        assertEquals(0, g.inProgress(), "releasing twice counts once");
        assertEquals(1, g.sourcesTracked(), "remembered while its allowance refills");
        clock.advance(Duration.ofSeconds(1));
        HandshakeGuard.Ticket b = admit(g, "192.0.2.2").orElseThrow();
        // the table is full: the first source, idle with its allowance back, makes room; the busy one stays
        assertTrue(admit(g, "192.0.2.3").isPresent(), "a third source with one of two remembered as good as new");
        assertEquals(2, g.sourcesTracked());
        assertTrue(admit(g, "192.0.2.1").isEmpty(), "the first source again, with both remembered ones busy");
        b.release();
        clock.advance(Duration.ofSeconds(1));
        assertTrue(admit(g, "192.0.2.1").isPresent(), "room again once the second is as good as new");
    }

    @Test
    @Timeout(10)
    void aHandshakePastItsDeadline_isClosed_andItsPlaceFreed() throws Exception {
        HandshakeGuard g = new HandshakeGuard(HandshakeGuard.Limits.DEFAULTS.withDeadline(Duration.ofMillis(50)),
                clock);
        guards.add(g);
        CompletableFuture<Void> closed = new CompletableFuture<>();
        Closeable connection = () -> closed.complete(null);
        assertTrue(g.admit(InetAddress.getByName("192.0.2.1"), connection).isPresent());
        Await.event("the overdue connection to be closed", Duration.ofSeconds(5), closed,
                () -> "handshakes in progress: " + g.inProgress());
        Await.until("its place to be free", Duration.ofSeconds(5), () -> g.inProgress() == 0,
                () -> "handshakes in progress: " + g.inProgress());
    }

    /** A connection that notes when the guard closes it. */
    private static final class Connection implements Closeable {
        final CompletableFuture<Void> closed = new CompletableFuture<>();

        @Override
        public void close() {
            closed.complete(null);
        }
    }

    @Test
    @Timeout(10)
    void aFullTable_makesRoomForANewSource_byClosingTheOldestHandshakeOfTheSourceWithTheMost() throws Exception {
        // the review's flood: 8 sources with 8 idle handshakes each fill the 64 places
        HandshakeGuard g = guard(8, 64, 100.0, 1_000.0, 4096);
        List<List<Connection>> flood = new ArrayList<>();
        for (int s = 1; s <= 8; s++) {
            List<Connection> mine = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                Connection c = new Connection();
                assertTrue(g.admit(InetAddress.getByName("198.51.100." + s), c).isPresent(), "flood " + s + "/" + i);
                mine.add(c);
            }
            flood.add(mine);
        }
        assertEquals(64, g.inProgress());
        clock.advance(Duration.ofSeconds(1)); // the overall allowance refills; the places do not
        Connection newcomer = new Connection();
        assertTrue(g.admit(InetAddress.getByName("192.0.2.1"), newcomer).isPresent(), "a new source with the table"
                + " full of eight sources' handshakes");
        assertEquals(64, g.inProgress(), "one place changed hands");
        // the oldest handshake of one of the heaviest sources was closed, nothing else
        List<String> closed = new ArrayList<>();
        for (int s = 0; s < 8; s++) {
            for (int i = 0; i < 8; i++) {
                if (flood.get(s).get(i).closed.isDone()) {
                    closed.add((s + 1) + "/" + i);
                }
            }
        }
        assertEquals(1, closed.size(), "flood handshakes closed: " + closed);
        assertTrue(closed.get(0).endsWith("/0"), "the oldest of its source's: " + closed);
        assertTrue(!newcomer.closed.isDone(), "the newcomer's connection stays");
    }

    @Test
    @Timeout(10)
    void aSourceOnlyOneAheadOfTheNewcomer_keepsItsHandshake_soPlacesDoNotChurn() throws Exception {
        HandshakeGuard g = guard(2, 4, 100.0, 1_000.0, 4096);
        List<Connection> one = new ArrayList<>();
        for (int s = 1; s <= 4; s++) {
            Connection c = new Connection();
            g.admit(InetAddress.getByName("198.51.100." + s), c).orElseThrow();
            one.add(c);
        }
        clock.advance(Duration.ofSeconds(1)); // the overall allowance refills; the places do not
        assertTrue(g.admit(InetAddress.getByName("192.0.2.1"), new Connection()).isEmpty(), "four sources with one"
                + " each: a fifth would only swap places with one of them");
        assertTrue(one.stream().noneMatch(c -> c.closed.isDone()), "none closed");
        // a source with two more than the newcomer does make room
        HandshakeGuard h = guard(2, 4, 100.0, 1_000.0, 4096);
        Connection oldest = new Connection();
        h.admit(InetAddress.getByName("198.51.100.1"), oldest).orElseThrow();
        h.admit(InetAddress.getByName("198.51.100.1"), new Connection()).orElseThrow();
        h.admit(InetAddress.getByName("198.51.100.2"), new Connection()).orElseThrow();
        h.admit(InetAddress.getByName("198.51.100.3"), new Connection()).orElseThrow();
        clock.advance(Duration.ofSeconds(1));
        assertTrue(h.admit(InetAddress.getByName("192.0.2.1"), new Connection()).isPresent());
        assertTrue(oldest.closed.isDone(), "the oldest handshake of the source with two was closed");
    }

    @Test
    @Timeout(10)
    void aKnownGoodSource_getsThroughWhenNewSourcesHaveSpentTheSharedAllowance() throws Exception {
        // 64 places, 64 at once overall then 16 a second; a reserve of 4, then 1 a second, for known-good sources
        HandshakeGuard g = new HandshakeGuard(HandshakeGuard.Limits.DEFAULTS.withDeadline(NEVER).withReserve(16, 4,
                1.0), clock);
        guards.add(g);
        InetAddress caller = InetAddress.getByName("192.0.2.7");
        HandshakeGuard.Ticket first = g.admit(caller, new Connection()).orElseThrow();
        first.completed(true);
        first.release();
        assertTrue(g.knownGood(caller), "a source whose handshake completed with a device certificate");
        // the flood: eight new sources take every place and the whole shared allowance
        for (int s = 1; s <= 8; s++) {
            for (int i = 0; i < 8; i++) {
                if (g.admit(InetAddress.getByName("198.51.100." + s), new Connection()).isEmpty()) {
                    assertEquals(63, g.inProgress(), "only the shared allowance runs out: source " + s + "/" + i);
                }
            }
        }
        assertTrue(g.admit(InetAddress.getByName("203.0.113.9"), new Connection()).isEmpty(), "a new source, with"
                + " the shared allowance spent");
        for (int i = 0; i < 4; i++) {
            HandshakeGuard.Ticket t = g.admit(caller, new Connection()).orElseThrow(() -> new AssertionError(
                    "the known-good source was refused; in progress " + g.inProgress()));
            t.completed(true);
            t.release();
        }
        assertTrue(g.admit(caller, new Connection()).isEmpty(), "the reserve is 4 at once");
        clock.advance(Duration.ofSeconds(1));
        // a second later the shared allowance has 16 again for anyone; the reserve one more
        assertTrue(g.admit(InetAddress.getByName("203.0.113.9"), new Connection()).isPresent());
    }

    @Test
    @Timeout(10)
    void aSourceWhoseHandshakeFails_isNoLongerKnownGood_andKnownGoodSourcesAreBounded() throws Exception {
        HandshakeGuard g = new HandshakeGuard(HandshakeGuard.Limits.DEFAULTS.withDeadline(NEVER).withReserve(2, 4,
                1.0), clock);
        guards.add(g);
        InetAddress a = InetAddress.getByName("192.0.2.1");
        InetAddress b = InetAddress.getByName("192.0.2.2");
        InetAddress c = InetAddress.getByName("192.0.2.3");
        for (InetAddress x : List.of(a, b)) {
            HandshakeGuard.Ticket t = g.admit(x, new Connection()).orElseThrow();
            t.completed(true);
            t.release();
        }
        // issue 12's third review, finding 4: one or two failures (anyone behind the same NAT) do not strip it
        for (int i = 1; i < HandshakeGuard.FAILURES_TO_FORGET; i++) {
            g.admit(a, new Connection()).orElseThrow().release(); // failed: no completion
            assertTrue(g.knownGood(a), "a after " + i + " failed handshake(s) in a row");
        }
        g.admit(a, new Connection()).orElseThrow().release();
        assertTrue(!g.knownGood(a) && g.knownGood(b), "a failed " + HandshakeGuard.FAILURES_TO_FORGET
                + " times in a row, b did not");
        HandshakeGuard.Ticket t = g.admit(c, new Connection()).orElseThrow();
        t.completed(false); // completed without a device certificate (an ordinary SIP phone)
        t.release();
        assertTrue(!g.knownGood(c), "no device certificate, not known-good");
        for (InetAddress x : List.of(a, c)) {
            HandshakeGuard.Ticket u = g.admit(x, new Connection()).orElseThrow();
            u.completed(true);
            u.release();
        }
        assertTrue(g.knownGood(a) && g.knownGood(c) && !g.knownGood(b), "at most two remembered, the least recent"
                + " forgotten");
    }

    @Test
    @Timeout(10)
    void limitsThatContradictEachOther_areRefusedNamingTheRule() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new HandshakeGuard.Limits(
                NEVER, 8, 64, 2.0, 16.0, 10));
        assertTrue(e.getMessage().contains("sources"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new HandshakeGuard.Limits(NEVER, 8, 64, 2.0, 1.0,
                4096));
        assertTrue(e.getMessage().contains("perSourcePerSecond <= totalPerSecond"), e.getMessage());
    }

    /** Issue 12's third review, finding 4: one known-good source holds at most a quarter of the reserve at once. */
    @Test
    @Timeout(10)
    void oneKnownGoodSource_holdsAtMostAQuarterOfTheReserve() throws Exception {
        HandshakeGuard g = new HandshakeGuard(HandshakeGuard.Limits.DEFAULTS.withDeadline(NEVER).withReserve(16, 8,
                1.0), clock);
        guards.add(g);
        InetAddress one = InetAddress.getByName("192.0.2.7");
        InetAddress other = InetAddress.getByName("192.0.2.8");
        for (InetAddress x : List.of(one, other)) {
            HandshakeGuard.Ticket t = g.admit(x, new Connection()).orElseThrow();
            t.completed(true);
            t.release();
        }
        for (int s = 1; s <= 8; s++) {
            for (int i = 0; i < 8; i++) {
                g.admit(InetAddress.getByName("198.51.100." + s), new Connection());
            }
        }
        assertTrue(g.admit(InetAddress.getByName("203.0.113.9"), new Connection()).isEmpty(), "shared allowance spent");
        int held = 0;
        while (g.admit(one, new Connection()).isPresent()) {
            held++;
            assertTrue(held <= 8, "one source took " + held + " from a reserve of 8");
        }
        assertEquals(2, held, "handshakes one known-good source holds from a reserve of 8");
        assertTrue(g.admit(other, new Connection()).isPresent(), "another known-good source still gets the reserve");
    }

    /**
     * Issue 12's third review, finding 4: known-good sources were never closed to make room, so a few of them could
     * hold every place. Once no unknown source can give one up, the known-good source with the most does.
     */
    @Test
    @Timeout(10)
    void knownGoodSources_makeRoomAmongThemselves_whenNoUnknownSourceCan() throws Exception {
        HandshakeGuard g = new HandshakeGuard(new HandshakeGuard.Limits(NEVER, 8, 8, 8.0, 64.0, 4096), clock);
        guards.add(g);
        InetAddress heavy = InetAddress.getByName("192.0.2.1");
        InetAddress newcomer = InetAddress.getByName("192.0.2.2");
        HandshakeGuard.Ticket t = g.admit(heavy, new Connection()).orElseThrow();
        t.completed(true);
        t.release();
        assertTrue(g.knownGood(heavy), "heavy is known-good");
        clock.advance(Duration.ofSeconds(1)); // its allowance full again
        Connection oldest = new Connection();
        g.admit(heavy, oldest).orElseThrow();
        for (int i = 1; i < 8; i++) {
            g.admit(heavy, new Connection()).orElseThrow();
        }
        assertEquals(8, g.inProgress(), "every place is the known-good source's");
        clock.advance(Duration.ofSeconds(1)); // the shared allowance is not what stops the newcomer: the places are
        assertTrue(g.admit(newcomer, new Connection()).isPresent(), "a newcomer gets a place from the known-good"
                + " source holding all 8; in progress " + g.inProgress());
        assertTrue(oldest.closed.isDone(), "the known-good source's oldest handshake was closed to make room");
    }
}
