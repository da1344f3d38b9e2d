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
}
