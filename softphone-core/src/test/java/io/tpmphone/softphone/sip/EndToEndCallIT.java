package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * DTLS-SRTP calls between two phones over real sockets (software identities: their evidence carries no passport, so
 * each far end is {@code FAILED} end to end, or {@code UNATTESTED} when it does not attest): the answer in a reliable
 * 183 and PRACK, the handshake and both evidence exchanges on the calls' RTP sockets, the policy on the far end
 * before the callee rings, SRTP keyed from the handshake (tones both ways), and refusals on either side before
 * ringing with both levels named.
 */
@Timeout(120)
class EndToEndCallIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final Duration WAIT = Duration.ofSeconds(20);

    private final List<AutoCloseable> closing = new ArrayList<>();

    /** What a phone's user saw, in order. */
    static final class Seen implements SipPhone.Listener {
        final List<String> events = new CopyOnWriteArrayList<>();
        final List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();
        volatile Optional<IntegrityLevel> farEndAtRing = Optional.empty();

        @Override
        public void decided(Call call, CallPolicy.Decision d) {
            decisions.add(d);
            events.add("decided " + d.established() + " " + d.action());
        }

        @Override
        public void ringing(Call call) {
            farEndAtRing = call.farEnd().map(p -> p.level());
            events.add("ringing");
        }

        @Override
        public void remoteRinging(Call call) {
            farEndAtRing = call.farEnd().map(p -> p.level());
            events.add("remote ringing");
        }

        @Override
        public void ended(Call call) {
            events.add("ended");
        }
    }

    @AfterEach
    void close() throws Exception {
        SipEvents.dropCancels = false;
        SipEvents.dropInviteErrors = false;
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    private SipPhone phone(TestHosts hosts, String name, String policy, double tone, Seen seen, boolean attest)
            throws Exception {
        AttestedTlsConfig tls = AttestedTlsConfig.of(hosts.identity(name), hosts.verifier(), Clock.systemUTC());
        SipPhone p = SipPhone.start(new SipPhone.Config(name, name, LOOPBACK, TestHosts.freePort(), 0, 0,
                        Duration.ofSeconds(15), SipPhone.MediaMode.DTLS_SRTP),
                attest ? tls : tls.withoutAttestation(), CallPolicy.parse(policy), TestHosts.keys(), seen,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(tone, 0.5, 1)), Clock.systemUTC());
        closing.add(0, p);
        return p;
    }

    private static InetSocketAddress tls(SipPhone p) {
        return new InetSocketAddress(LOOPBACK, p.config().tlsPort());
    }

    @Test
    void aDtlsSrtpCall_decidesTheFarEndBeforeRinging_andCarriesSrtpBothWays() throws Exception {
        TestHosts hosts = new TestHosts();
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept", 1000, aliceSaw, true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept", 440, bobSaw, true);
        Call call = alice.await(alice.call("sips:bob@bob", tls(bob)));
        assertEquals(Call.State.ESTABLISHED, call.state(), call::toString);
        assertTrue(call.endToEnd(), () -> "alice's call is DTLS-SRTP: " + call.display());
        assertEquals(IntegrityLevel.FAILED, call.farEnd().orElseThrow().level(), call::display);
        assertTrue(call.farEnd().orElseThrow().reason().startsWith("PASSPORT"), () -> "bob's evidence has no "
                + "passport (software identity): " + call.farEnd().orElseThrow().reason());
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        assertEquals(Call.State.ESTABLISHED, atBob.state(), atBob::toString);
        assertEquals(IntegrityLevel.FAILED, atBob.farEnd().orElseThrow().level(), atBob::display);
        // decided end to end before either phone rang
        assertEquals(List.of("decided one hop ACCEPT", "decided end-to-end DTLS ACCEPT", "ringing"),
                bobSaw.events.subList(0, 3), () -> "bob's events: " + bobSaw.events);
        assertEquals(Optional.of(IntegrityLevel.FAILED), bobSaw.farEndAtRing, () -> "bob saw alice's level at ring"
                + " time: " + bobSaw.events);
        assertTrue(aliceSaw.events.indexOf("decided end-to-end DTLS ACCEPT") >= 0
                && aliceSaw.events.indexOf("decided end-to-end DTLS ACCEPT") < aliceSaw.events.indexOf(
                "remote ringing"), () -> "alice decided on bob before his 180: " + aliceSaw.events);
        // both records of the call name one evidence digest
        CallPolicy.Decision a = aliceSaw.decisions.stream().filter(CallPolicy.Decision::endToEnd).findFirst()
                .orElseThrow();
        CallPolicy.Decision b = bobSaw.decisions.stream().filter(CallPolicy.Decision::endToEnd).findFirst()
                .orElseThrow();
        assertEquals(64, a.evidenceDigest().length(), a::toString);
        assertEquals(a.evidenceDigest(), b.evidenceDigest(), "both sides name the same evidence digest");
        AudioSession aliceAudio = call.audio().orElseThrow();
        AudioSession bobAudio = atBob.audio().orElseThrow();
        Await.until("each side to decode 8000 samples of the other's audio", WAIT,
                () -> aliceAudio.received().samples().length >= 8000
                        && bobAudio.received().samples().length >= 8000,
                () -> "alice decoded " + aliceAudio.received().samples().length + " (" + aliceAudio.stats()
                        + "), bob " + bobAudio.received().samples().length + " (" + bobAudio.stats() + ")");
        assertEquals(1000.0, Wav.dominantFrequency(bobAudio.received().samples(), 4000), 20.0,
                () -> "bob hears alice's tone: " + bobAudio.stats());
        assertEquals(440.0, Wav.dominantFrequency(aliceAudio.received().samples(), 4000), 20.0,
                () -> "alice hears bob's tone: " + aliceAudio.stats());
        alice.hangUp(call);
        Await.until("bob's call to end", WAIT, atBob::state, s -> s == Call.State.ENDED);
    }

    @Test
    void aCalleeWhosePolicyRefusesTheCallerEndToEnd_answers403BeforeRinging_namingBothLevels() throws Exception {
        TestHosts hosts = new TestHosts();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept", 1000, new Seen(), true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept end-to-end UNATTESTED", 440, bobSaw, true);
        Call call = alice.await(alice.call("sips:bob@bob", tls(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("403") && call.reason().contains("far end level FAILED is below the"
                + " required UNATTESTED"), () -> "a 403 whose Warning names both levels: " + call.reason());
        Call atBob = bob.callById(call.callId()).orElseThrow();
        Await.until("bob's refusal", WAIT, atBob::state, s -> s == Call.State.REFUSED);
        Await.until("bob's listener to hear the end", WAIT, () -> List.copyOf(bobSaw.events),
                e -> e.contains("ended"));
        assertFalse(bobSaw.events.contains("ringing"), () -> "bob's phone never rang: " + bobSaw.events);
        assertEquals(List.of("decided one hop ACCEPT", "decided end-to-end DTLS REJECT", "ended"), bobSaw.events,
                () -> "bob's events: " + bobSaw.events);
        assertEquals(0, call.audio().orElseThrow().stats().packetsSent(), () -> "no SRTP left alice: "
                + call.audio().orElseThrow().stats());
        assertEquals(0, atBob.audio().orElseThrow().stats().packetsSent(), () -> "no SRTP left bob: "
                + atBob.audio().orElseThrow().stats());
    }

    @Test
    void aCallerWhosePolicyRefusesTheCallee_cancelsBeforeItRings() throws Exception {
        TestHosts hosts = new TestHosts();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept end-to-end UNATTESTED", 1000, new Seen(), true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept", 440, bobSaw, true);
        Call call = alice.await(alice.call("sips:bob@bob", tls(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("cancelled: refused by our call policy: far end level FAILED is below"
                + " the required UNATTESTED"), () -> "alice says why she cancelled: " + call.reason());
        Call atBob = bob.callById(call.callId()).orElseThrow();
        Await.until("bob's call to end", WAIT, atBob::state,
                s -> s == Call.State.ENDED || s == Call.State.REFUSED);
        // the listener hears of the end once Call.ended() returned, i.e. after the call's audio closed: wait for it
        Await.until("bob's listener to hear the end", WAIT, () -> List.copyOf(bobSaw.events),
                e -> e.contains("ended"));
        // bob rings only once alice accepted him too: he never rang, and knows why with both levels — from alice's
        // verdict inside DTLS or from her CANCEL's Reason header, whichever came first
        assertEquals(List.of("decided one hop ACCEPT", "decided end-to-end DTLS ACCEPT", "ended"), bobSaw.events,
                () -> "bob decided, never rang, and the call ended: " + bobSaw.events);
        assertTrue(atBob.reason().contains("far end level FAILED is below the required UNATTESTED"),
                () -> "bob is told why: " + atBob.reason());
        assertEquals(0, atBob.audio().orElseThrow().stats().packetsSent(), () -> "no SRTP left bob: "
                + atBob.audio().orElseThrow().stats());
    }

    /**
     * The caller's CANCEL is lost (as behind a proxy that drops or delays it): the callee still never rings and ends
     * the call on the caller's refusal that came inside DTLS. Before, the caller's CANCEL closed its association
     * before its verdict went out, and the callee, seeing the association end without a verdict, rang.
     */
    @Test
    void aCallerWhosePolicyRefusesTheCallee_endsItInsideDtls_whenItsCancelIsLost() throws Exception {
        TestHosts hosts = new TestHosts();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept end-to-end UNATTESTED", 1000, new Seen(), true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept", 440, bobSaw, true);
        SipEvents.dropCancels = true;
        Call call = alice.await(alice.call("sips:bob@bob", tls(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("cancelled: refused by our call policy: far end level FAILED is below"
                + " the required UNATTESTED"), () -> "alice says why she cancelled: " + call.reason());
        Call atBob = bob.callById(call.callId()).orElseThrow();
        Await.until("bob's call to end", WAIT, atBob::state,
                s -> s == Call.State.ENDED || s == Call.State.REFUSED);
        assertTrue(atBob.reason().contains("refused end to end by the far end's verdict: far end level FAILED is"
                + " below the required UNATTESTED"), () -> "bob was told inside DTLS: " + atBob.reason());
        assertEquals(List.of("decided one hop ACCEPT", "decided end-to-end DTLS ACCEPT", "ended"), bobSaw.events,
                () -> "bob decided, never rang, and the call ended: " + bobSaw.events);
        assertEquals(0, atBob.audio().orElseThrow().stats().packetsSent(), () -> "no SRTP left bob: "
                + atBob.audio().orElseThrow().stats());
    }

    /**
     * The callee's 403 is lost: the caller still learns of the refusal, with both levels, from the callee's verdict
     * inside DTLS. Before, the callee's 403 closed its association before its verdict went out.
     */
    @Test
    void aCalleeWhosePolicyRefusesTheCaller_endsItInsideDtls_whenIts403IsLost() throws Exception {
        TestHosts hosts = new TestHosts();
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept", 1000, aliceSaw, true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept end-to-end UNATTESTED", 440, bobSaw, true);
        SipEvents.dropInviteErrors = true;
        Call call = alice.await(alice.call("sips:bob@bob", tls(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().contains("refused end to end by the far end's verdict: far end level FAILED is"
                + " below the required UNATTESTED"), () -> "alice was told inside DTLS: " + call.reason());
        Call atBob = bob.callById(call.callId()).orElseThrow();
        Await.until("bob's refusal", WAIT, atBob::state, s -> s == Call.State.REFUSED);
        assertFalse(bobSaw.events.contains("ringing"), () -> "bob's phone never rang: " + bobSaw.events);
        assertFalse(aliceSaw.events.contains("remote ringing"), () -> "alice never heard ringing: "
                + aliceSaw.events);
        assertEquals(0, call.audio().orElseThrow().stats().packetsSent(), () -> "no SRTP left alice: "
                + call.audio().orElseThrow().stats());
    }

    @Test
    void aFarEndThatDoesNotAttest_isUnattestedEndToEnd_andThePolicyDecides() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept", 1000, new Seen(), true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept", 440, new Seen(), false);
        Call call = alice.await(alice.call("sips:bob@bob", tls(bob)));
        assertEquals(Call.State.ESTABLISHED, call.state(), call::toString);
        assertEquals(IntegrityLevel.UNATTESTED, call.farEnd().orElseThrow().level(), call::display);
        assertTrue(call.farEndDecision().orElseThrow().evidenceDigest().isEmpty(), "no evidence, no digest");
        alice.hangUp(call);
    }

    /**
     * A DTLS-SRTP call rings like any other once its far end passed the policy: the person (the phone's
     * {@link SipPhone.AnswerDecision}) answers or declines after the 180, not the phone by itself. Declined: 603 in
     * the early dialog, no SRTP; answered: the call is set up.
     */
    @Test
    void aDtlsSrtpCall_waitsForThePersonsAnswer_afterTheEndToEndDecision() throws Exception {
        TestHosts hosts = new TestHosts();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts, "alice", "default FAILED accept", 1000, new Seen(), true);
        SipPhone bob = phone(hosts, "bob", "default FAILED accept", 440, bobSaw, true);
        java.util.concurrent.LinkedBlockingQueue<java.util.concurrent.CompletableFuture<SipPhone.AnswerDecision
                .Answer>> asked = new java.util.concurrent.LinkedBlockingQueue<>();
        bob.answerWith(c -> {
            java.util.concurrent.CompletableFuture<SipPhone.AnswerDecision.Answer> f =
                    new java.util.concurrent.CompletableFuture<>();
            asked.add(f);
            return f;
        });
        Call declined = alice.call("sips:bob@bob", tls(bob));
        java.util.concurrent.CompletableFuture<SipPhone.AnswerDecision.Answer> first = asked.poll(20,
                java.util.concurrent.TimeUnit.SECONDS);
        assertTrue(first != null, () -> "bob's person was asked once his phone rang: " + bobSaw.events);
        Call atBob = bob.callById(declined.callId()).orElseThrow();
        assertEquals(Call.State.RINGING, atBob.state(), () -> "bob's phone rings, waiting for him: " + atBob);
        first.complete(SipPhone.AnswerDecision.Answer.DECLINE);
        alice.await(declined);
        assertEquals(Call.State.REFUSED, declined.state(), declined::toString);
        assertTrue(declined.reason().startsWith("603"), () -> "alice is told bob declined: " + declined.reason());
        assertEquals(0, declined.audio().orElseThrow().stats().packetsSent(), () -> "no SRTP left alice: "
                + declined.audio().orElseThrow().stats());

        Call answered = alice.call("sips:bob@bob", tls(bob));
        java.util.concurrent.CompletableFuture<SipPhone.AnswerDecision.Answer> second = asked.poll(20,
                java.util.concurrent.TimeUnit.SECONDS);
        assertTrue(second != null, () -> "bob's person was asked again: " + bobSaw.events);
        second.complete(SipPhone.AnswerDecision.Answer.ANSWER);
        alice.await(answered);
        assertEquals(Call.State.ESTABLISHED, answered.state(), answered::toString);
        alice.hangUp(answered);
    }
}
