package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A flood of DTLS-SRTP INVITEs whose media addresses never answer: only the calls that hold a setup place start DTLS
 * work (one thread each, a bounded pool), the others get {@code 503} before any socket or thread; when the setup
 * timeout ends the silent calls, their threads are free again, and a malformed {@code a=fingerprint} or
 * {@code a=setup} gets {@code 488} with a reason while the phone keeps serving.
 */
@Timeout(120)
class DtlsInviteFloodIT {
    private static final Duration WAIT = Duration.ofSeconds(20);

    @Test
    void aFloodOfDtlsInvites_startsDtlsWorkOnlyForTheCallsItHasRoomFor_andBadDtlsAttributesGet488()
            throws Exception {
        TestHosts hosts = new TestHosts();
        int tcpPort = TestHosts.freePort();
        AtomicInteger sessions = new AtomicInteger();
        try (DatagramSocket silent = new DatagramSocket(new InetSocketAddress(TestHosts.LOOPBACK, 0));
             SipPhone phone = SipPhone.start(new SipPhone.Config("victim", "victim", TestHosts.LOOPBACK,
                             TestHosts.freePort(), tcpPort, 0, Duration.ofSeconds(3), SipPhone.MediaMode.AUTO),
                     AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                     CallPolicy.acceptAll(), TestHosts.keys(), new SipPhone.Listener() { },
                     callId -> {
                         sessions.incrementAndGet();
                         return AudioSession.open(TestHosts.LOOPBACK, Wav.tone(1000, 0.1, 1));
                     }, Clock.systemUTC(), SipPhone.Limits.DEFAULTS.withCalls(8, 4, 20));
             RawSip flood = RawSip.tcp(TestHosts.LOOPBACK, tcpPort)) {
            String fingerprint = DtlsFingerprint.sha256(hosts.identity("caller").certificateChain().get(0)
                    .getEncoded()).toSdp();
            int n = 40;
            for (int i = 0; i < n; i++) {
                flood.send(invite("flood-" + i, silent.getLocalPort(), "a=fingerprint:" + fingerprint, "actpass",
                        flood));
            }
            Await.until("answers to all " + n + " INVITEs", WAIT, () -> flood.responses().stream()
                    .filter(r -> r.status() >= 183).map(RawSip.Response::callId).distinct().count() >= n,
                    () -> "answers: " + flood.responses().size());
            long busy = flood.responses().stream().filter(r -> r.status() == 503).count();
            long early = flood.responses().stream().filter(r -> r.status() == 183).count();
            assertTrue(early >= 1 && early <= 2, () -> "one source's share (2 of 4) of calls set up at most, and"
                    + " some: " + early + " 183s");
            assertTrue(busy >= n - 2, () -> "the others were turned away: " + busy + " 503s");
            assertTrue(phone.dtlsBusy() <= 2, () -> "DTLS threads busy: " + phone.dtlsBusy());
            assertTrue(sessions.get() <= 2, () -> "media sessions opened: " + sessions.get());
            // the silent calls end by the setup timeout, their DTLS threads with them
            Await.until("the DTLS threads to be free", WAIT, phone::dtlsBusy, b -> b == 0);

            // malformed DTLS attributes: 488 naming what is wrong, and the phone keeps answering
            flood.send(invite("bad-fp", silent.getLocalPort(), "a=fingerprint:sha-256 ZZ:00", "actpass", flood));
            flood.send(invite("bad-setup", silent.getLocalPort(), "a=fingerprint:" + fingerprint, "sideways", flood));
            flood.send(invite("holdconn", silent.getLocalPort(), "a=fingerprint:" + fingerprint, "holdconn", flood));
            flood.send(invite("no-fp", silent.getLocalPort(), "a=fingerprint:md5 00:11", "actpass", flood));
            for (String id : new String[] {"bad-fp", "bad-setup", "holdconn", "no-fp"}) {
                RawSip.Response r = Await.until("the answer to " + id, WAIT, () -> flood.responses().stream()
                        .filter(x -> x.callId().equals(id) && x.status() >= 300).findFirst().orElse(null),
                        x -> x != null);
                assertEquals(488, r.status(), () -> id + ": " + r);
                assertTrue(r.text().contains("Warning"), () -> id + " says why: " + r.text());
            }
            assertEquals(0, phone.dtlsBusy(), "no DTLS work for malformed offers");
            flood.send(RawSip.options("still-there", "TCP", flood.via()));
            Await.until("the OPTIONS answer", WAIT, () -> flood.responses().stream()
                    .anyMatch(x -> x.callId().equals("still-there") && x.status() == 200), b -> b);
        }
    }

    private static String invite(String callId, int mediaPort, String fingerprintLine, String setup, RawSip via) {
        String sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio " + mediaPort + " UDP/TLS/RTP/SAVP 0\r\n" + fingerprintLine + "\r\na=setup:" + setup
                + "\r\na=rtcp-mux\r\n";
        String plain = RawSip.invite(callId, "sip:flood@flood.test", "TCP", via.via());
        String head = plain.substring(0, plain.indexOf("Content-Type:"));
        return head + "Supported: 100rel\r\nContent-Type: application/sdp\r\nContent-Length: " + sdp.length()
                + "\r\n\r\n" + sdp;
    }
}
