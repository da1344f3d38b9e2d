package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 12's review of the SIP bounds, finding 4: over UDP anyone can put someone else's address in the source of an
 * INVITE, so the refusal goes to a victim of the spoofer's choice. It must not carry the peer's text back (no
 * {@code Warning} with the SDP's payload list or the caller's URI) nor be larger than the INVITE that caused it.
 */
class UdpRefusalIT {
    private static final Pattern CALL_ID = Pattern.compile("(?mi)^Call-ID: *(\\S+)");
    private static final String POLICY = "default MEASURED reject\nin sip:*@friend.test UNATTESTED accept";
    private SipPhone victim;
    private DatagramSocket socket;
    /** Every datagram the phone sent us, in order. */
    private final List<String> received = new ArrayList<>();

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        TestHosts.freePort(), Duration.ofSeconds(30)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse(POLICY), TestHosts.keys(), new SipPhone.Listener() { }, null, Clock.systemUTC(),
                SipPhone.Limits.DEFAULTS.withCalls(32, 1, 100));
        socket = new DatagramSocket(0, LOOPBACK);
    }

    @AfterEach
    void stop() {
        if (socket != null) {
            socket.close();
        }
        if (victim != null) {
            victim.close();
        }
    }

    @Test
    @Timeout(60)
    void aPolicyRefusal_carriesNoWarning_andIsNoLargerThanTheInvite() throws Exception {
        // a caller the policy refuses, with a long display name full of escape sequences
        String from = "\"" + "\u001b[2J\u202eevil".repeat(20) + "\" <sip:mallory@evil.test>";
        byte[] invite = invite("policy-1", from, sdp("0", true));
        String answer = exchange(invite, "policy-1");
        assertStatus(403, answer);
        assertShortAndQuiet(invite, answer);
    }

    @Test
    @Timeout(60)
    void aRefusalNamingThePeersOffer_carriesNoneOfIt() throws Exception {
        // accepted by policy, but 200 payload types and none we support: the reason names the offer's list
        String payloads = IntStream.range(0, 200).mapToObj(i -> Integer.toString(96 + i % 30))
                .collect(Collectors.joining(" "));
        byte[] invite = invite("codec-1", "<sip:friend@friend.test>", sdp(payloads, true));
        String answer = exchange(invite, "codec-1");
        assertStatus(488, answer);
        assertShortAndQuiet(invite, answer);
        assertFalse(answer.contains("96 97 98"), "the offer's payload list came back: " + answer);
    }

    @Test
    @Timeout(60)
    void aMalformedInvite_getsAPlain400() throws Exception {
        byte[] invite = new String(invite("bad-1", "<sip:friend@friend.test>", sdp("0", true)),
                StandardCharsets.ISO_8859_1).replace("Max-Forwards: 70\r\n", "")
                .getBytes(StandardCharsets.ISO_8859_1);
        String answer = exchange(invite, "bad-1");
        assertStatus(400, answer);
        assertTrue(firstLine(answer).equalsIgnoreCase("SIP/2.0 400 Bad Request"), "the standard reason phrase,"
                + " nothing of the request's: " + firstLine(answer));
        assertShortAndQuiet(invite, answer);
    }

    @Test
    @Timeout(60)
    void aBusyAnswer_carriesRetryAfterButNoWarning() throws Exception {
        // the one place for a call being set up: an accepted offer never ACKed
        String first = exchange(invite("busy-1", "<sip:friend@friend.test>", sdp("0", true)), "busy-1");
        assertStatus(200, first);
        byte[] invite = invite("busy-2", "<sip:friend@friend.test>", sdp("0", true));
        String answer = exchange(invite, "busy-2");
        assertStatus(503, answer);
        assertTrue(answer.contains("\r\nRetry-After: 5"), "503 says when to retry: " + answer);
        assertShortAndQuiet(invite, answer);
    }

    @Test
    @Timeout(60)
    void aRefusalLargerThanItsInvite_isNotSent() throws Exception {
        // compact header names: JAIN-SIP writes the answer's in long form, so the 403 would be the larger one
        String m = "INVITE sip:v@127.0.0.1 SIP/2.0\r\n"
                + "v: SIP/2.0/UDP 127.0.0.1:" + socket.getLocalPort() + ";rport;branch=z9hG4bKcompact1\r\n"
                + "f: <sip:m@e.test>;tag=1\r\nt: <sip:v@127.0.0.1>\r\ni: compact-1\r\nCSeq: 1 INVITE\r\n"
                + "Max-Forwards: 70\r\nm: <sip:m@127.0.0.1>\r\nl: 0\r\n\r\n";
        byte[] compact = m.getBytes(StandardCharsets.US_ASCII);
        send(compact);
        Await.until("the phone to withhold the refusal larger than its INVITE", Duration.ofSeconds(10),
                () -> victim.held().udpAnswersWithheld() == 1, () -> "withheld: " + victim.held().udpAnswersWithheld()
                        + "; received " + received);
        // the phone has moved on: a normal INVITE after it is answered, and nothing came for the compact one
        String after = exchange(invite("policy-2", "<sip:mallory@evil.test>", sdp("0", true)), "policy-2");
        assertStatus(403, after);
        assertTrue(received.stream().noneMatch(r -> callId(r).equals("compact-1")), "an answer to the compact INVITE"
                + " (" + compact.length + " bytes) was sent: " + received);
    }

    private static void assertStatus(int status, String answer) {
        assertTrue(answer.startsWith("SIP/2.0 " + status + " "), "expected " + status + ", got: " + firstLine(answer));
    }

    private static void assertShortAndQuiet(byte[] request, String answer) {
        int bytes = answer.getBytes(StandardCharsets.ISO_8859_1).length;
        assertTrue(bytes <= request.length, "the answer is " + bytes + " bytes, its INVITE " + request.length
                + ": " + answer);
        assertFalse(answer.toLowerCase(Locale.ROOT).contains("\r\nwarning:"), "a Warning over UDP: " + answer);
        // Of the request, only what RFC 3261 §8.2.6.2 makes every response copy (From, To, Call-ID, CSeq, Via)
        String ours = answer.lines().filter(l -> !COPIED.matcher(l).lookingAt()).collect(Collectors.joining("\n"));
        assertTrue(ours.chars().allMatch(c -> c >= 0x20 && c < 0x7f || c == '\n'), "the peer's control or"
                + " non-ASCII characters outside the copied headers: " + ours);
        assertFalse(ours.contains("evil") || ours.contains("96 97"), "the peer's text outside the copied headers: "
                + ours);
    }

    private static final Pattern COPIED = Pattern.compile("(?i)(From|To|Call-ID|CSeq|Via) *:");

    /** Sends {@code request} and returns the phone's final answer to {@code callId} (provisional ones skipped). */
    private String exchange(byte[] request, String callId) throws Exception {
        send(request);
        socket.setSoTimeout(10_000);
        byte[] buf = new byte[65_536];
        while (true) {
            DatagramPacket p = new DatagramPacket(buf, buf.length);
            try {
                socket.receive(p);
            } catch (SocketTimeoutException e) {
                throw new AssertionError("no final answer to " + callId + " within 10 s; received " + received, e);
            }
            String text = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
            received.add(text);
            if (callId(text).equals(callId) && !text.startsWith("SIP/2.0 1")) {
                return text;
            }
        }
    }

    private void send(byte[] m) throws Exception {
        socket.send(new DatagramPacket(m, m.length, new InetSocketAddress(LOOPBACK, victim.config().udpPort())));
    }

    private byte[] invite(String callId, String from, String sdp) {
        String via = "127.0.0.1:" + socket.getLocalPort();
        String m = "INVITE sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/UDP " + via + ";rport;branch=z9hG4bK" + callId + "\r\n"
                + "Max-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\nFrom: " + from + ";tag=f1\r\n"
                + "Call-ID: " + callId + "\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@" + via + ">\r\n"
                + "Content-Type: application/sdp\r\nContent-Length: "
                + sdp.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + sdp;
        return m.getBytes(StandardCharsets.UTF_8);
    }

    private static String sdp(String payloads, boolean crypto) {
        return "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio 40000 RTP/SAVP " + payloads + "\r\n"
                + (crypto ? "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
                : "");
    }

    private static String callId(String message) {
        Matcher m = CALL_ID.matcher(message);
        return m.find() ? m.group(1) : "";
    }

    private static String firstLine(String message) {
        int end = message.indexOf("\r\n");
        return end < 0 ? message : message.substring(0, end);
    }
}
