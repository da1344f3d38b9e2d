package io.tpmphone.e2e;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.TwoHostRig;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.agent.Agent;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.tls.AttestationRequest;
import io.tpmphone.tls.AttestedTlsClient;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.AttestedTlsServer;
import io.tpmphone.tls.Binder;
import io.tpmphone.tls.Evidence;
import io.tpmphone.tls.HostIdentity;
import io.tpmphone.tls.PassportVerifier;
import io.tpmphone.tls.PeerAttestation;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmQuote;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Hashtable;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.DefaultTlsClient;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.ServerOnlyTlsAuthentication;
import org.bouncycastle.tls.TlsAuthentication;
import org.bouncycastle.tls.TlsClientProtocol;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.bouncycastle.tls.TlsServerCertificate;
import org.bouncycastle.tls.TlsServerProtocol;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Attested TLS 1.3 between two real hosts — two swtpm TPMs, the attestation server over HTTPS, two agents with their
 * measured softphone cores — over real TCP sockets, with each side's identity served by its agent's broker exactly as
 * the softphone gets it: both see MEASURED; relayed evidence, evidence for another key, a stripped extension and
 * malformed extension bytes are refused.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@org.junit.jupiter.api.extension.ExtendWith(SharedRig.class) // the module's shared rig: this class only uses it
class AttestedTlsIT {
    private final ExecutorService pool = Executors.newCachedThreadPool();
    private final TlsCrypto crypto = new JcaTlsCryptoProvider().create(new SecureRandom());
    private TwoHostRig hosts;
    private Agent alice;
    private TpmClient aliceTpm;
    private AttestationClient client;
    private HostIdentity aliceId;
    private HostIdentity bobId;
    private PassportVerifier verifier;

    @BeforeAll
    void start(TwoHostRig rig) throws Exception {
        hosts = rig;
        client = hosts.client();
        alice = hosts.alice().agent();
        aliceTpm = hosts.alice().tpm();
        aliceId = hosts.alice().identity();
        bobId = hosts.bob().identity();
        verifier = hosts.verifier();
    }

    @AfterAll
    void stop() throws Exception {
        pool.shutdownNow();
    }

    /** What one connection ended with on each side. */
    private record Outcome(Optional<PeerAttestation> clientSawServer, Optional<PeerAttestation> serverSawClient,
                           Exception clientError, Exception serverError, String echoed) {
    }

    private Outcome connect(org.bouncycastle.tls.TlsClient tlsClient, AttestedTlsServer tlsServer) throws Exception {
        try (ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            AtomicReference<Exception> serverError = new AtomicReference<>();
            CompletableFuture<Void> served = CompletableFuture.runAsync(() -> {
                try (Socket s = listener.accept()) {
                    s.setSoTimeout(20_000);
                    TlsServerProtocol p = new TlsServerProtocol(s.getInputStream(), s.getOutputStream());
                    p.accept(tlsServer);
                    byte[] line = new byte[5];
                    int n = p.getInputStream().readNBytes(line, 0, 5);
                    p.getOutputStream().write(line, 0, n);
                    p.close();
                } catch (Exception e) {
                    serverError.set(e);
                }
            }, pool);
            Exception clientError = null;
            String echoed = null;
            try (Socket s = new Socket(InetAddress.getLoopbackAddress(), listener.getLocalPort())) {
                s.setSoTimeout(20_000);
                TlsClientProtocol p = new TlsClientProtocol(s.getInputStream(), s.getOutputStream());
                p.connect(tlsClient);
                p.getOutputStream().write("hello".getBytes(StandardCharsets.US_ASCII));
                echoed = new String(p.getInputStream().readNBytes(5), StandardCharsets.US_ASCII);
                p.close();
            } catch (Exception e) {
                clientError = e;
            }
            served.get(30, TimeUnit.SECONDS);
            Optional<PeerAttestation> clientSaw = tlsClient instanceof AttestedTlsClient a ? a.peer()
                    : Optional.empty();
            return new Outcome(clientSaw, tlsServer.peer(), clientError, serverError.get(), echoed);
        }
    }

    private AttestedTlsConfig config(HostIdentity id) {
        return AttestedTlsConfig.of(id, verifier, Clock.systemUTC());
    }

