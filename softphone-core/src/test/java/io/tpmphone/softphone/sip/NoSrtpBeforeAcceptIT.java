package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two calls' audio sessions set up DTLS-SRTP on their RTP sockets. Bob's policy accepts alice at once and his SRTP
 * starts; alice's has not decided. Until alice accepts bob's level nothing she would send exists (her SRTP keys are
 * not obtainable without {@code accept(level)}), nothing of bob's SRTP reaches her decoder, and nothing arrives at bob
 * from her; once she accepts, audio flows both ways.
 */
@Timeout(60)
class NoSrtpBeforeAcceptIT {
    private static final Duration WAIT = Duration.ofSeconds(20);

    @Test
    void noSrtpLeavesOrIsAccepted_beforeThePolicyAcceptedTheFarEnd() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity alice = hosts.identity("alice");
        TestHosts.CountingIdentity bob = hosts.identity("bob");
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try (AudioSession a = AudioSession.open(TestHosts.LOOPBACK, Wav.tone(1000, 0.5, 1));
             AudioSession b = AudioSession.open(TestHosts.LOOPBACK, Wav.tone(440, 0.5, 1))) {
            InetSocketAddress toA = new InetSocketAddress(TestHosts.LOOPBACK, a.localPort());
            InetSocketAddress toB = new InetSocketAddress(TestHosts.LOOPBACK, b.localPort());
            Future<DtlsSrtpAssociation> server = threads.submit(() -> new DtlsSrtpEndpoint().establish(a.dtls(toB),
                    false, config(hosts, alice, bob)));
            Future<DtlsSrtpAssociation> client = threads.submit(() -> new DtlsSrtpEndpoint().establish(b.dtls(toA),
                    true, config(hosts, bob, alice)));
            try (DtlsSrtpAssociation atAlice = server.get(30, TimeUnit.SECONDS);
                 DtlsSrtpAssociation atBob = client.get(30, TimeUnit.SECONDS)) {
                b.start(atBob.accept(atBob.peer().level()), toA, 0);
                Await.until("bob to send 100 SRTP packets", WAIT, () -> b.stats().packetsSent() >= 100,
                        () -> "bob sent " + b.stats().packetsSent());
                assertFalse(atAlice.accepted(), "alice's policy has not accepted bob yet");
                assertEquals(0, a.received().samples().length, () -> "nothing of bob's reached alice's decoder: "
                        + a.received().samples().length + " samples");
                assertEquals(0, b.datagramsReceived(), () -> "nothing arrived at bob from alice: "
                        + b.datagramsReceived() + " datagrams");
                assertThrows(IllegalArgumentException.class, () -> atAlice.accept(
                        io.tpmphone.attestation.IntegrityLevel.MEASURED), "alice cannot accept a level bob is not");
                a.start(atAlice.accept(atAlice.peer().level()), toB, 0);
                Await.until("each side to decode 8000 samples of the other's audio", WAIT,
                        () -> a.received().samples().length >= 8000 && b.received().samples().length >= 8000,
                        () -> "alice " + a.received().samples().length + " (" + a.stats() + "), bob "
                                + b.received().samples().length + " (" + b.stats() + ")");
                assertEquals(440.0, Wav.dominantFrequency(a.received().samples(), 4000), 20.0,
                        () -> "alice hears bob's tone, keyed from the handshake: " + a.stats());
                assertEquals(1000.0, Wav.dominantFrequency(b.received().samples(), 4000), 20.0,
                        () -> "bob hears alice's tone: " + b.stats());
                assertTrue(b.datagramsReceived() > 0, "alice's SRTP arrives once she accepted");
            }
        } finally {
            threads.shutdownNow();
        }
    }

    private static DtlsSrtpConfig config(TestHosts hosts, TestHosts.CountingIdentity us, TestHosts.CountingIdentity them)
            throws Exception {
        return DtlsSrtpConfig.of(AttestedTlsConfig.of(us, hosts.verifier(), Clock.systemUTC()),
                DtlsFingerprint.sha256(them.certificateChain().get(0).getEncoded()));
    }
}
