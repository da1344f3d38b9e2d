package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.Await;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** A client that connects and says nothing keeps nobody out, and is dropped at the HELLO deadline. */
class BrokerHelloDeadlineTest {
    @Test
    @Timeout(20)
    void aSilentConnection_doesNotKeepTheChildOut_andIsClosedAtTheDeadline(@TempDir Path dir) throws Exception {
        try (Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00")) {
            SocketChannel silent = SocketChannel.open(StandardProtocolFamily.UNIX);
            silent.connect(UnixDomainSocketAddress.of(broker.socketPath()));

            long started = System.nanoTime();
            try (SocketChannel child = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                child.connect(UnixDomainSocketAddress.of(broker.socketPath()));
                Channels.newOutputStream(child).write(("HELLO " + broker.token() + "\n")
                        .getBytes(StandardCharsets.US_ASCII));
                String answer = new BufferedReader(new InputStreamReader(Channels.newInputStream(child),
                        StandardCharsets.US_ASCII)).readLine();
                assertEquals("OK", answer, "the broker's answer to the child's HELLO");
            }
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
            assertTrue(broker.childConnected(), "the broker reports the child connected after its OK");
            assertTrue(ms < Broker.HELLO_DEADLINE.toMillis() + 1000, "the child waited " + ms + " ms");

            // The broker ends the silent connection: at its deadline, or at once with a refusal if its greeting
            // thread only ran after the child had claimed the session (under load it can). Nothing else comes.
            CompletableFuture<String> ended = CompletableFuture.supplyAsync(() -> {
                try {
                    return new String(Channels.newInputStream(silent).readAllBytes(), StandardCharsets.US_ASCII);
                } catch (java.io.IOException e) {
                    return "(read failed: " + e + ")";
                }
            });
            String got = ended.get(Broker.HELLO_DEADLINE.plus(Duration.ofSeconds(3)).toMillis(),
                    TimeUnit.MILLISECONDS);
            assertTrue(got.isEmpty() || got.equals("ERR REFUSED not the measured child\n"),
                    "the silent connection was closed by the broker with nothing but a refusal; it read '" + got + "'");
            silent.close();
        }
    }

    @Test
    @Timeout(20)
    void silentConnectionsBeforeTheChild_areDroppedAndTheChildGetsIn(@TempDir Path dir) throws Exception {
        try (Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00", Duration.ofMillis(300))) {
            SocketChannel[] silent = new SocketChannel[20];
            for (int i = 0; i < silent.length; i++) {
                silent[i] = SocketChannel.open(StandardProtocolFamily.UNIX);
                silent[i].connect(UnixDomainSocketAddress.of(broker.socketPath()));
            }
            // The broker's own close of each silent connection at its deadline is the event to wait for.
            List<CompletableFuture<Integer>> closed = new ArrayList<>();
            for (SocketChannel s : silent) {
                closed.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        return s.read(ByteBuffer.allocate(64));
                    } catch (java.io.IOException e) {
                        return -2;
                    }
                }));
            }
            Await.event("the broker to close all " + silent.length + " silent connections", Duration.ofSeconds(10),
                    CompletableFuture.allOf(closed.toArray(CompletableFuture[]::new)),
                    () -> closed.stream().filter(CompletableFuture::isDone).count() + " closed");
            for (CompletableFuture<Integer> c : closed) {
                assertTrue(c.join() < 0, "a silent connection was closed by the broker, read " + c.join());
            }
            try (SocketChannel child = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                child.connect(UnixDomainSocketAddress.of(broker.socketPath()));
                Channels.newOutputStream(child).write(("HELLO " + broker.token() + "\n")
                        .getBytes(StandardCharsets.US_ASCII));
                assertEquals("OK", new BufferedReader(new InputStreamReader(Channels.newInputStream(child),
                        StandardCharsets.US_ASCII)).readLine(), "the broker's answer to the child's HELLO");
            }
            for (SocketChannel s : silent) {
                s.close();
            }
        }
    }
}