    @Test
    void twoMeasuredHosts_seeEachOtherMeasured_andTalk() throws Exception {
        Outcome o = connect(new AttestedTlsClient(crypto, config(aliceId)), new AttestedTlsServer(crypto,
                config(bobId)));
        assertEquals("hello", o.echoed(), () -> "client: " + o.clientError() + " server: " + o.serverError());
        PeerAttestation seenByAlice = o.clientSawServer().orElseThrow();
        PeerAttestation seenByBob = o.serverSawClient().orElseThrow();
        assertEquals(IntegrityLevel.MEASURED, seenByAlice.level(), seenByAlice.reason());
        assertEquals(Optional.of("bob"), seenByAlice.host(), seenByAlice::display);
        assertEquals(IntegrityLevel.MEASURED, seenByBob.level(), seenByBob.reason());
        assertEquals(Optional.of("alice"), seenByBob.host(), seenByBob::display);
        assertTrue(seenByAlice.summary().contains("release softphone-"),
                () -> "the summary names the softphone release: " + seenByAlice.summary());
        assertTrue(seenByAlice.freshness().orElseThrow().compareTo(Duration.ofMinutes(5)) <= 0,
                () -> "evidence at most 5 minutes old: " + seenByAlice.freshness() + "; " + seenByAlice.summary());
        assertTrue(seenByBob.display().startsWith("MEASURED alice"),
                () -> "bob's display starts with MEASURED alice: " + seenByBob.display());
    }

    @Test
    void evidenceRelayedFromAnotherHandshake_isFailedAtTheQuote() throws Exception {
        AtomicReference<Evidence> first = new AtomicReference<>();
        HostIdentity relaying = new HostIdentity() {
            @Override
            public List<X509Certificate> certificateChain() throws IOException {
                return bobId.certificateChain();
            }

            @Override
            public byte[] sign(byte[] digest) throws IOException {
                return bobId.sign(digest);
            }

            @Override
            public Evidence evidence(byte[] binder) throws IOException {
                // The first handshake's evidence, played again in every later one.
                first.compareAndSet(null, bobId.evidence(binder));
                return first.get();
            }
        };
        Outcome genuine = connect(new AttestedTlsClient(crypto, config(aliceId)),
                new AttestedTlsServer(crypto, config(relaying)));
        assertEquals(IntegrityLevel.MEASURED, genuine.clientSawServer().orElseThrow().level(),
                () -> genuine.clientSawServer().orElseThrow().reason());
        Outcome relayed = connect(new AttestedTlsClient(crypto, config(aliceId)),
                new AttestedTlsServer(crypto, config(relaying)));
        PeerAttestation p = relayed.clientSawServer().orElseThrow();
        assertEquals(IntegrityLevel.FAILED, p.level(), p::reason);
        assertTrue(p.reason().startsWith("QUOTE: QUALIFYING_DATA"),
                () -> "relayed evidence fails at the quote's qualifying data: " + p.reason());

        // With a floor of MEASURED the client ends that handshake itself.
        Outcome refused = connect(new AttestedTlsClient(crypto, config(aliceId)
                .withHandshakeFloor(IntegrityLevel.MEASURED)), new AttestedTlsServer(crypto, config(relaying)));
        // The client raised access_denied itself; the server sees the alert or the closed connection.
        assertInstanceOf(org.bouncycastle.tls.TlsFatalAlert.class, refused.clientError(),
                String.valueOf(refused.clientError()));
        assertEquals(AlertDescription.access_denied,
                ((org.bouncycastle.tls.TlsFatalAlert) refused.clientError()).getAlertDescription(),
                () -> "the client's alert: " + refused.clientError());
        assertTrue(refused.serverError() != null, () -> "the server's handshake did not complete; it saw the client "
                + refused.serverSawClient().map(PeerAttestation::display) + " and echoed " + refused.echoed());
        assertEquals(null, refused.echoed(), () -> "nothing echoed; the client's error " + refused.clientError());
    }

