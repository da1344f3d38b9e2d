package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.softphone.media.DtlsDatagramTransport;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The DTLS handshake on a call's media socket (unconnected, as the phone's RTP socket is) while other traffic arrives
 * on it: early RTP from the far end, and DTLS-looking datagrams from a third address. Only the far end's DTLS reaches
 * the handshake; the rest is dropped and counted.
 */
@Timeout(60)
class DtlsOnTheMediaSocketTest {
    @Test
    void theHandshakeCompletes_whileRtpAndAThirdPartysDatagramsAreDropped() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity alice = hosts.identity("alice");
        TestHosts.CountingIdentity bob = hosts.identity("bob");
        ExecutorService threads = Executors.newCachedThreadPool();
        AtomicBoolean spraying = new AtomicBoolean(true);
        try (DatagramSocket a = new DatagramSocket(new InetSocketAddress(TestHosts.LOOPBACK, 0));
             DatagramSocket b = new DatagramSocket(new InetSocketAddress(TestHosts.LOOPBACK, 0));
             DatagramSocket stranger = new DatagramSocket(new InetSocketAddress(TestHosts.LOOPBACK, 0))) {
            DtlsDatagramTransport at = new DtlsDatagramTransport(a, (InetSocketAddress) b.getLocalSocketAddress());
            DtlsDatagramTransport bt = new DtlsDatagramTransport(b, (InetSocketAddress) a.getLocalSocketAddress());
            // Early RTP from bob's own address (version 2: first byte 0x80) and DTLS-looking junk from a stranger.
            CompletableFuture<Integer> sprayed = CompletableFuture.supplyAsync(() -> {
                int n = 0;
                byte[] rtp = new byte[172];
                rtp[0] = (byte) 0x80;
                byte[] fakeDtls = new byte[60];
                fakeDtls[0] = 22;
                try {
                    while (spraying.get() && n < 20_000) {
                        b.send(new DatagramPacket(rtp, rtp.length, a.getLocalSocketAddress()));
                        stranger.send(new DatagramPacket(fakeDtls, fakeDtls.length, a.getLocalSocketAddress()));
                        n += 2;
                    }
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                return n;
            }, threads);
            DtlsSrtpConfig aliceSide = DtlsSrtpConfig.of(AttestedTlsConfig.of(alice, hosts.verifier(),
                    Clock.systemUTC()).withoutAttestation(), fingerprint(bob));
            DtlsSrtpConfig bobSide = DtlsSrtpConfig.of(AttestedTlsConfig.of(bob, hosts.verifier(),
                    Clock.systemUTC()).withoutAttestation(), fingerprint(alice));
            Future<DtlsSrtpAssociation> server = threads.submit(() -> new DtlsSrtpEndpoint().establish(at, false,
                    aliceSide));
            Future<DtlsSrtpAssociation> client = threads.submit(() -> new DtlsSrtpEndpoint().establish(bt, true,
                    bobSide));
            try (DtlsSrtpAssociation s = server.get(30, TimeUnit.SECONDS);
                 DtlsSrtpAssociation c = client.get(30, TimeUnit.SECONDS)) {
                spraying.set(false);
                int n = sprayed.get(30, TimeUnit.SECONDS);
                assertEquals(IntegrityLevel.UNATTESTED, s.peer().level(), s.peer().display());
                assertArrayEquals(c.accept(c.peer().level()).localKey(), s.accept(s.peer().level()).remoteKey(),
                        "the SRTP keys agree");
                assertTrue(at.dropped() > 0, "alice's side dropped the RTP and the stranger's datagrams ("
                        + at.dropped() + " of " + n + " sent)");
            }
        } finally {
            spraying.set(false);
            threads.shutdownNow();
        }
    }

    private static DtlsFingerprint fingerprint(TestHosts.CountingIdentity id) throws Exception {
        return DtlsFingerprint.sha256(id.certificateChain().get(0).getEncoded());
    }
}
