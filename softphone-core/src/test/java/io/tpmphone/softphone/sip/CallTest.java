package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import java.util.ArrayList;
import java.util.Arrays;
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

    /** Our 200 goes only for a call still being set up: marked answered in the same step as the look at its state. */
    @Test
    void answering_marksOnlyACallStillBeingSetUp() {
        Call ringing = new Call("r", CallPolicy.Direction.IN, "sip:caller@caller");
        assertTrue(ringing.ringing(), "the call rings");
        assertTrue(ringing.answering(), "a ringing call can be answered");
        assertTrue(ringing.isAnswered(), "and is marked answered");

        Call hungUp = new Call("h", CallPolicy.Direction.IN, "sip:caller@caller");
        hungUp.ringing();
        assertTrue(hungUp.abandon(Call.HUNG_UP), "our user hangs up");
        assertFalse(hungUp.answering(), "an ended call cannot be answered: its 200 must not leave");
        assertFalse(hungUp.isAnswered(), "nor is it marked answered");
        assertFalse(hungUp.established(), "nor established (its ACK, if any, gets a BYE)");
        assertEquals(Call.State.ENDED, hungUp.state(), "it stays ended; saw " + hungUp);
    }

    /** A key handed to a call after its end (it ended while the keystore made it) is wiped at once. */
    @Test
    void aKeyGivenToAnEndedCall_isWipedAtOnce() {
        Call call = new Call("k", CallPolicy.Direction.IN, "sip:caller@caller");
        call.ended("the caller cancelled");
        byte[] key = new byte[16];
        byte[] salt = new byte[14];
        Arrays.fill(key, (byte) 7);
        Arrays.fill(salt, (byte) 9);
        SdesCrypto ours = SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, key, salt);
        call.localCrypto(ours);
        byte[] left = ours.masterKey();
        assertTrue(allZero(left), "the ended call's key is wiped; saw " + Arrays.toString(left));

        Call live = new Call("l", CallPolicy.Direction.IN, "sip:caller@caller");
        SdesCrypto kept = SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, key, salt);
        live.localCrypto(kept);
        assertFalse(allZero(kept.masterKey()), "a live call's key is kept");
    }

    private static boolean allZero(byte[] b) {
        for (byte x : b) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }
}
