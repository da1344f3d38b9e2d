package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.Capture;
import io.tpmphone.rig.Kamailio;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Registration;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The two measured softphones through a real SIP proxy and registrar — kamailio with its TLS module, which does not
 * attest: REGISTER with digest authentication (SHA-256 on one instance, MD5 on another), refreshed and removed; calls
 * through the proxy, where each phone's first hop is the proxy, rated {@code UNATTESTED}, and its policy decides.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@org.junit.jupiter.api.extension.ExtendWith(SharedRig.class) // the module's shared rig: this class only uses it
class ProxyCallIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final String DOMAIN = "example.test";
    private static final Map<String, String> PASSWORDS = Map.of("alice", "alice-Secret-1", "bob", "bob-Secret-2");
    /** Attested peers must be MEASURED; a call through the enterprise proxy (an UNATTESTED hop) is allowed. */
    private static final String ALLOW_PROXY = "default MEASURED reject\nany sip:*@" + DOMAIN + " UNATTESTED reject\n";
    private static final String MEASURED_ONLY = "default MEASURED reject\n";
    /** Any proxy hop, but the far end MEASURED end to end. */
    private static final String END_TO_END_MEASURED = "default MEASURED reject\nany sip:*@" + DOMAIN
            + " UNATTESTED reject end-to-end MEASURED\n";
    private static final String END_TO_END_HARDENED = "default MEASURED reject\nany sip:*@" + DOMAIN
            + " UNATTESTED reject end-to-end HARDENED\n";

    @TempDir
    static Path dir;
    private TwoHostRig hosts;
    private Kamailio sha256;
    private Kamailio md5;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();

    @BeforeAll
    void start(TwoHostRig rig) throws Exception {
        hosts = rig;
        sha256 = Kamailio.start(dir.resolve("kamailio-sha256"), DOMAIN, "SHA-256", PASSWORDS);
        md5 = Kamailio.start(dir.resolve("kamailio-md5"), DOMAIN, "MD5", PASSWORDS);
    }

    /** Closing a phone removes its registrations: the next test's phones are the only bindings (no forking). */
    @AfterEach
    void closePhones() {
        phones.forEach(SipPhone::close);
        phones.clear();
    }

    @AfterAll
    void stop() throws Exception {
        if (sha256 != null) {
            sha256.close();
        }
        if (md5 != null) {
            md5.close();
        }
    }

    private SipPhone phone(TwoHostRig.Host host, String user, String policy, SipPhone.Media media)
            throws Exception {
        return phone(host, user, policy, media, new SipPhone.Listener() { });
    }

    private static Registration.Account account(Kamailio k, String user, String password, Duration expires) {
        return new Registration.Account("sip:" + user + "@" + DOMAIN, k.tls(), "tls", user, password::toCharArray,
                expires);
    }

    private static Registration registered(SipPhone phone, Registration.Account a, Kamailio k) throws Exception {
        Registration r = phone.register(a).firstOutcome().get(15, TimeUnit.SECONDS);
        assertEquals(Registration.State.REGISTERED, r.state(), () -> r.reason() + "\nkamailio:\n" + k.log());
        return r;
    }

    @Test
    void register_withSha256Digest_isRefreshed_andRemoved() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        Registration r = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(4)),
                sha256);
        assertEquals("SHA-256", r.digestAlgorithm().orElseThrow(), () -> "answered the SHA-256 challenge: " + r);
        assertEquals(Duration.ofSeconds(4), r.granted(), r::reason);
        // refreshed at half the granted time: two refreshes within ~5 s, the binding never lapsing
        Await.until("two refreshes of alice's registration", Duration.ofSeconds(10), () -> r.refreshes() >= 2,
                () -> "refreshes: " + r.refreshes() + ", " + r.state() + " " + r.reason());
        assertEquals(Registration.State.REGISTERED, r.state(), () -> r.reason() + ", after " + r.refreshes()
                + " refreshes\n" + sha256.logTail(60));
        alice.unregister(r, Duration.ofSeconds(5));
        assertEquals(Registration.State.UNREGISTERED, r.state(), () -> r.reason() + "\n" + sha256.logTail(60));
        assertEquals("unregistered", r.reason(), () -> "state " + r.state());
    }

    @Test
    void register_withMd5Digest() throws Exception {
        SipPhone bob = phone(hosts.bob(), "bob", ALLOW_PROXY, null);
        Registration r = registered(bob, account(md5, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), md5);
        assertEquals("MD5", r.digestAlgorithm().orElseThrow(), r::reason);
        bob.unregister(r, Duration.ofSeconds(5));
        assertEquals(Registration.State.UNREGISTERED, r.state(), () -> r.reason() + "\n" + md5.logTail(60));
    }

    @Test
    void aWrongPassword_isRefused_withAReason_andNoLoop() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        Registration r = alice.register(account(sha256, "alice", "not-the-password", Duration.ofSeconds(60)))
                .firstOutcome().get(15, TimeUnit.SECONDS);
        assertEquals(Registration.State.FAILED, r.state(), r::reason);
        assertTrue(r.reason().contains("credentials for alice in realm \"" + DOMAIN + "\" were refused"),
                () -> "the reason says alice's credentials for " + DOMAIN + " were refused: " + r.reason());
        assertTrue(!r.reason().contains("not-the-password"), () -> "no password in the reason: " + r.reason());
        alice.unregister(r, Duration.ofSeconds(1));
    }

    /** What a phone's user saw, in order: decisions (how established, action), ringing, the end. */
    static class Seen implements SipPhone.Listener {
        final List<String> events = new CopyOnWriteArrayList<>();
        final List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();
        volatile String farEndAtRing = "";

        @Override
        public void decided(Call call, CallPolicy.Decision d) {
            decisions.add(d);
            events.add("decided " + d.established() + " " + d.peerLevel() + " " + d.action());
        }

        @Override
        public void ringing(Call call) {
            farEndAtRing = call.farEnd().map(p -> p.level() + " " + p.host().orElse("?")).orElse("none");
            events.add("ringing");
        }

        @Override
        public void remoteRinging(Call call) {
            farEndAtRing = call.farEnd().map(p -> p.level() + " " + p.host().orElse("?")).orElse("none");
            events.add("remote ringing");
        }

        @Override
        public void ended(Call call) {
            events.add("ended");
        }
    }

    private SipPhone phone(TwoHostRig.Host host, String user, String policy, SipPhone.Media media,
                           SipPhone.Listener listener) throws Exception {
        return phone(host, user, policy, media, listener, hosts.verifier(), Duration.ofSeconds(15));
    }

    /** A phone with its own passport verifier (one whose appraisal the test holds) and setup timeout. */
    private SipPhone phone(TwoHostRig.Host host, String user, String policy, SipPhone.Media media,
                           SipPhone.Listener listener, io.tpmphone.tls.PassportVerifier verifier,
                           Duration setupTimeout) throws Exception {
        SipPhone p = SipPhone.start(new SipPhone.Config(user, user, LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        setupTimeout),
                AttestedTlsConfig.of(host.identity(), verifier, Clock.systemUTC()), CallPolicy.parse(policy),
                host.keys(), listener, media, Clock.systemUTC());
        phones.add(p);
        return p;
    }

    @Test
    void twoAttestedPhonesThroughTheProxy_seeEachOtherMeasuredEndToEnd_beforeRinging_andTheProxySeesNoKey()
            throws Exception {
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", END_TO_END_MEASURED,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), aliceSaw);
        SipPhone bob = phone(hosts.bob(), "bob", END_TO_END_MEASURED,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1)), bobSaw);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Capture capture = Capture.start(dir.resolve("end-to-end.pcap"));
        int logBefore = sha256.log().length(); // other tests' SDES calls went through this proxy too
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call.reason() + "\nkamailio:\n" + sha256.log());
        assertTrue(call.endToEnd(), () -> "a DTLS-SRTP call: " + call.display());
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(),
                () -> "alice's first hop: the proxy; " + call.display());
        assertEquals(IntegrityLevel.MEASURED, call.farEnd().orElseThrow().level(),
                () -> "alice sees bob MEASURED end to end: " + call.display());
        assertEquals(java.util.Optional.of("bob"), call.farEnd().orElseThrow().host(), call::display);
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        assertEquals(Call.State.ESTABLISHED, atBob.state(), () -> atBob.reason() + "\n" + sha256.logTail(60));
        assertEquals(IntegrityLevel.UNATTESTED, atBob.peer().orElseThrow().level(), atBob::display);
        assertEquals(IntegrityLevel.MEASURED, atBob.farEnd().orElseThrow().level(),
                () -> "bob sees alice MEASURED end to end: " + atBob.display());
        // decided before ringing, on both sides, with the hop's level beside the far end's
        assertEquals(List.of("decided one hop UNATTESTED ACCEPT", "decided end-to-end DTLS MEASURED ACCEPT",
                "ringing"), bobSaw.events.subList(0, Math.min(3, bobSaw.events.size())),
                () -> "bob's events: " + bobSaw.events);
        assertEquals("MEASURED alice", bobSaw.farEndAtRing, () -> "bob's ring screen: " + bobSaw.events);
        assertEquals("MEASURED bob", aliceSaw.farEndAtRing, () -> "alice at bob's 180: " + aliceSaw.events);
        // both sides' records of the call join on one evidence digest
        String aliceDigest = aliceSaw.decisions.stream().filter(CallPolicy.Decision::endToEnd).findFirst()
                .orElseThrow().evidenceDigest();
        String bobDigest = bobSaw.decisions.stream().filter(CallPolicy.Decision::endToEnd).findFirst()
                .orElseThrow().evidenceDigest();
        assertTrue(aliceDigest.length() == 64 && aliceDigest.equals(bobDigest),
                () -> "one evidence digest on both sides: " + aliceDigest + " / " + bobDigest);
        AudioSession aliceAudio = call.audio().orElseThrow();
        AudioSession bobAudio = atBob.audio().orElseThrow();
        Tones.eachHearsTheOther(aliceAudio, bobAudio, 8_000);
        Capture.Media toBob = capture.stopAndReadMedia(bobAudio.localPort());
        assertTrue(toBob.dtls() > 0 && toBob.rtpPayloads().size() > 20, () -> "DTLS, then SRTP on the media path to"
                + " bob: " + toBob);
        double share = Capture.toneShareIfPcmu(toBob.rtpPayloads(), 1000);
        assertTrue(share < 0.10, () -> "SRTP, not RTP: the wire payload decoded as PCMU must not carry the 1 kHz"
                + " tone; share " + share);
        // what the proxy relayed: DTLS-SRTP offers and answers, fingerprints, and no key
        String proxySaw = sha256.log().substring(logBefore);
        assertTrue(proxySaw.contains("relayed SDP of INVITE") && proxySaw.contains("UDP/TLS/RTP/SAVP")
                && proxySaw.contains("a=fingerprint:sha-256 "), () -> "kamailio relayed the DTLS-SRTP offer:\n"
                + proxySaw);
        assertTrue(proxySaw.contains("relayed SDP of 183 reply"), () -> "the answer in a reliable 183:\n"
                + proxySaw);
        assertTrue(!proxySaw.contains("a=crypto") && !proxySaw.contains("inline:"),
                () -> "no key in anything the proxy relayed:\n" + proxySaw);
        alice.hangUp(call);
        Await.until("bob's call to end", Duration.ofSeconds(10), atBob::state, st -> st == Call.State.ENDED);
        assertEquals("the peer hung up", atBob.reason(), () -> "the BYE went through the proxy (Record-Route): " + atBob
                + "\nkamailio:\n" + sha256.log());
    }

    @Test
    void aCalleeRequiringHardenedEndToEnd_refusesTheMeasuredCaller_403BeforeRinging() throws Exception {
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", END_TO_END_MEASURED,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", END_TO_END_HARDENED,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1)), bobSaw);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.REFUSED, call.state(), () -> call + "\n" + sha256.logTail(60));
        assertTrue(call.reason().startsWith("403") && call.reason().contains("far end level MEASURED is below the"
                + " required HARDENED"), () -> "a 403 through the proxy naming both levels: " + call.reason());
        Call atBob = bob.callById(call.callId()).orElseThrow();
        Await.until("bob's refusal", Duration.ofSeconds(10), atBob::state, st -> st == Call.State.REFUSED);
        assertTrue(!bobSaw.events.contains("ringing"), () -> "bob's phone never rang: " + bobSaw.events);
        assertEquals(IntegrityLevel.MEASURED, atBob.farEnd().orElseThrow().level(), atBob::display);
        // the 403's Warning reached alice through the proxy as bob wrote it: her phone keeps it with the call even
        // when bob's in-band verdict had ended it first (then her reason is the verdict's, and the 403 came to a call
        // she had ended: still acknowledged, and its words kept)
        String said = Await.until("bob's 403 to reach alice", Duration.ofSeconds(10),
                () -> call.farEndSaid().orElse(""), s -> !s.isEmpty());
        assertTrue(said.startsWith("403 ") && said.contains("far end level MEASURED is below the required HARDENED"),
                () -> "the 403 alice received carries bob's Warning with both levels: " + said + "; her call: "
                        + call + "\n" + sha256.logTail(40));
    }

    @Test
    void aCallerRequiringHardenedEndToEnd_cancelsBeforeTheCalleeRings_sayingWhy() throws Exception {
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", END_TO_END_HARDENED,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", END_TO_END_MEASURED,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1)), bobSaw);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.REFUSED, call.state(), () -> call + "\n" + sha256.logTail(60));
        assertTrue(call.reason().startsWith("cancelled: refused by our call policy: far end level MEASURED is below"
                + " the required HARDENED"), () -> "alice says why she cancelled: " + call.reason());
        Call atBob = bob.callById(call.callId()).orElseThrow();
        Await.until("bob's call to end", Duration.ofSeconds(10), atBob::state,
                st -> st == Call.State.ENDED || st == Call.State.REFUSED);
        // bob's own policy accepted alice, so his phone may ring for a moment before the CANCEL; it ends there
        assertTrue(bobSaw.events.contains("decided end-to-end DTLS MEASURED ACCEPT"), () -> "bob decided on alice"
                + " end to end: " + bobSaw.events);
        // alice's CANCEL passed the proxy with her Reason (RFC 3326) naming both levels. Where bob receives it is
        // asserted in aCancelAfterTheCalleesCallEnded_…: here his 403 (after her in-band verdict ended his call) may
        // reach kamailio first, which then answers her CANCEL itself (the INVITE has its final answer).
        List<String> cancels = Await.until("kamailio to relay alice's CANCEL", Duration.ofSeconds(10),
                () -> sha256.log().lines().filter(l -> l.contains(call.callId()) && l.contains("relayed CANCEL"))
                        .toList(), l -> !l.isEmpty());
        assertTrue(cancels.stream().anyMatch(l -> l.contains("Reason: SIP") && l.contains("refused by our call policy:"
                + " far end level MEASURED is below the required HARDENED")), () -> "the CANCEL kamailio received"
                + " carries alice's Reason: " + cancels);
    }

    private static SipPhone.Media tone(double hz) {
        return callId -> AudioSession.open(LOOPBACK, Wav.tone(hz, 0.5, 1));
    }

    private static List<CallPolicy.Decision> endToEnd(Seen seen) {
        return seen.decisions.stream().filter(CallPolicy.Decision::endToEnd).toList();
    }

    /** The lines of kamailio's log (from {@code from}) for replies to {@code method} of {@code callId} it received. */
    private List<String> repliesTo(String method, String callId, int from) {
        // kamailio's log prefix: {message type, CSeq, Call-ID}
        return sha256.log().substring(from).lines().filter(l -> l.contains(" " + method + " " + callId + "}")
                && l.contains("relayed reply ")).toList();
    }

    /**
     * Issue 14 review (3): a genuine callee's {@code 403} arriving while the caller still appraises its evidence.
     * Alice's appraisal of bob is held (her passport verifier's clock, which the test holds, on her DTLS thread)
     * until bob — whose policy needs HARDENED end to end — has refused her with a 403 through kamailio. Her call is
     * refused with his words; released, she still decides on his evidence: exactly one end-to-end record, on his
     * level (MEASURED: his 403 is not read as a level, FAILED or otherwise), noting that the call had ended; bob's own
     * record refuses her; both name one evidence digest.
     */
    @Test
    void aGenuineCallees403_whileTheCallerStillAppraises_isOneRecordOnHisEvidence_andHisWordsAreKept()
            throws Exception {
        HeldAppraisal held = new HeldAppraisal(hosts);
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", END_TO_END_MEASURED, tone(1000), aliceSaw, held.verifier(),
                Duration.ofSeconds(15));
        SipPhone bob = phone(hosts.bob(), "bob", END_TO_END_HARDENED, tone(440), bobSaw);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call;
        held.arm();
        try {
            call = alice.call("sip:bob@" + DOMAIN, ra);
            assertTrue(held.awaitHeld(Duration.ofSeconds(30)), () -> "alice's DTLS thread reached her appraisal of"
                    + " bob: " + call + ", " + aliceSaw.events + "\n" + sha256.logTail(40));
            Await.until("bob's 403 to refuse alice's call while she appraises", Duration.ofSeconds(20), call::state,
                    st -> st == Call.State.REFUSED);
            assertTrue(call.reason().startsWith("403 ") && call.reason().contains("far end level MEASURED is below"
                    + " the required HARDENED"), () -> "alice's call refused by bob's 403 naming both levels: "
                    + call.reason());
            String said = call.farEndSaid().orElse("");
            assertTrue(said.startsWith("403 ") && said.contains("far end level MEASURED is below the required"
                    + " HARDENED"), () -> "his words kept with the call: " + said);
            assertEquals(List.of(), endToEnd(aliceSaw), () -> "alice records nothing while she appraises: "
                    + aliceSaw.events);
        } finally {
            held.release();
        }
        List<CallPolicy.Decision> hers = Await.until("alice's end-to-end decision", Duration.ofSeconds(20),
                () -> endToEnd(aliceSaw), l -> !l.isEmpty());
        assertEquals(1, hers.size(), () -> "exactly one end-to-end record on alice's side: " + aliceSaw.events);
        CallPolicy.Decision d = hers.get(0);
        assertEquals(IntegrityLevel.MEASURED, d.peerLevel(), () -> "decided on bob's evidence, not on his 403: " + d);
        assertEquals(CallPolicy.Action.ACCEPT, d.action(), () -> "her policy accepts a MEASURED far end: " + d);
        assertTrue(d.reason().endsWith("(the call had ended before this decision: nothing followed it)"),
                () -> "her record says the call had ended first: " + d.reason());
        List<CallPolicy.Decision> his = endToEnd(bobSaw);
        assertEquals(1, his.size(), () -> "bob's own end-to-end record: " + bobSaw.events);
        assertEquals(CallPolicy.Action.REJECT, his.get(0).action(), his::toString);
        assertTrue(his.get(0).reason().contains("far end level MEASURED is below the required HARDENED"),
                () -> "bob refuses alice naming both levels: " + his.get(0));
        assertTrue(d.evidenceDigest().length() == 64 && d.evidenceDigest().equals(his.get(0).evidenceDigest()),
                () -> "both records name one evidence digest: " + d.evidenceDigest() + " / "
                        + his.get(0).evidenceDigest());
        assertTrue(!bobSaw.events.contains("ringing") && !aliceSaw.events.contains("remote ringing"),
                () -> "nothing rang: bob " + bobSaw.events + ", alice " + aliceSaw.events);
        assertEquals(Call.State.REFUSED, call.state(), () -> "her later decision changed nothing: " + call);
    }

    /**
     * Issue 14 review (MEDIUM 3): a callee whose setup deadline ends its call before it answered gives the INVITE its
     * final answer. Bob accepts alice and waits for her verdict before ringing; her appraisal of him is held past his
     * setup deadline (10 s: his DTLS timeouts stay the defaults). Before, his INVITE server transaction stayed in
     * Proceeding and the INVITE hung at kamailio (Timer C, minutes); now bob answers {@code 480} with a Warning saying
     * why, kamailio relays it, and alice's call is refused with bob's words. Nothing rang.
     */
    @Test
    void aCalleesSetupDeadline_answersTheUnansweredInvite480_throughTheProxy_andNothingRings() throws Exception {
        HeldAppraisal held = new HeldAppraisal(hosts);
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", END_TO_END_HARDENED, tone(1000), aliceSaw, held.verifier(),
                Duration.ofSeconds(15));
        SipPhone bob = phone(hosts.bob(), "bob", END_TO_END_MEASURED, tone(440), bobSaw, hosts.verifier(),
                Duration.ofSeconds(10));
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        int logBefore = sha256.log().length();
        Call call;
        Call atBob;
        held.arm();
        try {
            call = alice.call("sip:bob@" + DOMAIN, ra);
            assertTrue(held.awaitHeld(Duration.ofSeconds(30)), () -> "alice's DTLS thread reached her appraisal of"
                    + " bob: " + call + ", " + aliceSaw.events + "\n" + sha256.logTail(40));
            atBob = Await.until("the INVITE to reach bob", Duration.ofSeconds(10), () -> bob.callById(call.callId()),
                    java.util.Optional::isPresent).orElseThrow();
            Await.until("bob's setup deadline to end his call", Duration.ofSeconds(30), atBob::state,
                    st -> st == Call.State.ENDED);
            assertTrue(atBob.reason().startsWith("not set up within 10 s"), () -> "bob's own deadline ended it: "
                    + atBob);
            List<String> relayed = Await.until("kamailio to relay bob's final answer", Duration.ofSeconds(15),
                    () -> repliesTo("INVITE", call.callId(), logBefore).stream()
                            .filter(l -> l.matches(".*relayed reply [3-6]\\d\\d .*")).toList(), l -> !l.isEmpty());
            assertTrue(relayed.stream().allMatch(l -> l.contains("relayed reply 480 ")),
                    () -> "bob answered the INVITE 480: " + relayed);
            Await.until("bob's 480 to refuse alice's call", Duration.ofSeconds(15), call::state,
                    st -> st == Call.State.REFUSED);
            assertTrue(call.reason().startsWith("480 ") && call.reason().contains("not set up within 10 s"),
                    () -> "alice's call refused by bob's 480, with his Warning saying why: " + call.reason());
        } finally {
            held.release();
        }
        assertTrue(!bobSaw.events.contains("ringing"), () -> "bob's phone never rang: " + bobSaw.events);
        List<String> replies = repliesTo("INVITE", call.callId(), logBefore);
        assertTrue(replies.stream().noneMatch(l -> l.contains("relayed reply 180 ")), () -> "no 180 left bob: "
                + replies);
        assertEquals(Call.State.REFUSED, call.state(), () -> "her later decision changed nothing: " + call);
    }

    @Test
    void aCallerRequiringMeasured_refusesTheUnattestedProxyHop_beforeTheInvite() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", MEASURED_ONLY, null);
        SipPhone bob = phone(hosts.bob(), "bob", ALLOW_PROXY, null);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("refused by our call policy: peer level UNATTESTED is below the required"
                + " MEASURED"), () -> "our policy refuses the UNATTESTED proxy hop; the call: " + call + ", "
                + call.display());
        // Shown by bob moving on: a later call through the same proxy from a phone that allows it reaches bob; the
        // refused INVITE, had it left, would have been there first.
        SipPhone allowing = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        Registration rl = registered(allowing, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        Call later = allowing.await(allowing.call("sip:bob@" + DOMAIN, rl));
        assertEquals(Call.State.ESTABLISHED, later.state(), () -> later + "\nkamailio:\n" + sha256.log());
        Call laterAtBob = bob.await(bob.callById(later.callId()).orElseThrow(
                () -> new AssertionError("bob has no call " + later.callId() + ": " + bob.calls())));
        assertEquals(Call.State.ESTABLISHED, laterAtBob.state(), laterAtBob::toString);
        assertTrue(bob.callById(call.callId()).isEmpty(), () -> "no INVITE reached bob; bob's calls: " + bob.calls());
        allowing.hangUp(later);
    }

    @Test
    void aCalleeRequiringMeasured_refuses403_throughTheProxy_withAWarning() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", ALLOW_PROXY, null);
        SipPhone bob = phone(hosts.bob(), "bob", MEASURED_ONLY, null);
        Registration ra = registered(alice, account(sha256, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                sha256);
        registered(bob, account(sha256, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), sha256);
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.REFUSED, call.state(), () -> call + "\nkamailio:\n" + sha256.log());
        assertTrue(call.reason().startsWith("403") && call.reason().contains("peer level UNATTESTED is below the"
                + " required MEASURED"), () -> "a 403 naming both levels; the call: " + call + "\n"
                + sha256.logTail(60));
        Call atBob = bob.callById(call.callId()).orElseThrow();
        assertEquals(IntegrityLevel.UNATTESTED, atBob.peer().orElseThrow().level(), atBob::display);
    }
}
