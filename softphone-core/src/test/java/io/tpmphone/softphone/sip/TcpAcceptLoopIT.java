package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.Socket;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 12's third review, finding 3: the TCP accept loop took any {@code SocketException} as its listening socket
 * closed, including "Socket is closed" from building the channel of a connection the connection table closed (making
 * room, from the TLS listener's thread) just after {@code accept()} returned it: from then on the phone accepted no
 * TCP connection at all.
 */
class TcpAcceptLoopIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private SipPhone victim;
    private RawSip first;
    private RawSip second;

    @AfterEach
    void stop() throws IOException {
        for (RawSip c : new RawSip[] {first, second}) {
            if (c != null) {
                c.close();
            }
        }
        if (victim != null) {
            victim.close();
        }
    }

    @Test
    @Timeout(60)
    void aConnectionClosedBeforeItsChannelIsBuilt_doesNotStopAcceptingTcp() throws Exception {
        TestHosts hosts = new TestHosts();
        victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(),
                        TestHosts.freePort(), 0, Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { }, null,
                Clock.systemUTC(), SipPhone.Limits.DEFAULTS);
        AtomicBoolean once = new AtomicBoolean();
        CompletableFuture<String> closedOne = new CompletableFuture<>();
        victim.connectionTable().afterAdmit = s -> {
            if (once.compareAndSet(false, true)) {
                try {
                    s.close(); // as makeRoomFor from the TLS listener's thread, between accept() and the channel
                } catch (IOException e) {
                    closedOne.completeExceptionally(e);
                }
                closedOne.complete(String.valueOf(s.getRemoteSocketAddress()));
            }
        };
        first = RawSip.tcp(LOOPBACK, victim.config().tcpPort());
        Await.event("the table to close the first connection before its channel", WAIT, closedOne, () -> "");
        victim.connectionTable().afterAdmit = null;

        second = RawSip.tcp(LOOPBACK, victim.config().tcpPort());
        second.send(RawSip.options("after-1", "TCP", second.via()));
        RawSip.Response answer = Await.until("an answer on a TCP connection accepted after that", WAIT,
                () -> second.finals().get("after-1"), x -> x != null);
        assertEquals(200, answer.status(), "the answer on the second connection: " + answer.text());
    }
}
