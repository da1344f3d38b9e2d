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
}
