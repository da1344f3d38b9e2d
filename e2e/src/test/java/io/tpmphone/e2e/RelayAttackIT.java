package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.Kamailio;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.DtlsDatagramTransport;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Registration;
import io.tpmphone.softphone.sip.Sdp;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import io.tpmphone.tls.Evidence;
import io.tpmphone.tls.HostIdentity;
import io.tpmphone.tls.PassportVerifier;
import java.io.IOException;
import java.math.BigInteger;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * A malicious proxy between two measured phones (issue 14): kamailio rewrites every SDP it relays — the fingerprint to
 * mallory's certificate, the media port to mallory's relay — and the relay terminates DTLS on both legs with
 * certificates of its own (issued by a CA both phones trust, named after the host it pretends to be), passing each
 * genuine host's evidence on to the other. The DTLS handshakes succeed (the fingerprints match what the proxy wrote),
 * but each evidence is bound to the other leg's association: both phones see the far end {@code FAILED} at the quote's
 * qualifying data (the binder), refuse the call before the callee rings, and no SRTP flows. Then (last: it cannot be
 * undone) alice's softphone is tampered with, as in the demo, and bob calls her through an honest kamailio: she is
 * reached over her registration connection, her TPM will not sign the DTLS handshake, she answers 500 naming that, both
 * sides record their decisions, nothing rings and no media flows.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@org.junit.jupiter.api.TestMethodOrder(org.junit.jupiter.api.MethodOrderer.OrderAnnotation.class)
class RelayAttackIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final String DOMAIN = "example.test";
    private static final Map<String, String> PASSWORDS = Map.of("alice", "alice-Secret-1", "bob", "bob-Secret-2");
    private static final String END_TO_END_MEASURED = "default MEASURED reject\nany sip:*@" + DOMAIN
            + " UNATTESTED reject end-to-end MEASURED\n";
    private static final Pattern INVITE_SDP = Pattern.compile("relayed SDP of INVITE: \\[(v=0.*?)\\]", Pattern.DOTALL);
    private static final Pattern ANSWER_SDP = Pattern.compile("relayed SDP of 183 reply: \\[(v=0.*?)\\]",
            Pattern.DOTALL);

    @TempDir
    static Path dir;
    private TwoHostRig hosts;

    @BeforeAll
    void start() throws Exception {
        // Child users of its own: the module's shared rig (SharedRig) runs alice's and bob's softphones meanwhile,
        // and an agent refuses a child user that still runs processes.
        hosts = TwoHostRig.start(dir.resolve("hosts"), io.tpmphone.agent.LaunchSpec.childUserFor("relay-alice"),
                io.tpmphone.agent.LaunchSpec.childUserFor("relay-bob"));
    }

    @AfterAll
    void stop() {
        if (hosts != null) {
            hosts.close();
        }
    }

    /** A host identity that keeps the evidence it made (what a relay that terminates DTLS reads in clear). */
    static final class Recording implements HostIdentity {
        final HostIdentity host;
        final CompletableFuture<Evidence> made = new CompletableFuture<>();

        Recording(HostIdentity host) {
            this.host = host;
        }

        @Override
        public List<X509Certificate> certificateChain() throws IOException {
            return host.certificateChain();
        }

        @Override
        public byte[] sign(byte[] sha256Digest) throws IOException {
            return host.sign(sha256Digest);
        }

        @Override
        public Evidence evidence(byte[] binder) throws IOException {
            Evidence e = host.evidence(binder);
            made.complete(e);
            return e;
        }
    }

    /** Mallory pretending to be {@code host}: her own key and certificate, and the genuine host's evidence. */
    static final class Pretending implements HostIdentity {
        final List<X509Certificate> chain;
        final KeyPair key;
        final CompletableFuture<Evidence> genuine;

        Pretending(List<X509Certificate> chain, KeyPair key, CompletableFuture<Evidence> genuine) {
            this.chain = chain;
            this.key = key;
            this.genuine = genuine;
        }

        @Override
        public List<X509Certificate> certificateChain() {
            return chain;
        }

        @Override
        public byte[] sign(byte[] sha256Digest) throws IOException {
            try {
                Signature s = Signature.getInstance("NONEwithECDSA");
                s.initSign(key.getPrivate());
                s.update(sha256Digest);
                return s.sign();
            } catch (GeneralSecurityException e) {
                throw new IOException(e);
            }
        }

        @Override
        public Evidence evidence(byte[] binder) throws IOException {
            try {
                return genuine.get(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                throw new IOException("the genuine host's evidence never came", e);
            }
        }
    }

    @Test
    @org.junit.jupiter.api.Order(1)
    void aRelayThatRewritesFingerprintsAndTerminatesDtls_failsAtTheBinder_andNoMediaFlows() throws Exception {
        KeyPair caKey = ecKeyPair();
        X509Certificate malloryCa = certificate("mallory's CA", caKey, caKey, null);
        KeyPair asAliceKey = ecKeyPair();
        KeyPair asBobKey = ecKeyPair();
        X509Certificate asAlice = certificate("alice", asAliceKey, caKey, malloryCa);
        X509Certificate asBob = certificate("bob", asBobKey, caKey, malloryCa);
        // The phones trust mallory's CA beside the real device CA: her certificates are "valid", so what fails is
        // the binding of the evidence, not her certificate.
        X509Certificate deviceCa = hosts.alice().identity().certificateChain().get(1);
        PassportVerifier trusting = new PassportVerifier(hosts.server().resultVerificationKey(),
                List.of(deviceCa, malloryCa), Clock.systemUTC());
        Recording alice = new Recording(hosts.alice().identity());
        Recording bob = new Recording(hosts.bob().identity());

        try (DatagramSocket towardsAlice = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0));
             DatagramSocket towardsBob = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0))) {
            String fpAlice = DtlsFingerprint.sha256(asAlice.getEncoded()).toSdp();
            String fpBob = DtlsFingerprint.sha256(asBob.getEncoded()).toSdp();
            // the offer (alice's) goes to bob naming mallory-as-alice; the answer (bob's) to alice naming mallory-as-bob
            String onRequest = "if (is_method(\"INVITE\")) { subst_body(\"/a=fingerprint:sha-256 [0-9A-F:]+/"
                    + "a=fingerprint:" + fpAlice + "/\"); subst_body(\"/m=audio [0-9]+ /m=audio "
                    + towardsBob.getLocalPort() + " /\"); }";
            String onReply = "subst_body(\"/a=fingerprint:sha-256 [0-9A-F:]+/a=fingerprint:" + fpBob + "/\");"
                    + " subst_body(\"/m=audio [0-9]+ /m=audio " + towardsAlice.getLocalPort() + " /\");";
            try (Kamailio proxy = Kamailio.start(dir.resolve("kamailio-malicious"), DOMAIN, "SHA-256", PASSWORDS,
                    onRequest, onReply);
                 SipPhone alicePhone = phone(alice, trusting, "alice", 1000);
                 SipPhone bobPhone = phone(bob, trusting, "bob", 440)) {
                Registration ra = register(alicePhone, proxy, "alice");
                register(bobPhone, proxy, "bob");
                ExecutorService relay = Executors.newFixedThreadPool(2);
                try {
                    Call call = alicePhone.call("sip:bob@" + DOMAIN, ra);
                    // the relay reads the genuine addresses and fingerprints from what the proxy received
                    Sdp offer = Sdp.parse(Await.until("the proxy to relay alice's offer", Duration.ofSeconds(15),
                            () -> find(INVITE_SDP, proxy.log()), m -> m != null).group(1));
                    Sdp answer = Sdp.parse(Await.until("the proxy to relay bob's answer", Duration.ofSeconds(15),
                            () -> find(ANSWER_SDP, proxy.log()), m -> m != null).group(1));
                    // leg to bob: bob is the DTLS client (a=setup:active), mallory the server, posing as alice
                    Future<DtlsSrtpAssociation> legBob = relay.submit(() -> new DtlsSrtpEndpoint().establish(
                            new DtlsDatagramTransport(towardsBob, new InetSocketAddress(LOOPBACK, answer.port())),
                            false, DtlsSrtpConfig.of(AttestedTlsConfig.of(new Pretending(List.of(asAlice,
                                    malloryCa), asAliceKey, alice.made), trusting, Clock.systemUTC()),
                                    answer.dtls().orElseThrow().fingerprints().get(0))));
                    // leg to alice: alice is the DTLS server, mallory the client, posing as bob
                    Future<DtlsSrtpAssociation> legAlice = relay.submit(() -> new DtlsSrtpEndpoint().establish(
                            new DtlsDatagramTransport(towardsAlice, new InetSocketAddress(LOOPBACK, offer.port())),
                            true, DtlsSrtpConfig.of(AttestedTlsConfig.of(new Pretending(List.of(asBob, malloryCa),
                                    asBobKey, bob.made), trusting, Clock.systemUTC()),
                                    offer.dtls().orElseThrow().fingerprints().get(0))));
                    alicePhone.await(call);
                    assertEquals(Call.State.REFUSED, call.state(), () -> call + "\n" + proxy.logTail(60));
                    assertEquals(IntegrityLevel.FAILED, call.farEnd().orElseThrow().level(), call::display);
                    assertTrue(call.farEnd().orElseThrow().reason().contains("QUALIFYING_DATA"),
                            () -> "alice's check of the relayed evidence fails at the binder: "
                                    + call.farEnd().orElseThrow().reason());
                    com.fasterxml.jackson.databind.JsonNode record = auditRecord("alice", call.callId());
                    assertEquals("REJECT", record.get("outcome").asText(), record::toString);
                    assertTrue(record.at("/detail/message").asText().startsWith("end-to-end DTLS, evidence sha256:"),
                            () -> "alice's CALL_DECISION says how the level was established: " + record);
                    Call atBob = bobPhone.callById(call.callId()).orElseThrow();
                    Await.until("bob's call to end", Duration.ofSeconds(15), atBob::state,
                            st -> st == Call.State.REFUSED || st == Call.State.ENDED);
                    assertEquals(IntegrityLevel.FAILED, atBob.farEnd().orElseThrow().level(), atBob::display);
                    assertTrue(atBob.farEnd().orElseThrow().reason().contains("QUALIFYING_DATA"),
                            () -> "bob's check fails at the binder: " + atBob.farEnd().orElseThrow().reason());
                    // the relay's handshakes themselves went through: the proxy's fingerprints matched
                    try (DtlsSrtpAssociation a = legAlice.get(20, TimeUnit.SECONDS);
                         DtlsSrtpAssociation b = legBob.get(20, TimeUnit.SECONDS)) {
                        assertEquals(0, call.audio().orElseThrow().stats().packetsSent(),
                                () -> "no SRTP left alice: " + call.audio().orElseThrow().stats());
                        assertEquals(0, atBob.audio().orElseThrow().stats().packetsSent(),
                                () -> "no SRTP left bob: " + atBob.audio().orElseThrow().stats());
                    }
                } finally {
                    relay.shutdownNow();
                }
            }
        }
    }

    /** What one phone's listener saw: its decisions (established, level, action) and its calls that rang. */
    static final class Saw implements SipPhone.Listener {
        final List<CallPolicy.Decision> decided = new java.util.concurrent.CopyOnWriteArrayList<>();
        final List<String> rang = new java.util.concurrent.CopyOnWriteArrayList<>();

        @Override
        public void decided(Call c, CallPolicy.Decision d) {
            decided.add(d);
        }

        @Override
        public void ringing(Call c) {
            rang.add(c.callId());
        }

        @Override
        public void remoteRinging(Call c) {
            rang.add("remote " + c.callId());
        }
    }

    /**
     * Alice's softphone is tampered with, as in the demo (last: it cannot be undone), and bob calls her through an
     * honest kamailio. Kamailio reaches her over the connection she registered over (as it reaches any TLS phone
     * behind NAT): her TIK signs nothing, but that connection needed no signature of hers. The INVITE reaches her; her
     * DTLS handshake fails at her own TPM, so she answers {@code 500} with a Warning naming her local refusal and
     * records it; bob records the end-to-end refusal naming what she said, and nothing rings. (Roles are swapped
     * against the first test so that neither side's rejection falls in the agent's summing window of that test's.)
     */
    @Test
    @org.junit.jupiter.api.Order(2)
    void aTamperedFarEnd_isRefusedBeforeItRings_throughTheProxy_andTheCallerIsToldWhy() throws Exception {
        try (Kamailio proxy = Kamailio.start(dir.resolve("kamailio-honest"), DOMAIN, "SHA-256", PASSWORDS)) {
            hosts.tamperAndRelaunch("alice");
            Saw aliceSaw = new Saw();
            Saw bobSaw = new Saw();
            try (SipPhone alicePhone = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK,
                            FreePorts.tcpAndUdp(), 0, 0, Duration.ofSeconds(15)), AttestedTlsConfig.of(
                            hosts.alice().identity(), hosts.verifier(), Clock.systemUTC()),
                    CallPolicy.parse(END_TO_END_MEASURED), hosts.alice().keys(),
                    new io.tpmphone.softphone.sip.AuditedDecisions(hosts.alice().broker(), aliceSaw),
                    callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), Clock.systemUTC());
                 SipPhone bobPhone = SipPhone.start(new SipPhone.Config("bob", "bob", LOOPBACK, FreePorts.tcpAndUdp(),
                                 0, 0, Duration.ofSeconds(15)), AttestedTlsConfig.of(hosts.bob().identity(),
                                 hosts.verifier(), Clock.systemUTC()), CallPolicy.parse(END_TO_END_MEASURED),
                         hosts.bob().keys(), new io.tpmphone.softphone.sip.AuditedDecisions(hosts.bob().broker(),
                                 bobSaw), callId -> AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1)),
                         Clock.systemUTC())) {
                register(alicePhone, proxy, "alice");
                Registration rb = register(bobPhone, proxy, "bob");
                Call call = bobPhone.await(bobPhone.call("sip:alice@" + DOMAIN, rb));
                String seen = call + "\n" + proxy.logTail(80);
                assertEquals(Call.State.REFUSED, call.state(), () -> "bob's call to the tampered alice: " + seen);
                // bob is told why, in alice's words (peer text, escaped): her TPM would not sign
                assertTrue(call.reason().startsWith("500 ") && call.reason().contains("TPM did not sign"),
                        () -> "bob's call names alice's local refusal: " + seen);
                Call atAlice = alicePhone.callById(call.callId()).orElseThrow(() -> new AssertionError(
                        "the INVITE reached alice over her registration connection: " + alicePhone.calls() + "\n"
                                + seen));
                Await.until("alice's call to end", Duration.ofSeconds(15), atAlice::state,
                        st -> st == Call.State.REFUSED || st == Call.State.ENDED);
                assertTrue(atAlice.reason().contains("this phone could not set up DTLS-SRTP")
                        && atAlice.reason().contains("TPM did not sign"), () -> "alice's own reason: " + atAlice);
                // nothing rang on either side, and the proxy relayed no 180 of this call
                assertTrue(aliceSaw.rang.isEmpty() && bobSaw.rang.isEmpty(), () -> "nothing rang: alice "
                        + aliceSaw.rang + ", bob " + bobSaw.rang);
                List<String> replies = proxy.log().lines().filter(l -> l.contains(call.callId())
                        && l.contains("relayed reply ")).toList();
                assertTrue(replies.stream().anyMatch(l -> l.contains("relayed reply 183"))
                                && replies.stream().anyMatch(l -> l.contains("relayed reply 500"))
                                && replies.stream().noneMatch(l -> l.contains("relayed reply 18")
                                && !l.contains("relayed reply 183")),
                        () -> "the proxy relayed alice's 183 and 500, no 180: " + replies);
                // both sides' end-to-end decisions, in the listeners and in the audit log
                assertTrue(aliceSaw.decided.stream().anyMatch(d -> d.endToEnd()
                                && d.action() == CallPolicy.Action.REJECT && d.reason().contains("refused by this phone")),
                        () -> "alice decided to refuse (her TPM would not sign): " + aliceSaw.decided);
                // bob's end-to-end decision is written by his call's DTLS thread, which may finish after the 500
                // ended the call: wait for it, then say what it is
                Await.until("bob's end-to-end decision", Duration.ofSeconds(15),
                        () -> bobSaw.decided.stream().anyMatch(CallPolicy.Decision::endToEnd), b -> b);
                // FAILED when alice's alert ended the handshake (no association); UNATTESTED ("not appraised") when
                // her 500 through the proxy closed bob's side first: a SIP refusal is not evidence of a level
                assertTrue(bobSaw.decided.stream().anyMatch(d -> d.endToEnd()
                                && d.action() == CallPolicy.Action.REJECT && (d.peerLevel() == IntegrityLevel.FAILED
                                || d.peerLevel() == IntegrityLevel.UNATTESTED)),
                        () -> "bob refused alice end to end: " + bobSaw.decided);
                com.fasterxml.jackson.databind.JsonNode bobRecord = auditRecord("bob", call.callId());
                assertEquals("REJECT", bobRecord.get("outcome").asText(), bobRecord::toString);
                assertTrue(bobRecord.at("/detail/message").asText().contains("TPM did not sign"),
                        () -> "bob's CALL_DECISION names alice's reason: " + bobRecord);
                com.fasterxml.jackson.databind.JsonNode aliceRecord = auditRecord("alice", call.callId());
                assertEquals("REJECT", aliceRecord.get("outcome").asText(), aliceRecord::toString);
                assertTrue(aliceRecord.at("/detail/message").asText().contains("refused by this phone: ")
                                && aliceRecord.at("/detail/message").asText().contains("TPM did not sign"),
                        () -> "alice's CALL_DECISION names her local refusal: " + aliceRecord);
                assertEquals(0, call.audio().orElseThrow().stats().packetsSent(), "no SRTP left bob");
            }
        }
    }

    /** {@code host}'s CALL_DECISION record of {@code callId} in the server's audit log, once it arrives. */
    private com.fasterxml.jackson.databind.JsonNode auditRecord(String host, String callId) throws Exception {
        return Await.until(host + "'s end-to-end CALL_DECISION of call " + callId + " in the audit log",
                Duration.ofSeconds(30), () -> {
                    for (com.fasterxml.jackson.databind.JsonNode r : hosts.client().get("/v1/audit?from=1&limit=1000",
                            TwoHostRig.ADMIN_TOKEN).get("records")) {
                        if (r.path("type").asText().equals("CALL_DECISION") && r.path("subject").asText().equals(host)
                                && r.at("/detail/callId").asText().equals(callId)
                                && r.at("/detail/message").asText().startsWith("end-to-end DTLS")) {
                            return r;
                        }
                    }
                    return null;
                }, r -> r != null);
    }

    private static Matcher find(Pattern p, String log) {
        Matcher m = p.matcher(log);
        return m.find() ? m : null;
    }

    private SipPhone phone(HostIdentity identity, PassportVerifier verifier, String user, double tone)
            throws Exception {
        return SipPhone.start(new SipPhone.Config(user, user, LOOPBACK, FreePorts.tcpAndUdp(), 0, 0,
                        Duration.ofSeconds(15)), AttestedTlsConfig.of(identity, verifier, Clock.systemUTC()),
                CallPolicy.parse(END_TO_END_MEASURED), user.equals("alice") ? hosts.alice().keys()
                        : hosts.bob().keys(), new io.tpmphone.softphone.sip.AuditedDecisions(user.equals("alice")
                        ? hosts.alice().broker() : hosts.bob().broker(), new SipPhone.Listener() { }),
                callId -> AudioSession.open(LOOPBACK, Wav.tone(tone, 0.5, 1)), Clock.systemUTC());
    }

    private static Registration register(SipPhone phone, Kamailio k, String user) throws Exception {
        Registration r = phone.register(new Registration.Account("sip:" + user + "@" + DOMAIN, k.tls(), "tls", user,
                PASSWORDS.get(user)::toCharArray, Duration.ofSeconds(60))).firstOutcome().get(15, TimeUnit.SECONDS);
        assertEquals(Registration.State.REGISTERED, r.state(), () -> r.reason() + "\n" + k.log());
        return r;
    }

    private static KeyPair ecKeyPair() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(256);
        return g.generateKeyPair();
    }

    private static X509Certificate certificate(String cn, KeyPair subject, KeyPair issuer, X509Certificate issuerCert)
            throws Exception {
        X500Name name = new X500Name("CN=" + cn);
        X500Name issuerName = issuerCert == null ? name : new X500Name(issuerCert.getSubjectX500Principal().getName());
        Instant now = Instant.now();
        var builder = new JcaX509v3CertificateBuilder(issuerName, BigInteger.valueOf(System.nanoTime()),
                Date.from(now.minusSeconds(60)), Date.from(now.plusSeconds(3600)), name, subject.getPublic());
        if (issuerCert == null) {
            builder.addExtension(org.bouncycastle.asn1.x509.Extension.basicConstraints, true,
                    new org.bouncycastle.asn1.x509.BasicConstraints(true));
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getPrivate())));
    }
}
