package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import java.net.InetAddress;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The call table's per-source share (issue 12's second review, finding 6): one peer the policy accepts could take all
 * 16 places for calls being set up and all 32 for calls in progress. A source now has half of each.
 */
class CallTableTest {
    private static Call incoming(String id) {
        return new Call(id, CallPolicy.Direction.IN, "sip:caller@example.test");
    }

    @Test
    @Timeout(10)
    void oneSource_takesAtMostHalfThePlacesForCallsBeingSetUp() throws Exception {
        CallTable t = new CallTable(32, 16, 100);
        InetAddress a = InetAddress.getByName("192.0.2.1");
        for (int i = 0; i < 8; i++) {
            assertEquals(Optional.empty(), t.add(incoming("a" + i), null, a), "call " + i + " from one source");
        }
        Optional<String> ninth = t.add(incoming("a8"), null, a);
        assertTrue(ninth.isPresent() && ninth.get().contains("from one source are being set up already (at most 8)"),
                "the ninth from one source: " + ninth);
        assertEquals(Optional.empty(), t.add(incoming("b0"), null, InetAddress.getByName("192.0.2.2")),
                "another source still has room");
        assertEquals(Optional.empty(), t.add(incoming("own"), null), "our own calls have no source");
    }

    @Test
    @Timeout(10)
    void oneSource_holdsAtMostHalfTheCallsInProgress_andAnEndedOneMakesRoom() throws Exception {
        CallTable t = new CallTable(32, 16, 100);
        InetAddress a = InetAddress.getByName("192.0.2.1");
        Call first = null;
        for (int i = 0; i < 16; i++) {
            Call c = incoming("a" + i);
            assertEquals(Optional.empty(), t.add(c, null, a), "call " + i);
            c.established(); // set up: no longer counts among those being set up
            first = first == null ? c : first;
        }
        Optional<String> more = t.add(incoming("a16"), null, a);
        assertTrue(more.isPresent() && more.get().contains("from one source are in progress already (at most 16)"),
                "a 17th established call from one source: " + more);
        first.ended("hung up");
        assertEquals(Optional.empty(), t.add(incoming("a17"), null, a), "room again once one of them ended");
        assertEquals(16, t.counts().active(), "calls in progress");
    }

    /**
     * Issue 14: SIP still arriving for a call just ended (the far end's 403, its CANCEL) finds the call for a while:
     * at most {@link CallTable#RECENT} calls, each for {@link CallTable#RECENT_AGE}; a flood of calls refused at the
     * door (never in progress) adds nothing, and a flood of real calls ending keeps only the newest.
     */
    @Test
    @Timeout(10)
    void justEndedCalls_areFoundByCallId_boundedInNumberAndAge() {
        long[] now = {1_000_000_000L};
        CallTable t = new CallTable(32, 16, 100, () -> now[0]);
        Call c = incoming("ended-1");
        assertEquals(Optional.empty(), t.add(c, null, null));
        assertEquals(Optional.empty(), t.recentlyEnded("ended-1"), "a call in progress is not among the ended");
        c.refused("403 refused end to end by the far end's verdict");
        assertEquals(Optional.of(c), t.recentlyEnded("ended-1"), "found right after its end");
        for (int i = 0; i < 1_000; i++) {
            // a call refused at the door (the phone full, a malformed INVITE) never was in progress: kept in the
            // ended history for its caller, never in the memory that answers SIP
            Call door = incoming("refused-at-the-door-" + i);
            door.refused("486 busy");
            t.remember(door);
            assertEquals(Optional.empty(), t.recentlyEnded(door.callId()), "a call never in progress: " + door);
        }
        assertEquals(1, t.counts().recentlyEnded(), () -> "calls refused at the door add nothing: " + t.counts());
        now[0] += CallTable.RECENT_AGE.toNanos() - 1;
        assertEquals(Optional.of(c), t.recentlyEnded("ended-1"), "still found just before RECENT_AGE");
        now[0] += 1;
        assertEquals(Optional.empty(), t.recentlyEnded("ended-1"), "forgotten once RECENT_AGE has passed");
        assertEquals(0, t.counts().recentlyEnded(), () -> "nothing held: " + t.counts());
        for (int i = 0; i < 10 * CallTable.RECENT; i++) {
            Call e = incoming("flood-" + i);
            assertEquals(Optional.empty(), t.add(e, null, null), "call " + i);
            e.ended("the caller cancelled");
        }
        assertEquals(CallTable.RECENT, t.counts().recentlyEnded(), () -> "at most RECENT kept: " + t.counts());
        assertEquals(Optional.empty(), t.recentlyEnded("flood-0"), "the oldest fell out");
        String newest = "flood-" + (10 * CallTable.RECENT - 1);
        assertTrue(t.recentlyEnded(newest).isPresent(), "the newest is kept");
    }
}
