package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Hold and resume of a DTLS-SRTP call (RFC 5763 §6.7.1): a re-INVITE with the same fingerprint, address, port and
 * role keeps the association — no new handshake, no new evidence, the same SRTP keys —
 * and audio flows again after the resume, both ways. Real sockets, real DTLS-SRTP, two phones.
 */
@Timeout(120)
class DtlsHoldIT {
    private static final Duration WAIT = Duration.ofSeconds(20);

    @Test
    void holdAndResume_keepTheAssociation_andAudioFlowsAfterTheResume() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity aliceId = hosts.identity("alice");
        TestHosts.CountingIdentity bobId = hosts.identity("bob");
        try (SipPhone alice = phone(aliceId, hosts, "alice", 1000);
             SipPhone bob = phone(bobId, hosts, "bob", 440)) {
            Call call = alice.await(alice.call("sips:bob@bob", new InetSocketAddress(LOOPBACK,
                    bob.config().tlsPort())));
            assertEquals(Call.State.ESTABLISHED, call.state(), call::reason);
            Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
            AudioSession aliceAudio = call.audio().orElseThrow();
            AudioSession bobAudio = atBob.audio().orElseThrow();
            Await.until("audio both ways before the hold", WAIT, () -> aliceAudio.received().samples().length >= 4000
                    && bobAudio.received().samples().length >= 4000, () -> aliceAudio.stats() + " / "
                    + bobAudio.stats());
            int aliceQuotes = aliceId.quotes.get();
            int bobQuotes = bobId.quotes.get();

            alice.hold(call, true);
            Await.until("both sides to see the call held", WAIT, () -> call.held() && atBob.held(),
                    () -> "alice held " + call.held() + ", bob held " + atBob.held() + "; " + call.state() + " "
                            + call.reason() + " / " + atBob.state() + " " + atBob.reason());
            // held (alice sendonly, bob recvonly): once bob's phone reports the call held, no RTP packet of his leaves
            // (counted at the last point of his send path, after SRTP), however late libjitsi's send threads run;
            // alice's go on — measured over 50 of alice's packets reaching bob (1 s of 20 ms frames)
            long bobSentHeld = bobAudio.stats().packetsSent();
            long bobGotHeld = bobAudio.stats().packetsReceived();
            Await.until("50 packets from alice while held", WAIT,
                    () -> bobAudio.stats().packetsReceived() >= bobGotHeld + 50, () -> bobAudio.stats().toString());
            assertEquals(bobSentHeld, bobAudio.stats().packetsSent(), () -> "bob sends nothing while held: "
                    + bobAudio.stats());
            // what reached alice is at most what bob sent before the hold (loopback: nothing is duplicated)
            assertTrue(aliceAudio.stats().packetsReceived() <= bobSentHeld, () -> "alice gets nothing sent while"
                    + " held: bob sent " + bobSentHeld + " before it; alice " + aliceAudio.stats());
            // the far end resumes it (its re-offer keeps the association too; one re-INVITE at a time, no glare)
            bob.hold(atBob, false);
            Await.until("both sides to see the call resumed", WAIT, () -> !call.held() && !atBob.held()
                            && call.state() == Call.State.ESTABLISHED && atBob.state() == Call.State.ESTABLISHED,
                    () -> "alice held " + call.held() + " " + call.state() + " " + call.reason() + ", bob held "
                            + atBob.held() + " " + atBob.state() + " " + atBob.reason());
            int aliceFrom = aliceAudio.received().samples().length;
            int bobFrom = bobAudio.received().samples().length;
            Await.until("8000 more samples each way after the resume", WAIT,
                    () -> aliceAudio.received().samples().length >= aliceFrom + 8000
                            && bobAudio.received().samples().length >= bobFrom + 8000,
                    () -> "alice " + aliceFrom + " → " + aliceAudio.received().samples().length + " ("
                            + aliceAudio.stats() + "), bob " + bobFrom + " → "
                            + bobAudio.received().samples().length + " (" + bobAudio.stats() + ")");
            short[] bobHeard = aliceAudio.received().samples();
            short[] aliceHeard = bobAudio.received().samples();
            assertEquals(1000.0, Wav.dominantFrequency(Arrays.copyOfRange(aliceHeard, bobFrom, aliceHeard.length),
                    4000), 20.0, () -> "bob hears alice's tone after the resume: " + bobAudio.stats());
            assertEquals(440.0, Wav.dominantFrequency(Arrays.copyOfRange(bobHeard, aliceFrom, bobHeard.length),
                    4000), 20.0, () -> "alice hears bob's tone after the resume: " + aliceAudio.stats());
            // No new DTLS handshake, no new evidence: a new association would quote once more on each side. The
            // only new quotes allowed are for bob's re-INVITE's new TLS connection to alice's contact (SIP, not
            // media): at most one each.
            assertTrue(aliceId.quotes.get() - aliceQuotes <= 1 && bobId.quotes.get() - bobQuotes <= 1,
                    () -> "quotes across hold and resume: alice " + aliceQuotes + " → " + aliceId.quotes.get()
                            + ", bob " + bobQuotes + " → " + bobId.quotes.get());
            assertTrue(call.endToEnd() && atBob.endToEnd(), call::display);
            alice.hangUp(call);
            Await.until("bob's call to end", WAIT, atBob::state, s -> s == Call.State.ENDED);
        }
    }

    private static SipPhone phone(TestHosts.CountingIdentity id, TestHosts hosts, String name, double tone)
            throws Exception {
        return SipPhone.start(new SipPhone.Config(name, name, LOOPBACK, TestHosts.freePort(), 0, 0,
                        Duration.ofSeconds(15), SipPhone.MediaMode.DTLS_SRTP),
                AttestedTlsConfig.of(id, hosts.verifier(), Clock.systemUTC()), CallPolicy.parse(
                        "default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                callId -> AudioSession.open(LOOPBACK, Wav.tone(tone, 0.5, 1)), Clock.systemUTC());
    }
}
