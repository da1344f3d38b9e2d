package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.HandshakeGuard;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Finding 8 of the attacker's review: 100 TCP connections to the SIP TLS port that send nothing or half a ClientHello
 * are all closed within the handshake deadline, cost no TPM signature or quote and no thread each, and a real attested
 * call made meanwhile succeeds in time.
 */
class HandshakeFloodIT {
    private static final Duration DEADLINE = Duration.ofSeconds(2);
    private static final int IDLE = 100;
    private final List<SipPhone> phones = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() {
        phones.forEach(SipPhone::close);
    }

    @Test
    @Timeout(60)
    void idleAndHalfHandshakes_areClosedByTheDeadline_withoutTpmWork_andARealCallSucceedsMeanwhile()
            throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity victimId = hosts.identity("victim");
        HandshakeGuard.Limits tls = HandshakeGuard.Limits.DEFAULTS.withDeadline(DEADLINE);
        SipPhone victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        0, Duration.ofSeconds(10)), AttestedTlsConfig.of(victimId, hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { }, null,
                Clock.systemUTC(), SipPhone.Limits.DEFAULTS.withTlsHandshakes(tls));
        phones.add(victim);
        SipPhone caller = SipPhone.start(new SipPhone.Config("caller", "caller", LOOPBACK, TestHosts.freePort(), 0,
                        0, Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity("caller"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
        phones.add(caller);
        InetSocketAddress tlsPort = new InetSocketAddress(LOOPBACK, victim.config().tlsPort());
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        int threadsBefore = threads.getThreadCount();
        threads.resetPeakThreadCount();

        // The attacker: another loopback address (its own source), 100 connections, a third with half a ClientHello.
        InetAddress attacker = InetAddress.getByName("127.0.0.2");
        List<Socket> idle = new ArrayList<>();
        long opened = System.nanoTime();
        try {
            for (int i = 0; i < IDLE; i++) {
                Socket s = new Socket();
                idle.add(s);
                s.bind(new InetSocketAddress(attacker, 0));
                try {
                    s.connect(tlsPort, 2000);
                } catch (IOException resetAtOnce) {
                    continue; // beyond the guard's limits: reset inside accept, as it should be
                }
                if (i % 3 == 0) {
                    // a TLS handshake record header announcing 512 bytes, then only 100 of them
                    byte[] half = new byte[105];
                    half[0] = 0x16;
                    half[1] = 0x03;
                    half[2] = 0x01;
                    half[3] = 0x02;
                    half[4] = 0x00;
                    half[5] = 0x01;
                    try {
                        s.getOutputStream().write(half);
                        s.getOutputStream().flush();
                    } catch (IOException resetAtOnce) {
                        // refused already
                    }
                }
            }

            // Meanwhile a real attested call from another address gets through in time.
            Call call = caller.await(caller.call("sips:victim@victim", tlsPort));
            assertEquals(Call.State.ESTABLISHED, call.state(), "a real call during the flood: " + call.reason());
            assertTrue(System.nanoTime() - opened < DEADLINE.plusSeconds(8).toNanos(), "the call was set up in time");

            // Every attacker connection is closed by the phone (EOF or reset) within the deadline (+1 s of slack).
            for (Socket s : idle) {
                if (s.isClosed() || !s.isConnected()) {
                    continue;
                }
                long left = DEADLINE.plusSeconds(1).toMillis() - (System.nanoTime() - opened) / 1_000_000;
                s.setSoTimeout((int) Math.max(1, left));
                boolean closedByPhone;
                try {
                    closedByPhone = s.getInputStream().read() < 0;
                } catch (SocketTimeoutException e) {
                    closedByPhone = false;
                } catch (IOException reset) {
                    closedByPhone = true;
                }
                assertTrue(closedByPhone, "connection " + idle.indexOf(s) + " of " + IDLE + " from "
                        + s.getLocalSocketAddress() + " is still open " + (System.nanoTime() - opened) / 1_000_000
                        + " ms after it was opened; deadline " + DEADLINE.toMillis() + " ms");
            }
            caller.hangUp(call);
        } finally {
            for (Socket s : idle) {
                s.close();
            }
        }
        // TPM work: the real call's handshakes only (the phone signs as server, and as client should it connect back),
        // none for the 100 connections that never sent a whole ClientHello.
        assertTrue(victimId.signatures.get() <= 2 && victimId.signatures.get() >= 1, "TPM signatures by the phone: "
                + victimId.signatures.get() + " for one real call and " + IDLE + " idle connections");
        assertTrue(victimId.quotes.get() <= 2, "TPM quotes by the phone: " + victimId.quotes.get());
        // Threads: at most the guard's 8 handshakes from the attacker at a time, not one per connection.
        int grew = threads.getPeakThreadCount() - threadsBefore;
        assertTrue(grew < 40, "the peak thread count grew by " + grew + " for " + IDLE + " idle connections");
    }
}
