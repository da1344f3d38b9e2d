package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A standard SIP phone calling ours over UDP and over TCP, as a new user would try it (issue 13, item 5): its ACK and
 * BYE go where our 200's Contact says. That Contact named our TLS port whatever the INVITE came over, so a phone that
 * called over UDP or TCP sent its ACK to TLS (or nowhere), and the call hung in RINGING without media.
 */
class StandardPhoneIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final Pattern CONTACT = Pattern.compile("(?mi)^(?:Contact|m) *: *<?(sip:[^>;\\r\\n]+)([^>\\r\\n]*)>?");
    private static final Pattern TO_TAG = Pattern.compile("(?mi)^(?:To|t) *:.*;tag=([^;\\s]+)");
    private static final Pattern STATUS = Pattern.compile("^SIP/2\\.0 (\\d{3}) ");
    private static final Pattern CSEQ = Pattern.compile("(?mi)^CSeq *: *\\d+ ([A-Z]+)");

    private SipPhone phone;
    private int udpPort;
    private int tcpPort;

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        udpPort = TestHosts.freePort();
        tcpPort = TestHosts.freePort();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), tcpPort,
                        udpPort, Duration.ofSeconds(15)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nin sip:*@phone.test UNATTESTED accept"), TestHosts.keys(),
                new SipPhone.Listener() { }, Clock.systemUTC());
    }

    @AfterEach
    void stop() {
        phone.close();
    }

    @Test
    @Timeout(60)
    void aCallOverUdp_getsAContactForUdp_soItsAckAndByeReachThePhone() throws Exception {
        try (DatagramSocket s = new DatagramSocket(0, LOOPBACK)) {
            String via = "127.0.0.1:" + s.getLocalPort();
            String callId = "udp-call@phone.test";
            send(s, new InetSocketAddress(LOOPBACK, udpPort), invite(callId, "UDP", via));
            String ok = receive(s, callId, 200, "INVITE");
            Matcher contact = CONTACT.matcher(ok);
            assertTrue(contact.find(), "the 200 has a Contact: " + ok);
            assertTrue(contact.group(2).toLowerCase().contains("transport=udp")
                            && contact.group(1).endsWith(":" + udpPort),
                    "the 200's Contact names our UDP port for an INVITE over UDP, saw <" + contact.group(1)
                            + contact.group(2) + "> (UDP port " + udpPort + ")");

            // a standard phone sends its ACK and BYE to the Contact
            InetSocketAddress target = address(contact.group(1));
            String toTag = toTag(ok);
            send(s, target, inDialog("ACK", 1, callId, contact.group(1) + contact.group(2), toTag, "UDP", via));
            Call call = awaitState(callId, Call.State.ESTABLISHED);
            send(s, target, inDialog("BYE", 2, callId, contact.group(1) + contact.group(2), toTag, "UDP", via));
            receive(s, callId, 200, "BYE");
            Await.until("the call to end", WAIT, () -> call.state(), st -> st == Call.State.ENDED);
            assertEquals("the peer hung up", call.reason());
        }
    }

    @Test
    @Timeout(60)
    void aCallOverTcp_getsAContactForTcp_soItsAckAndByeReachThePhone() throws Exception {
        try (RawSip tcp = RawSip.tcp(LOOPBACK, tcpPort)) {
            String callId = "tcp-call@phone.test";
            tcp.send(invite(callId, "TCP", tcp.via()));
            RawSip.Response ok = Await.until("the 200 to our INVITE", WAIT, () -> tcp.finals().get(callId),
                    r -> r != null);
            assertEquals(200, ok.status(), ok.text());
            Matcher contact = CONTACT.matcher(ok.text());
            assertTrue(contact.find(), "the 200 has a Contact: " + ok.text());
            assertTrue(contact.group(2).toLowerCase().contains("transport=tcp")
                            && contact.group(1).endsWith(":" + tcpPort),
                    "the 200's Contact names our TCP port for an INVITE over TCP, saw <" + contact.group(1)
                            + contact.group(2) + "> (TCP port " + tcpPort + ")");

            String toTag = toTag(ok.text());
            tcp.send(inDialog("ACK", 1, callId, contact.group(1) + contact.group(2), toTag, "TCP", tcp.via()));
            Call call = awaitState(callId, Call.State.ESTABLISHED);
            tcp.send(inDialog("BYE", 2, callId, contact.group(1) + contact.group(2), toTag, "TCP", tcp.via()));
            Await.until("the 200 to our BYE", WAIT, () -> tcp.responses().stream()
                    .filter(r -> r.status() == 200 && cseqMethod(r.text()).equals("BYE")).findFirst(),
                    Optional::isPresent);
            Await.until("the call to end", WAIT, () -> call.state(), st -> st == Call.State.ENDED);
            assertEquals("the peer hung up", call.reason());
        }
    }

    private Call awaitState(String callId, Call.State state) throws Exception {
        return Await.until("call " + callId + " to be " + state, WAIT, () -> phone.callById(callId),
                c -> c.isPresent() && c.get().state() == state).orElseThrow();
    }

    static String invite(String callId, String transport, String via) {
        return invite(callId, transport, via, "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                + "t=0 0\r\nm=audio 40000 RTP/SAVP 0\r\n"
                + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n");
    }

    /** An INVITE from {@code sip:phone@phone.test} whose Via and Contact are {@code via}, offering {@code sdp}. */
    static String invite(String callId, String transport, String via, String sdp) {
        return "INVITE sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/" + transport + " " + via + ";rport;branch=z9hG4bKinv" + callId.hashCode() + "\r\n"
                + "Max-Forwards: 70\r\n"
                + "To: <sip:victim@127.0.0.1>\r\nFrom: <sip:phone@phone.test>;tag=phone1\r\n"
                + "Call-ID: " + callId + "\r\nCSeq: 1 INVITE\r\n"
                + "Contact: <sip:phone@" + via + ";transport=" + transport.toLowerCase() + ">\r\n"
                + "Content-Type: application/sdp\r\nContent-Length: " + sdp.length() + "\r\n\r\n" + sdp;
    }

    /** A request in the dialog of {@code callId}: to our Contact, with the phone's To tag. */
    static String inDialog(String method, int cseq, String callId, String requestUri, String toTag,
                           String transport, String via) {
        return method + " " + requestUri + " SIP/2.0\r\n"
                + "Via: SIP/2.0/" + transport + " " + via + ";rport;branch=z9hG4bK" + method.toLowerCase() + cseq
                + callId.hashCode() + "\r\n"
                + "Max-Forwards: 70\r\n"
                + "To: <sip:victim@127.0.0.1>;tag=" + toTag + "\r\nFrom: <sip:phone@phone.test>;tag=phone1\r\n"
                + "Call-ID: " + callId + "\r\nCSeq: " + (method.equals("ACK") ? 1 : cseq) + " " + method + "\r\n"
                + "Content-Length: 0\r\n\r\n";
    }

    static String toTag(String response) {
        Matcher m = TO_TAG.matcher(response);
        assertTrue(m.find(), "the response tags its To: " + response);
        return m.group(1);
    }

    static String cseqMethod(String message) {
        Matcher m = CSEQ.matcher(message);
        return m.find() ? m.group(1) : "";
    }

    /** The host and port of a {@code sip:user@host:port} URI. */
    static InetSocketAddress address(String uri) throws IOException {
        String hostPort = uri.substring(uri.indexOf('@') + 1);
        int colon = hostPort.lastIndexOf(':');
        return new InetSocketAddress(java.net.InetAddress.getByName(hostPort.substring(0, colon)),
                Integer.parseInt(hostPort.substring(colon + 1)));
    }

    static void send(DatagramSocket s, InetSocketAddress to, String message) throws IOException {
        byte[] b = message.getBytes(StandardCharsets.US_ASCII);
        s.send(new DatagramPacket(b, b.length, to));
    }

    /** The first response with {@code status} to {@code method} of {@code callId}, within {@link #WAIT}. */
    static String receive(DatagramSocket s, String callId, int status, String method) throws IOException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        List<String> seen = new ArrayList<>();
        byte[] buf = new byte[65_536];
        while (true) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                throw new AssertionError("no " + status + " to " + method + " of " + callId + " within " + WAIT
                        + "; saw " + seen);
            }
            s.setSoTimeout((int) left);
            DatagramPacket p = new DatagramPacket(buf, buf.length);
            try {
                s.receive(p);
            } catch (SocketTimeoutException e) {
                continue;
            }
            String text = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
            seen.add(text.lines().findFirst().orElse(""));
            Matcher st = STATUS.matcher(text);
            if (st.find() && Integer.parseInt(st.group(1)) == status && text.contains(callId)
                    && cseqMethod(text).equals(method)) {
                return text;
            }
        }
    }
}
