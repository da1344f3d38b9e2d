package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
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
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.LoggerFactory;

/**
 * A call the phone places through a proxy that sends ACKs back to it (issue 13, item 5): a stray ACK while the call
 * rings, and the phone's own ACK of the 200 bounced back. Before the fix any ACK with the call's Call-ID "established"
 * it: the stray one established the call before its 200 (so the 200 was taken for a re-INVITE's and the audio never
 * started), and the bounced one started the audio a second time ("a session starts once").
 */
class BouncedAckIT {
    private static final Duration WAIT = Duration.ofSeconds(15);
    private static final Pattern VIAS = Pattern.compile("(?mi)^(?:Via|v) *:.*\\r\\n");
    private static final Pattern HEADER = Pattern.compile("(?mi)^(From|f|To|t|Call-ID|i|CSeq) *:.*\\r\\n");
    private static final Pattern STATUS_OR_METHOD = Pattern.compile("^(?:SIP/2\\.0 (\\d{3})|([A-Z]+) )");
    private static final Pattern CONTACT = Pattern.compile("(?mi)^(?:Contact|m) *: *<?([^>;\\r\\n]+)");

    private final List<AutoCloseable> closing = new ArrayList<>();
    private final Logger audioLog = (Logger) LoggerFactory.getLogger(AudioSession.class);
    private final Logger phoneLog = (Logger) LoggerFactory.getLogger(SipPhone.class);
    private final LogLines lines = new LogLines();
    private Level audioLevel;
    private Level phoneLevel;

