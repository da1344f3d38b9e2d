package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.bouncycastle.tls.DatagramTransport;
import org.bouncycastle.tls.UDPTransport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * DTLS-SRTP associations over real UDP sockets on loopback, with hosts made in software ({@link SoftwareHosts}): the
 * handshake, the SRTP keys, the fingerprint check, and the end-to-end evidence with each way it can fail.
 */
@Timeout(60)
class DtlsSrtpEndpointTest {
    private static final Duration SHORT = Duration.ofSeconds(2);
    private static SoftwareHosts hosts;
    private static SoftwareHosts.Host alice;
    private static SoftwareHosts.Host bob;
    private static SoftwareHosts.Host mallory;
    private static SoftwareHosts.Host tampered;
    private static SoftwareHosts.Host standardPhone;
    private static ExecutorService threads;

    @BeforeAll
    static void hosts() throws Exception {
        hosts = new SoftwareHosts(Clock.systemUTC());
        alice = hosts.host("alice", IntegrityLevel.MEASURED);
        bob = hosts.host("bob", IntegrityLevel.MEASURED);
        mallory = hosts.host("mallory", IntegrityLevel.MEASURED);
        tampered = hosts.host("tampered", IntegrityLevel.FAILED);
        standardPhone = hosts.selfSigned("baresip");
        threads = Executors.newCachedThreadPool();
    }

    @AfterAll
    static void stop() {
        threads.shutdownNow();
    }

    /** The outcome of one side: an association or why there is none. */
    private record Side(DtlsSrtpAssociation association, DtlsSrtpException failure) {
        PeerAttestation peer() {
            assertNotNull(association, () -> "expected an association, saw " + failure);
            return association.peer();
        }

        DtlsSrtpException.Reason reason() {
            assertNotNull(failure, () -> "expected a failure, saw an association with " + association.peer()
                    .display());
            return failure.reason();
        }
    }

    private record Outcome(Side client, Side server, DatagramSocket... sockets) implements AutoCloseable {
        @Override
        public void close() {
            for (Side s : new Side[] {client, server}) {
                if (s.association() != null) {
                    s.association().close();
                }
            }
            for (DatagramSocket s : sockets) {
                s.close();
            }
        }
    }

    private static DtlsSrtpConfig config(HostIdentity us, SoftwareHosts.Host them) throws Exception {
        return DtlsSrtpConfig.of(AttestedTlsConfig.of(us, hosts.verifier(), Clock.systemUTC()), them.fingerprint())
                .withTimeouts(Duration.ofSeconds(10), SHORT);
    }

    private static Outcome associate(DtlsSrtpConfig client, DtlsSrtpConfig server) throws Exception {
        return associate(client, server, t -> t);
    }

    /** Runs both sides over a pair of connected loopback UDP sockets; {@code serverWire} may wrap the server's. */
    private static Outcome associate(DtlsSrtpConfig client, DtlsSrtpConfig server,
                                     UnaryOperator<DatagramTransport> serverWire) throws Exception {
        return associate(client, server, t -> t, serverWire);
    }

    private static Outcome associate(DtlsSrtpConfig client, DtlsSrtpConfig server,
                                     UnaryOperator<DatagramTransport> clientWire,
                                     UnaryOperator<DatagramTransport> serverWire) throws Exception {
        InetAddress lo = InetAddress.getLoopbackAddress();
        DatagramSocket c = new DatagramSocket(0, lo);
        DatagramSocket s = new DatagramSocket(0, lo);
        try {
            c.connect(lo, s.getLocalPort());
            s.connect(lo, c.getLocalPort());
            DatagramTransport ct = clientWire.apply(new UDPTransport(c, 1200));
            DatagramTransport st = serverWire.apply(new UDPTransport(s, 1200));
            Future<Side> fs = threads.submit(() -> side(st, false, server));
            Future<Side> fc = threads.submit(() -> side(ct, true, client));
            return new Outcome(fc.get(30, TimeUnit.SECONDS), fs.get(30, TimeUnit.SECONDS), c, s);
        } catch (Exception e) {
            c.close();
            s.close();
            throw e;
        }
    }

