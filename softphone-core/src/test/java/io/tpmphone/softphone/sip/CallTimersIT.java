package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Calls nobody ends (issue 13, item 5): a call we answered whose ACK never comes, and an established call whose media
 * stopped, stayed up for minutes with their RTP sockets open. Now the first is hung up with a BYE once the ACK timeout
 * (64·T1, RFC 3261 §13.3.1.4) passed since our 200, and the second once nothing arrived on its media sockets for the
 * media silence limit — both with real RTP sockets, a real standard phone's end over UDP, and short limits.
 */
class CallTimersIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private final List<AutoCloseable> closing = new CopyOnWriteArrayList<>();
    private final List<AudioSession> sessions = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    private SipPhone phone(int udpPort, Duration ack, Duration silence) throws Exception {
        TestHosts hosts = new TestHosts();
        // a setup timeout far beyond the test: only the timers under test can end its calls
        SipPhone phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        udpPort, Duration.ofSeconds(120)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept"), TestHosts.keys(),
                new SipPhone.Listener() { }, callId -> {
                    AudioSession s = AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1));
                    sessions.add(s);
                    return s;
                }, Clock.systemUTC(), SipPhone.Limits.DEFAULTS.withCallTimers(ack, silence));
        closing.add(0, phone);
        return phone;
    }

    @Test
    @Timeout(60)
    void aCallWhoseAckNeverComes_isHungUpWithBye_andItsMediaReleased() throws Exception {
        int udpPort = TestHosts.freePort();
        Duration ack = Duration.ofSeconds(1);
        SipPhone phone = phone(udpPort, ack, Duration.ofSeconds(30));
        UdpPeer peer = new UdpPeer();
        closing.add(peer);
        String callId = "no-ack@phone.test";
        // measured from before the INVITE: the phone's 200 cannot be earlier, while the moment the test reads the 200
        // can be late under load (it was, by more than 100 ms: "the BYE came 890 ms after the 200")
        long answered = System.nanoTime();
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), StandardPhoneIT.invite(callId, "UDP", peer.via()));
        peer.response(callId, 200, "INVITE", WAIT);
        Call call = phone.callById(callId).orElseThrow();
        AudioSession media = call.audio().orElseThrow();
        int rtpPort = media.localPort();

        // no ACK: the phone hangs up once the ACK timeout passed since its 200
        UdpPeer.Message bye = peer.request(callId, "BYE", WAIT);
        long afterMs = (System.nanoTime() - answered) / 1_000_000;
        assertTrue(afterMs >= ack.toMillis() - 100, "the BYE came " + afterMs + " ms after our INVITE, before the ACK"
                + " timeout of " + ack.toMillis() + " ms");
        assertTrue(bye.text().contains("BYE sip:phone@" + peer.via()), "the BYE goes to the caller's Contact: "
                + bye.text());
        Await.until("the call to end", WAIT, () -> call.state(), s -> s == Call.State.ENDED);
        assertTrue(call.reason().contains("no ACK for our 200 within 1 s"), "why the call ended: " + call.reason());
        assertTrue(media.isClosed(), "the call's media session is closed");
        assertRtpPortsFree(rtpPort);
    }

    /**
     * The first media session of a JVM takes seconds before its first packet (libjitsi and FMJ start up), longer than
     * the short silence limit of the test: two sessions exchange media until each received half a second of it. They
     * are closed after the test: FMJ can hang closing a stream that is still starting.
     */
    private void warmUpMedia() throws Exception {
        AudioSession a = AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1));
        closing.add(a);
        AudioSession b = AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1));
        closing.add(b);
        a.start(zeroKey(), zeroKey(), new InetSocketAddress(LOOPBACK, b.localPort()), 0);
        b.start(zeroKey(), zeroKey(), new InetSocketAddress(LOOPBACK, a.localPort()), 0);
        Await.until("media both ways between two warm-up sessions", Duration.ofSeconds(30),
                () -> Math.min(a.datagramsReceived(), b.datagramsReceived()), n -> n >= 25);
    }

    private static SdesCrypto zeroKey() {
        return SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, new byte[16], new byte[14]);
    }

    @Test
    @Timeout(90)
    void anEstablishedCallWhoseMediaStops_isHungUpWithBye_andItsSocketsClosed() throws Exception {
        warmUpMedia();
        int udpPort = TestHosts.freePort();
        Duration silence = Duration.ofMillis(1500);
        SipPhone phone = phone(udpPort, Duration.ofSeconds(32), silence);
        UdpPeer peer = new UdpPeer();
        closing.add(peer);
        // the standard phone's own media: real SRTP with its key, to the port our answer names
        AudioSession theirMedia = AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1));
        closing.add(theirMedia);
        byte[] key = new byte[16];
        byte[] salt = new byte[14];
        new SecureRandom().nextBytes(key);
        new SecureRandom().nextBytes(salt);
        SdesCrypto theirKey = SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, key, salt);
        String offer = new Sdp("127.0.0.1", theirMedia.localPort(), List.of(0), List.of(theirKey))
                .encode("phone", 1);
        String callId = "media-stops@phone.test";
        InetSocketAddress toPhone = new InetSocketAddress(LOOPBACK, udpPort);
        peer.send(toPhone, StandardPhoneIT.invite(callId, "UDP", peer.via(), offer));
        UdpPeer.Message ok = peer.response(callId, 200, "INVITE", WAIT);
        Sdp answer = Sdp.parse(ok.text().substring(ok.text().indexOf("\r\n\r\n") + 4));
        // its media starts with our answer, as a phone's does; the call is established by its ACK
        theirMedia.start(theirKey, answer.cryptos().get(0), new InetSocketAddress(LOOPBACK, answer.port()), 0);
        peer.send(toPhone, StandardPhoneIT.inDialog("ACK", 1, callId, "sip:victim@127.0.0.1:" + udpPort,
                StandardPhoneIT.toTag(ok.text()), "UDP", peer.via()));
        Call call = Await.until("the call to be established", WAIT, () -> phone.callById(callId).orElseThrow(),
                c -> c.state() == Call.State.ESTABLISHED);
        AudioSession ours = call.audio().orElseThrow();
        int rtpPort = ours.localPort();

        // while media flows, for twice the silence limit, the call stays up
        long minimum = 2 * silence.toMillis() / 20; // packets of 20 ms
        Await.until("media for twice the silence limit (" + minimum + " datagrams) with the call up", WAIT,
                () -> call.state() != Call.State.ESTABLISHED || ours.datagramsReceived() >= minimum, done -> done);
        assertEquals(Call.State.ESTABLISHED, call.state(), "the call with media flowing stays up; it ended: "
                + call.reason() + " after " + ours.datagramsReceived() + " datagrams");

        // the standard phone's media stops: the phone hangs up once nothing arrived for the silence limit
        theirMedia.close();
        long stopped = System.nanoTime();
        peer.request(callId, "BYE", WAIT);
        long afterMs = (System.nanoTime() - stopped) / 1_000_000;
        assertTrue(afterMs >= silence.toMillis() - 300, "the BYE came " + afterMs + " ms after the media stopped,"
                + " before the silence limit of " + silence.toMillis() + " ms");
        Await.until("the call to end", WAIT, () -> call.state(), s -> s == Call.State.ENDED);
        assertTrue(call.reason().contains("no media from the peer for 1.5 s"), "why the call ended: "
                + call.reason());
        assertTrue(ours.isClosed(), "the call's media session is closed");
        assertRtpPortsFree(rtpPort);
    }

    /** The RTP port and the RTCP one after it can be bound again: the call's sockets are closed. */
    private static void assertRtpPortsFree(int rtpPort) {
        for (int port : new int[] {rtpPort, rtpPort + 1}) {
            try (DatagramSocket again = new DatagramSocket(new InetSocketAddress(LOOPBACK, port))) {
                assertEquals(port, again.getLocalPort());
            } catch (SocketException e) {
                throw new AssertionError("port " + port + " of the ended call is still bound: " + e, e);
            }
        }
    }
}
