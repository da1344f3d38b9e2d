package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.tls.DtlsSrtpException;
import io.tpmphone.tls.DtlsSrtpException.Reason;
import java.util.EnumSet;
import java.util.Set;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Which failed DTLS-SRTP handshakes a caller records at once under its own code, and which wait for the far end's SIP
 * words (issue 14 review): only an alert the far end sent, or a handshake that never finished. A fingerprint mismatch
 * or broken evidence, found here, is never replaced by what a far end or a proxy says; an alert this side sent (a
 * local refusal) is not the far end's abort. And the far end's words are stored once, raw.
 */
@Timeout(10)
class NoAssociationReasonTest {
    private static final Set<Reason> VERIFIED_HERE = EnumSet.of(Reason.FINGERPRINT_MISMATCH, Reason.NO_CERTIFICATE,
            Reason.SRTP_NEGOTIATION, Reason.EVIDENCE_MALFORMED, Reason.LOCAL_SIGNATURE, Reason.LOCAL_EVIDENCE);

    @Test
    void onlyAReceivedAlertOrATimeout_isTheFarEndsAbort() {
        assertTrue(EndToEndCalls.farEndAborted(new DtlsSrtpException(Reason.HANDSHAKE_FAILED, "the far end ended the"
                + " DTLS handshake with alert internal_error", new TlsFatalAlertReceived(
                AlertDescription.internal_error))));
        assertTrue(EndToEndCalls.farEndAborted(new DtlsSrtpException(Reason.HANDSHAKE_TIMEOUT, "not in time")));
        assertTrue(EndToEndCalls.farEndAborted(new DtlsSrtpException(Reason.HANDSHAKE_FAILED, "the DTLS handshake"
                + " failed: internal_error(80)", new TlsFatalAlert(AlertDescription.internal_error))),
                "Bouncy Castle's DTLS reports a received alert as a plain TlsFatalAlert");
        assertFalse(EndToEndCalls.farEndAborted(new DtlsSrtpException(Reason.HANDSHAKE_FAILED, "a chain too long",
                new TlsFatalAlert(AlertDescription.bad_certificate) { })), "our own refusal (a subclass)");
        assertFalse(EndToEndCalls.farEndAborted(new DtlsSrtpException(Reason.HANDSHAKE_FAILED, "no cause")));
        for (Reason r : VERIFIED_HERE) {
            assertFalse(EndToEndCalls.farEndAborted(new DtlsSrtpException(r, "x", new TlsFatalAlertReceived(
                    AlertDescription.bad_certificate))), r::name);
        }
    }

    @Test
    void failuresFoundHere_areRecordedEvenWhenTheCallsEndClosedTheAssociation() {
        for (Reason r : Reason.values()) {
            assertEquals(VERIFIED_HERE.contains(r), DtlsMedia.verifiedHere(new DtlsSrtpException(r, "x")), r::name);
        }
    }

    @Test
    void theFarEndsWords_theFirstAreKept_raw() {
        Call call = new Call("rec-1", io.tpmphone.softphone.CallPolicy.Direction.OUT, "sip:bob@example.test");
        assertTrue(call.farEndRefusal().isEmpty());
        call.farEndRefused(500, "Server Internal Error: TPM did not sign \u001b[2J");
        call.farEndRefused(488, "later");
        assertEquals("500 Server Internal Error: TPM did not sign \u001b[2J", call.farEndRefusal().orElseThrow(),
                "stored raw, the first only (the record escapes it)");
    }

    @Test
    void theRecordIsClaimedOnce() {
        Call call = new Call("rec-2", io.tpmphone.softphone.CallPolicy.Direction.OUT, "sip:bob@example.test");
        assertTrue(call.claimNoAssociation());
        assertFalse(call.claimNoAssociation());
    }
}