    @AfterEach
    void stop() throws Exception {
        audioLog.detachAppender(lines);
        phoneLog.detachAppender(lines);
        audioLog.setLevel(audioLevel);
        phoneLog.setLevel(phoneLevel);
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    @Test
    @Timeout(90)
    void acksForACallWePlaced_neitherEstablishItBeforeIts200_norStartItsAudioTwice() throws Exception {
        audioLevel = audioLog.getLevel();
        phoneLevel = phoneLog.getLevel();
        audioLog.setLevel(Level.INFO);
        phoneLog.setLevel(Level.INFO);
        lines.start();
        audioLog.addAppender(lines);
        phoneLog.addAppender(lines);

        TestHosts hosts = new TestHosts();
        int udpPort = TestHosts.freePort();
        DatagramSocket proxy = new DatagramSocket(0, LOOPBACK);
        closing.add(proxy);
        DatagramSocket peerRtp = new DatagramSocket(0, LOOPBACK);
        closing.add(peerRtp);
        List<AudioSession> sessions = new ArrayList<>();
        SipPhone phone = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, TestHosts.freePort(), 0,
                        udpPort, Duration.ofSeconds(15), SipPhone.MediaMode.SDES), // the fake proxy answers SDES
                AttestedTlsConfig.of(hosts.identity("alice"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                callId -> {
                    AudioSession s = AudioSession.open(LOOPBACK, new short[160]);
                    sessions.add(s);
                    return s;
                }, Clock.systemUTC());
        closing.add(0, phone);
        InetSocketAddress toPhone = new InetSocketAddress(LOOPBACK, udpPort);

        // register at the proxy (it accepts), then call through it
        Registration reg = phone.register(new Registration.Account("sip:alice@proxy.test",
                new InetSocketAddress(LOOPBACK, proxy.getLocalPort()), "udp", "alice", "secret"::toCharArray,
                Duration.ofHours(1)));
        String register = receive(proxy, "REGISTER");
        send(proxy, toPhone, answer(register, 200, "OK", "Contact: " + contactOf(register) + ";expires=3600\r\n", ""));
        Await.until("the registration", WAIT, () -> reg.state(), s -> s == Registration.State.REGISTERED);
        Call call = phone.call("sip:bob@proxy.test", reg);
        String invite = receive(proxy, "INVITE");
        assertEquals(call.callId(), header(invite, "Call-ID"));

        // it rings; the proxy sends an ACK with the call's Call-ID meanwhile
        send(proxy, toPhone, answer(invite, 180, "Ringing", "", ""));
        Await.until("the call to ring", WAIT, () -> call.state(), s -> s == Call.State.RINGING);
        String bobContact = "<sip:bob@127.0.0.1:" + proxy.getLocalPort() + ";transport=udp>";
        String tags = header(invite, "From") + header(invite, "To").replace("\r\n", ";tag=bob1\r\n");
        send(proxy, toPhone, "ACK sip:alice@127.0.0.1:" + udpPort + ";transport=udp SIP/2.0\r\n"
                + "Via: SIP/2.0/UDP 127.0.0.1:" + proxy.getLocalPort() + ";branch=z9hG4bKstray1\r\n"
                + "Max-Forwards: 70\r\n" + tags + "Call-ID: " + call.callId() + "\r\nCSeq: 1 ACK\r\n"
                + "Content-Length: 0\r\n\r\n");

        // answered: the phone ACKs our 200, and the proxy sends that ACK back at once
        String sdp = "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio " + peerRtp.getLocalPort() + " RTP/SAVP 0\r\n"
                + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        send(proxy, toPhone, answer(invite, 200, "OK", "Contact: " + bobContact + "\r\n"
                + "Content-Type: application/sdp\r\n", sdp));
        String ack = receive(proxy, "ACK");
        send(proxy, toPhone, ack.replaceFirst("(?m)^Via:", "Via: SIP/2.0/UDP 127.0.0.1:" + proxy.getLocalPort()
                + ";branch=z9hG4bKbounce1\r\nVia:"));

        Await.until("the call to be established", WAIT, () -> call.state(), s -> s == Call.State.ESTABLISHED);
        peerRtp.setSoTimeout((int) WAIT.toMillis());
        DatagramPacket rtp = new DatagramPacket(new byte[2048], 2048);
        try {
            peerRtp.receive(rtp);
        } catch (SocketTimeoutException e) {
            throw new AssertionError("no RTP from the phone within " + WAIT + " after its call was established: its"
                    + " audio never started; log: " + messages(), e);
        }
        assertTrue(rtp.getLength() > 12, "an RTP packet: " + rtp.getLength() + " bytes");
        // every line that says the audio started or failed to start was written by now (the first RTP came after)
        List<String> started = messages().stream().filter(m -> m.startsWith("SRTP audio")).toList();
        List<String> failed = messages().stream().filter(m -> m.contains("starting SRTP audio failed")).toList();
        assertEquals(1, started.size(), "the audio started once: " + messages());
        assertEquals(List.of(), failed, "no second start of the audio: " + messages());
        assertEquals(1, sessions.size(), "one media session for the call");
        phone.hangUp(call);
    }

    private List<String> messages() {
        return lines.messages();
    }

    /** A response to {@code request}: its Vias, From, To (tagged bob1), Call-ID and CSeq, then {@code more}. */
    private static String answer(String request, int status, String reason, String more, String body) {
        StringBuilder r = new StringBuilder("SIP/2.0 " + status + " " + reason + "\r\n");
        Matcher v = VIAS.matcher(request);
        while (v.find()) {
            r.append(v.group());
        }
        Matcher h = HEADER.matcher(request);
        while (h.find()) {
            String line = h.group();
            r.append(line.regionMatches(true, 0, "To", 0, 2) && !line.contains(";tag=")
                    ? line.replace("\r\n", ";tag=bob1\r\n") : line);
        }
        return r.append(more).append("Content-Length: ").append(body.length()).append("\r\n\r\n").append(body)
                .toString();
    }

    private static String contactOf(String request) {
        Matcher m = CONTACT.matcher(request);
        assertTrue(m.find(), "a Contact in " + request);
        return "<" + m.group(1) + ">";
    }

    /** The line of {@code name} in {@code message} (with its CRLF). */
    private static String header(String message, String name) {
        Matcher m = Pattern.compile("(?mi)^" + name + " *:.*\\r\\n").matcher(message);
        assertTrue(m.find(), name + " in " + message);
        return name.equals("Call-ID") ? m.group().substring(m.group().indexOf(':') + 1).trim() : m.group();
    }

    private static void send(DatagramSocket s, InetSocketAddress to, String message) throws IOException {
        byte[] b = message.getBytes(StandardCharsets.US_ASCII);
        s.send(new DatagramPacket(b, b.length, to));
    }

    /** The next request of {@code method} the proxy gets, within {@link #WAIT}. */
    private static String receive(DatagramSocket s, String method) throws IOException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        List<String> seen = new ArrayList<>();
        byte[] buf = new byte[65_536];
        while (true) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                throw new AssertionError("no " + method + " at the proxy within " + WAIT + "; saw " + seen);
            }
            s.setSoTimeout((int) left);
            DatagramPacket p = new DatagramPacket(buf, buf.length);
            try {
                s.receive(p);
            } catch (SocketTimeoutException e) {
                continue;
            }
            String text = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
            Matcher m = STATUS_OR_METHOD.matcher(text);
            seen.add(text.lines().findFirst().orElse(""));
            if (m.find() && method.equals(m.group(2))) {
                return text;
            }
        }
    }
}