    private static Side side(DatagramTransport t, boolean client, DtlsSrtpConfig config) throws IOException {
        try {
            return new Side(new DtlsSrtpEndpoint().establish(t, client, config), null);
        } catch (DtlsSrtpException e) {
            return new Side(null, e);
        }
    }

    @Test
    void twoAttestingHosts_seeEachOtherMeasuredEndToEnd_andAgreeOnTheSrtpKeys() throws Exception {
        try (Outcome o = associate(config(alice, bob), config(bob, alice))) {
            assertEquals(IntegrityLevel.MEASURED, o.client().peer().level(), o.client().peer().reason());
            assertEquals(Optional.of("bob"), o.client().peer().host(), o.client().peer().display());
            assertEquals(IntegrityLevel.MEASURED, o.server().peer().level(), o.server().peer().display());
            assertEquals(Optional.of("alice"), o.server().peer().host(), o.server().peer().display());
            SrtpKeys ck = o.client().association().accept(o.client().peer().level());
            SrtpKeys sk = o.server().association().accept(o.server().peer().level());
            assertEquals(SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80, ck.profile());
            assertArrayEquals(ck.localKey(), sk.remoteKey(), "the client's write key is the server's read key");
            assertArrayEquals(ck.localSalt(), sk.remoteSalt(), "the client's write salt is the server's read salt");
            assertArrayEquals(sk.localKey(), ck.remoteKey(), "the server's write key is the client's read key");
            assertFalse(java.util.Arrays.equals(ck.localKey(), ck.remoteKey()), "the two directions' keys differ");
        }
    }

    @Test
    void aCertificateThatIsNotTheSdpFingerprint_endsTheHandshake_withItsReason() throws Exception {
        // The client expects bob, but mallory answers (with a valid device certificate of its own).
        try (Outcome o = associate(config(alice, bob), config(mallory, alice))) {
            assertEquals(DtlsSrtpException.Reason.FINGERPRINT_MISMATCH, o.client().reason(),
                    String.valueOf(o.client().failure()));
            assertEquals(DtlsSrtpException.Reason.HANDSHAKE_FAILED, o.server().reason(),
                    String.valueOf(o.server().failure()));
        }
        // And the other way: the server expects bob, but alice's client connects.
        try (Outcome o = associate(config(alice, mallory), config(mallory, bob))) {
            assertEquals(DtlsSrtpException.Reason.FINGERPRINT_MISMATCH, o.server().reason(),
                    String.valueOf(o.server().failure()));
        }
    }

    @Test
    void everyFingerprintIsConsidered_underOurMostPreferredHashFunction() throws Exception {
        // RFC 8122 §5: the far end may announce several certificates' fingerprints; any of them under the selected
        // hash function authenticates it. Here mallory's comes first and bob's second: bob is accepted.
        try (Outcome o = associate(withFingerprints(config(alice, bob), mallory.fingerprint(), bob.fingerprint()),
                config(bob, alice))) {
            assertEquals(IntegrityLevel.MEASURED, o.client().peer().level(), String.valueOf(o.client().failure()));
        }
        // bob's sha-512 fingerprint beside a sha-256 one of another certificate: sha-512 is selected and matches.
        try (Outcome o = associate(withFingerprints(config(alice, bob), mallory.fingerprint(), sha512(bob)),
                config(bob, alice))) {
            assertEquals(IntegrityLevel.MEASURED, o.client().peer().level(), String.valueOf(o.client().failure()));
        }
        // A match under a weaker function does not count when a stronger one is offered (no downgrade): bob's
        // sha-256 fingerprint beside mallory's sha-512 one refuses bob, naming the function it checked.
        try (Outcome o = associate(withFingerprints(config(alice, bob), bob.fingerprint(), sha512(mallory)),
                config(bob, alice))) {
            assertEquals(DtlsSrtpException.Reason.FINGERPRINT_MISMATCH, o.client().reason(),
                    String.valueOf(o.client().failure()));
            assertTrue(o.client().failure().getMessage().contains("sha-512"), o.client().failure().getMessage());
        }
    }

