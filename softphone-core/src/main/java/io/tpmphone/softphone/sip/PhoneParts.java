package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.HandshakeGuard;
import io.tpmphone.tls.PeerAttestation;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Clock;
import java.util.Optional;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.atomic.AtomicLong;
import javax.sip.SipException;
import javax.sip.SipFactory;
import javax.sip.SipProvider;
import javax.sip.SipStack;

/**
 * The parts of one {@link SipPhone} (docs/softphone.md, "Parts of the SIP stack"): the bounds and gates its network
 * layer needs are made before the JAIN-SIP stack, the rest is wired to the stack once it exists ({@link #assemble}).
 * Until then the gates and predicates answer as for a phone that chose nothing and carries nothing. It is the gate of
 * TLS connections the phone opens ({@link ConnectionAttestation}), and {@link #failures} that of those it accepts
 * ({@link HandshakeFailures}). Thread-safe: the late-bound parts are volatile.
 */
final class PhoneParts implements AttestedSslSocket.Gate {
    private static final AtomicLong STACKS = new AtomicLong();

    final String stackName;
    final SipPhone.Config config;
    final SipPhone.Limits limits;
    final Clock clock;
    final ConnectionTable connections;
    final HandshakeGuard guard;
    final UdpRefusalBudget udpRefusals = new UdpRefusalBudget();
    final CallTable calls;
    /** The gate of accepted connections: it hears of their failed handshakes (set once the phone is wired). */
    final AcceptedGate failures = new AcceptedGate();
    private volatile ConnectionAttestation attestation;
    private volatile Destinations destinations;
    /** Who answers ringing calls ({@link SipPhone#answerWith}). */
    final java.util.concurrent.atomic.AtomicReference<SipPhone.AnswerDecision> answers =
            new java.util.concurrent.atomic.AtomicReference<>(SipPhone.AnswerDecision.AUTOMATIC);

    PhoneParts(SipPhone.Config config, SipPhone.Limits limits, Clock clock) {
        this.stackName = "tpmphone-" + config.host() + "-" + STACKS.incrementAndGet();
        this.config = config;
        this.limits = limits;
        this.clock = clock;
        this.connections = new ConnectionTable(limits.idleTimeout(), limits.maxAge(),
                limits.connectionsPerSource(), limits.connections(), limits.outgoing().connections(), clock,
                this::carriesCallOrRegistration);
        this.guard = new HandshakeGuard(limits.tlsHandshakes(), clock);
        this.calls = new CallTable(limits.maxCalls(), limits.maxSettingUp(), limits.endedHistory());
    }

    SipPhone assemble(SipFactory factory, SipStack stack, SipProvider provider,
                      ScheduledThreadPoolExecutor timers, io.tpmphone.tls.AttestedTlsConfig tls, CallPolicy policy,
                      SipPhone.Keys keys, SipPhone.Listener listener, SipPhone.Media mediaFactory)
            throws SipException {
        Signalling sip = new Signalling(config, provider, factory, timers);
        MediaKeys mediaKeys = new MediaKeys(keys);
        CallMedia media = new CallMedia(config, mediaFactory, clock);
        DigestChallenges challenges = new DigestChallenges(sip);
        ConnectionAttestation attestation = new ConnectionAttestation(policy, listener, clock);
        Registrations registrations = new Registrations(sip, challenges, listener, clock, timers);
        CallTimers callTimers = new CallTimers(timers, sip, calls, listener, config.setupTimeout(), limits);
        EndToEndCalls endToEnd = new EndToEndCalls(sip, tls, policy, listener, limits, timers,
                mediaFactory != null);
        IncomingCalls incoming = new IncomingCalls(sip, calls, attestation, policy, mediaKeys, media, callTimers,
                endToEnd, listener, timers, new LogBudget(clock, IncomingCalls.DECISION_LINES_PER_SECOND), answers);
        OutgoingCalls outgoing = new OutgoingCalls(sip, calls, attestation, mediaKeys, media, challenges,
                endToEnd, listener);
        this.destinations = new Destinations(registrations, calls, attestation);
        this.attestation = attestation;
        failures.to = new HandshakeFailures(calls, listener, sip::callId, clock);
        JainSipStack.listenWith(provider, new SipEvents(sip, calls, incoming, outgoing, registrations, listener,
                new LogBudget(clock, SipEvents.STRAY_LINES_PER_SECOND)));
        callTimers.start();
        return new SipPhone(this, sip, stack, timers, calls, media, listener, attestation, registrations,
                outgoing, endToEnd);
    }

    boolean carriesCallOrRegistration(InetSocketAddress remote) {
        Destinations d = destinations;
        return d != null && d.carriesCallOrRegistration(remote);
    }

    boolean chose(InetSocketAddress destination) {
        Destinations d = destinations;
        return d != null && d.chose(destination);
    }

    @Override
    public void admit(SocketAddress remote, Optional<PeerAttestation> peer) throws IOException {
        ConnectionAttestation a = attestation;
        if (a != null) {
            a.admit(remote, peer);
        }
    }

    @Override
    public void closed(SocketAddress remote, Optional<PeerAttestation> peer) {
        ConnectionAttestation a = attestation;
        if (a != null) {
            a.closed(remote, peer);
        }
    }

    /** The gate of accepted connections, bound late to the phone's {@link HandshakeFailures}. */
    static final class AcceptedGate implements AttestedSslSocket.Gate {
        private volatile HandshakeFailures to;

        @Override
        public void admit(SocketAddress remote, Optional<PeerAttestation> peer) {
            // an accepted connection's requests are decided one by one
        }

        @Override
        public void failed(SocketAddress remote, IOException cause) {
            HandshakeFailures f = to;
            if (f != null) {
                f.failed(remote, cause);
            }
        }
    }
}
