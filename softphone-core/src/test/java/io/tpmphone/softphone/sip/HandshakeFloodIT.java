package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.ManualClock;
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
        // what JAIN-SIP logs about the failed handshakes (each was an ERROR with a whole stack trace)
        ch.qos.logback.classic.Logger sipLog = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(
                "gov.nist.javax.sip");
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> logged =
                new ch.qos.logback.core.read.ListAppender<>();
        logged.start();
        sipLog.addAppender(logged);
        long logFrom = System.nanoTime();
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
            sipLog.detachAppender(logged);
        }
        List<ch.qos.logback.classic.spi.ILoggingEvent> traced = logged.list.stream()
                .filter(e -> e.getThrowableProxy() != null).toList();
        assertTrue(traced.isEmpty(), traced.size() + " of JAIN-SIP's " + logged.list.size() + " lines carried a stack"
                + " trace, the first: " + (traced.isEmpty() ? "" : traced.get(0).getFormattedMessage()));
        long seconds = (System.nanoTime() - logFrom) / 1_000_000_000L + 2; // the seconds the log may have begun
        assertTrue(logged.list.size() <= seconds * (Slf4jStackLogger.LINES_PER_SECOND + 1), "JAIN-SIP logged "
                + logged.list.size() + " lines in " + (seconds - 2) + " s of the flood (at most "
                + Slf4jStackLogger.LINES_PER_SECOND + " a second and a count of those left out)");
        // TPM work: the real call's handshakes only (the phone signs as server, and as client should it connect back),
        // none for the 100 connections that never sent a whole ClientHello.
        assertTrue(victimId.signatures.get() <= 2 && victimId.signatures.get() >= 1, "TPM signatures by the phone: "
                + victimId.signatures.get() + " for one real call and " + IDLE + " idle connections");
        assertTrue(victimId.quotes.get() <= 2, "TPM quotes by the phone: " + victimId.quotes.get());
        // Threads: at most the guard's 8 handshakes from the attacker at a time, not one per connection.
        int grew = threads.getPeakThreadCount() - threadsBefore;
        assertTrue(grew < 40, "the peak thread count grew by " + grew + " for " + IDLE + " idle connections");
    }

    /**
     * Issue 12's second review, finding 3: eight sources holding eight idle handshakes each filled the 64 places, and
     * their allowance of 2 a second each spent the shared 16 a second, so only 1 of 5 real calls got through. Now a
     * source whose last handshake completed with a device certificate (a phone that called before) has a reserve of
     * its own, and takes the place of the oldest handshake of the source with the most. Rates run on a
     * {@link ManualClock} (nothing refills during the test) and the deadline is long, so the flood holds every place
     * and the whole shared allowance the whole time.
     */
    @Test
    @Timeout(90)
    void eightSourcesHoldingEveryPlace_doNotKeepOutPhonesThatCalledBefore() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity victimId = hosts.identity("victim");
        ManualClock clock = new ManualClock();
        HandshakeGuard.Limits tls = HandshakeGuard.Limits.DEFAULTS.withDeadline(Duration.ofSeconds(60));
        SipPhone victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(), 0,
                        0, Duration.ofSeconds(10)), AttestedTlsConfig.of(victimId, hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { }, null, clock,
                SipPhone.Limits.DEFAULTS.withTlsHandshakes(tls));
        phones.add(victim);
        InetSocketAddress tlsPort = new InetSocketAddress(LOOPBACK, victim.config().tlsPort());

        // A phone on 127.0.0.1 calls once: its source is known-good from then on.
        establishAndHangUp(caller(hosts, "first"), tlsPort, "the first call, before the flood");
        clock.advance(Duration.ofSeconds(1)); // the shared allowance is whole again for the flood to spend

        // The flood: 8 sources, 8 connections each that never send a byte. They take all 64 places, and the 64
        // handshakes of the shared burst.
        List<Socket> flood = new ArrayList<>();
        try {
            for (int s = 0; s < 8; s++) {
                InetAddress source = InetAddress.getByName("127.0.1." + (10 + s));
                for (int i = 0; i < 8; i++) {
                    Socket k = new Socket();
                    flood.add(k);
                    k.bind(new InetSocketAddress(source, 0));
                    k.connect(tlsPort, 5_000);
                }
            }
            Await.until("the flood to hold every place", Duration.ofSeconds(10),
                    () -> victim.held().tlsHandshakesInProgress(), n -> n == 64);
            // A new source gets nothing: the shared allowance is spent (reset inside accept, before any TLS work).
            IOException refused = assertThrows(IOException.class, () -> RawSip.tls(InetAddress.getByName(
                    "127.0.2.1"), victim.config().tlsPort(), AttestedTlsConfig.of(hosts.identity("stranger"),
                    hosts.verifier(), Clock.systemUTC())), "a new source during the flood");

            // Phones on the known-good source still get through, each taking one flood handshake's place.
            for (String name : List.of("second", "third", "fourth")) {
                establishAndHangUp(caller(hosts, name), tlsPort, "a call from a known-good source during the flood"
                        + " (a new source was refused with " + refused + ")");
            }
            // The first of them found every place taken: the oldest handshake of a flood source was closed to make
            // room. Its handshake completed and left a place, which the next ones took (the flood's allowance is
            // spent). 63 of the flood's handshakes are still in progress.
            assertEquals(63, victim.held().tlsHandshakesInProgress(), "handshakes in progress after the calls");
        } finally {
            for (Socket k : flood) {
                k.close();
            }
        }
        // TPM work: one signature per completed handshake (four calls), none for the 64 silent connections
        assertEquals(4, victimId.signatures.get(), "TPM signatures by the phone for four calls and a flood of 64");
    }

    private SipPhone caller(TestHosts hosts, String name) throws Exception {
        SipPhone caller = SipPhone.start(new SipPhone.Config(name, name, LOOPBACK, TestHosts.freePort(), 0, 0,
                        Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity(name), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
        phones.add(caller);
        return caller;
    }

    private static void establishAndHangUp(SipPhone caller, InetSocketAddress to, String what) throws Exception {
        Call call = caller.await(caller.call("sips:victim@victim", to));
        assertEquals(Call.State.ESTABLISHED, call.state(), what + ": " + call.reason());
        caller.hangUp(call);
    }
}
