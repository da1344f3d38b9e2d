package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.Capture;
import io.tpmphone.rig.Kamailio;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Registration;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.PassportVerifier;
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
 * DTLS-SRTP calls through a real kamailio (TLS, MD5 digest) with software host identities — the SIP and media
 * mechanics, no measured host (so no machine-wide lock): the answer in a reliable 183 and the PRACK through the proxy,
 * fingerprints and no key in what it relays, SRTP on the wire, tones both ways; and baresip's {@code dtls_srtp} both
 * ways, {@code UNATTESTED} end to end, accepted or refused by the policy. A software identity's evidence has no
 * passport: it is {@code FAILED} end to end, which these phones' policies accept. What the levels mean with measured
 * hosts is {@code ProxyCallIT}'s and {@code RelayAttackIT}'s.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DtlsThroughProxyIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final String DOMAIN = "example.test";
    private static final Map<String, String> PASSWORDS = Map.of("alice", "alice-Secret-1", "bob", "bob-Secret-2",
            "carol", "carol-Secret-3");
    /** Any phone behind the proxy, end to end too: software identities are FAILED, baresip UNATTESTED. */
    private static final String ALLOW_ALL_END_TO_END = "default MEASURED reject\nany sip:*@" + DOMAIN
            + " UNATTESTED reject end-to-end FAILED\n";
    private static final String ALLOW_UNATTESTED_END_TO_END = "default MEASURED reject\nany sip:*@" + DOMAIN
            + " UNATTESTED reject end-to-end UNATTESTED\n";
    private static final String END_TO_END_MEASURED = "default MEASURED reject\nany sip:*@" + DOMAIN
            + " UNATTESTED reject end-to-end MEASURED\n";

    @TempDir
    static Path dir;
    private SoftwareHosts hosts;
    private PassportVerifier verifier;
    private Kamailio proxy;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();
    private final List<Baresip> baresips = new CopyOnWriteArrayList<>();

    @BeforeAll
    void start() throws Exception {
        hosts = new SoftwareHosts();
        verifier = hosts.verifier();
        proxy = Kamailio.start(dir.resolve("kamailio"), DOMAIN, "MD5", PASSWORDS);
    }

    @AfterEach
    void closePhones() {
        phones.forEach(SipPhone::close);
        phones.clear();
        baresips.forEach(Baresip::close);
        baresips.clear();
    }

    @AfterAll
    void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
    }

    private SipPhone phone(String user, String policy, double tone, SipPhone.Listener listener) throws Exception {
        SipPhone p = SipPhone.start(new SipPhone.Config(user, user, LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.identity(user), verifier,
                        Clock.systemUTC()), CallPolicy.parse(policy), keys(), listener,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(tone, 0.5, 1)), Clock.systemUTC());
        phones.add(p);
        return p;
    }

    /** SDES keys are not used by DTLS-SRTP calls; a phone still needs a source for its SDES calls. */
    private static SipPhone.Keys keys() {
        return new SipPhone.Keys() {
            @Override
            public io.tpmphone.softphone.SrtpKeyMaterial srtpKey(String suite, String callId) {
                throw new IllegalStateException("a DTLS-SRTP call asked for an SDES key");
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) {
                throw new IllegalStateException("a DTLS-SRTP call checked an SDES key");
            }
        };
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

    /** What a phone's user saw, in order. */
    static final class Seen extends ProxyCallIT.Seen {
    }

    @Test
    void aDtlsSrtpCallThroughTheProxy_decidesBeforeRinging_carriesSrtp_andTheProxySeesNoKey() throws Exception {
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone("alice", ALLOW_ALL_END_TO_END, 1000, aliceSaw);
        SipPhone bob = phone("bob", ALLOW_ALL_END_TO_END, 440, bobSaw);
        Registration ra = registered(alice, account(proxy, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                proxy);
        registered(bob, account(proxy, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), proxy);
        Capture capture = Capture.start(dir.resolve("dtls.pcap"));
        Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call + "\nkamailio:\n" + proxy.logTail(80));
        assertTrue(call.endToEnd(), call::display);
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(), call::display);
        assertEquals(IntegrityLevel.FAILED, call.farEnd().orElseThrow().level(), call::display);
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        assertEquals(Call.State.ESTABLISHED, atBob.state(), atBob::toString);
        assertEquals(List.of("decided one hop UNATTESTED ACCEPT", "decided end-to-end DTLS FAILED ACCEPT", "ringing"),
                bobSaw.events.subList(0, Math.min(3, bobSaw.events.size())), () -> "bob's events: " + bobSaw.events);
        assertEquals("FAILED alice", bobSaw.farEndAtRing, () -> "bob's events: " + bobSaw.events);
        assertEquals("FAILED bob", aliceSaw.farEndAtRing, () -> "alice's events: " + aliceSaw.events);
        AudioSession aliceAudio = call.audio().orElseThrow();
        AudioSession bobAudio = atBob.audio().orElseThrow();
        Tones.eachHearsTheOther(aliceAudio, bobAudio, 8_000);
        Capture.Media toBob = capture.stopAndReadMedia(bobAudio.localPort());
        assertTrue(toBob.dtls() > 0 && toBob.rtpPayloads().size() > 20, () -> "DTLS, then SRTP on the media path to"
                + " bob: " + toBob);
        double share = Capture.toneShareIfPcmu(toBob.rtpPayloads(), 1000);
        assertTrue(share < 0.10, () -> "SRTP, not RTP, on the wire: tone share " + share);
        String proxySaw = proxy.log();
        assertTrue(proxySaw.contains("relayed SDP of INVITE") && proxySaw.contains("UDP/TLS/RTP/SAVP")
                && proxySaw.contains("a=fingerprint:sha-256 ") && proxySaw.contains("relayed SDP of 183 reply"),
                () -> "kamailio relayed the DTLS-SRTP offer and the answer in a 183:\n" + proxySaw);
        assertTrue(!proxySaw.contains("a=crypto") && !proxySaw.contains("inline:"),
                () -> "no key in anything the proxy relayed:\n" + proxySaw);
        alice.hangUp(call);
        Await.until("bob's call to end", Duration.ofSeconds(10), atBob::state, st -> st == Call.State.ENDED);
    }

    @Test
    void aProxyThatRewritesTheFingerprint_endsTheCallBeforeRinging_withFingerprintMismatch() throws Exception {
        String forged = "a=fingerprint:sha-256 " + "AB:".repeat(31) + "AB";
        try (Kamailio rewriting = Kamailio.start(dir.resolve("kamailio-rewriting"), DOMAIN, "MD5", PASSWORDS,
                "if (is_method(\"INVITE\")) { subst_body(\"/a=fingerprint:sha-256 [0-9A-F:]+/" + forged + "/\"); }",
                "")) {
            Seen bobSaw = new Seen();
            SipPhone alice = phone("alice", ALLOW_ALL_END_TO_END, 1000, new Seen());
            SipPhone bob = phone("bob", ALLOW_ALL_END_TO_END, 440, bobSaw);
            Registration ra = registered(alice, account(rewriting, "alice", PASSWORDS.get("alice"),
                    Duration.ofSeconds(60)), rewriting);
            registered(bob, account(rewriting, "bob", PASSWORDS.get("bob"), Duration.ofSeconds(60)), rewriting);
            Call call = alice.await(alice.call("sip:bob@" + DOMAIN, ra));
            assertEquals(Call.State.REFUSED, call.state(), () -> call + "\n" + rewriting.logTail(60));
            Call atBob = bob.callById(call.callId()).orElseThrow();
            Await.until("bob's call to end", Duration.ofSeconds(15), atBob::state,
                    st -> st == Call.State.REFUSED || st == Call.State.ENDED);
            assertTrue(atBob.reason().contains("FINGERPRINT_MISMATCH"), () -> "bob says why: " + atBob.reason());
            assertTrue(call.reason().contains("FINGERPRINT_MISMATCH") || call.reason().contains("bad_certificate"),
                    () -> "alice is told why: " + call.reason());
            assertTrue(!bobSaw.events.contains("ringing"), () -> "bob never rang: " + bobSaw.events);
            assertEquals(0, call.audio().orElseThrow().stats().packetsSent(), "no SRTP left alice");
        }
    }

    /** baresip as carol@DOMAIN, registered at the MD5 kamailio, with DTLS-SRTP and rtcp-mux, sending 600 Hz. */
    private Baresip carol() throws Exception {
        Baresip b = Baresip.startDtlsSrtp(dir.resolve("carol-" + System.nanoTime()), "carol", 600, DOMAIN,
                proxy.tls(), PASSWORDS.get("carol"));
        baresips.add(b);
        // baresip registers as it starts, before our control connection hears its events: its log says so
        Await.until("baresip's registration at kamailio", Duration.ofSeconds(15),
                () -> b.log().contains("200 OK (kamailio") && b.log().contains("binding]"), b::diagnostics);
        return b;
    }

    @Test
    void baresipWithDtlsSrtp_callsUsThroughTheProxy_isUnattestedEndToEnd_acceptedByPolicy_withTones()
            throws Exception {
        Seen aliceSaw = new Seen();
        SipPhone alice = phone("alice", ALLOW_UNATTESTED_END_TO_END, 1000, aliceSaw);
        registered(alice, account(proxy, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)), proxy);
        Baresip carol = carol();
        carol.dial("sip:alice@" + DOMAIN);
        carol.await("CALL_ESTABLISHED", Duration.ofSeconds(20));
        Await.until("alice to see carol's call", Duration.ofSeconds(10), () -> !alice.calls().isEmpty(),
                () -> "no call; " + carol.diagnostics());
        Call call = alice.await(alice.calls().iterator().next());
        Await.until("alice's call to be established", Duration.ofSeconds(15), call::state,
                st -> st != Call.State.SETTING_UP && st != Call.State.RINGING);
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call + carol.diagnostics() + "\n" + proxy.logTail(80));
        assertTrue(call.endToEnd(), () -> "a DTLS-SRTP call: " + call.display());
        // baresip 1.0 sends no Supported: 100rel, so we answer in the 200 and decide on the far end after the ACK
        Await.until("alice's decision on carol end to end", Duration.ofSeconds(15), call::farEnd,
                java.util.Optional::isPresent);
        assertEquals(IntegrityLevel.UNATTESTED, call.farEnd().orElseThrow().level(),
                () -> "baresip sends no evidence: " + call.display());
        AudioSession audio = call.audio().orElseThrow();
        Await.until("alice to decode 8000 samples of carol's audio", Duration.ofSeconds(20),
                () -> audio.received().samples().length >= 8000, () -> audio.stats() + carol.diagnostics());
        assertEquals(600.0, Wav.dominantFrequency(audio.received().samples(), 4000), 20.0,
                () -> "alice hears baresip's tone over DTLS-SRTP: " + audio.stats());
        alice.hangUp(call);
        carol.await("CALL_CLOSED", Duration.ofSeconds(10));
        assertEquals(1000.0, Wav.dominantFrequency(carol.receivedSamples(Duration.ofSeconds(5)), 4000), 20.0,
                "baresip's recording (" + carol.receivedWav() + ") holds our tone");
    }

    @Test
    void weCallBaresipWithDtlsSrtp_throughTheProxy_isUnattestedEndToEnd_withTones() throws Exception {
        SipPhone alice = phone("alice", ALLOW_UNATTESTED_END_TO_END, 1000, new Seen());
        Registration ra = registered(alice, account(proxy, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                proxy);
        Baresip carol = carol();
        Call call = alice.await(alice.call("sip:carol@" + DOMAIN, ra));
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call + carol.diagnostics() + "\n" + proxy.logTail(80));
        assertTrue(call.endToEnd(), () -> "a DTLS-SRTP call: " + call.display());
        assertEquals(IntegrityLevel.UNATTESTED, call.farEnd().orElseThrow().level(), call::display);
        AudioSession audio = call.audio().orElseThrow();
        Await.until("alice to decode 8000 samples of carol's audio", Duration.ofSeconds(20),
                () -> audio.received().samples().length >= 8000, () -> audio.stats() + carol.diagnostics());
        assertEquals(600.0, Wav.dominantFrequency(audio.received().samples(), 4000), 20.0,
                () -> "alice hears baresip's tone over DTLS-SRTP: " + audio.stats());
        alice.hangUp(call);
        carol.await("CALL_CLOSED", Duration.ofSeconds(10));
        assertEquals(1000.0, Wav.dominantFrequency(carol.receivedSamples(Duration.ofSeconds(5)), 4000), 20.0,
                "baresip's recording (" + carol.receivedWav() + ") holds our tone");
    }

    @Test
    void baresipWithDtlsSrtp_isRefused_byAPolicyRequiringMeasuredEndToEnd() throws Exception {
        Seen aliceSaw = new Seen();
        SipPhone alice = phone("alice", END_TO_END_MEASURED, 1000, aliceSaw);
        Registration ra = registered(alice, account(proxy, "alice", PASSWORDS.get("alice"), Duration.ofSeconds(60)),
                proxy);
        Baresip carol = carol();
        Call out = alice.await(alice.call("sip:carol@" + DOMAIN, ra));
        assertTrue(out.state() == Call.State.REFUSED || out.state() == Call.State.ENDED, out::toString);
        assertTrue(out.reason().contains("far end level UNATTESTED is below the required MEASURED"),
                () -> "our refusal of baresip names both levels: " + out.reason() + carol.diagnostics());
        // baresip has one RTP port pair: its first call must be gone before it dials
        carol.await("CALL_CLOSED", Duration.ofSeconds(20));
        carol.dial("sip:alice@" + DOMAIN);
        carol.await(new java.util.function.Predicate<Baresip.Event>() {
            private int closed;

            @Override
            public boolean test(Baresip.Event e) {
                return e.type().equals("CALL_CLOSED") && ++closed == 2;
            }
        }, "the end of carol's own call", Duration.ofSeconds(20));
        Await.until("alice's two refusals end to end", Duration.ofSeconds(10), () -> aliceSaw.decisions.stream()
                .filter(CallPolicy.Decision::endToEnd).filter(d -> d.action() == CallPolicy.Action.REJECT).count(),
                n -> n >= 2);
        assertTrue(aliceSaw.decisions.stream().filter(CallPolicy.Decision::endToEnd)
                        .filter(d -> d.action() == CallPolicy.Action.REJECT).count() >= 2,
                () -> "both calls refused end to end: " + aliceSaw.decisions);
    }



}