    @Test
    void eachSidesVerdict_reachesTheOther_insideTheAssociation_andIsAcknowledged() throws Exception {
        try (Outcome o = associate(config(alice, bob), config(bob, alice))) {
            DtlsSrtpAssociation c = o.client().association();
            DtlsSrtpAssociation s = o.server().association();
            assertTrue(c.exchangesVerdicts() && s.exchangesVerdicts(), "both attest: verdicts both ways");
            c.sendVerdict(new DtlsVerdict(false, IntegrityLevel.FAILED, IntegrityLevel.MEASURED));
            s.sendVerdict(new DtlsVerdict(true, IntegrityLevel.MEASURED, IntegrityLevel.IDENTIFIED));
            Future<Boolean> serverSide = threads.submit(() -> {
                while (s.peerVerdict().isEmpty() || !s.verdictAcknowledged()) {
                    assertTrue(s.serviceIncoming(50), "the server's association stays up");
                }
                return true;
            });
            while (c.peerVerdict().isEmpty() || !c.verdictAcknowledged()) {
                assertTrue(c.serviceIncoming(50), "the client's association stays up");
            }
            assertTrue(serverSide.get(20, TimeUnit.SECONDS));
            assertEquals(new DtlsVerdict(false, IntegrityLevel.FAILED, IntegrityLevel.MEASURED),
                    s.peerVerdict().orElseThrow());
            assertEquals(new DtlsVerdict(true, IntegrityLevel.MEASURED, IntegrityLevel.IDENTIFIED),
                    c.peerVerdict().orElseThrow());
            assertEquals("refused: it requires MEASURED and saw us as FAILED", s.peerVerdict().get().display());
        }
        // a standard phone (no attestation in its hello) takes no verdict
        DtlsSrtpConfig phone = config(standardPhone, alice);
        phone = new DtlsSrtpConfig(phone.tls().withoutAttestation(), phone.remoteFingerprints(),
                phone.handshakeTimeout(), phone.evidenceTimeout());
        try (Outcome o = associate(config(alice, standardPhone), phone)) {
            assertFalse(o.client().association().exchangesVerdicts(), "no verdicts with a standard phone");
        }
    }

    @Test
    void malformedVerdictRecords_areRefused_withAReason() {
        for (String payload : new String[] {"", "MAYBE MEASURED MEASURED", "ACCEPT SUPREME MEASURED",
                "ACCEPT MEASURED", "ACCEPT MEASURED MEASURED extra", "x".repeat(65)}) {
            byte[] p = payload.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            byte[] r = java.nio.ByteBuffer.allocate(6 + p.length).put((byte) 1).put((byte) 3)
                    .putShort((short) p.length).putShort((short) 0).put(p).array();
            MalformedExtensionException e = org.junit.jupiter.api.Assertions.assertThrows(
                    MalformedExtensionException.class, () -> DtlsVerdict.decode(r, r.length), payload);
            assertTrue(e.getMessage().contains("verdict"), e.getMessage());
        }
        byte[] good = new DtlsVerdict(true, IntegrityLevel.UNATTESTED, IntegrityLevel.FAILED).encode();
        assertDoesNotThrowDecode(good);
    }

    private static void assertDoesNotThrowDecode(byte[] r) {
        try {
            assertEquals(new DtlsVerdict(true, IntegrityLevel.UNATTESTED, IntegrityLevel.FAILED),
                    DtlsVerdict.decode(r, r.length));
        } catch (MalformedExtensionException e) {
            throw new AssertionError(e);
        }
    }

    private static DtlsSrtpConfig withFingerprints(DtlsSrtpConfig c, DtlsFingerprint... fingerprints) {
        return new DtlsSrtpConfig(c.tls(), List.of(fingerprints), c.handshakeTimeout(), c.evidenceTimeout());
    }

    private static DtlsFingerprint sha512(SoftwareHosts.Host h) throws Exception {
        return new DtlsFingerprint("sha-512", java.security.MessageDigest.getInstance("SHA-512")
                .digest(h.certificate.getEncoded()));
    }

