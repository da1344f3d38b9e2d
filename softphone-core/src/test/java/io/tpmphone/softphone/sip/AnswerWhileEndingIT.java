package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The person answers an incoming call, and while our 200 is being made (our key from the keystore, held here on a
 * latch) the call ends: our user hangs up, or the caller cancels — and the keystore then answers, or fails. The path
 * that makes the 200 holds the INVITE's one final answer ({@link Call#claimFinalAnswer()}), so it must send the final
 * answer the end calls for, and release what it bound for the call. Before (review rD): the 200 still went out after a
 * hang-up or a CANCEL, the caller's ACK found no call and no BYE followed (the caller connected to nobody), the audio
 * session bound for the ended call was never closed and its key never wiped; after a CANCEL and a keystore failure
 * the INVITE got no final answer at all; and a failed answer's 500 carried the keystore's exception text.
 */
@Timeout(60)
class AnswerWhileEndingIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    /** A key the held keystore hands out: not zeros, so a wiped copy is told apart from it. */
    private static final byte[] KEY = new byte[16];
    private static final byte[] SALT = new byte[14];

    static {
        java.util.Arrays.fill(KEY, (byte) 0x5a);
        java.util.Arrays.fill(SALT, (byte) 0x3c);
    }

    private final CountDownLatch keyAsked = new CountDownLatch(1);
    private final CountDownLatch keyReleased = new CountDownLatch(1);
    private final CompletableFuture<SipPhone.AnswerDecision.Answer> decision = new CompletableFuture<>();
    /** Every audio session the phone opened, to see each closed. */
    private final List<AudioSession> opened = new CopyOnWriteArrayList<>();
    /** The calls the phone told its listener had ended, in order. */
    private final List<String> toldEnded = new CopyOnWriteArrayList<>();
    private SipPhone phone;
    private UdpPeer peer;
    private RawSip tcpCaller;

    @AfterEach
    void stop() throws Exception {
        keyReleased.countDown();
        if (tcpCaller != null) {
            tcpCaller.close();
        }
        if (peer != null) {
            peer.close();
        }
        if (phone != null) {
            phone.close();
        }
        opened.forEach(AudioSession::close);
    }

    /** The keystore: asked, it waits for the test, then hands out {@link #KEY} or fails with {@code failWith}. */
    private SipPhone.Keys held(String failWith) {
        return new SipPhone.Keys() {
            @Override
            public SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                keyAsked.countDown();
                try {
                    if (!keyReleased.await(30, TimeUnit.SECONDS)) {
                        throw new IOException("the test never released the key");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted", e);
                }
                if (failWith != null) {
                    throw new IOException(failWith);
                }
                return SrtpKeyMaterial.of(KEY.clone(), SALT.clone());
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) {
                // every offer is new here
            }
        };
    }

    /** A phone answering over UDP (and TCP when {@code tcpPort} is not 0), with audio, its keystore held. */
    private int startPhone(String failWith, int udpPort, int tcpPort) throws Exception {
        TestHosts hosts = new TestHosts();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), tcpPort,
                        udpPort, Duration.ofSeconds(30), SipPhone.MediaMode.AUTO),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept"), held(failWith),
                new SipPhone.Listener() {
                    @Override
                    public void ended(Call call) {
                        toldEnded.add(call.callId());
                    }
                }, callId -> {
                    AudioSession a = AudioSession.open(LOOPBACK, Wav.tone(1000, 0.1, 1));
                    opened.add(a);
                    return a;
                }, Clock.systemUTC(), SipPhone.Limits.DEFAULTS);
        phone.answerWith(call -> decision);
        return udpPort;
    }

    /** An INVITE over UDP that rings; the person answers (on a thread of its own) and the keystore is asked. */
    private Call ringAndAnswer(int udpPort, String callId, String invite) throws Exception {
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), invite);
        peer.response(callId, 180, "INVITE", WAIT);
        Call call = phone.callById(callId).orElseThrow();
        Thread person = new Thread(() -> decision.complete(SipPhone.AnswerDecision.Answer.ANSWER), "person");
        person.setDaemon(true);
        person.start();
        assertTrue(keyAsked.await(10, TimeUnit.SECONDS), "the answer asks the keystore for our key; call "
                + call.state() + " (" + call.reason() + ")");
        return call;
    }

    @Test
    void aHangUpWhileThe200IsBeingMade_answers480_andReleasesTheAudioAndTheKey() throws Exception {
        int udpPort = startPhone(null, TestHosts.freePort(), 0);
        peer = new UdpPeer();
        String callId = "hangup-while-answering@phone.test";
        Call call = ringAndAnswer(udpPort, callId, StandardPhoneIT.invite(callId, "UDP", peer.via(), offer()));
        phone.hangUp(call);
        assertEquals(Call.State.ENDED, call.state(), "hung up: " + call.reason());
        keyReleased.countDown();
        Await.until("a final answer to the INVITE", WAIT, () -> !peer.finals(callId, "INVITE").isEmpty(),
                () -> "the peer saw " + peer.firstLines());
        assertEquals(480, peer.finals(callId, "INVITE").get(0), "our user hung up before the 200 left: the INVITE"
                + " is answered 480, not connected to nobody; the peer saw " + peer.firstLines());
        assertTrue(call.reason().startsWith("hung up"), "the call keeps its reason; saw " + call.reason());
        Await.until("the audio session bound for the ended call to be closed", WAIT,
                () -> !opened.isEmpty() && opened.stream().allMatch(AudioSession::isClosed),
                () -> opened.size() + " sessions opened, closed: " + opened.stream().map(AudioSession::isClosed)
                        .toList());
        Await.until("our key of the ended call to be wiped", WAIT, () -> wiped(call),
                () -> "our key is " + call.localCrypto().map(c -> "still there").orElse("none"));
        // the hang-up of a call not yet set up is told like any other end (the ring screen redraws, a log line)
        Await.until("the listener to be told the call ended", WAIT, () -> toldEnded.contains(callId),
                () -> "told of " + toldEnded);
    }

    @Test
    void aCancelWhileThe200IsBeingMade_answers487() throws Exception {
        int udpPort = startPhone(null, TestHosts.freePort(), 0);
        peer = new UdpPeer();
        String callId = "cancel-while-answering@phone.test";
        String invite = StandardPhoneIT.invite(callId, "UDP", peer.via(), offer());
        Call call = ringAndAnswer(udpPort, callId, invite);
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), cancelOf(invite));
        peer.response(callId, 200, "CANCEL", WAIT);
        keyReleased.countDown();
        Await.until("a final answer to the INVITE", WAIT, () -> !peer.finals(callId, "INVITE").isEmpty(),
                () -> "the peer saw " + peer.firstLines());
        assertEquals(487, peer.finals(callId, "INVITE").get(0), "the caller cancelled before the 200 left: 487;"
                + " the peer saw " + peer.firstLines());
        assertTrue(call.reason().startsWith("the caller cancelled"), "the call says the caller cancelled; saw "
                + call.reason());
        Await.until("the audio session bound for the cancelled call to be closed", WAIT,
                () -> !opened.isEmpty() && opened.stream().allMatch(AudioSession::isClosed),
                () -> opened.size() + " sessions opened, closed: " + opened.stream().map(AudioSession::isClosed)
                        .toList());
    }

    @Test
    void aCancelWhileThe200IsBeingMade_thenTheKeystoreFails_answers487() throws Exception {
        int udpPort = startPhone("keystore unavailable", TestHosts.freePort(), 0);
        peer = new UdpPeer();
        String callId = "cancel-then-fail@phone.test";
        String invite = StandardPhoneIT.invite(callId, "UDP", peer.via(), offer());
        ringAndAnswer(udpPort, callId, invite);
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), cancelOf(invite));
        peer.response(callId, 200, "CANCEL", WAIT);
        keyReleased.countDown();
        Await.until("a final answer to the cancelled INVITE", WAIT, () -> !peer.finals(callId, "INVITE").isEmpty(),
                () -> "the peer saw " + peer.firstLines());
        assertEquals(List.of(487), peer.finals(callId, "INVITE").subList(0, 1), "the cancelled INVITE's final"
                + " answer is the 487 the path holding it owes; the peer saw " + peer.firstLines());
    }

    @Test
    void aHangUpWhileThe200IsBeingMade_thenTheKeystoreFails_answers480() throws Exception {
        int udpPort = startPhone("keystore unavailable", TestHosts.freePort(), 0);
        peer = new UdpPeer();
        String callId = "hangup-then-fail@phone.test";
        Call call = ringAndAnswer(udpPort, callId, StandardPhoneIT.invite(callId, "UDP", peer.via(), offer()));
        phone.hangUp(call);
        keyReleased.countDown();
        Await.until("a final answer to the INVITE", WAIT, () -> !peer.finals(callId, "INVITE").isEmpty(),
                () -> "the peer saw " + peer.firstLines());
        assertEquals(480, peer.finals(callId, "INVITE").get(0), "the call was hung up (then the keystore failed):"
                + " 480; the peer saw " + peer.firstLines());
    }

    /** Over TCP a final answer carries a Warning: it says what failed, never the exception's text (cf01abb, rD). */
    @Test
    void aFailedAnswersWarning_saysAnsweringFailed_notTheExceptionsText() throws Exception {
        int tcpPort = TestHosts.freePort();
        startPhone("INTERNAL-SECRET /var/lib/tpmphone/keystore.sealed handle 0x81000002", 0, tcpPort);
        keyReleased.countDown();
        phone.answerWith(c -> CompletableFuture.completedFuture(SipPhone.AnswerDecision.Answer.ANSWER));
        tcpCaller = RawSip.tcp(LOOPBACK, tcpPort);
        String callId = "fail500@phone.test";
        tcpCaller.send(StandardPhoneIT.invite(callId, "TCP", tcpCaller.via(), offer()));
        Await.until("a final answer", WAIT, () -> tcpCaller.responses().stream()
                .anyMatch(r -> r.callId().equals(callId) && r.status() >= 200), () -> "saw " + tcpCaller.responses());
        RawSip.Response fin = tcpCaller.responses().stream().filter(r -> r.callId().equals(callId)
                && r.status() >= 200).findFirst().orElseThrow();
        assertEquals(500, fin.status(), "a failed answer is a 500; saw " + fin.text());
        assertTrue(fin.text().contains("Warning: 399 victim \"answering failed\""), "the 500 says what failed;"
                + " saw " + fin.text());
        assertFalse(fin.text().contains("INTERNAL-SECRET") || fin.text().contains("keystore.sealed"),
                "the 500 carries none of our exception's text; saw " + fin.text());
        Call call = phone.callById(callId).orElseThrow();
        assertTrue(call.reason().contains("INTERNAL-SECRET"), "the call's own reason keeps the detail; saw "
                + call.reason());
    }

    /**
     * Our 200 has left, the caller's ACK has not come yet, and our user hangs up: RFC 3261 §15 lets the BYE go only
     * once the ACK came, so the ACK of the call that ended gets it. Before, the ACK found no call and the caller
     * stayed connected to nobody.
     */
    @Test
    void aHangUpAfterOur200BeforeItsAck_isByedOnTheAck() throws Exception {
        int udpPort = startPhone(null, TestHosts.freePort(), 0);
        keyReleased.countDown();
        peer = new UdpPeer();
        String callId = "hangup-before-ack@phone.test";
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.invite(callId, "UDP", peer.via(),
                offer()));
        peer.response(callId, 180, "INVITE", WAIT);
        Call call = phone.callById(callId).orElseThrow();
        decision.complete(SipPhone.AnswerDecision.Answer.ANSWER);
        UdpPeer.Message ok = peer.response(callId, 200, "INVITE", WAIT);
        phone.hangUp(call);
        assertEquals(Call.State.ENDED, call.state(), "hung up: " + call.reason());
        assertFalse(peer.has(callId, "BYE"), "no BYE before the ACK (RFC 3261 §15); the peer saw "
                + peer.firstLines());
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.inDialog("ACK", 1, callId,
                "sip:victim@127.0.0.1:" + udpPort, StandardPhoneIT.toTag(ok.text()), "UDP", peer.via()));
        UdpPeer.Message bye = peer.request(callId, "BYE", WAIT);
        assertTrue(bye.text().contains("tag=" + StandardPhoneIT.toTag(ok.text())), "the BYE is in the dialog of our"
                + " 200; saw " + bye.text());
        assertEquals(List.of(200), peer.finals(callId, "INVITE").stream().distinct().toList(),
                "the INVITE's one final answer stays our 200; the peer saw " + peer.firstLines());
        Await.until("the audio session of the ended call to be closed", WAIT,
                () -> !opened.isEmpty() && opened.stream().allMatch(AudioSession::isClosed),
                () -> opened.size() + " sessions opened, closed: " + opened.stream().map(AudioSession::isClosed)
                        .toList());
    }

    /** Whether our key of {@code call} is gone or wiped (its key and salt zeros). */
    private static boolean wiped(Call call) {
        return call.localCrypto().map(c -> {
            byte[] k = c.masterKey();
            byte[] s = c.masterSalt();
            boolean zero = java.util.stream.IntStream.range(0, k.length).allMatch(i -> k[i] == 0)
                    && java.util.stream.IntStream.range(0, s.length).allMatch(i -> s[i] == 0);
            java.util.Arrays.fill(k, (byte) 0);
            java.util.Arrays.fill(s, (byte) 0);
            return zero;
        }).orElse(true);
    }

    /** The CANCEL of {@code invite} (RFC 3261 §9.1: its Via, From, To, Call-ID and CSeq number). */
    static String cancelOf(String invite) {
        return invite.substring(0, invite.indexOf("\r\n\r\n")).replace("INVITE sip:", "CANCEL sip:")
                .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL").replaceAll("(?m)^Content-Type:.*\\r\\n", "")
                .replaceAll("(?m)^Content-Length:.*$", "Content-Length: 0") + "\r\n\r\n";
    }

    static String offer() {
        byte[] k = new byte[16];
        byte[] s = new byte[14];
        new SecureRandom().nextBytes(k);
        new SecureRandom().nextBytes(s);
        return new Sdp("127.0.0.1", 40000, List.of(0), List.of(SdesCrypto.of(1,
                SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, k, s))).encode("phone", 1);
    }
}