    @Test
    void evidenceMadeForAnotherTik_isFailedAtTheQuote() throws Exception {
        byte[] clientRandom = new byte[32];
        byte[] serverRandom = new byte[32];
        byte[] nonce = new byte[32];
        new SecureRandom().nextBytes(clientRandom);
        new SecureRandom().nextBytes(serverRandom);
        new SecureRandom().nextBytes(nonce);
        List<X509Certificate> bobChain = bobId.certificateChain();
        byte[] aliceSpki = aliceId.certificateChain().get(0).getPublicKey().getEncoded();
        // Bob's TPM quotes a binder over Alice's TIK; Bob presents it with his own certificate.
        Evidence forOtherKey = bobId.evidence(Binder.compute(true, clientRandom, serverRandom, aliceSpki, nonce));
        PeerAttestation p = verifier.appraise(bobChain, forOtherKey, Binder.compute(true, clientRandom, serverRandom,
                bobChain.get(0).getPublicKey().getEncoded(), nonce));
        assertEquals(IntegrityLevel.FAILED, p.level(), p::reason);
        assertTrue(p.reason().startsWith("QUOTE: QUALIFYING_DATA"),
                () -> "a binder over another TIK fails at the quote's qualifying data: " + p.reason());
        // The same evidence with Bob's own key in the binder verifies: the TIK is what made the difference.
        Evidence own = bobId.evidence(Binder.compute(true, clientRandom, serverRandom,
                bobChain.get(0).getPublicKey().getEncoded(), nonce));
        PeerAttestation ownSeen = verifier.appraise(bobChain, own, Binder.compute(true, clientRandom,
                serverRandom, bobChain.get(0).getPublicKey().getEncoded(), nonce));
        assertEquals(IntegrityLevel.MEASURED, ownSeen.level(), ownSeen::reason);
    }

    @Test
    void aPassportThatSaysFailed_makesThePeerFailed_evenWithAFreshQuote() throws Exception {
        // Alice's TPM state appraised with a log whose last event was altered: the server signs FAILED.
        MeasurementLog log = alice.store().log();
        List<MeasurementEvent> events = new ArrayList<>(log.events());
        MeasurementEvent last = events.remove(events.size() - 1);
        events.add(MeasurementEvent.of(last.sequence(), last.pcrIndex(), last.type(), last.contentDigest(),
                last.dataAsString() + " (edited)"));
        HostAttestation.Verdict failed = new HostAttestation(aliceTpm, client).attest(alice.status().akId(),
                MeasurementLog.of(events));
        assertEquals(IntegrityLevel.FAILED, failed.level(),
                () -> "the edited log fails; failedCheck " + failed.failedCheck()
                + ", reasons " + failed.reasons());
        byte[] cr = new byte[32];
        byte[] sr = new byte[32];
        byte[] nonce = new byte[32];
        List<X509Certificate> chain = aliceId.certificateChain();
        byte[] binder = Binder.compute(false, cr, sr, chain.get(0).getPublicKey().getEncoded(), nonce);
        TpmQuote q = aliceTpm.quote(HostAttestation.AK, io.tpmphone.attestation.PcrSelection.parse("sha256:0-7,14"),
                binder);
        Evidence e = new Evidence(AttestationRequest.FORMAT_TPM2_PASSPORT,
                aliceTpm.readPublic(HostAttestation.AK).orElseThrow().encoded(), q.attest(), q.signature(),
                failed.result());
        PeerAttestation p = verifier.appraise(chain, e, binder);
        assertEquals(IntegrityLevel.FAILED, p.level(), p.reason());
        assertEquals(Optional.of("alice"), p.host(), p::display);
        Agent.Status now = alice.attestNow();
        assertEquals(Optional.of(IntegrityLevel.MEASURED), now.level(), () -> "alice's own state is unchanged: " + now);
    }

    /** A TLS 1.3 client without the attestation extension (an ordinary SIP phone, or a stripped ClientHello). */
    private DefaultTlsClient plainClient() {
        return new DefaultTlsClient(crypto) {
            @Override
            protected ProtocolVersion[] getSupportedVersions() {
                return ProtocolVersion.TLSv13.only();
            }

            @Override
            public TlsAuthentication getAuthentication() {
                return new ServerOnlyTlsAuthentication() {
                    @Override
                    public void notifyServerCertificate(TlsServerCertificate serverCertificate) {
                        // an ordinary phone that would check the certificate against its own trust store
                    }
                };
            }
        };
    }

