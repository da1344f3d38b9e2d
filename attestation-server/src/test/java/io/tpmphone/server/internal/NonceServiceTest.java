package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** NonceService on each backend: the freshness rules are the same whether nonces live in memory or in PostgreSQL. */
@Timeout(60)
class NonceServiceTest {
    private static final Duration TTL = Duration.ofSeconds(30);

    /** A clock the test moves; no sleeping. */
    private final ManualClock clock = new ManualClock();
    private ServerDatabase db;
    /** What a server on the backend uses: in memory on SQLite, rows of the shared database on PostgreSQL. */
    private NonceService nonces;

    @BeforeEach
    void open(TestBackend backend, @TempDir Path dir) throws Exception {
        db = backend.open(dir);
        nonces = NonceService.shared(clock, db);
    }

    @AfterEach
    void close() throws Exception {
        db.close();
    }

    @OnEachBackend
    void aNewRequest_replacesTheAksOutstandingNonce_andOtherAksKeepTheirs() throws Exception {
        byte[] first = nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ZERO), TTL).nonce();
        byte[] others = nonces.issueForVerifiedRequest("ak-2", clock.millis(Duration.ZERO), TTL).nonce();
        byte[] second = nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ofMillis(1)), TTL).nonce();
        assertEquals(2, nonces.outstanding(), "one outstanding nonce per AK");
        assertEquals(NonceService.Refusal.UNKNOWN, nonces.consume(first, "ak-1").refusal(),
                "the AK's newer request replaced its first nonce");
        assertNull(nonces.consume(second, "ak-1").refusal(), "the newest nonce of the AK is good");
        assertEquals(NonceService.Refusal.UNKNOWN, nonces.consume(second, "ak-1").refusal(), "single use");
        assertNull(nonces.consume(others, "ak-2").refusal(), "another AK's nonce is untouched");
        assertEquals(0, nonces.outstanding(), "consumed nonces are gone");
    }

    @OnEachBackend
    void aNonceForAnotherAk_orAfterItsTtl_isRefused() throws Exception {
        byte[] n = nonces.issue("ak-1", TTL);
        assertEquals(NonceService.Refusal.OTHER_KEY, nonces.consume(n, "ak-2").refusal());
        assertEquals(NonceService.Refusal.UNKNOWN, nonces.consume(n, "ak-1").refusal(),
                "a nonce shown for another AK is used up");
        byte[] expired = nonces.issue("ak-1", Duration.ofMillis(-1));
        assertEquals(NonceService.Refusal.EXPIRED, nonces.consume(expired, "ak-1").refusal());
        byte[] later = nonces.issue("ak-1", TTL);
        clock.advance(Duration.ofSeconds(30));
        assertEquals(NonceService.Refusal.EXPIRED, nonces.consume(later, "ak-1").refusal(), "30 s TTL");
    }

    @OnEachBackend
    void theTtl_isCappedAt30Seconds() throws Exception {
        NonceService.Grant g = nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ZERO),
                Duration.ofMinutes(10));
        assertEquals(clock.instant().plusSeconds(30), g.expiresAt());
    }

    @OnEachBackend
    void aReplayedOrOlderRequest_isRefused_andKeepsTheOutstandingNonce() throws Exception {
        long t = clock.millis(Duration.ZERO);
        byte[] n = nonces.issueForVerifiedRequest("ak-1", t, TTL).nonce();
        NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                () -> nonces.issueForVerifiedRequest("ak-1", t, TTL));
        assertEquals(NonceService.RequestRefusal.REPLAYED, e.refusal(), e.getMessage());
        e = assertThrows(NonceService.RequestRefusedException.class,
                () -> nonces.issueForVerifiedRequest("ak-1", t - 1, TTL));
        assertEquals(NonceService.RequestRefusal.REPLAYED, e.refusal(), e.getMessage());
        assertNull(nonces.consume(n, "ak-1").refusal(), "a refused request evicts nothing");
    }

    @OnEachBackend
    void aRequestOutsideTheSkewWindow_isRefused() throws Exception {
        for (Duration off : new Duration[] {Duration.ofMinutes(-5).minusMillis(1), Duration.ofSeconds(30).plusMillis(1)}) {
            NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                    () -> nonces.issueForVerifiedRequest("ak-1", clock.millis(off), TTL), "offset " + off);
            assertEquals(NonceService.RequestRefusal.TIME, e.refusal(), e.getMessage());
        }
        nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ofMinutes(-5)), TTL);
        nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ofSeconds(30)), TTL);
        assertEquals(1, nonces.outstanding());
    }

    /**
     * The client chooses requestedAt. A request dated 4 minutes ahead was accepted, and every honest request after it
     * looked older ("not after the last accepted request"): the host could get no nonce for 4 minutes, and its
     * passport and keystore approval lapsed.
     */
    @OnEachBackend
    void aRequestDatedMinutesAhead_isRefusedAsTime_andTheHonestAgentStillGetsItsNonce() throws Exception {
        NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                () -> nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ofMinutes(4)), TTL));
        assertEquals(NonceService.RequestRefusal.TIME, e.refusal(), e.getMessage());
        assertTrue(e.getMessage().contains("240 s ahead") && e.getMessage().contains("more than 30 s ahead are refused")
                && e.getMessage().contains("NTP"), "says how far ahead, the bound and what to do: " + e.getMessage());
        assertEquals(clock.instant(), e.serverTime(), "states the server's time, for the agent to correct by");
        clock.advance(Duration.ofSeconds(1));
        byte[] honest = nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ZERO), TTL).nonce();
        assertNull(nonces.consume(honest, "ak-1").refusal(), "the honest request right after is served");
    }

    @OnEachBackend
    void aRequestDatedAheadWithinTheSkew_doesNotLockTheAkOut_andIsStillNotReplayable() throws Exception {
        long ahead = clock.millis(Duration.ofSeconds(29));
        nonces.issueForVerifiedRequest("ak-1", ahead, TTL);
        clock.advance(Duration.ofMillis(5));
        long honest = clock.millis(Duration.ZERO);
        byte[] n = nonces.issueForVerifiedRequest("ak-1", honest, TTL).nonce();
        assertNull(nonces.consume(n, "ak-1").refusal(), "an honest request after one dated ahead is served");
        for (long replayed : new long[] {ahead, honest}) {
            NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                    () -> nonces.issueForVerifiedRequest("ak-1", replayed, TTL), "replay of " + replayed);
            assertEquals(NonceService.RequestRefusal.REPLAYED, e.refusal(), e.getMessage());
        }
        clock.advance(Duration.ofSeconds(40)); // the server's clock passes the request dated ahead
        NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                () -> nonces.issueForVerifiedRequest("ak-1", ahead, TTL));
        assertEquals(NonceService.RequestRefusal.REPLAYED, e.refusal(), "still a replay later: " + e.getMessage());
        nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ZERO), TTL);
    }

    @OnEachBackend
    void manyRequestsDatedAhead_keepMemoryBounded_andNoneCanBeReplayed() throws Exception {
        List<Long> times = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            long t = clock.millis(Duration.ofSeconds(20).plusMillis(i)); // 20 s ahead, each a new time
            nonces.issueForVerifiedRequest("ak-1", t, TTL);
            times.add(t);
            clock.advance(Duration.ofMillis(1));
        }
        for (long t : times) {
            NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                    () -> nonces.issueForVerifiedRequest("ak-1", t, TTL), "replay of " + t);
            assertEquals(NonceService.RequestRefusal.REPLAYED, e.refusal(), e.getMessage());
        }
        // The AK's holder held itself to its own times, for at most MAX_AHEAD.
        clock.advance(Duration.ofSeconds(30)); // NonceService.MAX_AHEAD
        nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ZERO), TTL);
    }

    @OnEachBackend
    void memory_isOneEntryPerAk_andExpiredEntriesAreSwept() throws Exception {
        for (int i = 0; i < 2000; i++) {
            nonces.issueForVerifiedRequest("ak-" + (i % 10), clock.millis(Duration.ofMillis(i)), TTL);
        }
        assertEquals(10, nonces.outstanding(), "2000 requests of 10 AKs leave 10 nonces");
        for (int i = 0; i < 1100; i++) {
            nonces.issue("old-" + i, TTL);
        }
        clock.advance(Duration.ofMinutes(6));
        nonces.issueForVerifiedRequest("ak-new", clock.millis(Duration.ZERO), TTL);
        assertEquals(1, nonces.outstanding(), "expired nonces are swept once the map is large");
        // The last request time of ak-0 is swept too: its old time is refused by the skew window instead.
        NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                () -> nonces.issueForVerifiedRequest("ak-0", clock.millis(Duration.ofMinutes(-6)), TTL));
        assertEquals(NonceService.RequestRefusal.TIME, e.refusal(), e.getMessage());
    }

    /**
     * In memory (SQLite), expired nonces of a large fleet are dropped by the issues that follow, at most once a
     * second (a sweep walks every AK: on every issue it cost O(hosts) per nonce at 10,000 hosts), so the maps stay
     * bounded by the AKs that attest; on PostgreSQL the housekeeping's sweep does it.
     */
    @OnEachBackend
    void aLargeFleetsExpiredNonces_areDropped_byLaterIssues(TestBackend backend) throws Exception {
        // Shared (PostgreSQL): the rows are swept by the server's housekeeping, sweep(), not by issues.
        Runnable housekeeping = backend.kind() == TestBackend.Kind.SQLITE ? () -> { } : nonces::sweep;
        for (int i = 0; i < 1100; i++) {
            nonces.issueForVerifiedRequest("ak-" + i, clock.millis(Duration.ZERO), TTL);
        }
        assertEquals(1100, nonces.outstanding(), "one per AK");
        clock.advance(TTL.plusMillis(1));
        nonces.issueForVerifiedRequest("ak-new", clock.millis(Duration.ZERO), TTL);
        housekeeping.run();
        assertEquals(1, nonces.outstanding(), "the expired ones swept by the next issue, a second after the last");
        for (int i = 0; i < 1100; i++) {
            nonces.issueForVerifiedRequest("ak-" + i, clock.millis(Duration.ZERO), TTL);
        }
        clock.advance(TTL.plusMillis(1));
        nonces.issueForVerifiedRequest("ak-newer", clock.millis(Duration.ZERO), TTL);
        housekeeping.run();
        assertEquals(1, nonces.outstanding(), "and again: " + nonces.outstanding());
    }
}
