package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLHandshakeException;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A connection closed in the middle of an attested TLS handshake (issue 18's hour-long soak: one INVITE in 3150 calls
 * refused with a bare {@code handshake_failure(40)}). Bouncy Castle turns a peer's close without an alert into a
 * {@code handshake_failure} it raises itself, and a server's {@link HandshakeGuard} closes a handshake that passes its
 * deadline without an alert. Both sides must say what happened, and the server must count it.
 */
@Timeout(60)
class HandshakeClosedMidwayTest {
    private static SoftwareHosts hosts;
    private static SoftwareHosts.Host alice;
    private static SoftwareHosts.Host bob;

    @BeforeAll
    static void hosts() throws Exception {
        hosts = new SoftwareHosts(Clock.systemUTC());
        alice = hosts.host("alice", IntegrityLevel.MEASURED);
        bob = hosts.host("bob", IntegrityLevel.MEASURED);
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null) {
            c = c.getCause();
        }
        return String.valueOf(c.getMessage());
    }

    @Test
    void aServerThatClosesMidHandshake_isReportedAsAClose_notAsANegotiationFailure() throws Exception {
        try (ServerSocket raw = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            // a server that reads the ClientHello's record header and closes without an alert, as the guard does
            CompletableFuture<Integer> server = CompletableFuture.supplyAsync(() -> {
                try (Socket s = raw.accept()) {
                    InputStream in = s.getInputStream();
                    return in.readNBytes(5).length;
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            Socket plain = new Socket(InetAddress.getLoopbackAddress(), raw.getLocalPort());
            plain.setSoTimeout(10_000);
            try (AttestedSslSocket client = new AttestedSslSocket(plain, true, () -> new AttestedTlsClient(
                    new JcaTlsCryptoProvider().create(new SecureRandom()),
                    AttestedTlsConfig.of(bob, hosts.verifier(), Clock.systemUTC())))) {
                SSLHandshakeException e = assertThrows(SSLHandshakeException.class, client::startHandshake);
                assertEquals(5, server.get(10, TimeUnit.SECONDS), "the server read the ClientHello's header");
                String root = rootMessage(e);
                assertTrue(root.startsWith("the peer closed the connection ")
                        && root.contains("ms into the TLS handshake, without an alert")
                        && root.contains("deadline"), "the reason a caller shows, saw: " + root);
                assertTrue(e.getMessage().contains("closed the connection"), "the exception's message, saw: "
                        + e.getMessage());
            }
        }
    }

    @Test
    void aServerHandshakePastTheGuardsDeadline_failsNamingTheDeadline_andIsCounted() throws Exception {
        CompletableFuture<IOException> toldTheGate = new CompletableFuture<>();
        AttestedSslSocket.Gate gate = new AttestedSslSocket.Gate() {
            @Override
            public void admit(SocketAddress remote, java.util.Optional<PeerAttestation> peer) {
            }

            @Override
            public void failed(SocketAddress remote, IOException cause) {
                toldTheGate.complete(cause);
            }
        };
        try (ServerSocket raw = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
             HandshakeGuard guard = new HandshakeGuard(HandshakeGuard.Limits.DEFAULTS
                     .withDeadline(Duration.ofMillis(300)));
             // a client that connects and then says nothing: the server's handshake waits for its ClientHello
             Socket silent = new Socket()) {
            AttestedSslServerSocket server = new AttestedSslServerSocket(raw, () -> new AttestedTlsServer(
                    new JcaTlsCryptoProvider().create(new SecureRandom()),
                    AttestedTlsConfig.of(alice, hosts.verifier(), Clock.systemUTC())), guard, gate);
            CompletableFuture<Void> handshake = CompletableFuture.runAsync(() -> {
                try (AttestedSslSocket s = (AttestedSslSocket) server.accept()) {
                    s.startHandshake();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            silent.connect(raw.getLocalSocketAddress());
            ExecutionException e = assertThrows(ExecutionException.class, () -> handshake.get(20, TimeUnit.SECONDS));
            Throwable failure = e.getCause().getCause();
            assertTrue(failure instanceof SSLHandshakeException, "the server's handshake failure, saw: " + failure);
            assertTrue(failure.getMessage().contains("did not complete within the server's deadline of 300 ms"),
                    "the server's failure names its deadline, saw: " + failure.getMessage());
            IOException gateSaw = toldTheGate.get(10, TimeUnit.SECONDS);
            assertTrue(gateSaw.getMessage().contains("deadline of 300 ms"), "what the gate heard, saw: "
                    + gateSaw.getMessage());
            assertEquals(1, guard.deadlinesPassed(), "handshakes counted past the deadline");
            assertEquals(0, guard.evictions(), "evictions");
            assertEquals(0, guard.refusals(), "refusals");
        }
    }
}
