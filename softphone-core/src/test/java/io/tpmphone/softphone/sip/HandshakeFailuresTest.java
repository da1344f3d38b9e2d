package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.ManualClock;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What the user is told of a failed TLS handshake: the reason in words, from the alert either side raised or from how
 * the connection ended; and how many attempts reach the call list — one per source every ten seconds, so a flood of
 * bad handshakes cannot push real calls out of the bounded history.
 */
class HandshakeFailuresTest {
    private final ManualClock clock = new ManualClock();
    private final CallTable calls = new CallTable(4, 2, 100);
    private final List<Call> shown = new CopyOnWriteArrayList<>();
    private final AtomicInteger ids = new AtomicInteger();
    private final HandshakeFailures failures = new HandshakeFailures(calls, new SipPhone.Listener() {
        @Override
        public void ended(Call call) {
            shown.add(call);
        }
    }, () -> "tls-" + ids.incrementAndGet(), clock);

    private static IOException wrapped(Exception cause) {
        return new IOException("attested TLS handshake failed", cause);
    }

    @Test
    @Timeout(10)
    void theReason_isSaidInWords_forAlertsEitherSideRaised_andForConnectionsThatEnded() {
        HandshakeFailures.Reason old = HandshakeFailures.reason(wrapped(new TlsFatalAlert(
                AlertDescription.protocol_version)));
        assertTrue(old.alert(), "an alert");
        assertEquals("the peer offers neither TLS 1.3 nor TLS 1.2; this phone speaks only those (protocol_version(70))",
                old.text());

        HandshakeFailures.Reason distrust = HandshakeFailures.reason(wrapped(new TlsFatalAlertReceived(
                AlertDescription.unknown_ca)));
        assertTrue(distrust.alert());
        assertTrue(distrust.text().startsWith("the peer refused this phone's device certificate (unknown_ca(48))"),
                distrust.text());

        HandshakeFailures.Reason left = HandshakeFailures.reason(wrapped(new EOFException()));
        assertFalse(left.alert(), "no alert: the peer left");
        assertEquals("the peer closed the connection during the handshake", left.text());

        HandshakeFailures.Reason late = HandshakeFailures.reason(wrapped(new SocketException("Socket closed")));
        assertFalse(late.alert());
        assertTrue(late.text().contains("did not complete in time"), late.text());

        HandshakeFailures.Reason odd = HandshakeFailures.reason(new IOException("odd \u001b[2J\r\nthing"));
        assertFalse(odd.alert());
        assertTrue(odd.text().chars().noneMatch(c -> c < 0x20), "peer-influenced text is escaped: " + odd.text());
    }

    @Test
    @Timeout(10)
    void anAlert_isShownAsARefusedCall_oncePerSourceEveryTenSeconds_andNoAlertIsNotShown() {
        InetSocketAddress a1 = new InetSocketAddress("192.0.2.1", 40000);
        InetSocketAddress a2 = new InetSocketAddress("192.0.2.1", 40001);
        InetSocketAddress b = new InetSocketAddress("198.51.100.7", 40000);
        IOException alert = wrapped(new TlsFatalAlert(AlertDescription.protocol_version));

        failures.failed(a1, alert);
        failures.failed(a2, alert); // the same source within 10 s: logged, not listed again
        failures.failed(b, alert);
        failures.failed(b, wrapped(new EOFException())); // no alert: logged only
        assertEquals(List.of("192.0.2.1:40000", "198.51.100.7:40000"), shown.stream().map(Call::peerUri).toList());
        Call first = shown.get(0);
        assertEquals(Call.State.REFUSED, first.state());
        assertEquals(io.tpmphone.softphone.CallPolicy.Direction.IN, first.direction());
        assertTrue(first.reason().startsWith("TLS handshake failed: the peer offers neither TLS 1.3 nor TLS 1.2"),
                first.reason());
        assertEquals(2, calls.all().size(), "the call list: " + calls.all());

        clock.advance(HandshakeFailures.RECORD_EVERY);
        failures.failed(a2, alert);
        assertEquals(3, shown.size(), "ten seconds later the source's attempt is listed again");
    }

    @Test
    @Timeout(10)
    void manySources_listAtMostTenAMinuteInAll() {
        IOException alert = wrapped(new TlsFatalAlert(AlertDescription.handshake_failure));
        for (int i = 0; i < 300; i++) {
            failures.failed(new InetSocketAddress("2001:db8:0:" + Integer.toHexString(i) + "::1", 40000), alert);
        }
        assertEquals(HandshakeFailures.RECORDED_PER_MINUTE, shown.size(), "300 sources (300 /64s of one /48), "
                + "listed: " + shown.size());
        clock.advance(java.time.Duration.ofMinutes(1));
        failures.failed(new InetSocketAddress("2001:db8:1::1", 40000), alert);
        assertEquals(HandshakeFailures.RECORDED_PER_MINUTE + 1, shown.size(), "a minute later, listed again");
    }
}
