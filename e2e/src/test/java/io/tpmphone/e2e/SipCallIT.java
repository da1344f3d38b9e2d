package io.tpmphone.e2e;

import io.tpmphone.rig.Capture;
import io.tpmphone.rig.TwoHostRig;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.softphone.sip.AuditedDecisions;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * SIP calls between the two measured hosts' softphones over attested TLS 1.3 (JAIN-SIP on our network layer),
 * with SDES keys from each host's sealed keystore: a measured call, and each refusal the issue names, with its reason.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@org.junit.jupiter.api.extension.ExtendWith(SharedRig.class) // the module's shared rig: this class only uses it
class SipCallIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    @TempDir
    static Path dir;
    private TwoHostRig hosts;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();

    @BeforeAll
    void start(TwoHostRig rig) {
        hosts = rig;
    }

    @AfterAll
    void stop() throws Exception {
        phones.forEach(SipPhone::close);
    }

    /** What a phone's user saw. */
    private static final class Seen implements SipPhone.Listener {
        final List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();
        final List<String> displays = new CopyOnWriteArrayList<>();
        /** Completes when a call ends or is refused, by Call-ID: the phone's own event, no polling. */
        final Map<String, CompletableFuture<Call>> endings = new ConcurrentHashMap<>();

        @Override
        public void decided(Call call, CallPolicy.Decision decision) {
            decisions.add(decision);
        }

        @Override
        public void ringing(Call call) {
            displays.add(call.display());
        }

        @Override
        public void ended(Call call) {
            ending(call.callId()).complete(call);
        }

        CompletableFuture<Call> ending(String callId) {
            return endings.computeIfAbsent(callId, id -> new CompletableFuture<>());
        }
    }

    private SipPhone phone(TwoHostRig.Host host, String fromHost, String policy, SipPhone.Keys keys,
                           SipPhone.Listener listener) throws Exception {
        SipPhone p = SipPhone.start(new SipPhone.Config(host.name(), fromHost, LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(host.identity(), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse(policy), keys, listener, Clock.systemUTC());
        phones.add(p);
        return p;
    }

    private static InetSocketAddress at(SipPhone p) {
        return new InetSocketAddress(LOOPBACK, p.config().tlsPort());
    }

    @Test
    void twoMeasuredPhones_callEachOther_bothSeeMeasured_andKeysComeFromTheKeystores() throws Exception {
        Seen aliceSaw = new Seen();
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(), aliceSaw);
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), bobSaw);
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.ESTABLISHED, call.state(), call.reason());
        assertEquals(IntegrityLevel.MEASURED, call.peer().orElseThrow().level(), () -> call.display());
        assertEquals("bob", call.peer().orElseThrow().host().orElseThrow(), () -> call.display());
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        assertEquals(Call.State.ESTABLISHED, atBob.state(), atBob.reason());
        assertEquals(IntegrityLevel.MEASURED, atBob.peer().orElseThrow().level(), () -> atBob.display());
        assertEquals("alice", atBob.peer().orElseThrow().host().orElseThrow(), () -> atBob.display());
        assertTrue(bobSaw.displays.get(0).contains("MEASURED alice") && bobSaw.displays.get(0).contains("release"),
                "at ring time bob sees alice's level and claims: " + bobSaw.displays);
        assertEquals(1, call.remoteSdp().orElseThrow().cryptos().size(), () -> "bob answered with his SDES key: "
                + call.remoteSdp().orElseThrow().cryptos());
        assertEquals(CallPolicy.Action.ACCEPT, aliceSaw.decisions.get(0).action(), () -> "decisions: "
                + aliceSaw.decisions);

        alice.hangUp(call);
        Await.event("bob's phone to report the call ended", Duration.ofSeconds(10), bobSaw.ending(call.callId()),
                () -> "bob's call " + atBob);
        assertEquals(Call.State.ENDED, atBob.state(), atBob::toString);
        assertEquals("the peer hung up", atBob.reason(), atBob::toString);
    }

    @Test
    void aMeasuredCall_carriesSrtpAudio_bothTonesArrive_andRtcpShowsNoLoss() throws Exception {
        SipPhone alice = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.alice().identity(), hosts.verifier(),
                        Clock.systemUTC()), CallPolicy.parse("default MEASURED reject"), hosts.alice().keys(),
                new Seen(), callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), Clock.systemUTC());
        phones.add(alice);
        SipPhone bob = SipPhone.start(new SipPhone.Config("bob", "bob", LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.bob().identity(), hosts.verifier(),
                        Clock.systemUTC()), CallPolicy.parse("default MEASURED reject"), hosts.bob().keys(),
                new Seen(), callId -> AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1)), Clock.systemUTC());
        phones.add(bob);
        Capture capture = Capture.start(dir.resolve("call.pcap"));
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.ESTABLISHED, call.state(), call.reason());
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        AudioSession aliceAudio = call.audio().orElseThrow();
        AudioSession bobAudio = atBob.audio().orElseThrow();
        // Each side decodes 1.5 s of the other's audio: the receive path needs ~1 s to start.
        Tones.eachHearsTheOther(aliceAudio, bobAudio, 12_000);
        AudioSession.Stats s = bobAudio.stats();
        assertTrue(s.packetsReceived() > 50 && s.packetsSent() > 50,
                () -> "bob sent and received more than 50 RTP packets: " + s);
        assertEquals(0, s.packetsLost(), "no loss on loopback: " + s);
        // On the wire (tshark on loopback): RTP to bob's port is SRTP — its payload is no PCMU encoding of the tone.
        List<byte[]> payloads = capture.stopAndReadRtpPayloads(bobAudio.localPort());
        assertTrue(payloads.size() > 50, "captured " + payloads.size() + " RTP packets to bob");
        double share = Capture.toneShareIfPcmu(payloads, 1000);
        assertTrue(share < 0.10, "the wire payload decoded as PCMU must not carry the 1 kHz tone: share " + share);
        Path wav = dir.resolve("bob-received.wav");
        bobAudio.received().writeWav(wav);
        assertEquals(1000.0, Wav.dominantFrequency(Wav.decode(java.nio.file.Files.readAllBytes(wav)), 4000), 20.0,
                () -> "the 1 kHz tone in " + wav + " (" + wav.toFile().length() + " bytes)");
        alice.hangUp(call);
    }

    @Test
    void hold_andResume_byReInvite_keepTheCallsKeys() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(), new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), new Seen());
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.ESTABLISHED, call.state(), call.reason());
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        alice.hold(call, true);
        Await.until("both sides to see the call on hold", Duration.ofSeconds(10), () -> call.held() && atBob.held(),
                () -> "alice held " + call.held() + " (" + call + "), bob held " + atBob.held() + " (" + atBob + ")");
        assertEquals("sendonly", atBob.remoteSdp().orElseThrow().direction(), () -> "bob's call " + atBob);
        alice.hold(call, false);
        Await.until("both sides to see the call resumed", Duration.ofSeconds(10), () -> !call.held() && !atBob.held(),
                () -> "alice held " + call.held() + " (" + call + "), bob held " + atBob.held() + " (" + atBob + ")");
        assertEquals(Call.State.ESTABLISHED, call.state(), () -> "the same key in a re-INVITE is not a replay: " + call);
        assertEquals(Call.State.ESTABLISHED, atBob.state(), atBob::toString);
        alice.hangUp(call);
    }

    @Test
    void aCalleeRequiringMoreThanMeasured_refuses403_withAWarningNamingBothLevels() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(),
                new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default HARDENED reject", hosts.bob().keys(), new Seen());
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("403") && call.reason().contains("peer level MEASURED is below the"
                + " required HARDENED"), () -> "a 403 naming both levels; the call: " + call + ", " + call.display());
    }

    @Test
    void aCallerWhosePolicyRefusesTheCallee_neverSendsTheInvite() throws Exception {
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject\nout sips:bob@bob HARDENED reject",
                hosts.alice().keys(), new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), bobSaw);
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().contains("our call policy") && call.reason().contains("HARDENED"),
                () -> "refused by our call policy, naming HARDENED; the call: " + call + ", " + call.display());
        // Shown by bob moving on: a later call from a phone whose policy allows it reaches bob; the refused one did not.
        SipPhone allowing = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(), new Seen());
        Call later = allowing.await(allowing.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.ESTABLISHED, later.state(), later::toString);
        Call laterAtBob = bob.await(bob.callById(later.callId()).orElseThrow(
                () -> new AssertionError("bob has no call " + later.callId() + ": " + bob.calls())));
        assertEquals(Call.State.ESTABLISHED, laterAtBob.state(), laterAtBob::toString);
        assertTrue(bob.callById(call.callId()).isEmpty(), () -> "bob never saw the refused INVITE " + call.callId()
                + "; bob's calls: " + bob.calls());
        assertEquals(1, bobSaw.decisions.size(), () -> "bob decided only on the later call: " + bobSaw.decisions);
        allowing.hangUp(later);
    }

    @Test
    void aSilentReconnectToTheSameHop_isDecidedAgain_onTheNewConnectionsAttestation() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(), new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), new Seen());
        int port = bob.config().tlsPort();
        Call first = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.ESTABLISHED, first.state(), first.reason());
        // Bob's phone goes away; an ordinary TLS endpoint (no attestation) takes its port. Alice still remembers a
        // MEASURED connection to that hop, but JAIN-SIP has to open a new one for the next INVITE.
        bob.close();
        phones.remove(bob);
        SipPhone impostor = SipPhone.start(new SipPhone.Config("bob", "bob", LOOPBACK, port, 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.bob().identity(), hosts.verifier(),
                        Clock.systemUTC()).withoutAttestation(), CallPolicy.parse("default FAILED accept"),
                hosts.bob().keys(), new Seen(), Clock.systemUTC());
        phones.add(impostor);
        // Alice's stack notices the old connection closed (EOF) and closes its end; until then it might write the
        // INVITE on that dead connection instead of opening a new one. The kernel's socket table shows when.
        Await.until("alice's stack to close its end of the old connection to port " + port, Duration.ofSeconds(10),
                () -> TcpConnections.toPort(port), List::isEmpty);
        Call second = alice.await(alice.call("sips:bob@bob", new InetSocketAddress(LOOPBACK, port)));
        assertEquals(Call.State.REFUSED, second.state(), second.reason());
        assertTrue(second.reason().contains("peer level UNATTESTED is below the required MEASURED"),
                () -> "refused for the UNATTESTED peer; the call: " + second + ", " + second.display());
        assertEquals(IntegrityLevel.UNATTESTED, second.peer().orElseThrow().level(),
                () -> "decided on the new connection, not on the remembered one: " + second.display());
        // Shown by the impostor moving on: a later call from a phone that accepts it arrives, the refused one did not.
        SipPhone carol = phone(hosts.alice(), "alice", "default UNATTESTED reject", hosts.alice().keys(), new Seen());
        Call later = carol.await(carol.call("sips:bob@bob", new InetSocketAddress(LOOPBACK, port)));
        assertEquals(Call.State.ESTABLISHED, later.state(), later::toString);
        Call laterAtImpostor = impostor.await(impostor.callById(later.callId()).orElseThrow(
                () -> new AssertionError("the impostor has no call " + later.callId() + ": " + impostor.calls())));
        assertEquals(Call.State.ESTABLISHED, laterAtImpostor.state(), laterAtImpostor::toString);
        assertTrue(impostor.callById(second.callId()).isEmpty(), () -> "no INVITE was written on the new connection;"
                + " the impostor's calls: " + impostor.calls());
        carol.hangUp(later);
    }

    @Test
    void everyCallDecision_ofBothPhones_isInTheServersAuditLog() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(),
                new AuditedDecisions(hosts.alice().broker(), new Seen()));
        SipPhone bob = phone(hosts.bob(), "bob", "default HARDENED reject", hosts.bob().keys(),
                new AuditedDecisions(hosts.bob().broker(), new Seen()));
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        // Bob's REJECT is reported at once; alice's ACCEPT travels with her next attestation.
        hosts.alice().agent().attestNow();
        JsonNode records = Await.until("bob's and alice's CALL_DECISION records of call " + call.callId(),
                Duration.ofSeconds(10), () -> SharedRig.audit(hosts),
                r -> decision(r, "bob", call.callId()) != null
                        && decision(r, "alice", call.callId()) != null);
        JsonNode bobs = decision(records, "bob", call.callId());
        JsonNode alices = decision(records, "alice", call.callId());
        assertEquals("REJECT", bobs.get("outcome").asText(), bobs::toString);
        assertEquals("IN", bobs.at("/detail/direction").asText(), bobs::toString);
        assertEquals("MEASURED", bobs.at("/detail/peerLevel").asText(), bobs::toString);
        assertEquals("HARDENED", bobs.at("/detail/requiredLevel").asText(), bobs::toString);
        assertEquals("ACCEPT", alices.get("outcome").asText(), alices::toString);
        assertEquals("sips:bob@bob", alices.at("/detail/peer").asText(), alices::toString);
    }

    private static JsonNode decision(JsonNode records, String subject, String callId) {
        for (JsonNode r : records) {
            if (r.path("type").asText().equals("CALL_DECISION") && r.at("/detail/callId").asText().equals(callId)
                    && r.path("subject").asText().equals(subject)) {
                return r;
            }
        }
        return null;
    }

    @Test
    void aFromIdentityOtherThanTheAttestedHost_isRefused() throws Exception {
        SipPhone impostor = phone(hosts.alice(), "carol", "default MEASURED reject", hosts.alice().keys(),
                new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), new Seen());
        Call call = impostor.await(impostor.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state(), call::toString);
        assertTrue(call.reason().startsWith("403") && call.reason().contains("differs from the attested host alice"),
                () -> "a 403 naming the attested host alice; the call: " + call + ", " + call.display());
    }

    @Test
    void aReplayedSdesOffer_isRefused488() throws Exception {
        // A caller that offers the same key material twice (a replayed SDES offer).
        AtomicReference<byte[][]> first = new AtomicReference<>();
        SipPhone.Keys real = hosts.alice().keys();
        SipPhone.Keys replaying = new SipPhone.Keys() {
            @Override
            public SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                byte[][] kept = first.get();
                if (kept != null) {
                    return copy(kept);
                }
                try (SrtpKeyMaterial m = real.srtpKey(suite, callId)) {
                    first.set(new byte[][] {m.key().clone(), m.salt().clone()});
                }
                return copy(first.get());
            }

            private SrtpKeyMaterial copy(byte[][] kept) throws IOException {
                return SrtpKeyMaterial.of(kept[0].clone(), kept[1].clone());
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) throws IOException {
                real.checkOffered(key, salt, callId);
            }
        };
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", replaying, new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), new Seen());
        Call once = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.ESTABLISHED, once.state(), once.reason());
        Call again = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, again.state(), again::toString);
        assertTrue(again.reason().startsWith("488") && again.reason().contains("seen before"),
                () -> "a 488 for the key seen before; the call: " + again + ", " + again.display());
    }
}