    @Test
    void aClientWithoutTheExtension_isUnattested_andRefusedWhenAttestationIsRequired() throws Exception {
        Outcome reported = connect(plainClient(), new AttestedTlsServer(crypto, config(bobId)));
        assertEquals("hello", reported.echoed(), String.valueOf(reported.serverError()));
        PeerAttestation p = reported.serverSawClient().orElseThrow();
        assertEquals(IntegrityLevel.UNATTESTED, p.level(), p::reason);

        Outcome refused = connect(plainClient(), new AttestedTlsServer(crypto, config(bobId)
                .withHandshakeFloor(IntegrityLevel.MEASURED)));
        // The server ends the handshake with access_denied. A TLS 1.3 client is done after its Finished, so it may be
        // writing application data when the alert arrives: it sees the alert, or the connection already closed.
        assertInstanceOf(org.bouncycastle.tls.TlsFatalAlert.class, refused.serverError(),
                String.valueOf(refused.serverError()));
        assertEquals(AlertDescription.access_denied,
                ((org.bouncycastle.tls.TlsFatalAlert) refused.serverError()).getAlertDescription(),
                () -> "the server's alert: " + refused.serverError());
        if (refused.clientError() instanceof TlsFatalAlertReceived alert) {
            assertEquals(AlertDescription.access_denied, alert.getAlertDescription(),
                    () -> "the alert the client received: " + AlertDescription.getText(alert.getAlertDescription()));
        } else {
            assertInstanceOf(java.io.IOException.class, refused.clientError(),
                    () -> "the client's connection ended: " + refused.clientError());
        }
        assertEquals(null, refused.echoed(), () -> "no application data was served; the client's error "
                + refused.clientError());
        assertEquals(IntegrityLevel.UNATTESTED, refused.serverSawClient().orElseThrow().level(),
                () -> refused.serverSawClient().orElseThrow().reason());
    }

    @Test
    void malformedExtensionBytes_endTheHandshakeWithAnAlert_andTheServerKeepsServing() throws Exception {
        for (byte[] junk : List.of(new byte[0], new byte[] {1}, new byte[] {9, 3, 1, 1, 16},
                Base64.getDecoder().decode("AQMBARAAAAAAAAAAAAAAAAAAAAAA/w=="))) {
            DefaultTlsClient bad = new DefaultTlsClient(crypto) {
                @Override
                protected ProtocolVersion[] getSupportedVersions() {
                    return ProtocolVersion.TLSv13.only();
                }

                @Override
                public Hashtable<Integer, byte[]> getClientExtensions() throws IOException {
                    @SuppressWarnings("unchecked")
                    Hashtable<Integer, byte[]> ext = org.bouncycastle.tls.TlsExtensionsUtils
                            .ensureExtensionsInitialised(super.getClientExtensions());
                    ext.put(AttestationRequest.EXTENSION_TYPE, junk);
                    return ext;
                }

                @Override
                public TlsAuthentication getAuthentication() {
                    return new ServerOnlyTlsAuthentication() {
                        @Override
                        public void notifyServerCertificate(TlsServerCertificate c) {
                            // not reached
                        }
                    };
                }
            };
            Outcome o = connect(bad, new AttestedTlsServer(crypto, config(bobId)));
            assertInstanceOf(TlsFatalAlertReceived.class, o.clientError(), String.valueOf(o.clientError()));
            short alert = ((TlsFatalAlertReceived) o.clientError()).getAlertDescription();
            assertTrue(alert == AlertDescription.decode_error || alert == AlertDescription.illegal_parameter,
                    () -> "a decode_error or illegal_parameter alert for " + junk.length + " junk bytes; got alert "
                            + AlertDescription.getText(alert) + " (server: " + o.serverError() + ")");
        }
        Outcome after = connect(new AttestedTlsClient(crypto, config(aliceId)),
                new AttestedTlsServer(crypto, config(bobId)));
        assertEquals(IntegrityLevel.MEASURED, after.clientSawServer().orElseThrow().level(),
                () -> "the server keeps serving: " + after.clientSawServer().orElseThrow().reason() + "; client error "
                        + after.clientError() + ", server error " + after.serverError());
    }
}
