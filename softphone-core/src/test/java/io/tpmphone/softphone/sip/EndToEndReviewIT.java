package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.DtlsDatagramTransport;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What an adversarial review of the end-to-end calls found, kept as regression tests: a caller behind an
 * {@code UNATTESTED} proxy hop cannot get past an {@code end-to-end} floor by offering SDES instead of DTLS-SRTP; a
 * DTLS-SRTP caller without 100rel (answered at once, so it ACKs before the decision) is hung up when the decision
 * refuses it.
 */
@Timeout(120)
class EndToEndReviewIT {
    private static final Duration WAIT = Duration.ofSeconds(20);
    /** The recipe of docs/policy.md §3: any proxy hop, but the far end MEASURED end to end. */
    private static final String POLICY = "default MEASURED reject\nany sip:*@flood.test UNATTESTED reject end-to-end"
            + " MEASURED";

    private static SipPhone victim(TestHosts hosts, int tcpPort, SipPhone.Listener l) throws Exception {
        return SipPhone.start(new SipPhone.Config("victim", "victim", TestHosts.LOOPBACK, TestHosts.freePort(),
                        tcpPort, 0, Duration.ofSeconds(15), SipPhone.MediaMode.AUTO),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse(POLICY), TestHosts.keys(), l,
                callId -> AudioSession.open(TestHosts.LOOPBACK, Wav.tone(1000, 0.1, 1)), Clock.systemUTC(),
                SipPhone.Limits.DEFAULTS);
    }

    /**
     * The end-to-end floor held only when the caller chose DTLS-SRTP: a caller behind the (UNATTESTED) proxy hop that
     * offered SDES was decided on the hop alone and answered 200, so an ordinary or tampered phone passed
     * "end-to-end MEASURED". Now 488, naming the floor.
     */
    @Test
    void anSdesOfferThroughAnUnattestedHop_mustNotBypassTheEndToEndFloor() throws Exception {
        TestHosts hosts = new TestHosts();
        int tcpPort = TestHosts.freePort();
        List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();
        try (SipPhone phone = victim(hosts, tcpPort, new SipPhone.Listener() {
                @Override
                public void decided(Call call, CallPolicy.Decision d) {
                    decisions.add(d);
                }
            });
             RawSip caller = RawSip.tcp(TestHosts.LOOPBACK, tcpPort)) {
            caller.send(RawSip.invite("sdes-bypass", "sip:mallory@flood.test", "TCP", caller.via()));
            RawSip.Response r = Await.until("a final answer", WAIT,
                    () -> caller.finals().get("sdes-bypass"), x -> x != null);
            assertEquals(488, r.status(), () -> "an SDES caller through the UNATTESTED hop must not pass"
                    + " 'end-to-end MEASURED'; it got " + r.text() + "; decisions: " + decisions);
            assertTrue(decisions.stream().anyMatch(d -> d.action() == CallPolicy.Action.REJECT
                    && d.reason().contains("required end-to-end MEASURED")), () -> "the refusal is recorded naming"
                    + " the floor: " + decisions);
        }
    }

    /**
     * A DTLS-SRTP caller without 100rel gets the 200 at once and ACKs at once, so the call is ESTABLISHED when the
     * end-to-end decision says REJECT: it used to stay up (no BYE) until the media watch ended it 30 s later.
     */
    @Test
    void aRejectedCallerWithout100rel_isHungUp() throws Exception {
        TestHosts hosts = new TestHosts();
        int tcpPort = TestHosts.freePort();
        List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();
        TestHosts.CountingIdentity me = hosts.identity("mallory");
        try (SipPhone phone = victim(hosts, tcpPort, new SipPhone.Listener() {
                @Override
                public void decided(Call call, CallPolicy.Decision d) {
                    decisions.add(d);
                }
            });
             DatagramSocket media = new DatagramSocket(new InetSocketAddress(TestHosts.LOOPBACK, 0));
             RawSip caller = RawSip.tcp(TestHosts.LOOPBACK, tcpPort)) {
            String fp = DtlsFingerprint.sha256(me.certificateChain().get(0).getEncoded()).toSdp();
            String sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    + "m=audio " + media.getLocalPort() + " UDP/TLS/RTP/SAVP 0\r\na=fingerprint:" + fp
                    + "\r\na=setup:actpass\r\na=rtcp-mux\r\n";
            String plain = RawSip.invite("no100rel", "sip:mallory@flood.test", "TCP", caller.via());
            String head = plain.substring(0, plain.indexOf("Content-Type:"));
            caller.send(head + "Content-Type: application/sdp\r\nContent-Length: " + sdp.length() + "\r\n\r\n" + sdp);
            RawSip.Response ok = Await.until("the 200", WAIT, () -> caller.finals().get("no100rel"), x -> x != null);
            assertEquals(200, ok.status(), ok::text);
            Matcher tag = Pattern.compile("(?mi)^To:.*;tag=([^;\\s]+)").matcher(ok.text());
            assertTrue(tag.find(), ok::text);
            Matcher port = Pattern.compile("(?m)^m=audio (\\d+) ").matcher(ok.text());
            assertTrue(port.find(), ok::text);
            Matcher theirFp = Pattern.compile("a=fingerprint:([^\r\n]+)").matcher(ok.text());
            assertTrue(theirFp.find(), ok::text);
            caller.send("ACK sip:victim@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP " + caller.via()
                    + ";rport;branch=z9hG4bKack1\r\nMax-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>;tag=" + tag.group(1)
                    + "\r\nFrom: <sip:mallory@flood.test>;tag=fno100rel\r\nCall-ID: no100rel\r\nCSeq: 1 ACK\r\n"
                    + "Content-Length: 0\r\n\r\n");
            Call atVictim = phone.callById("no100rel").orElseThrow();
            Await.until("the victim's call to be ESTABLISHED by our ACK", WAIT, atVictim::state,
                    s -> s == Call.State.ESTABLISHED);
            // the DTLS handshake, as the server (the victim answered a=setup:active), without attestation
            AttestedTlsConfig tls = AttestedTlsConfig.of(me, hosts.verifier(), Clock.systemUTC()).withoutAttestation();
            DtlsSrtpConfig cfg = DtlsSrtpConfig.of(tls, DtlsFingerprint.parse(theirFp.group(1).trim()));
            try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(new DtlsDatagramTransport(media,
                    new InetSocketAddress(TestHosts.LOOPBACK, Integer.parseInt(port.group(1)))), false, cfg)) {
                Await.until("the victim's end-to-end decision", WAIT, () -> decisions.stream()
                        .anyMatch(CallPolicy.Decision::endToEnd), b -> b);
                CallPolicy.Decision d = decisions.stream().filter(CallPolicy.Decision::endToEnd).findFirst()
                        .orElseThrow();
                assertEquals(CallPolicy.Action.REJECT, d.action(), d::toString);
                Await.until("the victim to end the call it rejected (BYE)", Duration.ofSeconds(10),
                        atVictim::state, s -> s == Call.State.ENDED || s == Call.State.REFUSED);
            }
        }
    }
}
