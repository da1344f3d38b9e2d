package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The one-step checks of {@link Call} the SIP paths rely on when a call ends while they run. */
@Timeout(10)
class CallTest {
    /**
     * One late BYE per dialog, not per call: each fork's 2xx (its own To tag) gets its BYE, a retransmission (the same
     * tag) none, and a peer making up tags gets at most {@link Call#LATE_BYE_DIALOGS}. Before (review rD), the claim
     * was once per call: the second fork got no BYE.
     */
    @Test
    void aLateByeIsClaimedOncePerDialog_forABoundedNumberOfDialogs() {
        Call call = new Call("c", CallPolicy.Direction.OUT, "sip:peer@peer");
        assertTrue(call.claimLateBye("peer1"), "the first fork's dialog gets its BYE");
        assertFalse(call.claimLateBye("peer1"), "a retransmission of its 2xx gets no second BYE");
        assertTrue(call.claimLateBye("peer2"), "a second fork's dialog gets a BYE of its own");
        List<Boolean> more = new ArrayList<>();
        for (int i = 3; i <= Call.LATE_BYE_DIALOGS + 5; i++) {
            more.add(call.claimLateBye("peer" + i));
        }
        long granted = more.stream().filter(b -> b).count();
        assertEquals(Call.LATE_BYE_DIALOGS - 2, granted, "at most " + Call.LATE_BYE_DIALOGS + " dialogs in all; saw "
                + more);
        assertFalse(call.claimLateBye("peer2"), "a dialog given its BYE stays so; saw it granted again");
    }
}
