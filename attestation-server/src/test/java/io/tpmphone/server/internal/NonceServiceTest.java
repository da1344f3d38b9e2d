package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class NonceServiceTest {
    private static final Duration TTL = Duration.ofSeconds(30);

    /** A clock the test moves; no sleeping. */
    private final ManualClock clock = new ManualClock();
    private final NonceService nonces = new NonceService(clock);

    @Test
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

    @Test
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

    @Test
    void theTtl_isCappedAt30Seconds() throws Exception {
        NonceService.Grant g = nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ZERO),
                Duration.ofMinutes(10));
        assertEquals(clock.instant().plusSeconds(30), g.expiresAt());
    }

    @Test
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

    @Test
    void aRequestOutsideTheSkewWindow_isRefused() throws Exception {
        for (Duration off : new Duration[] {Duration.ofMinutes(-5).minusMillis(1), Duration.ofMinutes(5).plusMillis(1)}) {
            NonceService.RequestRefusedException e = assertThrows(NonceService.RequestRefusedException.class,
                    () -> nonces.issueForVerifiedRequest("ak-1", clock.millis(off), TTL), "offset " + off);
            assertEquals(NonceService.RequestRefusal.TIME, e.refusal(), e.getMessage());
        }
        nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ofMinutes(-5)), TTL);
        nonces.issueForVerifiedRequest("ak-1", clock.millis(Duration.ofMinutes(5)), TTL);
        assertEquals(1, nonces.outstanding());
    }

    @Test
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
}
