package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.control.RingScreen;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The ring screen against a real phone: a call from a peer without attestation rings and shows "no attestation",
 * the policy's action and the person's phrase; {@code a} answers (200), {@code d} declines (603); the caller's own
 * text never takes the level's place; with auto-answer (an explicit choice) nothing waits.
 */
@Timeout(60)
class RingScreenIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private SipPhone phone;
    private UdpPeer peer;
    private int udpPort;

    private RingScreen start(String policy, boolean autoAnswer) throws Exception {
        TestHosts hosts = new TestHosts();
        udpPort = TestHosts.freePort();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        udpPort, Duration.ofSeconds(15)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse(policy), TestHosts.keys(), new SipPhone.Listener() { }, Clock.systemUTC());
        RingScreen screen = new RingScreen(phone, Optional.of("purple elephant"), autoAnswer, Clock.systemUTC());
        phone.answerWith(screen);
        peer = new UdpPeer();
        return screen;
    }

    @AfterEach
    void stop() {
        if (peer != null) {
            peer.close();
        }
        if (phone != null) {
            phone.close();
        }
    }

    private static String offer() {
        byte[] k = new byte[16];
        byte[] s = new byte[14];
        new SecureRandom().nextBytes(k);
        new SecureRandom().nextBytes(s);
        return new Sdp("127.0.0.1", 40000, List.of(0), List.of(SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80,
                k, s))).encode("phone", 1);
    }

    private void invite(String callId, String fromUser) throws Exception {
        String invite = StandardPhoneIT.invite(callId, "UDP", peer.via(), offer())
                .replace("From: <sip:phone@phone.test>", "From: <sip:" + fromUser + "@phone.test>");
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), invite);
        peer.response(callId, 180, "INVITE", WAIT);
    }

    @Test
    void aCallWithoutAttestation_showsNoAttestationAndThePolicy_andAAnswers() throws Exception {
        RingScreen screen = start("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept", false);
        invite("ring-a@phone.test", "MEASURED");
        String shown = Await.until("the screen to show the incoming call", WAIT, () -> screen.render(100, 30, false),
                s -> s.contains("INCOMING CALL"));
        assertTrue(shown.contains("[ UNATTESTED ]") && shown.contains("no attestation"),
                "the level and \"no attestation\" are shown: " + shown);
        assertTrue(shown.contains("Policy:      ACCEPT (this call needs UNATTESTED or above)"),
                "the policy's action is shown: " + shown);
        assertTrue(shown.contains("«purple elephant»"), "the phrase is shown: " + shown);
        assertTrue(shown.contains("From:        sip:MEASURED@phone.test"), "the caller's URI is shown: " + shown);
        assertFalse(shown.contains("[ MEASURED ]"), "a caller named MEASURED does not get a MEASURED level: "
                + shown);
        assertTrue(shown.contains("Media:       SRTP, SDES AES_CM_128_HMAC_SHA1_80, PCMU"),
                "the media protection is shown: " + shown);
        java.nio.file.Files.createDirectories(java.nio.file.Path.of("target", "ring-screen"));
        java.nio.file.Files.writeString(java.nio.file.Path.of("target", "ring-screen", "no-attestation.txt"),
                shown.replace("\r\n", "\n"));
        String coloured = screen.render(100, 30, true);
        assertTrue(coloured.contains("\u001b[1;30;43m[ UNATTESTED ]\u001b[0m"), "the level in colour on a terminal: "
                + coloured);
        assertTrue(screen.key('a'), "a keeps the screen open");
        UdpPeer.Message ok = peer.response("ring-a@phone.test", 200, "INVITE", WAIT);
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.inDialog("ACK", 1, "ring-a@phone.test",
                "sip:victim@127.0.0.1:" + udpPort, StandardPhoneIT.toTag(ok.text()), "UDP", peer.via()));
        Call call = Await.until("the call to be established", WAIT,
                () -> phone.callById("ring-a@phone.test").orElseThrow(), c -> c.state() == Call.State.ESTABLISHED);
        String inCall = Await.until("the screen to show the call", WAIT, () -> screen.render(100, 30, false),
                s -> s.contains("IN CALL"));
        assertTrue(inCall.contains("[ UNATTESTED ]"), "the far end's level during the call: " + inCall);
        screen.key('x');
        Await.until("x to hang up", WAIT, call::state, st -> st == Call.State.ENDED);
    }

    @Test
    void aCallThePolicyRejects_neverRings() throws Exception {
        RingScreen screen = start("default MEASURED reject", false);
        String callId = "rejected@phone.test";
        // the caller's own text says MEASURED: it must never read as the level
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.invite(callId, "UDP", peer.via(),
                offer()).replace("From: <sip:phone@phone.test>", "From: <sip:MEASURED@phone.test>"));
        peer.response(callId, 403, "INVITE", WAIT);
        String shown = screen.render(100, 30, false);
        assertFalse(shown.contains("INCOMING CALL"), "a refused call never rings: " + shown);
        assertTrue(shown.contains("   [ UNATTESTED ] REFUSED IN \"sip:MEASURED@phone.test\"  why \""),
                "it is listed as refused, our level slot first, the caller's words quoted after it: " + shown);
        // a narrow window (40 columns): nothing cut that the person decides by
        String narrow = screen.render(40, 30, false);
        for (String line : narrow.split("\r\n")) {
            assertTrue(line.codePointCount(0, line.length()) <= 40, "every line fits 40 columns: '" + line + "'");
        }
        assertTrue(narrow.contains("«purple elephant»"), "the phrase whole, wrapped if need be: " + narrow);
        assertTrue(narrow.contains("   [ UNATTESTED ] REFUSED IN"), "the level slot is never cut: " + narrow);
    }

    @Test
    void d_declines_andTheCallerGets603() throws Exception {
        RingScreen screen = start("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept", false);
        invite("ring-d@phone.test", "phone");
        Await.until("the call to ring on the screen", WAIT, () -> screen.render(100, 30, false),
                s -> s.contains("INCOMING CALL"));
        screen.key('d');
        peer.response("ring-d@phone.test", 603, "INVITE", WAIT);
        String after = Await.until("the screen to list the declined call", WAIT, () -> screen.render(100, 30, false),
                s -> s.contains("No call.") && s.contains("603 declined at the phone"));
        assertFalse(after.contains("INCOMING CALL"), "nothing rings any more: " + after);
    }

    @Test
    void autoAnswer_isAnExplicitChoice_andDoesNotWait() throws Exception {
        start("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept", true);
        invite("ring-auto@phone.test", "phone");
        peer.response("ring-auto@phone.test", 200, "INVITE", WAIT);
    }

    @Test
    void theDialPrompt_placesACall_andRefusesNonsense() throws Exception {
        RingScreen screen = start("default MEASURED reject\nout sip:*@127.0.0.1 UNATTESTED accept", false);
        screen.key('c');
        for (char c : "nonsense\r".toCharArray()) {
            screen.key(c);
        }
        assertTrue(screen.render(120, 30, false).contains("type: sips:USER@HOST HOST:PORT"),
                "a malformed target is explained: " + screen.render(120, 30, false));
        screen.key('c');
        String target = "sip:peer@127.0.0.1 " + peer.via() + "\r";
        for (char c : target.toCharArray()) {
            screen.key(c);
        }
        assertTrue(screen.render(120, 30, false).contains("calling sip:peer@127.0.0.1"),
                "the call is placed: " + screen.render(120, 30, false));
        Await.until("the phone to list the call", WAIT, () -> phone.calls().stream()
                .anyMatch(c -> c.peerUri().equals("sip:peer@127.0.0.1")), () -> phone.calls().toString());
    }
}