    @Test
    void aStandardPhoneThatSendsNoEvidence_isUnattestedEndToEnd_butItsFingerprintIsChecked() throws Exception {
        DtlsSrtpConfig phone = config(standardPhone, alice);
        phone = new DtlsSrtpConfig(phone.tls().withoutAttestation(), phone.remoteFingerprints(),
                phone.handshakeTimeout(), phone.evidenceTimeout());
        int quotesBefore = alice.quotes.get();
        try (Outcome o = associate(config(alice, standardPhone), phone)) {
            PeerAttestation p = o.client().peer();
            assertEquals(IntegrityLevel.UNATTESTED, p.level(), p.display());
            assertTrue(p.reason().contains("does not attest"), p.reason());
            assertEquals(quotesBefore, alice.quotes.get(), "no evidence is made for a standard phone");
            assertArrayEquals(o.client().association().accept(o.client().peer().level()).localKey(),
                    o.server().association().accept(o.server().peer().level()).remoteKey(), "SRTP keys still agree");
        }
        // Its fingerprint is still what authenticates it: another self-signed certificate is refused.
        SoftwareHosts.Host impostor = hosts.selfSigned("baresip");
        DtlsSrtpConfig impostorPhone = new DtlsSrtpConfig(config(impostor, alice).tls().withoutAttestation(),
                List.of(alice.fingerprint()), phone.handshakeTimeout(), phone.evidenceTimeout());
        try (Outcome o = associate(config(alice, standardPhone), impostorPhone)) {
            assertEquals(DtlsSrtpException.Reason.FINGERPRINT_MISMATCH, o.client().reason(),
                    String.valueOf(o.client().failure()));
        }
    }

    @Test
    void aFarEndWhosePassportSaysFailed_isFailed() throws Exception {
        try (Outcome o = associate(config(alice, tampered), config(tampered, alice))) {
            assertEquals(IntegrityLevel.FAILED, o.client().peer().level(), o.client().peer().display());
        }
    }

    @Test
    void evidenceReplayedFromAnEarlierAssociation_isRefusedAtTheQuote() throws Exception {
        Replaying replayer = new Replaying(bob);
        try (Outcome first = associate(config(alice, bob), config(replayer, alice))) {
            assertEquals(IntegrityLevel.MEASURED, first.client().peer().level(), first.client().peer().display());
        }
        replayer.replay = true;
        try (Outcome o = associate(config(alice, bob), config(replayer, alice))) {
            PeerAttestation p = o.client().peer();
            assertEquals(IntegrityLevel.FAILED, p.level(), p.display());
            assertTrue(p.summary().contains("QUOTE"), "a replayed quote fails at its binder: " + p.display());
        }
    }

    @Test
    void anotherHostsPassport_isRefusedAtTheHost() throws Exception {
        HostIdentity withMallorysPassport = new Delegating(bob) {
            @Override
            public Evidence evidence(byte[] binder) {
                return bob.evidence(binder, mallory.passport);
            }
        };
        try (Outcome o = associate(config(alice, bob), config(withMallorysPassport, alice))) {
            PeerAttestation p = o.client().peer();
            assertEquals(IntegrityLevel.FAILED, p.level(), p.display());
            assertTrue(p.summary().contains("HOST"), "another host's passport fails at HOST: " + p.display());
        }
    }

    @Test
    void aRelayThatRewritesTheFingerprintsAndTerminatesDtls_cannotPassOnAGenuineHostsEvidence() throws Exception {
        // Leg 2: the relay (mallory, a valid device certificate of its own) is the client of the genuine alice, and
        // records the evidence alice sends it over that association.
        Recording genuine = new Recording(alice);
        try (Outcome leg2 = associate(config(mallory, alice), config(genuine, mallory))) {
            assertEquals(IntegrityLevel.MEASURED, leg2.client().peer().level(), leg2.client().peer().reason());
        }
        assertNotNull(genuine.last, "alice sent evidence on leg 2");
        // Leg 1: bob calls; the proxy rewrote alice's fingerprint to the relay's, and the relay passes on alice's
        // genuine evidence as its own.
        HostIdentity relay = new Delegating(mallory) {
            @Override
            public Evidence evidence(byte[] binder) {
                return genuine.last;
            }
        };
        try (Outcome leg1 = associate(config(bob, mallory), config(relay, bob))) {
            PeerAttestation p = leg1.client().peer();
            assertEquals(IntegrityLevel.FAILED, p.level(), "the relay passed: " + p.display());
        }
    }

