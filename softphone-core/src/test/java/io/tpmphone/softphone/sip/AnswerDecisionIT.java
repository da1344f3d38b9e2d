package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A person decides at ring time: the phone rings (180) and waits for the {@link SipPhone.AnswerDecision} — answered
 * gets 200 with our SDP, declined gets 603, a call nobody decides on gets 480 at the setup deadline, and a caller who
 * cancels while it rings gets 487. Exactly one final answer each.
 */
@Timeout(60)
class AnswerDecisionIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private final ConcurrentHashMap<String, CompletableFuture<SipPhone.AnswerDecision.Answer>> ringing =
            new ConcurrentHashMap<>();
    private final LinkedBlockingQueue<String> rang = new LinkedBlockingQueue<>();
    private SipPhone phone;
    private int udpPort;
    private UdpPeer peer;

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        udpPort = TestHosts.freePort();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        udpPort, Duration.ofSeconds(3)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept"), TestHosts.keys(),
                new SipPhone.Listener() { }, Clock.systemUTC());
        phone.answerWith(call -> {
            CompletableFuture<SipPhone.AnswerDecision.Answer> f = new CompletableFuture<>();
            ringing.put(call.callId(), f);
            rang.add(call.callId());
            return f;
        });
        peer = new UdpPeer();
    }

    @AfterEach
    void stop() {
        peer.close();
        phone.close();
    }

    private static String offer() {
        byte[] k = new byte[16];
        byte[] s = new byte[14];
        new SecureRandom().nextBytes(k);
        new SecureRandom().nextBytes(s);
        return new Sdp("127.0.0.1", 40000, List.of(0), List.of(SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80,
                k, s))).encode("phone", 1);
    }

    private String ring(String callId) throws Exception {
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.invite(callId, "UDP", peer.via(),
                offer()));
        peer.response(callId, 180, "INVITE", WAIT);
        String seen = rang.poll(10, TimeUnit.SECONDS);
        assertEquals(callId, seen, "the decision is asked once the call rings");
        return callId;
    }

    @Test
    void answered_gets200_andTheCallIsUp() throws Exception {
        String callId = ring("answered@phone.test");
        assertEquals(Call.State.RINGING, phone.callById(callId).orElseThrow().state(),
                "the call rings while nobody decided");
        ringing.get(callId).complete(SipPhone.AnswerDecision.Answer.ANSWER);
        UdpPeer.Message ok = peer.response(callId, 200, "INVITE", WAIT);
        assertTrue(ok.text().contains("m=audio "), "the 200 carries our SDP answer: " + ok.text());
    }

    @Test
    void declined_gets603_andTheCallIsRefused() throws Exception {
        String callId = ring("declined@phone.test");
        ringing.get(callId).complete(SipPhone.AnswerDecision.Answer.DECLINE);
        peer.response(callId, 603, "INVITE", WAIT);
        Call call = Await.until("the call to be refused", WAIT, () -> phone.callById(callId).orElseThrow(),
                c -> c.state() == Call.State.REFUSED);
        assertTrue(call.reason().startsWith("603"), "the call says it was declined: " + call.reason());
    }

    @Test
    void nobodyDecides_gets480AtTheSetupDeadline_andALateAnswerChangesNothing() throws Exception {
        String callId = ring("unanswered@phone.test");
        peer.response(callId, 480, "INVITE", WAIT);
        Call call = Await.until("the call to end", WAIT, () -> phone.callById(callId).orElseThrow(),
                c -> c.state() == Call.State.ENDED);
        ringing.get(callId).complete(SipPhone.AnswerDecision.Answer.ANSWER);
        assertEquals(Call.State.ENDED, call.state(), "an answer after the deadline does not revive the call: "
                + call.reason());
    }

    @Test
    void aCancelWhileRinging_gets487() throws Exception {
        String callId = ring("cancelled@phone.test");
        String invite = StandardPhoneIT.invite(callId, "UDP", peer.via(), "");
        String cancel = invite.substring(0, invite.indexOf("\r\n\r\n")).replace("INVITE sip:", "CANCEL sip:")
                .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL").replaceAll("(?m)^Content-Type:.*\\r\\n", "")
                .replaceAll("(?m)^Content-Length:.*$", "Content-Length: 0") + "\r\n\r\n";
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), cancel);
        peer.response(callId, 487, "INVITE", WAIT);
    }

    /**
     * A CANCEL for a call that ended already (here at its setup deadline, with a 480): 200 to the CANCEL, no second
     * final answer to the INVITE, and the caller's Reason kept with the call (escaped) as what the far end said.
     */
    @Test
    void aCancelAfterTheDeadlines480_gets200_andItsReasonIsKept() throws Exception {
        String callId = ring("late-cancel@phone.test");
        peer.response(callId, 480, "INVITE", WAIT);
        Call call = Await.until("the call to end", WAIT, () -> phone.callById(callId).orElseThrow(),
                c -> c.state() == Call.State.ENDED);
        String invite = StandardPhoneIT.invite(callId, "UDP", peer.via(), "");
        String cancel = invite.substring(0, invite.indexOf("\r\n\r\n")).replace("INVITE sip:", "CANCEL sip:")
                .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL").replaceAll("(?m)^Content-Type:.*\\r\\n", "")
                .replaceAll("(?m)^Content-Length:.*$", "Reason: SIP;cause=403;text=\"caller \u001b[31m refused\"\r\n"
                        + "Content-Length: 0") + "\r\n\r\n";
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), cancel);
        peer.response(callId, 200, "CANCEL", WAIT);
        Await.until("the caller's Reason to be kept", WAIT, () -> call.farEndSaid().isPresent(),
                () -> "the call: " + call + ", far end said " + call.farEndSaid());
        String said = call.farEndSaid().orElseThrow();
        assertTrue(said.startsWith("CANCEL (Reason: SIP 403 caller") && said.contains("refused")
                && !said.contains("\u001b"), "the CANCEL's Reason is kept, escaped; saw " + said);
        // (the 480 is retransmitted until ACKed: the peer does not ACK)
        assertEquals(List.of(480), peer.finals(callId, "INVITE").stream().distinct().toList(), "the INVITE keeps its"
                + " one final answer; the peer saw " + peer.firstLines());
        assertTrue(call.reason().startsWith("not set up"), "the call's reason stays the deadline's; saw "
                + call.reason());
    }
}
