package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.ManualClock;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.HandshakeGuard;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What the phone opens itself (issue 12's second review, finding 2): connections and datagrams only to destinations it
 * chose, a cap on the connections it opens, and an allowance of TLS handshakes as a client (each a TPM signature),
 * all checked before a connection or a byte. Real sockets on loopback.
 */
class AttestedNetworkLayerTest {
    private final ManualClock clock = new ManualClock();
    private final Set<InetSocketAddress> chosen = ConcurrentHashMap.newKeySet();
    private final List<AutoCloseable> closing = new CopyOnWriteArrayList<>();
    /** The source ports of the connections the listener accepted, in the order they were made (FIFO backlog). */
    private final List<Integer> accepted = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    private AttestedNetworkLayer layer(int outgoingCap, int handshakes) throws Exception {
        TestHosts hosts = new TestHosts();
        ConnectionTable table = new ConnectionTable(Duration.ofMinutes(5), Duration.ofMinutes(10), 16, 256, outgoingCap,
                clock, a -> false);
        closing.add(table);
        HandshakeGuard guard = new HandshakeGuard(HandshakeGuard.Limits.DEFAULTS, clock);
        closing.add(guard);
        AttestedNetworkLayer layer = new AttestedNetworkLayer();
        layer.bind(new AttestedNetworkLayer.Stack(AttestedTlsConfig.of(hosts.identity("phone"), hosts.verifier(),
                Clock.systemUTC()), (remote, peer) -> { }, (remote, peer) -> { }, guard, table, chosen::contains,
                new TokenBucket(clock, handshakes, 1.0), new UdpRefusalBudget(), clock));
        return layer;
    }

    /** A listener on loopback that counts the connections it accepts (and holds them). */
    private InetSocketAddress listener() throws IOException {
        ServerSocket server = new ServerSocket(0, 50, LOOPBACK);
        closing.add(server);
        Thread t = new Thread(() -> {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    closing.add(s);
                    accepted.add(s.getPort());
                } catch (IOException e) {
                    return;
                }
            }
        }, "counting-listener");
        t.setDaemon(true);
        t.start();
        return new InetSocketAddress(LOOPBACK, server.getLocalPort());
    }

    @Test
    @Timeout(30)
    void aDestinationThePhoneDidNotChoose_getsNoConnectionNoHandshakeAndNoDatagram() throws Exception {
        AttestedNetworkLayer layer = layer(64, 16);
        InetSocketAddress there = listener();
        IOException tcp = assertThrows(IOException.class, () -> layer.createSocket(there.getAddress(),
                there.getPort(), LOOPBACK));
        assertTrue(tcp.getMessage().contains("did not choose"), tcp.getMessage());
        assertThrows(IOException.class, () -> layer.createSSLSocket(there.getAddress(), there.getPort(), LOOPBACK));
        try (DatagramSocket receiver = new DatagramSocket(0, LOOPBACK); DatagramSocket sender =
                layer.createDatagramSocket()) {
            byte[] b = "SIP/2.0 200 OK\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            assertThrows(IOException.class, () -> sender.send(new DatagramPacket(b, b.length, LOOPBACK,
                    receiver.getLocalPort())));
            // once chosen, the same destination gets its datagram
            chosen.add(new InetSocketAddress(LOOPBACK, receiver.getLocalPort()));
            sender.send(new DatagramPacket(b, b.length, LOOPBACK, receiver.getLocalPort()));
            receiver.setSoTimeout(5_000);
            DatagramPacket p = new DatagramPacket(new byte[100], 100);
            receiver.receive(p);
            assertEquals(b.length, p.getLength(), "the datagram to a chosen destination arrived");
        }
        // a chosen destination gets its connection; the listener saw that one only
        chosen.add(there);
        Socket s = layer.createSocket(there.getAddress(), there.getPort(), LOOPBACK);
        closing.add(s);
        assertTrue(s.isConnected(), "connected to a chosen destination");
        assertEquals(List.of(s.getLocalPort()), acceptedUpTo(s), "connections the listener got: only the chosen one");
    }

    @Test
    @Timeout(30)
    void connectionsThePhoneOpens_areCapped_andAClosedOneMakesRoom() throws Exception {
        AttestedNetworkLayer layer = layer(3, 16);
        InetSocketAddress there = listener();
        chosen.add(there);
        Socket[] open = new Socket[3];
        for (int i = 0; i < 3; i++) {
            open[i] = layer.createSocket(there.getAddress(), there.getPort(), LOOPBACK);
            closing.add(open[i]);
        }
        IOException fourth = assertThrows(IOException.class, () -> layer.createSocket(there.getAddress(),
                there.getPort(), LOOPBACK));
        assertTrue(fourth.getMessage().contains("at most 3"), fourth.getMessage());
        open[0].close();
        closing.add(layer.createSocket(there.getAddress(), there.getPort(), LOOPBACK));
    }

    @Test
    @Timeout(30)
    void tlsHandshakesAsAClient_spendAnAllowance_checkedBeforeConnecting() throws Exception {
        AttestedNetworkLayer layer = layer(64, 2);
        InetSocketAddress there = listener();
        chosen.add(there);
        // the sockets are made (connected, not handshaken: the handshake starts on first use)
        Socket first = layer.createSSLSocket(there.getAddress(), there.getPort(), LOOPBACK);
        closing.add(first);
        Socket second = layer.createSSLSocket(there.getAddress(), there.getPort(), LOOPBACK);
        closing.add(second);
        IOException third = assertThrows(IOException.class, () -> layer.createSSLSocket(there.getAddress(),
                there.getPort(), LOOPBACK));
        assertTrue(third.getMessage().contains("TLS handshakes as a client"), third.getMessage());
        // one second later there is one more
        clock.advance(Duration.ofSeconds(1));
        Socket fourth = layer.createSSLSocket(there.getAddress(), there.getPort(), LOOPBACK);
        closing.add(fourth);
        assertEquals(List.of(first.getLocalPort(), second.getLocalPort(), fourth.getLocalPort()), acceptedUpTo(fourth),
                "connections the listener got: the refused handshake made none");
    }

    /** What the listener accepted, once it accepted {@code last} (connections are accepted in the order made). */
    private List<Integer> acceptedUpTo(Socket last) {
        io.tpmphone.swtpm.testing.Await.until("the listener to accept the connection from port "
                + last.getLocalPort(), Duration.ofSeconds(5), () -> List.copyOf(accepted),
                ports -> ports.contains(last.getLocalPort()));
        return List.copyOf(accepted);
    }
}
