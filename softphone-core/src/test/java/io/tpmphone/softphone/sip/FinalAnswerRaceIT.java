package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * An incoming INVITE gets one final answer, whichever sender comes first. Forced here: the person answers, and while
 * the answer is being made (our key from the keystore, held on a latch) the setup deadline comes. Before, the deadline
 * checked only "answered yet?" and sent its 480 meanwhile; the 200 that followed was dropped by JAIN-SIP (or, in the
 * other order, a 480 went out after the 200). Now the deadline finds the final answer taken and leaves the call to the
 * 200 and its ACK deadline.
 */
@Timeout(60)
class FinalAnswerRaceIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private final CountDownLatch keyAsked = new CountDownLatch(1);
    private final CountDownLatch keyReleased = new CountDownLatch(1);
    private final CountDownLatch deadlineRan = new CountDownLatch(1);
    private final CompletableFuture<SipPhone.AnswerDecision.Answer> decision = new CompletableFuture<>();
    private SipPhone phone;
    private int udpPort;
    private UdpPeer peer;

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        udpPort = TestHosts.freePort();
        SipPhone.Keys real = TestHosts.keys();
        SipPhone.Keys held = new SipPhone.Keys() {
            @Override
            public io.tpmphone.softphone.SrtpKeyMaterial srtpKey(String suite, String callId) throws java.io.IOException {
                keyAsked.countDown();
                try {
                    if (!keyReleased.await(30, TimeUnit.SECONDS)) {
                        throw new java.io.IOException("the test never released the key");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.IOException("interrupted", e);
                }
                return real.srtpKey(suite, callId);
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) throws java.io.IOException {
                real.checkOffered(key, salt, callId);
            }
        };
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        udpPort, Duration.ofSeconds(2)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept"), held,
                new SipPhone.Listener() { }, Clock.systemUTC());
        phone.answerWith(call -> decision);
        peer = new UdpPeer();
    }

    @AfterEach
    void stop() {
        CallTimers.deadlineRan = null;
        keyReleased.countDown();
        peer.close();
        phone.close();
    }

    @Test
    void theSetupDeadlineWhileThe200IsBeingMade_sendsNo480() throws Exception {
        String callId = "race@phone.test";
        CallTimers.deadlineRan = c -> {
            if (c.callId().equals(callId)) {
                deadlineRan.countDown();
            }
        };
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.invite(callId, "UDP", peer.via(),
                offer()));
        peer.response(callId, 180, "INVITE", WAIT);
        Call call = phone.callById(callId).orElseThrow();
        // the person answers on a thread of its own (the answer is made on the thread that completes the decision)
        Thread person = new Thread(() -> decision.complete(SipPhone.AnswerDecision.Answer.ANSWER), "person");
        person.setDaemon(true);
        person.start();
        assertTrue(keyAsked.await(10, TimeUnit.SECONDS), "the answer asks the keystore for our key; call "
                + call.state() + " (" + call.reason() + ")");
        assertTrue(deadlineRan.await(10, TimeUnit.SECONDS), "the setup deadline came while the 200 was being made;"
                + " call " + call.state());
        List<Integer> before = peer.finals(callId, "INVITE");
        keyReleased.countDown();
        Await.until("a final answer to the INVITE", WAIT, () -> !peer.finals(callId, "INVITE").isEmpty(),
                () -> "the peer saw " + peer.firstLines());
        assertEquals(List.of(), before, "no final answer while the 200 was being made; the peer saw "
                + peer.firstLines());
        assertEquals(200, peer.finals(callId, "INVITE").get(0), "the person's answer is the one final answer;"
                + " the peer saw " + peer.firstLines());
        assertNotEquals(Call.State.ENDED, call.state(), "the deadline left the answered call to its ACK deadline;"
                + " saw " + call.state() + " (" + call.reason() + ")");
        // the 200 is retransmitted until ACKed (the peer does not ACK): no 480 ever follows it
        Await.until("the 200 to be retransmitted", WAIT, () -> peer.finals(callId, "INVITE").size() >= 2,
                () -> "the peer saw " + peer.firstLines());
        assertTrue(peer.finals(callId, "INVITE").stream().allMatch(s -> s == 200), "only 200s; the peer saw "
                + peer.finals(callId, "INVITE"));
    }

    private static String offer() {
        byte[] k = new byte[16];
        byte[] s = new byte[14];
        new SecureRandom().nextBytes(k);
        new SecureRandom().nextBytes(s);
        return new Sdp("127.0.0.1", 40000, List.of(0), List.of(SdesCrypto.of(1,
                SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, k, s))).encode("phone", 1);
    }
}
