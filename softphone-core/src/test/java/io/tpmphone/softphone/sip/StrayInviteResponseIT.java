package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.LoggerFactory;

/**
 * A final answer to our INVITE counts only if it answers our INVITE's client transaction. JAIN-SIP hands the listener
 * responses that match none (a branch of nobody's): before, anyone who knew a Call-ID could refuse a live call with a
 * forged 403 and have its words become the call's reason, or (after the call ended) take the place of what the real
 * far end said, one log line per packet. A scripted UDP peer answers the phone's INVITE here.
 */
class StrayInviteResponseIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private final Logger phoneLog = (Logger) LoggerFactory.getLogger(SipPhone.class);
    private final LogLines lines = new LogLines();
    private Level phoneLevel;
    private SipPhone phone;
    private UdpPeer peer;
    private int udpPort;
    /** When set, the keystore's replay check of an answered key waits for {@link #checkReleased}. */
    private volatile CountDownLatch checkAsked;
    private final CountDownLatch checkReleased = new CountDownLatch(1);

    @BeforeEach
    void start() throws Exception {
        TestHosts hosts = new TestHosts();
        udpPort = TestHosts.freePort();
        phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0, udpPort,
                        Duration.ofSeconds(15)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default MEASURED reject\nout sip:*@127.0.0.1 UNATTESTED accept"), heldCheck(),
                new SipPhone.Listener() { }, Clock.systemUTC());
        peer = new UdpPeer();
        phoneLevel = phoneLog.getLevel();
        phoneLog.setLevel(Level.INFO);
        lines.start();
        phoneLog.addAppender(lines);
    }

    @AfterEach
    void stop() {
        checkReleased.countDown();
        phoneLog.detachAppender(lines);
        phoneLog.setLevel(phoneLevel);
        if (peer != null) {
            peer.close();
        }
        if (phone != null) {
            phone.close();
        }
    }

    @Test
    @Timeout(60)
    void aStray403_neitherRefusesALiveCall_norBecomesItsReason() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();

        send(stray(forbidden(invite, "forged words")));
        awaitStrayOrWords(call);
        assertEquals(Call.State.SETTING_UP, call.state(), "a forged 403 matching no transaction must not refuse the "
                + "call; saw " + call.state() + " (" + call.reason() + ")");
        assertEquals(Optional.empty(), call.farEndSaid(), "a forged 403 is nobody's word; saw " + call.farEndSaid());

        send(forbidden(invite, "genuine words"));
        Await.until("the genuine 403 to refuse the call", WAIT, call::state, s -> s == Call.State.REFUSED);
        assertTrue(call.reason().contains("genuine words"), "the call's reason is the genuine 403's; saw "
                + call.reason());
        assertEquals(Optional.of("403 Forbidden: genuine words"), call.farEndSaid(),
                "what the far end said is the genuine 403's; saw " + call.farEndSaid());
    }

    @Test
    @Timeout(60)
    void afterHangUp_aFloodOfStray403s_isNotTheFarEndsWord_andLogsWithinItsBudget() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        phone.hangUp(call);
        Await.until("the call to end", WAIT, call::state, s -> s == Call.State.ENDED);

        long started = System.nanoTime();
        String stray = stray(forbidden(invite, "forged \u001b[31m words"));
        send(stray);
        awaitStrayOrWords(call);
        assertEquals(Optional.empty(), call.farEndSaid(), "a forged 403 after the call ended is nobody's word; saw "
                + call.farEndSaid());
        for (int i = 0; i < 500; i++) {
            send(stray);
        }
        // a flood may overflow the phone's receive buffer: the genuine 403 is retransmitted until the phone ACKs it,
        // as a callee does over UDP (RFC 3261 §17.2.1, Timer G)
        String genuine = forbidden(invite, "genuine words");
        Await.until("the phone to ACK the genuine 403", WAIT, () -> {
            send(genuine);
            return peer.has(call.callId(), "ACK");
        }, acked -> acked);
        Await.until("the genuine 403's words to be kept", WAIT, call::farEndSaid, Optional::isPresent);
        assertEquals(Optional.of("403 Forbidden: genuine words"), call.farEndSaid(),
                "what the far end said is the genuine 403's, not a stray one's; saw " + call.farEndSaid());
        assertEquals(Call.State.ENDED, call.state(), "the call stays ended by this side; saw " + call.state());
        assertTrue(call.reason().startsWith("hung up"), "the call's reason stays this side's; saw " + call.reason());

        // the words are kept before their line is logged (OutgoingCalls: keep once, then log): wait for the line
        Await.until("the line for the genuine answer after the call ended", WAIT, this::logged,
                l -> l.stream().anyMatch(line -> line.contains("the far end then said")));
        // every line the 501 strays and the genuine answer caused, against the budget for the time they took
        List<String> seen = logged();
        long strayLines = seen.stream().filter(l -> l.contains("stray") || l.contains("forged")).count();
        long seconds = Duration.ofNanos(System.nanoTime() - started).toSeconds() + 2;
        assertTrue(strayLines <= SipEvents.STRAY_LINES_PER_SECOND * seconds, "at most "
                + SipEvents.STRAY_LINES_PER_SECOND + " lines a second about stray answers; saw " + strayLines
                + " in about " + seconds + " s: " + seen.stream().limit(5).toList());
        assertEquals(1, seen.stream().filter(l -> l.contains("the far end then said")).count(),
                "one line for the genuine answer after the call ended; saw " + seen);
    }

    /**
     * A call we placed, hung up after the far end said it rings: the INVITE is cancelled (RFC 3261 §9.1). Before, the
     * phone sent nothing and the far end went on ringing until its own timeout.
     */
    @Test
    @Timeout(60)
    void aHangUpAfterAProvisionalAnswer_cancelsTheInvite() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        send(forbidden(invite, "unused").replace("SIP/2.0 403 Forbidden", "SIP/2.0 180 Ringing")
                .replaceAll("(?m)^Warning:[^\r\n]*\r\n", ""));
        Await.until("the phone to hear the 180", WAIT, call::state, s -> s == Call.State.RINGING);
        phone.hangUp(call);
        assertEquals(Call.State.ENDED, call.state(), "hung up: " + call.reason());
        UdpPeer.Message cancel = peer.request(call.callId(), "CANCEL", WAIT);
        assertTrue(cancel.text().contains("Reason: SIP;cause=487"), "the CANCEL says why: " + cancel.text());
    }

    /**
     * RFC 3261 §9.1/§15: a 200 that crosses our CANCEL is acknowledged through its dialog, and the call it would start
     * is ended with one BYE. Before, the phone dropped it: the callee thought it connected and retransmitted its 200
     * until its own ACK timeout (32 s).
     */
    @Test
    @Timeout(60)
    void a200CrossingTheCancel_isAckedAndByedOnce() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        send(answer(invite, "180 Ringing"));
        Await.until("the phone to hear the 180", WAIT, call::state, s -> s == Call.State.RINGING);
        phone.hangUp(call);
        peer.request(call.callId(), "CANCEL", WAIT);
        // the callee answered just before the CANCEL reached it; it retransmits the 200 until it is ACKed (§13.3.1.4)
        String ok = answer(invite, "200 OK");
        Await.until("the phone to ACK the 200 that crossed its CANCEL", WAIT, () -> {
            send(ok);
            return peer.has(call.callId(), "ACK");
        }, () -> "the peer saw " + peer.firstLines());
        UdpPeer.Message bye = peer.request(call.callId(), "BYE", WAIT);
        send(okTo(bye.text()));
        // a retransmission of the 200 is acknowledged again, and ends nothing twice (JAIN-SIP's dialog absorbs most
        // retransmissions before the phone sees them, so this cannot tell a once-per-dialog BYE from an always one:
        // CallTest does; twoForks… tells it from a once-per-call one)
        long acks = peer.count(call.callId(), "ACK");
        Await.until("the phone to ACK the retransmitted 200", WAIT, () -> {
            send(ok);
            return peer.count(call.callId(), "ACK") > acks;
        }, () -> "the peer saw " + peer.firstLines());
        assertEquals(1, peer.count(call.callId(), "BYE"), "one BYE for the crossed 200; the peer saw "
                + peer.firstLines());
        assertEquals(Call.State.ENDED, call.state(), "the call stays ended by this side; saw " + call.state());
        assertTrue(call.reason().startsWith("hung up"), "the call's reason stays this side's; saw " + call.reason());
    }

    /**
     * RFC 3261 §9.1: a hang-up before any provisional answer sends no CANCEL yet (nothing along the path could match
     * it), but the first provisional answer does.
     */
    @Test
    @Timeout(60)
    void aHangUpBeforeAnyProvisional_cancelsOnTheFirstOne() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        phone.hangUp(call);
        assertEquals(Call.State.ENDED, call.state(), "hung up: " + call.reason());
        assertFalse(peer.has(call.callId(), "CANCEL"), "no CANCEL before a provisional answer; the peer saw "
                + peer.firstLines());
        send(answer(invite, "180 Ringing"));
        UdpPeer.Message cancel = peer.request(call.callId(), "CANCEL", WAIT);
        assertTrue(cancel.text().contains("Reason: SIP;cause=487"), "the CANCEL says why: " + cancel.text());
        send(answer(invite, "183 Session Progress"));
        send(okTo(cancel.text()));
        send(answer(invite, "487 Request Terminated"));
        Await.until("the phone to ACK the 487", WAIT, () -> peer.has(call.callId(), "ACK"),
                () -> "the peer saw " + peer.firstLines());
        assertEquals(1, peer.count(call.callId(), "CANCEL"), "one CANCEL for two provisionals; the peer saw "
                + peer.firstLines());
    }

    /**
     * RFC 3261 §9.1: a CANCEL may follow any provisional answer, 100 Trying too. Before, a hang-up before any
     * provisional waited for one above 100: a callee's proxy that sends only 100 (and later the 2xx) never got it.
     */
    @Test
    @Timeout(60)
    void aHangUpBeforeAnyProvisional_cancelsOnA100Trying() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        phone.hangUp(call);
        assertFalse(peer.has(call.callId(), "CANCEL"), "no CANCEL before a provisional answer; the peer saw "
                + peer.firstLines());
        send(trying(invite));
        UdpPeer.Message cancel = peer.request(call.callId(), "CANCEL", WAIT);
        assertTrue(cancel.text().contains("Reason: SIP;cause=487;text=\"hung up\""), "the CANCEL says, in a fixed"
                + " phrase, why: " + cancel.text());
    }

    /**
     * The CANCEL's Reason goes to the far end and every proxy on the way: a fixed phrase, never the call's own reason
     * (which may carry an exception's text). Here the call ends before any provisional answer with such a reason, as
     * the phone's failure to handle an answer ends it ({@code OutgoingCalls.answered}); the first provisional answer
     * sends the CANCEL. Before, its Reason was the call's reason, exception text and all.
     */
    @Test
    @Timeout(60)
    void aDeferredCancelsReason_isAFixedPhrase_notTheCallsReason() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        call.ended("handling the answer failed: INTERNAL-SECRET /var/lib/tpmphone/keystore.sealed");
        send(answer(invite, "180 Ringing"));
        UdpPeer.Message cancel = peer.request(call.callId(), "CANCEL", WAIT);
        assertTrue(cancel.text().contains("Reason: SIP;cause=487;text=\"call ended\""), "the CANCEL's Reason is a"
                + " fixed phrase: " + cancel.text());
        assertFalse(cancel.text().contains("INTERNAL-SECRET"), "none of the call's reason goes out: "
                + cancel.text());
    }

    /**
     * Two forks of our INVITE answer 200 after our CANCEL (a forking proxy; tags peer1 and peer2): each dialog is
     * acknowledged and ended with a BYE of its own. Before, the one late BYE was per call: the second fork got an ACK
     * and no BYE, and believed it was connected. (The first 200 to arrive is handled through our INVITE's transaction;
     * JAIN-SIP may drop the other fork's while that transaction is there, and hands over its retransmission with a
     * dialog of its own.)
     */
    @Test
    @Timeout(60)
    void twoForks200sAfterTheCancel_eachGetAnAckAndOneBye() throws Exception {
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        send(answer(invite, "180 Ringing"));
        Await.until("the phone to hear the 180", WAIT, call::state, s -> s == Call.State.RINGING);
        phone.hangUp(call);
        UdpPeer.Message cancel = peer.request(call.callId(), "CANCEL", WAIT);
        send(okTo(cancel.text()));
        String ok1 = answer(invite, "200 OK");
        String ok2 = ok1.replace(";tag=peer1", ";tag=peer2").replace("<sip:peer@", "<sip:fork2@");
        // both forks answer at once, and each retransmits its 200 until it is acknowledged (RFC 3261 §13.3.1.4)
        send(ok1);
        send(ok2);
        for (String tag : List.of("peer1", "peer2")) {
            String ok = tag.equals("peer1") ? ok1 : ok2;
            Await.until("an ACK and a BYE in the dialog of " + tag, WAIT, () -> {
                if (inDialog("ACK", tag).isEmpty()) {
                    send(ok);
                }
                return !inDialog("ACK", tag).isEmpty() && !inDialog("BYE", tag).isEmpty();
            }, () -> "the peer saw " + dialogs());
            send(okTo(inDialog("BYE", tag).get(0).text()));
        }
        // each fork retransmits its 200 until acknowledged: acknowledged again, and ended no second time
        for (String tag : List.of("peer1", "peer2")) {
            int acks = inDialog("ACK", tag).size();
            String ok = tag.equals("peer1") ? ok1 : ok2;
            Await.until("the phone to ACK " + tag + "'s retransmitted 200", WAIT, () -> {
                send(ok);
                return inDialog("ACK", tag).size() > acks;
            }, () -> "the peer saw " + dialogs());
        }
        for (String tag : List.of("peer1", "peer2")) {
            assertEquals(1, inDialog("BYE", tag).stream().map(m -> branch(m.text())).distinct().count(),
                    "one BYE transaction in the dialog of " + tag + "; the peer saw " + dialogs());
        }
        assertEquals(Call.State.ENDED, call.state(), "the call stays ended by this side; saw " + call.state());
    }

    /**
     * A 2xx to a call we placed arrives as our user hangs up (forced: the keystore's replay check of its key is held
     * while the user hangs up): it is ACKed and the call is ended with a BYE, and no audio starts. Before, the ended
     * call's answer was handled as if it were live (no BYE followed the ACK: the callee stayed connected to nobody).
     */
    @Test
    @Timeout(60)
    void a2xxRacingAHangUp_isAckedAndByed() throws Exception {
        checkAsked = new CountDownLatch(1);
        Call call = phone.callOverUdp("sip:peer@127.0.0.1", peerAddress());
        String invite = peer.request(call.callId(), "INVITE", WAIT).text();
        send(answer(invite, "180 Ringing"));
        Await.until("the phone to hear the 180", WAIT, call::state, s -> s == Call.State.RINGING);
        send(withSdp(answer(invite, "200 OK")));
        assertTrue(checkAsked.await(10, TimeUnit.SECONDS), "the phone checks the answered key; the peer saw "
                + peer.firstLines() + "; call " + call);
        phone.hangUp(call);
        checkReleased.countDown();
        peer.request(call.callId(), "ACK", WAIT);
        UdpPeer.Message bye = peer.request(call.callId(), "BYE", WAIT);
        send(okTo(bye.text()));
        assertEquals(Call.State.ENDED, call.state(), "the call stays ended by our user; saw " + call);
        assertTrue(call.reason().startsWith("hung up"), "the call's reason is the hang-up; saw " + call.reason());
    }

    /** Waits until the phone dealt with a stray answer: dropped it (a line) or, before the fix, kept its words. */
    private void awaitStrayOrWords(Call call) {
        Await.until("the phone to drop the stray 403 or keep its words", WAIT,
                () -> call.farEndSaid().isPresent() || logged().stream().anyMatch(l -> l.contains("stray 403")),
                done -> done);
    }

    private List<String> logged() {
        return lines.messages();
    }

    private InetSocketAddress peerAddress() {
        return new InetSocketAddress(LOOPBACK, Integer.parseInt(peer.via().split(":")[1]));
    }

    private void send(String message) throws Exception {
        peer.send(new InetSocketAddress(LOOPBACK, udpPort), message);
    }

    /** A 403 to {@code invite}, as its callee would answer it, with {@code words} as its Warning. */
    private static String forbidden(String invite, String words) {
        String head = invite.substring(0, invite.indexOf("\r\n\r\n") + 2);
        return head.replaceFirst("^INVITE [^\r\n]*", "SIP/2.0 403 Forbidden")
                .replaceAll("(?mi)^(To:[^\r\n]*)", "$1;tag=peer1")
                .replaceAll("(?mi)^(Contact|Max-Forwards|Content-Type|Content-Length|Allow|Supported|User-Agent|"
                        + "Route|Require|Proxy-Require):[^\r\n]*\r\n", "")
                + "Warning: 399 peer \"" + words + "\"\r\nContent-Length: 0\r\n\r\n";
    }

    /** A response {@code statusLine} (e.g. {@code "180 Ringing"}) to {@code invite}, with a To tag and a Contact. */
    private String answer(String invite, String statusLine) {
        return forbidden(invite, "unused").replace("SIP/2.0 403 Forbidden", "SIP/2.0 " + statusLine)
                .replaceAll("(?m)^Warning:[^\r\n]*\r\n", "")
                .replace("Content-Length: 0", "Contact: <sip:peer@" + peer.via() + ">\r\nContent-Length: 0");
    }

    /** A 200 to {@code request} (a BYE or a CANCEL of the phone's). */
    private static String okTo(String request) {
        String head = request.substring(0, request.indexOf("\r\n\r\n") + 2);
        StringBuilder b = new StringBuilder("SIP/2.0 200 OK\r\n");
        head.lines().filter(l -> l.matches("(?i)^(Via|From|To|Call-ID|CSeq):.*")).forEach(l -> b.append(l)
                .append("\r\n"));
        return b.append("Content-Length: 0\r\n\r\n").toString();
    }

    /** {@code response} with a branch that names no transaction of the phone's. */
    private static String stray(String response) {
        String s = response.replaceAll("branch=z9hG4bK[^;\r\n]*", "branch=z9hG4bKnobodys");
        assertTrue(s.contains("branch=z9hG4bKnobodys") && !s.equals(response), "the stray's branch was replaced: "
                + s);
        return s;
    }

    /** The keystore: the replay check of an answered key waits for {@link #checkReleased} once armed. */
    private SipPhone.Keys heldCheck() {
        SipPhone.Keys real = TestHosts.keys();
        return new SipPhone.Keys() {
            @Override
            public io.tpmphone.softphone.SrtpKeyMaterial srtpKey(String suite, String callId)
                    throws java.io.IOException {
                return real.srtpKey(suite, callId);
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) throws java.io.IOException {
                CountDownLatch asked = checkAsked;
                if (asked != null) {
                    asked.countDown();
                    try {
                        if (!checkReleased.await(30, TimeUnit.SECONDS)) {
                            throw new java.io.IOException("the test never released the check");
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new java.io.IOException("interrupted", e);
                    }
                }
                real.checkOffered(key, salt, callId);
            }
        };
    }

    /** The requests the phone sent us in the dialog whose To tag is {@code tag}. */
    private List<UdpPeer.Message> inDialog(String method, String tag) {
        return peer.all().stream().filter(m -> m.status() == 0 && m.method().equals(method)
                && TO_TAG.matcher(m.text()).results().anyMatch(r -> r.group(1).equals(tag))).toList();
    }

    /** Every request the phone sent us, with its To tag, for assertion messages. */
    private List<String> dialogs() {
        return peer.all().stream().filter(m -> m.status() == 0).map(m -> {
            Matcher t = TO_TAG.matcher(m.text());
            return m.method() + (t.find() ? " tag=" + t.group(1) : "") + " " + branch(m.text());
        }).toList();
    }

    private static final Pattern TO_TAG = Pattern.compile("(?mi)^To:[^\r\n]*;tag=([^;\r\n]+)");
    private static final Pattern BRANCH = Pattern.compile("branch=([^;\r\n]+)");

    private static String branch(String message) {
        Matcher m = BRANCH.matcher(message);
        return m.find() ? m.group(1) : "";
    }

    /** A 100 Trying to {@code invite}: no To tag (RFC 3261 §8.2.6.2). */
    private static String trying(String invite) {
        return forbidden(invite, "unused").replace("SIP/2.0 403 Forbidden", "SIP/2.0 100 Trying")
                .replace(";tag=peer1", "").replaceAll("(?m)^Warning:[^\r\n]*\r\n", "");
    }

    /** {@code response} with an SDP answer carrying a fresh SDES key. */
    private static String withSdp(String response) {
        String sdp = AnswerWhileEndingIT.offer();
        return response.replace("Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\nContent-Length: "
                + sdp.length() + "\r\n\r\n" + sdp);
    }
}
