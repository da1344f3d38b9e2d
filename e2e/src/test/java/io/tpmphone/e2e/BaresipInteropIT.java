package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.AuditedDecisions;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interop with a standard third-party SIP user agent from Debian: baresip 1.0.0 ({@link Baresip}), over TLS with
 * SDES-SRTP (AES_CM_128_HMAC_SHA1_80) and PCMU, both ways, against a measured host's softphone ("alice" of the
 * {@link TwoHostRig}). baresip sends no attestation, so our side rates it UNATTESTED and the call policy decides: a
 * rule accepting it gives a call with audio both ways (each side checks the other's tone); the default MEASURED
 * refuses it — with 403 and a Warning when it calls us, before our INVITE is written when we call it — and both
 * refusals are in the server's audit log.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@org.junit.jupiter.api.extension.ExtendWith(SharedRig.class) // the module's shared rig: this class only uses it
class BaresipInteropIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final Duration EVENT_TIMEOUT = Duration.ofSeconds(15);
    /** What our phone sends, and what baresip sends (different, so each side can tell whose tone it hears). */
    private static final double OUR_TONE = 1000;
    private static final double BARESIP_TONE = 600;
    /** 1.5 s of audio at 8 kHz: receiving needs about 1 s to start on our side. */
    private static final int ENOUGH_SAMPLES = 12_000;

    @TempDir
    static Path dir;
    private TwoHostRig hosts;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();
    private final List<Baresip> peers = new CopyOnWriteArrayList<>();
    private final AtomicInteger instances = new AtomicInteger();

    @BeforeAll
    void start(TwoHostRig rig) {
        hosts = rig;
    }

    @AfterEach
    void stopPeers() {
        peers.forEach(Baresip::close);
        peers.clear();
        phones.forEach(SipPhone::close);
        phones.clear();
    }

    /** What our phone's user saw: every call (incoming ones appear here first) and decision. */
    private static final class Seen implements SipPhone.Listener {
        final List<Call> calls = new CopyOnWriteArrayList<>();
        final List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();

        @Override
        public void decided(Call call, CallPolicy.Decision decision) {
            if (!calls.contains(call)) {
                calls.add(call);
            }
            decisions.add(decision);
        }

        Call firstCall(Baresip peer) throws InterruptedException {
            Await.until("our phone to see baresip's call", Duration.ofSeconds(10), () -> !calls.isEmpty(),
                    () -> "no call, decisions " + decisions + peer.diagnostics());
            return calls.get(0);
        }
    }

    /** Alice's softphone with SRTP audio sending {@link #OUR_TONE}, deciding calls by {@code policy}. */
    private SipPhone alice(String policy, SipPhone.Listener listener) throws Exception {
        SipPhone p = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.alice().identity(), hosts.verifier(),
                        Clock.systemUTC()), CallPolicy.parse(policy), hosts.alice().keys(), listener,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(OUR_TONE, 0.5, 1)), Clock.systemUTC());
        phones.add(p);
        return p;
    }

    private Baresip baresip() throws Exception {
        Baresip b = Baresip.start(dir.resolve("baresip-" + instances.incrementAndGet()), "baresip", BARESIP_TONE);
        peers.add(b);
        return b;
    }

    /**
     * Alice's TLS address as baresip dials it. baresip 1.0.0's {@code dial} does not know {@code sips:} (it makes
     * {@code sip:sips:alice@...} of it); a {@code sip:} URI goes over TLS because its account says
     * {@code transport=tls}, which it appends.
     */
    private static String tlsUri(SipPhone p) {
        return "sip:alice@127.0.0.1:" + p.config().tlsPort();
    }

    @Test
    void baresipCallsUs_overTls_isRatedUnattested_acceptedByARule_andTonesCrossBothWays() throws Exception {
        Seen seen = new Seen();
        SipPhone alice = alice("default MEASURED reject\nin sip:baresip@127.0.0.1 UNATTESTED accept", seen);
        Baresip peer = baresip();
        peer.dial(tlsUri(alice));
        Baresip.Event established = peer.await("CALL_ESTABLISHED", EVENT_TIMEOUT);
        assertEquals("outgoing", established.direction(), "baresip's event: " + established);
        Call call = alice.await(seen.firstCall(peer));
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call.reason() + peer.diagnostics());
        assertEquals(established.callId(), call.callId(), "our call " + call + ", baresip's " + established);
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(), () -> "peer of " + call + ": "
                + call.peer().orElseThrow().display());
        assertEquals(CallPolicy.Action.ACCEPT, seen.decisions.get(0).action(), () -> "decisions: " + seen.decisions);
        assertEquals("in sip:baresip@127.0.0.1", seen.decisions.get(0).rule(), () -> "decisions: " + seen.decisions);
        assertTrue(overTls(peer.log(), alice.config().tlsPort(), "INVITE " + tlsUri(alice) + ";transport=tls"),
                () -> "baresip's trace shows its INVITE sent over TLS" + peer.diagnostics());
        Baresip.Event menc = peer.await("CALL_MENC", EVENT_TIMEOUT);
        assertEquals("0,audio,AES_CM_128_HMAC_SHA1_80", menc.param(),
                () -> "baresip uses SDES-SRTP with our suite: " + menc);

        AudioSession audio = call.audio().orElseThrow();
        awaitAudio(audio, peer);
        assertEquals(BARESIP_TONE, Wav.dominantFrequency(audio.received().samples(), 4000), 20.0,
                () -> "we hear baresip's tone; we decoded " + audio.received().samples().length + " samples, "
                        + audio.stats());
        AudioSession.Stats s = audio.stats();
        assertTrue(s.packetsReceived() > 50 && s.packetsSent() > 50,
                () -> "we sent and received more than 50 RTP packets: " + s);

        peer.hangUp();
        Baresip.Event closed = peer.await("CALL_CLOSED", EVENT_TIMEOUT);
        assertTrue(closed.param().contains("reset by user"), "baresip hung up: " + closed);
        Await.until("our side to see the call end", Duration.ofSeconds(10), call::state, st -> st == Call.State.ENDED);
        assertEquals("the peer hung up", call.reason(), () -> call + peer.diagnostics());
        assertEquals(OUR_TONE, Wav.dominantFrequency(peer.receivedSamples(Duration.ofSeconds(5)), 4000), 20.0,
                "baresip's recording (" + peer.receivedWav() + ") holds our tone");
    }

    @Test
    void weCallBaresip_overSips_itAutoAnswers_isRatedUnattested_andTonesCrossBothWays() throws Exception {
        Seen seen = new Seen();
        SipPhone alice = alice("default MEASURED reject\nout sips:baresip@127.0.0.1 UNATTESTED accept", seen);
        Baresip peer = baresip();
        Call call = alice.await(alice.call("sips:baresip@127.0.0.1", peer.tlsAddress()));
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> call.reason() + peer.diagnostics());
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(), () -> "peer of " + call + ": "
                + call.peer().orElseThrow().display());
        assertEquals(CallPolicy.Action.ACCEPT, seen.decisions.get(0).action(), () -> "decisions: " + seen.decisions);
        Baresip.Event established = peer.await("CALL_ESTABLISHED", EVENT_TIMEOUT);
        assertEquals("incoming", established.direction(), "baresip's event: " + established);
        assertTrue(overTls(peer.log(), peer.tlsAddress().getPort(), "INVITE sips:baresip@127.0.0.1"),
                () -> "baresip's trace shows our INVITE received over TLS" + peer.diagnostics());
        assertEquals(call.callId(), established.callId(), "our call " + call + ", baresip's " + established);
        assertEquals(1, call.remoteSdp().orElseThrow().cryptos().size(), () -> "baresip answered with its SDES key: "
                + call.remoteSdp().orElseThrow().cryptos());

        AudioSession audio = call.audio().orElseThrow();
        awaitAudio(audio, peer);
        assertEquals(BARESIP_TONE, Wav.dominantFrequency(audio.received().samples(), 4000), 20.0,
                () -> "we hear baresip's tone; we decoded " + audio.received().samples().length + " samples, "
                        + audio.stats());

        alice.hangUp(call);
        Baresip.Event closed = peer.await("CALL_CLOSED", EVENT_TIMEOUT);
        assertTrue(closed.param().contains("reset by peer"), "baresip saw our BYE: " + closed);
        assertEquals(OUR_TONE, Wav.dominantFrequency(peer.receivedSamples(Duration.ofSeconds(5)), 4000), 20.0,
                "baresip's recording (" + peer.receivedWav() + ") holds our tone");
    }

    @Test
    void aPolicyRequiringMeasured_refusesBaresipsCall403_withAWarningNamingBothLevels_andAuditsIt()
            throws Exception {
        Seen seen = new Seen();
        SipPhone alice = alice("default MEASURED reject", new AuditedDecisions(hosts.alice().broker(), seen));
        Baresip peer = baresip();
        peer.dial(tlsUri(alice));
        Baresip.Event closed = peer.await("CALL_CLOSED", EVENT_TIMEOUT);
        assertTrue(closed.param().startsWith("403"), () -> "baresip's reason: " + closed + peer.diagnostics());
        Call call = alice.await(seen.firstCall(peer));
        assertEquals(Call.State.REFUSED, call.state(), () -> call + peer.diagnostics());
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(), () -> "peer of " + call + ": "
                + call.peer().orElseThrow().display());
        assertTrue(call.reason().startsWith("403") && call.reason().contains("peer level UNATTESTED is below the"
                + " required MEASURED"), () -> "a 403 naming both levels; the call: " + call + ", " + call.display());
        // baresip's SIP trace shows the 403 it received, with our Warning.
        String log = peer.log();
        assertTrue(log.contains("SIP/2.0 403") && log.matches("(?s).*Warning: 399 alice \"peer level UNATTESTED is"
                + " below the required MEASURED.*"), () -> "baresip received our 403 with its Warning"
                + peer.diagnostics());
        assertFalse(peer.events().stream().anyMatch(e -> e.type().equals("CALL_ESTABLISHED")),
                () -> "baresip established no call" + peer.diagnostics());

        JsonNode record = auditRecord(call.callId());
        assertEquals("REJECT", record.get("outcome").asText(), record::toString);
        assertEquals("IN", record.at("/detail/direction").asText(), record::toString);
        assertEquals("UNATTESTED", record.at("/detail/peerLevel").asText(), record::toString);
        assertEquals("MEASURED", record.at("/detail/requiredLevel").asText(), record::toString);
    }

    @Test
    void aPolicyRequiringMeasured_refusesOurCallToBaresip_beforeTheInviteIsWritten_andAuditsIt() throws Exception {
        Seen seen = new Seen();
        SipPhone alice = alice("default MEASURED reject", new AuditedDecisions(hosts.alice().broker(), seen));
        Baresip peer = baresip();
        Call call = alice.await(alice.call("sips:baresip@127.0.0.1", peer.tlsAddress()));
        assertEquals(Call.State.REFUSED, call.state(), () -> call + peer.diagnostics());
        assertTrue(call.reason().contains("our call policy") && call.reason().contains("peer level UNATTESTED is"
                + " below the required MEASURED"), () -> "refused by our call policy, naming both levels; the call: "
                + call + ", " + call.display());
        assertEquals(IntegrityLevel.UNATTESTED, call.peer().orElseThrow().level(), () -> "peer of " + call + ": "
                + call.peer().orElseThrow().display());
        // baresip accepted the TLS connection (its handshake is what rated it) but never received a request. To show
        // that without waiting for nothing: a second phone whose policy accepts baresip calls it; once baresip has
        // established that call, the refused one would have arrived long before it.
        // (no media: the check is about signalling, and hanging up a call whose audio is just starting trips libjitsi)
        SipPhone accepting = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.alice().identity(), hosts.verifier(),
                        Clock.systemUTC()), CallPolicy.parse("default MEASURED reject\nout sips:baresip@127.0.0.1"
                        + " UNATTESTED accept"), hosts.alice().keys(), new Seen(), Clock.systemUTC());
        phones.add(accepting);
        Call later = accepting.await(accepting.call("sips:baresip@127.0.0.1", peer.tlsAddress()));
        assertEquals(Call.State.ESTABLISHED, later.state(), () -> later.reason() + peer.diagnostics());
        peer.await(e -> e.type().equals("CALL_ESTABLISHED") && e.callId().equals(later.callId()),
                "CALL_ESTABLISHED of the later call " + later.callId(), EVENT_TIMEOUT);
        assertTrue(peer.events().stream().filter(e -> e.type().startsWith("CALL_"))
                        .allMatch(e -> e.callId().equals(later.callId())),
                () -> "baresip saw no call but the later one (" + later.callId() + ")" + peer.diagnostics());
        assertFalse(peer.log().contains(call.callId()), () -> "no request of the refused call " + call.callId()
                + " reached baresip" + peer.diagnostics());
        assertEquals(1, Pattern.compile("TLS 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:" + peer.tlsAddress().getPort()
                        + "\\s+INVITE sips:baresip@127\\.0\\.0\\.1 SIP/2\\.0").matcher(peer.log()).results().count(),
                () -> "only the later call's INVITE reached baresip" + peer.diagnostics());
        accepting.hangUp(later);

        JsonNode record = auditRecord(call.callId());
        assertEquals("REJECT", record.get("outcome").asText(), record::toString);
        assertEquals("OUT", record.at("/detail/direction").asText(), record::toString);
        assertEquals("UNATTESTED", record.at("/detail/peerLevel").asText(), record::toString);
        assertEquals("sips:baresip@127.0.0.1", record.at("/detail/peer").asText(), record::toString);
    }

    /** Whether baresip's SIP trace ({@code -s}) shows {@code requestLine} on a TLS connection to {@code port}. */
    private static boolean overTls(String trace, int port, String requestLine) {
        return Pattern.compile("TLS 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:" + port + "\\s+"
                + Pattern.quote(requestLine) + " SIP/2\\.0").matcher(trace).find();
    }

    /** Until each side has {@link #ENOUGH_SAMPLES} of the other's audio (bounded). */
    private static void awaitAudio(AudioSession ours, Baresip peer) throws Exception {
        Await.until("each side to receive " + ENOUGH_SAMPLES + " samples", Duration.ofSeconds(20),
                () -> ours.received().samples().length >= ENOUGH_SAMPLES
                        && peer.receivedSampleCount() >= ENOUGH_SAMPLES,
                () -> "we got " + ours.received().samples().length + " (" + ours.stats() + "), baresip recorded "
                        + peer.receivedSampleCount() + peer.diagnostics());
    }

    /** Alice's CALL_DECISION record of {@code callId} in the server's audit log (a REJECT is reported at once). */
    private JsonNode auditRecord(String callId) throws Exception {
        JsonNode records = Await.until("alice's CALL_DECISION record of call " + callId + " in the audit log",
                Duration.ofSeconds(10), () -> SharedRig.audit(hosts),
                r -> callDecision(r, callId) != null);
        return callDecision(records, callId);
    }

    private static JsonNode callDecision(JsonNode records, String callId) {
        for (JsonNode r : records) {
            if (r.path("type").asText().equals("CALL_DECISION") && r.path("subject").asText().equals("alice")
                    && r.at("/detail/callId").asText().equals(callId)) {
                return r;
            }
        }
        return null;
    }
}
