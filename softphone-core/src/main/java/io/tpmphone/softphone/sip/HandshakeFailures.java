package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.HandshakeGuard;
import io.tpmphone.tls.PeerAttestation;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * TLS handshakes of connections the phone accepted that failed: a standard phone that offers only TLS 1.2, or refuses
 * our device certificate, or a scanner. Each gets one log line naming the peer and the reason in words (within a
 * budget of {@value #LINES_PER_SECOND} a second; JAIN-SIP's own line about it is at DEBUG), and a phone that spoke TLS
 * and could not agree — a TLS alert either side raised — is shown to the user as a refused incoming call, at most one
 * per source every {@link #RECORD_EVERY} and {@value #RECORDED_PER_MINUTE} a minute in all (a flood of such handshakes,
 * already bounded by the {@link HandshakeGuard}, cannot wipe the call list). Connections that went silent or closed are logged only. Thread-safe.
 */
final class HandshakeFailures implements AttestedSslSocket.Gate {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);
    static final int LINES_PER_SECOND = 5;
    static final Duration RECORD_EVERY = Duration.ofSeconds(10);
    private static final int SOURCES = 256;

    private final CallTable calls;
    private final SipPhone.Listener listener;
    private final Supplier<String> callIds;
    private final Clock clock;
    private final LogBudget lines;
    /** When a failure of each source was last shown to the user (the most recent {@value #SOURCES} sources). */
    private final Map<InetAddress, Long> recorded = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<InetAddress, Long> eldest) {
            return size() > SOURCES;
        }
    };

    /** Records into {@code calls}, tells {@code listener}; each attempt shown gets a Call-ID of {@code callIds}. */
    HandshakeFailures(CallTable calls, SipPhone.Listener listener, Supplier<String> callIds, Clock clock) {
        this.calls = calls;
        this.listener = listener;
        this.callIds = callIds;
        this.clock = clock;
        this.lines = new LogBudget(clock, LINES_PER_SECOND);
    }

    /** Accepted connections are decided per request (their INVITEs), not here. */
    @Override
    public void admit(SocketAddress remote, Optional<PeerAttestation> peer) {
        // every accepted connection may carry requests; each INVITE is decided on its own
    }

    @Override
    public void failed(SocketAddress remote, IOException cause) {
        Reason r = reason(cause);
        String peer = String.valueOf(remote).replaceFirst("^/", "");
        LogBudget.Take line = lines.take();
        if (line.leftOut().isPresent()) {
            LOG.info("{} more failed TLS handshakes were not logged (at most {} a second)",
                    line.leftOut().getAsLong(), LINES_PER_SECOND);
        }
        if (line.log()) {
            String text = "TLS handshake with {} failed: {}";
            if (r.alert()) {
                LOG.warn(text, peer, r.text());
            } else {
                LOG.info(text, peer, r.text());
            }
        }
        if (r.alert() && remote instanceof InetSocketAddress a && a.getAddress() != null && shouldRecord(a)) {
            Call call = new Call(callIds.get(), CallPolicy.Direction.IN, peer);
            call.refused("TLS handshake failed: " + r.text());
            calls.remember(call);
            listener.ended(call);
        }
    }

    private synchronized boolean shouldRecord(InetSocketAddress a) {
        InetAddress source = HandshakeGuard.sourceOf(a.getAddress());
        long now = clock.millis();
        Long last = recorded.get(source);
        if (last != null && now - last < RECORD_EVERY.toMillis()) {
            return false;
        }
        // In all, at most RECORDED_PER_MINUTE a minute: many sources (a /56 of IPv6) must not push the real calls
        // out of the bounded history of ended calls.
        if (now - minuteStart >= 60_000) {
            minuteStart = now;
            recordedThisMinute = 0;
        }
        if (recordedThisMinute >= RECORDED_PER_MINUTE) {
            return false;
        }
        recordedThisMinute++;
        recorded.put(source, now);
        return true;
    }

    /** Failed handshakes shown as refused calls, in all, per minute. */
    static final int RECORDED_PER_MINUTE = 10;
    private long minuteStart;
    private int recordedThisMinute;

    /** Why a handshake failed, in words; {@code alert}: a TLS alert ended it (the peer speaks TLS, and we disagree). */
    record Reason(boolean alert, String text) {
    }

    static Reason reason(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof TlsFatalAlertReceived received) {
                return new Reason(true, theirAlert(received.getAlertDescription()));
            }
            if (t instanceof TlsFatalAlert raised) {
                return new Reason(true, ourAlert(raised.getAlertDescription()));
            }
        }
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof EOFException || t instanceof org.bouncycastle.tls.TlsNoCloseNotifyException) {
                return new Reason(false, "the peer closed the connection during the handshake");
            }
            if (t instanceof java.net.SocketException s && s.getMessage() != null
                    && s.getMessage().toLowerCase(java.util.Locale.ROOT).contains("closed")) {
                return new Reason(false, "the handshake did not complete in time (the connection was closed)");
            }
        }
        Throwable root = failure;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return new Reason(false, UntrustedText.forTerminal(root.getClass().getSimpleName()
                + (root.getMessage() == null ? "" : ": " + root.getMessage()), 300));
    }

    /** An alert we raised: what the peer offered that we cannot use. */
    private static String ourAlert(short alert) {
        String name = AlertDescription.getText(alert);
        return switch (alert) {
            case AlertDescription.protocol_version -> "the peer offers neither TLS 1.3 nor TLS 1.2; this phone"
                    + " speaks only those (" + name + ")";
            case AlertDescription.handshake_failure, AlertDescription.insufficient_security -> "the peer and this"
                    + " phone found no TLS parameters both accept: a cipher suite, key exchange group or signature"
                    + " algorithm (" + name + ")";
            case AlertDescription.bad_certificate, AlertDescription.unsupported_certificate,
                 AlertDescription.certificate_unknown, AlertDescription.certificate_expired,
                 AlertDescription.certificate_revoked, AlertDescription.unknown_ca, AlertDescription.decrypt_error ->
                    "this phone refused the peer's certificate (" + name + ")";
            case AlertDescription.decode_error, AlertDescription.unexpected_message,
                 AlertDescription.record_overflow, AlertDescription.illegal_parameter ->
                    "the peer did not send a TLS handshake this phone can read (" + name + ")";
            default -> "this phone ended the handshake (" + name + ")";
        };
    }

    /** An alert the peer raised: what it did not accept of ours. */
    private static String theirAlert(short alert) {
        String name = AlertDescription.getText(alert);
        return switch (alert) {
            case AlertDescription.bad_certificate, AlertDescription.unsupported_certificate,
                 AlertDescription.certificate_unknown, AlertDescription.certificate_expired,
                 AlertDescription.certificate_revoked, AlertDescription.unknown_ca, AlertDescription.access_denied ->
                    "the peer refused this phone's device certificate (" + name + "); it would have to trust the"
                            + " device CA";
            case AlertDescription.protocol_version -> "the peer speaks neither TLS 1.3 nor TLS 1.2 (" + name + ")";
            case AlertDescription.handshake_failure, AlertDescription.insufficient_security -> "the peer found no"
                    + " cipher suite, key exchange group or signature algorithm in common (" + name + ")";
            default -> "the peer ended the handshake (" + name + ")";
        };
    }
}
