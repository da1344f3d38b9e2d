package io.tpmphone.softphone;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The softphone's side of the agent broker: answers are read as the protocol says, refusals carry the broker's reason,
 * and a broker that does not answer cannot hang the softphone (issue 13: the broker connection had no read timeout, so
 * a stuck agent stopped every call setup for good). The broker here is a fake on a real Unix socket.
 */
class AgentBrokerTest {
    private static final Duration SHORT = Duration.ofMillis(300);

    @TempDir
    Path dir;
    private final List<AutoCloseable> closing = new CopyOnWriteArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    /**
     * A broker that answers each request line with {@code answers.apply(line)}, or never when that is null; it
     * completes {@code peerClosed} once the softphone closed the connection.
     */
    private Path broker(Function<String, String> answers, CompletableFuture<Void> peerClosed) throws IOException {
        Path socket = dir.resolve("broker.sock");
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        closing.add(server);
        Thread t = new Thread(() -> {
            try (SocketChannel c = server.accept();
                 BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c),
                         StandardCharsets.UTF_8))) {
                OutputStream out = Channels.newOutputStream(c);
                for (String line; (line = in.readLine()) != null; ) {
                    String answer = answers.apply(line);
                    if (answer != null) {
                        out.write((answer + "\n").getBytes(StandardCharsets.UTF_8));
                        out.flush();
                    }
                }
                peerClosed.complete(null);
            } catch (IOException e) {
                peerClosed.complete(null);
            }
        }, "fake-broker");
        t.setDaemon(true);
        t.start();
        return socket;
    }

    @Test
    @Timeout(10)
    void keysAndRefusals_areReadAsTheProtocolSays() throws Exception {
        byte[] key = new byte[16];
        byte[] salt = new byte[14];
        key[0] = 1;
        salt[13] = 2;
        Path socket = broker(line -> switch (line.split(" ")[0]) {
            case "HELLO" -> line.equals("HELLO token") ? "OK" : "ERR BAD_TOKEN";
            case "SRTPKEY" -> line.endsWith(" replayed") ? "ERR NOT_APPROVED the host's state is not approved"
                    : "OK " + Base64.getEncoder().encodeToString(key) + " " + Base64.getEncoder().encodeToString(salt);
            default -> "ERR BAD_REQUEST unknown request";
        }, new CompletableFuture<>());
        try (AgentBroker broker = AgentBroker.connect(socket, "token", SHORT)) {
            try (SrtpKeyMaterial m = broker.srtpKey("AES_CM_128_HMAC_SHA1_80", "call-1")) {
                assertArrayEquals(key, m.key());
                assertArrayEquals(salt, m.salt());
                m.close();
                assertThrows(IllegalStateException.class, m::key, "a wiped key is not handed out");
            }
            BrokerRefusedException refused = assertThrows(BrokerRefusedException.class,
                    () -> broker.srtpKey("AES_CM_128_HMAC_SHA1_80", "replayed"));
            assertEquals("NOT_APPROVED", refused.reason());
            assertTrue(refused.getMessage().contains("not approved"), refused.getMessage());
        }
    }

    @Test
    @Timeout(10)
    void aBrokerThatDoesNotAnswer_failsTheRequestInTime_andClosesTheConnectionForGood() throws Exception {
        CompletableFuture<Void> peerClosed = new CompletableFuture<>();
        Path socket = broker(line -> line.startsWith("HELLO") ? "OK" : null, peerClosed);
        try (AgentBroker broker = AgentBroker.connect(socket, "token", SHORT)) {
            long start = System.nanoTime();
            SocketTimeoutException e = assertThrows(SocketTimeoutException.class,
                    () -> broker.srtpKey("AES_CM_128_HMAC_SHA1_80", "call-1"));
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertTrue(ms >= SHORT.toMillis() && ms < 5_000, "the request failed after " + ms + " ms (timeout "
                    + SHORT.toMillis() + " ms)");
            assertTrue(e.getMessage().contains("did not answer within 300 ms"), e.getMessage());
            peerClosed.get(5, TimeUnit.SECONDS); // the connection is closed: a late answer cannot be misread

            start = System.nanoTime();
            IOException next = assertThrows(IOException.class, () -> broker.certificates());
            assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) < 200,
                    "the next request fails at once, not after another timeout");
            assertTrue(next.getMessage().contains("connection to it is closed"), next.getMessage());
        }
    }

    @Test
    @Timeout(10)
    void aBrokerThatNeverGreets_failsTheConnectInTime() throws Exception {
        CompletableFuture<Void> peerClosed = new CompletableFuture<>();
        Path socket = broker(line -> null, peerClosed);
        long start = System.nanoTime();
        SocketTimeoutException e = assertThrows(SocketTimeoutException.class,
                () -> AgentBroker.connect(socket, "token", SHORT));
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(ms < 5_000, "connect failed after " + ms + " ms");
        assertTrue(e.getMessage().contains("agent broker did not answer"), e.getMessage());
        peerClosed.get(5, TimeUnit.SECONDS);
    }

    @Test
    @Timeout(10)
    void aRefusedToken_isAClearError() throws Exception {
        Path socket = broker(line -> "ERR BAD_TOKEN", new CompletableFuture<>());
        IOException e = assertThrows(IOException.class, () -> AgentBroker.connect(socket, "wrong", SHORT));
        assertTrue(e.getMessage().contains("refused us"), e.getMessage());
        assertTrue(!e.getMessage().contains("wrong"), "the token is not in the message: " + e.getMessage());
    }
}
