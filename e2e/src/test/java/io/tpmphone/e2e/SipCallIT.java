package io.tpmphone.e2e;

import io.tpmphone.benchmarks.TwoHostRig;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.internal.BrokerClient;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.softphone.sip.AuditedDecisions;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
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
class SipCallIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    @TempDir
    static Path dir;
    private TwoHostRig hosts;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();

    @BeforeAll
    void start() throws Exception {
        hosts = TwoHostRig.start(dir);
    }

    @AfterAll
    void stop() throws Exception {
        phones.forEach(SipPhone::close);
        hosts.close();
    }

    /** What a phone's user saw. */
    private static final class Seen implements SipPhone.Listener {
        final List<CallPolicy.Decision> decisions = new CopyOnWriteArrayList<>();
        final List<String> displays = new CopyOnWriteArrayList<>();

        @Override
        public void decided(Call call, CallPolicy.Decision decision) {
            decisions.add(decision);
        }

        @Override
        public void ringing(Call call) {
            displays.add(call.display());
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, LOOPBACK)) {
            return s.getLocalPort();
        }
    }

    private SipPhone phone(TwoHostRig.Host host, String fromHost, String policy, SipPhone.Keys keys,
                           SipPhone.Listener listener) throws Exception {
        SipPhone p = SipPhone.start(new SipPhone.Config(host.name(), fromHost, LOOPBACK, freePort(), 0, 0,
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
        assertEquals(IntegrityLevel.MEASURED, call.peer().orElseThrow().level());
        assertEquals("bob", call.peer().orElseThrow().host().orElseThrow());
        Call atBob = bob.await(bob.callById(call.callId()).orElseThrow());
        assertEquals(Call.State.ESTABLISHED, atBob.state(), atBob.reason());
        assertEquals(IntegrityLevel.MEASURED, atBob.peer().orElseThrow().level());
        assertEquals("alice", atBob.peer().orElseThrow().host().orElseThrow());
        assertTrue(bobSaw.displays.get(0).contains("MEASURED alice") && bobSaw.displays.get(0).contains("release"),
                "at ring time bob sees alice's level and claims: " + bobSaw.displays);
        assertEquals(1, call.remoteSdp().orElseThrow().cryptos().size(), "bob answered with his SDES key");
        assertEquals(CallPolicy.Action.ACCEPT, aliceSaw.decisions.get(0).action());

        alice.hangUp(call);
        Instant deadline = Instant.now().plusSeconds(10);
        while (atBob.state() != Call.State.ENDED && Instant.now().isBefore(deadline)) {
            java.util.concurrent.TimeUnit.MILLISECONDS.sleep(20);
        }
        assertEquals(Call.State.ENDED, atBob.state());
        assertEquals("the peer hung up", atBob.reason());
    }

    @Test
    void aMeasuredCall_carriesSrtpAudio_bothTonesArrive_andRtcpShowsNoLoss() throws Exception {
        SipPhone alice = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, freePort(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.alice().identity(), hosts.verifier(),
                        Clock.systemUTC()), CallPolicy.parse("default MEASURED reject"), hosts.alice().keys(),
                new Seen(), callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), Clock.systemUTC());
        phones.add(alice);
        SipPhone bob = SipPhone.start(new SipPhone.Config("bob", "bob", LOOPBACK, freePort(), 0, 0,
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
        // Wait (bounded) until each side decoded 1.5 s of the other's audio: the receive path needs ~1 s to start.
        Instant deadline = Instant.now().plusSeconds(20);
        while ((aliceAudio.received().samples().length < 12_000 || bobAudio.received().samples().length < 12_000)
                && Instant.now().isBefore(deadline)) {
            java.util.concurrent.TimeUnit.MILLISECONDS.sleep(50);
        }
        assertEquals(1000.0, Wav.dominantFrequency(bobAudio.received().samples(), 4000), 20.0,
                "bob hears alice's 1 kHz tone");
        assertEquals(440.0, Wav.dominantFrequency(aliceAudio.received().samples(), 4000), 20.0,
                "alice hears bob's 440 Hz tone");
        AudioSession.Stats s = bobAudio.stats();
        assertTrue(s.packetsReceived() > 50 && s.packetsSent() > 50, s.toString());
        assertEquals(0, s.packetsLost(), "no loss on loopback: " + s);
        // On the wire (tshark on loopback): RTP to bob's port is SRTP — its payload is no PCMU encoding of the tone.
        List<byte[]> payloads = capture.stopAndReadRtpPayloads(bobAudio.localPort());
        assertTrue(payloads.size() > 50, "captured " + payloads.size() + " RTP packets to bob");
        double share = Capture.toneShareIfPcmu(payloads, 1000);
        assertTrue(share < 0.10, "the wire payload decoded as PCMU must not carry the 1 kHz tone: share " + share);
        Path wav = dir.resolve("bob-received.wav");
        bobAudio.received().writeWav(wav);
        assertEquals(1000.0, Wav.dominantFrequency(Wav.decode(java.nio.file.Files.readAllBytes(wav)), 4000), 20.0);
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
        awaitTrue(() -> call.held() && atBob.held(), "both sides see the call on hold");
        assertEquals("sendonly", atBob.remoteSdp().orElseThrow().direction());
        alice.hold(call, false);
        awaitTrue(() -> !call.held() && !atBob.held(), "both sides see it resumed");
        assertEquals(Call.State.ESTABLISHED, call.state(), "the same key in a re-INVITE is not a replay");
        assertEquals(Call.State.ESTABLISHED, atBob.state());
        alice.hangUp(call);
    }

    private static void awaitTrue(java.util.function.BooleanSupplier condition, String what) throws Exception {
        Instant deadline = Instant.now().plusSeconds(10);
        while (!condition.getAsBoolean() && Instant.now().isBefore(deadline)) {
            java.util.concurrent.TimeUnit.MILLISECONDS.sleep(20);
        }
        assertTrue(condition.getAsBoolean(), what);
    }

    @Test
    void aCalleeRequiringMoreThanMeasured_refuses403_withAWarningNamingBothLevels() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(),
                new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default HARDENED reject", hosts.bob().keys(), new Seen());
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state());
        assertTrue(call.reason().startsWith("403") && call.reason().contains("peer level MEASURED is below the"
                + " required HARDENED"), call.reason());
    }

    @Test
    void aCallerWhosePolicyRefusesTheCallee_neverSendsTheInvite() throws Exception {
        Seen bobSaw = new Seen();
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject\nout sips:bob@bob HARDENED reject",
                hosts.alice().keys(), new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), bobSaw);
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state());
        assertTrue(call.reason().contains("our call policy") && call.reason().contains("HARDENED"), call.reason());
        assertTrue(bobSaw.decisions.isEmpty(), "bob never saw an INVITE: " + bobSaw.decisions);
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
        TimeUnit.MILLISECONDS.sleep(500);
        Call second = alice.await(alice.call("sips:bob@bob", new InetSocketAddress(LOOPBACK, port)));
        assertEquals(Call.State.REFUSED, second.state(), second.reason());
        assertTrue(second.reason().contains("peer level UNATTESTED is below the required MEASURED"), second.reason());
        assertEquals(IntegrityLevel.UNATTESTED, second.peer().orElseThrow().level(),
                "decided on the new connection, not on the remembered one");
        assertTrue(impostor.callById(second.callId()).isEmpty(), "no INVITE was written on the new connection");
    }

    @Test
    void everyCallDecision_ofBothPhones_isInTheServersAuditLog() throws Exception {
        SipPhone alice = phone(hosts.alice(), "alice", "default MEASURED reject", hosts.alice().keys(),
                new AuditedDecisions(hosts.alice().broker(), new Seen()));
        SipPhone bob = phone(hosts.bob(), "bob", "default HARDENED reject", hosts.bob().keys(),
                new AuditedDecisions(hosts.bob().broker(), new Seen()));
        Call call = alice.await(alice.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state());
        // Bob's REJECT is reported at once; alice's ACCEPT travels with her next attestation.
        hosts.alice().agent().attestNow();
        Instant deadline = Instant.now().plusSeconds(10);
        JsonNode bobs = null;
        JsonNode alices = null;
        while ((bobs == null || alices == null) && Instant.now().isBefore(deadline)) {
            for (JsonNode r : hosts.client().get("/v1/audit?from=1&limit=1000", TwoHostRig.ADMIN_TOKEN).get("records")) {
                if (r.path("type").asText().equals("CALL_DECISION")
                        && r.at("/detail/callId").asText().equals(call.callId())) {
                    if (r.path("subject").asText().equals("bob")) {
                        bobs = r;
                    } else if (r.path("subject").asText().equals("alice")) {
                        alices = r;
                    }
                }
            }
            java.util.concurrent.TimeUnit.MILLISECONDS.sleep(50);
        }
        assertTrue(bobs != null && alices != null, "both decisions are audited");
        assertEquals("REJECT", bobs.get("outcome").asText());
        assertEquals("IN", bobs.at("/detail/direction").asText());
        assertEquals("MEASURED", bobs.at("/detail/peerLevel").asText());
        assertEquals("HARDENED", bobs.at("/detail/requiredLevel").asText());
        assertEquals("ACCEPT", alices.get("outcome").asText());
        assertEquals("sips:bob@bob", alices.at("/detail/peer").asText());
    }

    @Test
    void aFromIdentityOtherThanTheAttestedHost_isRefused() throws Exception {
        SipPhone impostor = phone(hosts.alice(), "carol", "default MEASURED reject", hosts.alice().keys(),
                new Seen());
        SipPhone bob = phone(hosts.bob(), "bob", "default MEASURED reject", hosts.bob().keys(), new Seen());
        Call call = impostor.await(impostor.call("sips:bob@bob", at(bob)));
        assertEquals(Call.State.REFUSED, call.state());
        assertTrue(call.reason().startsWith("403") && call.reason().contains("differs from the attested host alice"),
                call.reason());
    }

    @Test
    void aReplayedSdesOffer_isRefused488() throws Exception {
        // A caller that offers the same key material twice (a replayed SDES offer).
        AtomicReference<byte[][]> first = new AtomicReference<>();
        SipPhone.Keys real = hosts.alice().keys();
        SipPhone.Keys replaying = new SipPhone.Keys() {
            @Override
            public BrokerClient.SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                byte[][] kept = first.get();
                if (kept != null) {
                    return copy(kept);
                }
                try (BrokerClient.SrtpKeyMaterial m = real.srtpKey(suite, callId)) {
                    first.set(new byte[][] {m.key().clone(), m.salt().clone()});
                }
                return copy(first.get());
            }

            private BrokerClient.SrtpKeyMaterial copy(byte[][] kept) throws IOException {
                return BrokerClient.SrtpKeyMaterial.of(kept[0].clone(), kept[1].clone());
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
        assertEquals(Call.State.REFUSED, again.state());
        assertTrue(again.reason().startsWith("488") && again.reason().contains("seen before"), again.reason());
    }
}
