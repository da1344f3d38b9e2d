package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.message.SIPMessage;
import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.stack.TLSMessageChannel;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.PeerAttestation;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Clock;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.HandshakeCompletedEvent;
import javax.net.ssl.SSLHandshakeException;
import javax.sip.message.Request;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per connection, what the peer proved and what the call policy made of it. A request that arrives is rated by the
 * connection it came over ({@link #peerOf}: over TLS the peer's attestation from the handshake, over UDP and TCP
 * {@code UNATTESTED}). For a call we place, the policy for the destination decides on the attestation of the TLS
 * connection to its first hop before any byte of SIP is written: on a connection already open at once
 * ({@link #known}), and on every new one — the first, and any JAIN-SIP opens silently later — right after its
 * handshake ({@link #admit}, the gate of connections the phone opens), so no INVITE ever leaves on a connection its
 * policy did not see. Thread-safe.
 */
final class ConnectionAttestation implements AttestedSslSocket.Gate {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private final CallPolicy policy;
    private final SipPhone.Listener listener;
    private final Clock clock;
    /** The attestation of every open TLS connection this phone made, by remote address; removed when it closes. */
    private final Map<SocketAddress, Hop> connections = new ConcurrentHashMap<>();
    /**
     * Outgoing calls being set up, by their first hop, until they settle: every new TLS connection to that hop decides
     * each of them (again) on its own attestation.
     */
    private final Map<SocketAddress, Set<Call>> settingUp = new ConcurrentHashMap<>();

    /** The newest attestation of the open TLS connections to one remote address, and how many are open. */
    private record Hop(PeerAttestation attestation, int open) {
    }

    ConnectionAttestation(CallPolicy policy, SipPhone.Listener listener, Clock clock) {
        this.policy = policy;
        this.listener = listener;
        this.clock = clock;
    }

    // ------------------------------------------------------------------------------------------ calls we place

    /**
     * What is known of the first hop of a call we place over {@code transport}: the attestation of an open TLS
     * connection to it, {@code UNATTESTED} over TCP or UDP (they carry none), or empty when a new TLS connection will
     * tell ({@link #admit}).
     */
    Optional<PeerAttestation> known(InetSocketAddress hop, String transport) {
        if (!transport.equals("tls")) {
            return Optional.of(PeerAttestation.unattested(Optional.empty(), clock.instant(), "the first hop is over "
                    + transport.toUpperCase(Locale.ROOT) + ", which carries no attestation"));
        }
        Hop h = connections.get(hop);
        return h == null ? Optional.empty() : Optional.of(h.attestation());
    }

    /** Has every new TLS connection to {@code hop} decide {@code call} until it settles. */
    void watch(Call call, InetSocketAddress hop) {
        settingUp.compute(hop, (k, onHop) -> {
            Set<Call> set = onHop != null ? onHop : ConcurrentHashMap.newKeySet();
            set.add(call);
            return set;
        });
        // the hop's entry goes with its last call being set up
        call.settled().whenComplete((c, e) -> settingUp.computeIfPresent(hop, (k, onHop) -> {
            onHop.remove(call);
            return onHop.isEmpty() ? null : onHop;
        }));
    }

    /** The first hops of the calls being set up (destinations the phone chose). */
    Set<SocketAddress> hopsSettingUp() {
        return settingUp.keySet();
    }

    /** The policy's decision on {@code call} with {@code peer}, shown to the user; a refusal ends the call. */
    CallPolicy.Decision decide(Call call, PeerAttestation peer) {
        CallPolicy.Decision d = policy.decide(call.direction(), call.peerUri(), peer);
        call.attested(peer, d);
        LOG.info("call {} {}: {} → {}", call.callId(), call.direction(), peer.display(), d.action());
        listener.decided(call, d);
        if (d.action() == CallPolicy.Action.REJECT) {
            call.refused("refused by our call policy: " + d.reason());
            listener.ended(call);
        }
        return d;
    }

    /**
     * The gate of TLS connections the phone opens: the call policy for each call being set up through this hop,
     * before any byte of SIP. The stricter decision wins: the connection ends before any call's INVITE is written on
     * it.
     */
    @Override
    public void admit(SocketAddress remote, Optional<PeerAttestation> peer) throws IOException {
        PeerAttestation p = peer.orElse(PeerAttestation.unattested(Optional.empty(), clock.instant(),
                "the peer's TLS handshake carried no attestation"));
        connections.compute(remote, (k, hop) -> new Hop(p, hop == null ? 1 : hop.open() + 1));
        String refusal = null;
        for (Call call : settingUp.getOrDefault(remote, Set.of())) {
            if (call.state() != Call.State.SETTING_UP) {
                continue;
            }
            CallPolicy.Decision d = decide(call, p);
            if (d.action() == CallPolicy.Action.REJECT) {
                refusal = d.reason();
            }
        }
        if (refusal != null) {
            throw new SSLHandshakeException("call policy: " + refusal);
        }
    }

    /**
     * A TLS connection this phone made is closed: its attestation no longer decides anything — once the last one to
     * that address closes: while any is open, JAIN-SIP may reuse it without a new handshake, and a new call must find
     * the attestation it was admitted on.
     */
    @Override
    public void closed(SocketAddress remote, Optional<PeerAttestation> peer) {
        connections.computeIfPresent(remote, (k, hop) -> hop.open() <= 1 ? null : new Hop(hop.attestation(),
                hop.open() - 1));
    }

    /** How many remote addresses the phone has open TLS connections to (for diagnostics). */
    int openHops() {
        return connections.size();
    }

    // ------------------------------------------------------------------------------------------ requests we got

    /** The attestation of the connection a request arrived on: TLS → the peer's; UDP/TCP → UNATTESTED. */
    PeerAttestation peerOf(Request request) {
        Object channel = ((SIPRequest) request).getMessageChannel();
        if (channel instanceof TLSMessageChannel tls && tls.getHandshakeCompletedListener() != null) {
            HandshakeCompletedEvent e = tls.getHandshakeCompletedListener().getHandshakeCompletedEvent();
            if (e != null && e.getSocket() instanceof AttestedSslSocket s) {
                Optional<PeerAttestation> p = s.peerAttestation();
                if (p.isPresent()) {
                    return p.get();
                }
            }
            return PeerAttestation.unattested(Optional.empty(), clock.instant(), "the TLS peer sent no attestation");
        }
        return PeerAttestation.unattested(Optional.empty(), clock.instant(), "the request came over "
                + ((SIPMessage) request).getTopmostVia().getTransport() + ", which carries no attestation");
    }
}