    @Test
    void aHostWhoseTpmWillNotSign_failsWithLocalSignature_andItsFarEndWithTheHandshake() throws Exception {
        // a tampered host: its TIK signs only under a fresh approval of the measured state, which it has not
        HostIdentity tampered = new Delegating(bob) {
            @Override
            public byte[] sign(byte[] sha256Digest) throws IOException {
                throw new IOException("NOT_APPROVED the keystore has no fresh approval of this state");
            }
        };
        // as client (CertificateVerify) and as server (ServerKeyExchange)
        try (Outcome o = associate(config(tampered, alice), config(alice, bob))) {
            assertEquals(DtlsSrtpException.Reason.LOCAL_SIGNATURE, o.client().reason(),
                    String.valueOf(o.client().failure()));
            assertTrue(o.client().failure().getMessage().contains("did not sign"), o.client().failure().getMessage());
            assertEquals(DtlsSrtpException.Reason.HANDSHAKE_FAILED, o.server().reason(),
                    String.valueOf(o.server().failure()));
        }
        try (Outcome o = associate(config(alice, bob), config(tampered, alice))) {
            assertEquals(DtlsSrtpException.Reason.LOCAL_SIGNATURE, o.server().reason(),
                    String.valueOf(o.server().failure()));
            assertEquals(DtlsSrtpException.Reason.HANDSHAKE_FAILED, o.client().reason(),
                    String.valueOf(o.client().failure()));
        }
    }

    @Test
    void strippedEvidence_endsTheAssociation_withEvidenceMissing() throws Exception {
        // Everything the server sends after its handshake (application data, content type 23) is dropped.
        try (Outcome o = associate(config(alice, bob), config(bob, alice), DropApplicationData::new)) {
            assertEquals(DtlsSrtpException.Reason.EVIDENCE_MISSING, o.client().reason(),
                    String.valueOf(o.client().failure()));
            // The server got the client's evidence and decided; that its own never arrived is the client's loss.
            assertEquals(IntegrityLevel.MEASURED, o.server().peer().level(), o.server().peer().display());
        }
    }

    @Test
    void aLostAcknowledgement_isAnsweredAgainAfterTheExchange() throws Exception {
        // The first packet of application data the server sends (its first evidence fragment) is lost.
        try (Outcome o = associate(config(alice, bob), config(bob, alice), t -> new DropApplicationData(t, 1))) {
            assertEquals(IntegrityLevel.MEASURED, o.client().peer().level(), o.client().peer().reason());
            assertEquals(IntegrityLevel.MEASURED, o.server().peer().level(), o.server().peer().display());
        }
    }

    @Test
    void theKeysAreNotObtainable_beforeThePolicyAcceptedTheFarEndsOwnLevel() throws Exception {
        try (Outcome o = associate(config(alice, bob), config(bob, alice))) {
            DtlsSrtpAssociation a = o.client().association();
            assertFalse(a.accepted(), "no keys handed out yet");
            IllegalArgumentException other = org.junit.jupiter.api.Assertions.assertThrows(
                    IllegalArgumentException.class, () -> a.accept(IntegrityLevel.HARDENED));
            assertTrue(other.getMessage().contains("far end is MEASURED"), other.getMessage());
            assertFalse(a.accepted(), "accepting another level than the far end's hands out nothing");
            assertEquals(SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80, a.accept(IntegrityLevel.MEASURED).profile());
            assertTrue(a.accepted(), "accepted the far end's own level");
            a.close();
            IllegalStateException closed = org.junit.jupiter.api.Assertions.assertThrows(
                    IllegalStateException.class, () -> a.accept(IntegrityLevel.MEASURED));
            assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
        }
    }

    @Test
    void bothEndsNameTheSameEvidenceDigest_andAStandardPeerNone() throws Exception {
        try (Outcome o = associate(config(alice, bob), config(bob, alice))) {
            byte[] c = o.client().association().evidenceDigest().orElseThrow();
            byte[] s = o.server().association().evidenceDigest().orElseThrow();
            assertEquals(32, c.length, "a SHA-256 digest");
            assertArrayEquals(c, s, "both ends of one association name the same evidence digest");
        }
        DtlsSrtpConfig plain = config(alice, bob);
        plain = new DtlsSrtpConfig(plain.tls().withoutAttestation(), plain.remoteFingerprints(),
                plain.handshakeTimeout(), plain.evidenceTimeout());
        try (Outcome o = associate(plain, config(bob, alice))) {
            assertTrue(o.client().association().evidenceDigest().isEmpty(), "no evidence, no digest");
            assertTrue(o.server().association().evidenceDigest().isEmpty(), "no evidence, no digest");
        }
    }

