package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * An incoming DTLS-SRTP call hung up at this phone before it rings (our 183 sent, the caller's level still being
 * appraised) answers its INVITE: 480. Before, nothing did — no answer decision was waiting yet — and the INVITE stayed
 * in Proceeding, the caller's proxy waiting minutes (its Timer C).
 */
@Timeout(60)
class HangUpBeforeRingIT {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @Test
    void anIncomingDtlsCallHungUpBeforeItRings_gets480() throws Exception {
        TestHosts hosts = new TestHosts();
        int tcpPort = TestHosts.freePort();
        try (DatagramSocket silent = new DatagramSocket(new InetSocketAddress(TestHosts.LOOPBACK, 0));
             SipPhone phone = SipPhone.start(new SipPhone.Config("victim", "victim", TestHosts.LOOPBACK,
                             TestHosts.freePort(), tcpPort, 0, Duration.ofSeconds(30), SipPhone.MediaMode.AUTO),
                     AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                     CallPolicy.acceptAll(), TestHosts.keys(), new SipPhone.Listener() { },
                     callId -> AudioSession.open(TestHosts.LOOPBACK, Wav.tone(1000, 0.1, 1)), Clock.systemUTC(),
                     SipPhone.Limits.DEFAULTS);
             RawSip caller = RawSip.tcp(TestHosts.LOOPBACK, tcpPort)) {
            String fingerprint = DtlsFingerprint.sha256(hosts.identity("caller").certificateChain().get(0)
                    .getEncoded()).toSdp();
            String callId = "hung-up-early";
            caller.send(invite(callId, silent.getLocalPort(), "a=fingerprint:" + fingerprint, caller));
            Await.until("the phone's 183", WAIT, () -> caller.responses().stream()
                    .anyMatch(r -> r.callId().equals(callId) && r.status() == 183),
                    () -> "answers: " + caller.responses());
            Call call = phone.callById(callId).orElseThrow();
            assertEquals(Call.State.SETTING_UP, call.state(), "the caller's level is still being appraised (its"
                    + " DTLS peer is silent); saw " + call.state() + " (" + call.reason() + ")");
            phone.hangUp(call);
            assertEquals(Call.State.ENDED, call.state(), "hung up: " + call.reason());
            Await.until("a final answer to the INVITE", WAIT, () -> caller.responses().stream()
                    .anyMatch(r -> r.callId().equals(callId) && r.status() >= 200),
                    () -> "answers: " + caller.responses());
            List<Integer> finals = caller.responses().stream().filter(r -> r.callId().equals(callId)
                    && r.status() >= 200).map(RawSip.Response::status).toList();
            assertEquals(List.of(480), finals, "one 480 to the INVITE of the call hung up before it rang; saw "
                    + caller.responses());
        }
    }

    private static String invite(String callId, int mediaPort, String fingerprintLine, RawSip via) {
        String sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio " + mediaPort + " UDP/TLS/RTP/SAVP 0\r\n" + fingerprintLine + "\r\na=setup:actpass"
                + "\r\na=rtcp-mux\r\n";
        String plain = RawSip.invite(callId, "sip:caller@caller.test", "TCP", via.via());
        String head = plain.substring(0, plain.indexOf("Content-Type:"));
        return head + "Supported: 100rel\r\nContent-Type: application/sdp\r\nContent-Length: " + sdp.length()
                + "\r\n\r\n" + sdp;
    }
}