    @Test
    void theKeysAreWipedWhenTheAssociationCloses() throws Exception {
        Outcome o = associate(config(alice, bob), config(bob, alice));
        SrtpKeys keys = o.client().association().accept(o.client().peer().level());
        o.close();
        assertTrue(keys.isDestroyed(), "keys destroyed on close");
        IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                keys::localKey);
        assertTrue(e.getMessage().contains("destroyed"), e.getMessage());
    }

    @Test
    void theFarEndsCloseNotify_endsTheAssociation() throws Exception {
        // The transports stay open when Bouncy Castle closes them, as the phone's media socket does.
        UnaryOperator<DatagramTransport> keepOpen = t -> new DropApplicationData(t, 0) {
            @Override
            public void close() {
                // the media socket is not the DTLS stack's to close
            }
        };
        try (Outcome o = associate(config(alice, bob), config(bob, alice), keepOpen, keepOpen)) {
            o.client().association().close();
            DtlsSrtpAssociation server = o.server().association();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            boolean open = true;
            int reads = 0;
            while (open && System.nanoTime() < deadline) {
                open = server.serviceIncoming(200);
                reads++;
            }
            assertFalse(open, "the server still sees the association open after the client's close_notify ("
                    + reads + " reads)");
        }
    }

    /** Returns the evidence of its first association again in later ones (a replay). */
    private static final class Replaying extends Delegating {
        private Evidence recorded;
        volatile boolean replay;

        Replaying(SoftwareHosts.Host host) {
            super(host);
        }

        @Override
        public synchronized Evidence evidence(byte[] binder) throws IOException {
            if (replay && recorded != null) {
                return recorded;
            }
            recorded = super.evidence(binder);
            return recorded;
        }
    }

    /** Remembers the last evidence it made. */
    private static final class Recording extends Delegating {
        volatile Evidence last;

        Recording(SoftwareHosts.Host host) {
            super(host);
        }

        @Override
        public Evidence evidence(byte[] binder) throws IOException {
            last = super.evidence(binder);
            return last;
        }
    }

    private static class Delegating implements HostIdentity {
        private final HostIdentity host;

        Delegating(HostIdentity host) {
            this.host = host;
        }

        @Override
        public java.util.List<java.security.cert.X509Certificate> certificateChain() throws IOException {
            return host.certificateChain();
        }

        @Override
        public byte[] sign(byte[] sha256Digest) throws IOException {
            return host.sign(sha256Digest);
        }

        @Override
        public Evidence evidence(byte[] binder) throws IOException {
            return host.evidence(binder);
        }
    }

    /** Drops outgoing DTLS application-data records (content type 23): all of them, or the first {@code n}. */
    private static class DropApplicationData implements DatagramTransport {
        private final DatagramTransport wire;
        private int toDrop;

        DropApplicationData(DatagramTransport wire) {
            this(wire, Integer.MAX_VALUE);
        }

        DropApplicationData(DatagramTransport wire, int n) {
            this.wire = wire;
            this.toDrop = n;
        }

        @Override
        public int getReceiveLimit() throws IOException {
            return wire.getReceiveLimit();
        }

        @Override
        public int getSendLimit() throws IOException {
            return wire.getSendLimit();
        }

        @Override
        public int receive(byte[] buf, int off, int len, int waitMillis) throws IOException {
            return wire.receive(buf, off, len, waitMillis);
        }

        @Override
        public synchronized void send(byte[] buf, int off, int len) throws IOException {
            if (len > 0 && buf[off] == 23 && toDrop > 0) {
                toDrop--;
                return;
            }
            wire.send(buf, off, len);
        }

        @Override
        public void close() throws IOException {
            wire.close();
        }
    }
}
