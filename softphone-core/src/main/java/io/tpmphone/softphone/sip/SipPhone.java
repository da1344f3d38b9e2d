package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.message.SIPMessage;
import gov.nist.javax.sip.stack.TLSMessageChannel;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.internal.BrokerClient;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.HandshakeGuard;
import io.tpmphone.tls.PeerAttestation;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Properties;
import java.util.TooManyListenersException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.HandshakeCompletedEvent;
import javax.net.ssl.SSLHandshakeException;
import javax.sip.ClientTransaction;
import javax.sip.Dialog;
import javax.sip.DialogTerminatedEvent;
import javax.sip.IOExceptionEvent;
import javax.sip.InvalidArgumentException;
import javax.sip.ListeningPoint;
import javax.sip.RequestEvent;
import javax.sip.ResponseEvent;
import javax.sip.ServerTransaction;
import javax.sip.SipException;
import javax.sip.SipFactory;
import javax.sip.SipListener;
import javax.sip.SipProvider;
import javax.sip.SipStack;
import javax.sip.TimeoutEvent;
import javax.sip.TransactionTerminatedEvent;
import javax.sip.address.Address;
import javax.sip.address.AddressFactory;
import javax.sip.address.SipURI;
import javax.sip.header.CSeqHeader;
import javax.sip.header.CallIdHeader;
import javax.sip.header.AuthorizationHeader;
import javax.sip.header.ContactHeader;
import javax.sip.header.ExpiresHeader;
import javax.sip.header.MinExpiresHeader;
import javax.sip.header.ProxyAuthenticateHeader;
import javax.sip.header.ProxyAuthorizationHeader;
import javax.sip.header.WWWAuthenticateHeader;
import javax.sip.header.FromHeader;
import javax.sip.header.HeaderFactory;
import javax.sip.header.ToHeader;
import javax.sip.header.ViaHeader;
import javax.sip.header.WarningHeader;
import javax.sip.message.MessageFactory;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The SIP user agent of the measured softphone: JAIN-SIP over UDP, TCP and attested TLS 1.3
 * ({@link AttestedNetworkLayer}). Calls go directly UA-to-UA over {@code sips:}, with SDES-SRTP keys from the sealed
 * keystore, and every call is decided by the {@link CallPolicy} on the peer's integrity level before anything else:
 *
 * <ul>
 *   <li>incoming INVITE: the level of the connection it arrived on (TLS: the peer's attestation; UDP/TCP:
 *       UNATTESTED), a From identity that differs from the attested host → 403, the policy → 403 with a
 *       {@code Warning} naming both levels (or accepted, possibly RESTRICTED), an offer without SDES → 488, a
 *       replayed SDES key → 488; then 180, 200 with our key;</li>
 *   <li>outgoing INVITE: the TLS connection's attestation is checked by the policy for the destination right after
 *       the handshake, before the INVITE (and our key) is written; a refusal ends the connection;</li>
 *   <li>OPTIONS → 200; BYE → 200; CANCEL → 200 and 487; other methods → 405.</li>
 * </ul>
 * Thread-safe. {@link Listener} callbacks run on JAIN-SIP's threads.
 */
public final class SipPhone implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);
    private static final AtomicLong STACKS = new AtomicLong();
    private static final String SUITE = SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80.name();

    /** Where the phone listens and who it is. {@code host} is its attested host name (its device certificate CN). */
    public record Config(String user, String host, InetAddress address, int tlsPort, int tcpPort, int udpPort,
                         Duration setupTimeout) {
        public Config {
            Objects.requireNonNull(user, "user");
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(address, "address");
            Objects.requireNonNull(setupTimeout, "setupTimeout");
        }
    }

    /**
     * How much state peers can make this phone hold, whatever they send (docs/softphone.md, "Bounds"). An INVITE beyond
     * {@code maxSettingUp} calls being set up, or {@code maxCalls} in progress, gets {@code 503} with
     * {@code Retry-After} before any media or key is allocated, and so does one beyond a source's share (half of
     * each); refused and ended calls leave the table at once and the last {@code endedHistory} of them are kept for
     * the user; TLS handshakes are bounded by {@code tlsHandshakes}. A TCP or TLS connection on which no SIP message
     * arrived for {@code idleTimeout}, or one accepted more than {@code maxAge} ago, is closed unless it carries a call
     * in progress or a registration; at most {@code connectionsPerSource} accepted connections are open per source (an
     * IPv4 address, an IPv6 /64) and {@code connections} overall. What the phone opens itself is bounded by
     * {@code outgoing}.
     */
    public record Limits(int maxCalls, int maxSettingUp, int endedHistory, HandshakeGuard.Limits tlsHandshakes,
                         Duration idleTimeout, Duration maxAge, int connectionsPerSource, int connections,
                         Outgoing outgoing) {
        /**
         * 32 calls in progress, 16 being set up (a person answers a handful of calls; a softphone that auto-answers
         * still settles each within its setup timeout), the last 100 ended calls, {@link
         * HandshakeGuard.Limits#DEFAULTS} for TLS; connections idle for 5 minutes closed (a registered client behind
         * a NAT sends keep-alives every two minutes or so, RFC 5626 §4.4.1, and re-registers well within 10 minutes),
         * those without a call or a registration after 10 minutes at most, 16 accepted ones per source and 256 in all
         * (each costs JAIN-SIP a thread); {@link Outgoing#DEFAULTS}.
         */
        public static final Limits DEFAULTS = new Limits(32, 16, 100, HandshakeGuard.Limits.DEFAULTS,
                Duration.ofMinutes(5), Duration.ofMinutes(10), 16, 256, Outgoing.DEFAULTS);

        public Limits {
            Objects.requireNonNull(tlsHandshakes, "tlsHandshakes");
            Objects.requireNonNull(idleTimeout, "idleTimeout");
            Objects.requireNonNull(maxAge, "maxAge");
            Objects.requireNonNull(outgoing, "outgoing");
            if (maxSettingUp < 1 || maxCalls < maxSettingUp || endedHistory < 0) {
                throw new IllegalArgumentException("limits need 1 <= maxSettingUp <= maxCalls and endedHistory >= 0,"
                        + " got maxCalls " + maxCalls + ", maxSettingUp " + maxSettingUp + ", endedHistory "
                        + endedHistory);
            }
            if (idleTimeout.isNegative() || idleTimeout.isZero() || maxAge.compareTo(idleTimeout) < 0) {
                throw new IllegalArgumentException("connections need 0 < idle timeout <= maximum age, got "
                        + idleTimeout + " and " + maxAge);
            }
            if (connectionsPerSource < 1 || connections < connectionsPerSource) {
                throw new IllegalArgumentException("limits need 1 <= connectionsPerSource <= connections, got "
                        + connectionsPerSource + " and " + connections);
            }
        }

        /**
         * What the phone opens itself, always to destinations it chose: at most {@code connections} open at once, and
         * TLS handshakes as a client (a TPM signature each, and a quote when the peer asks) at most {@code handshakes}
         * at once, refilled at {@code handshakesPerSecond}.
         */
        public record Outgoing(int connections, int handshakes, double handshakesPerSecond) {
            /**
             * 64 connections (two per call in progress: its first hop, and its peer's contact when that differs); 16
             * handshakes at once, then 2 a second (a person places a call every few seconds at most; a registrar or a
             * peer that drops the phone's connection again and again costs a TPM signature twice a second at most).
             */
            public static final Outgoing DEFAULTS = new Outgoing(64, 16, 2.0);

            public Outgoing {
                if (connections < 1 || handshakes < 1 || !(handshakesPerSecond > 0)) {
                    throw new IllegalArgumentException("outgoing limits need connections >= 1, handshakes >= 1 and a"
                            + " positive rate, got " + connections + ", " + handshakes + ", " + handshakesPerSecond);
                }
            }
        }

        /** These limits with other bounds on calls. */
        public Limits withCalls(int maxCalls, int maxSettingUp, int endedHistory) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, maxAge,
                    connectionsPerSource, connections, outgoing);
        }

        /** These limits with other bounds on TLS handshakes. */
        public Limits withTlsHandshakes(HandshakeGuard.Limits tls) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tls, idleTimeout, maxAge, connectionsPerSource,
                    connections, outgoing);
        }

        /** These limits with other bounds on accepted connections (the maximum age at least the idle timeout). */
        public Limits withConnections(Duration idle, int perSource, int total) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idle,
                    maxAge.compareTo(idle) < 0 ? idle : maxAge, perSource, total, outgoing);
        }

        /** These limits with another maximum age of connections without a call or a registration. */
        public Limits withMaxAge(Duration age) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, age,
                    connectionsPerSource, connections, outgoing);
        }

        /** These limits with other bounds on what the phone opens itself. */
        public Limits withOutgoing(Outgoing o) {
            return new Limits(maxCalls, maxSettingUp, endedHistory, tlsHandshakes, idleTimeout, maxAge,
                    connectionsPerSource, connections, o);
        }
    }

    /** Media keys: from the agent broker in the softphone (the sealed keystore). */
    public interface Keys {
        BrokerClient.SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException;

        /** Refuses a replayed SDES key ({@link BrokerClient.RefusedException} with reason SEEN_BEFORE). */
        void checkOffered(byte[] key, byte[] salt, String callId) throws IOException;

        /** Keys and replay checks from the sealed keystore through the agent broker (one request at a time). */
        static Keys fromBroker(BrokerClient broker) {
            return new Keys() {
                @Override
                public BrokerClient.SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                    synchronized (broker) {
                        return broker.srtpKey(suite, callId);
                    }
                }

                @Override
                public void checkOffered(byte[] key, byte[] salt, String callId) throws IOException {
                    synchronized (broker) {
                        broker.checkOffered(key, salt, callId);
                    }
                }
            };
        }
    }

    /** Opens a call's audio (binds its RTP port); {@code null} media means signalling only. */
    public interface Media {
        io.tpmphone.softphone.media.AudioSession open(String callId) throws IOException;
    }

    /** What the user sees. */
    public interface Listener {
        /** A call's policy decision (both directions), with the peer's level: for the user and the audit log. */
        default void decided(Call call, CallPolicy.Decision decision) {
        }

        /** An incoming call is ringing (accepted by policy). */
        default void ringing(Call call) {
        }

        /** A call ended or was refused; {@link Call#reason()} says why. */
        default void ended(Call call) {
        }

        /** A registration changed state (registered, refreshed, failed or ended); its reason says why. */
        default void registration(Registration registration) {
        }
    }

    private final Config config;
    private final CallPolicy policy;
    private final Keys keys;
    private final Listener listener;
    private final Media media;
    private final Clock clock;
    private final String stackName;
    private final SipStack stack;
    private final SipProvider provider;
    private final AddressFactory addresses;
    private final HeaderFactory headers;
    private final MessageFactory messages;
    /** Every TCP and TLS connection: capped per source and overall, closed when idle. */
    private final ConnectionTable connectionTable;
    /** The bounds on TLS handshakes of accepted connections. */
    private final HandshakeGuard guard;
    /** What pays for refusals over UDP, whoever makes them. */
    private final UdpRefusalBudget udpRefusals;
    /** Calls in progress and a bounded history of ended ones, with each call's registrar account. */
    private final CallTable calls;
    private final Limits limits;
    /** INVITEs answered 503 because the phone was full, since the last log line about them (one line per burst). */
    private final java.util.concurrent.atomic.AtomicInteger turnedAway = new java.util.concurrent.atomic.AtomicInteger();
    /** Incoming call decisions logged per second at most: anyone can send INVITEs (the audit log sums them up). */
    static final int DECISION_LINES_PER_SECOND = 20;
    private final LogBudget decisionLines;
    /** The attestation of every open TLS connection this phone made, by remote address; removed when it closes. */
    private final Map<SocketAddress, Hop> connections = new ConcurrentHashMap<>();

    /** The newest attestation of the open TLS connections to one remote address, and how many are open. */
    private record Hop(PeerAttestation attestation, int open) {
    }
    /**
     * Outgoing calls being set up, by their first hop, until they settle: every new TLS connection to that hop decides
     * each of them (again) on its own attestation before any byte of SIP is written — the first connection, and any
     * JAIN-SIP opens silently later (a reconnect), so no INVITE ever leaves on a connection its policy did not see.
     */
    private final Map<SocketAddress, java.util.Set<Call>> settingUp = new ConcurrentHashMap<>();
    private final SecureRandom random = new SecureRandom();
    /** Registrations by their Call-ID (one per registration, RFC 3261 §10.2.4). */
    private final Map<String, Registration> registrations = new ConcurrentHashMap<>();
    /** Registration refreshes and retries, setup deadlines of incoming calls. */
    private final java.util.concurrent.ScheduledThreadPoolExecutor timers;

    private SipPhone(Config config, CallPolicy policy, Keys keys, Listener listener, Media media, Clock clock,
                     String stackName, SipStack stack, SipProvider provider, SipFactory factory, Limits limits,
                     ConnectionTable connectionTable, HandshakeGuard guard, UdpRefusalBudget udpRefusals)
            throws SipException {
        this.udpRefusals = udpRefusals;
        this.config = config;
        this.limits = limits;
        this.connectionTable = connectionTable;
        this.guard = guard;
        this.calls = new CallTable(limits.maxCalls(), limits.maxSettingUp(), limits.endedHistory());
        this.policy = policy;
        this.keys = keys;
        this.listener = listener;
        this.media = media;
        this.clock = clock;
        this.decisionLines = new LogBudget(clock, DECISION_LINES_PER_SECOND);
        this.stackName = stackName;
        this.stack = stack;
        this.provider = provider;
        this.timers = new java.util.concurrent.ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "sip-timers-" + config.host());
            t.setDaemon(true);
            return t;
        });
        // a cancelled setup deadline must not keep its call in the queue until it would have fired
        this.timers.setRemoveOnCancelPolicy(true);
        try {
            this.addresses = factory.createAddressFactory();
            this.headers = factory.createHeaderFactory();
            this.messages = factory.createMessageFactory();
        } catch (javax.sip.PeerUnavailableException e) {
            throw new SipException("JAIN-SIP factories unavailable", e);
        }
    }

    /**
     * The JAIN-SIP stack's configuration for a phone whose stack is named {@code stackName}: the connection-bound
     * processors, the valve, the guarded message parser, TLS 1.3, the bounds on transactions and message sizes, and our loggers. The SIP fuzz tests
     * parse with it.
     */
    static Properties stackProperties(String stackName) {
        Properties p = new Properties();
        p.setProperty("javax.sip.STACK_NAME", stackName);
        p.setProperty("gov.nist.javax.sip.NETWORK_LAYER", AttestedNetworkLayer.class.getName());
        // TCP and TLS channels that answer only on their own connection and never reconnect to a Via's address,
        // and a valve that closes a connection whose request names another transport (docs/softphone.md, "Bounds")
        p.setProperty("gov.nist.javax.sip.MESSAGE_PROCESSOR_FACTORY", ConnectionBoundProcessors.class.getName());
        p.setProperty("gov.nist.javax.sip.SIP_MESSAGE_VALVE", ViaTransportValve.class.getName());
        // JAIN-SIP's parser, refusing first what it would never return from (a Via ending in a backslash)
        p.setProperty("gov.nist.javax.sip.MESSAGE_PARSER_FACTORY", GuardedMessageParsers.class.getName());
        p.setProperty("gov.nist.javax.sip.TLS_CLIENT_PROTOCOLS", "TLSv1.3");
        p.setProperty("gov.nist.javax.sip.ENABLED_CIPHER_SUITES",
                "TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256");
        p.setProperty("gov.nist.javax.sip.TLS_CLIENT_AUTH_TYPE", "Want");
        p.setProperty("gov.nist.javax.sip.REENTRANT_LISTENER", "true");
        p.setProperty("gov.nist.javax.sip.THREAD_POOL_SIZE", "8");
        p.setProperty("gov.nist.javax.sip.MAX_MESSAGE_SIZE", "65536");
        p.setProperty("gov.nist.javax.sip.READ_TIMEOUT", "10000");
        // JAIN-SIP's own state, bounded: beyond 800 server transactions it drops new requests at random, beyond
        // 1,000 all of them, instead of growing (enforceServerTransactionLimit). A backstop: the phone makes a
        // transaction only for an INVITE it accepted and a request in a call in progress, everything else is
        // answered statelessly. Client transactions are the phone's own requests (JAIN-SIP 1.3.0-91 does not enforce
        // MAX_CLIENT_TRANSACTIONS either). Not MAX_CONNECTIONS: JAIN-SIP 1.3 counts every accepted TLS socket but
        // uncounts it only when an established connection closes, so each failed handshake would hold a slot for
        // good and 256 of them would stop the TLS listener until a restart. Connections are bounded by the
        // ConnectionTable, TLS handshakes by the HandshakeGuard instead.
        p.setProperty("gov.nist.javax.sip.MAX_SERVER_TRANSACTIONS", "1000");
        p.setProperty("gov.nist.javax.sip.MAX_CLIENT_TRANSACTIONS", "1000");
        p.setProperty("gov.nist.javax.sip.TRACE_LEVEL", "0");
        p.setProperty("gov.nist.javax.sip.STACK_LOGGER", Slf4jStackLogger.class.getName());
        p.setProperty("gov.nist.javax.sip.SERVER_LOGGER", Slf4jServerLogger.class.getName());
        p.setProperty("javax.sip.AUTOMATIC_DIALOG_SUPPORT", "on");
        return p;
    }

    /** Starts the stack and listens on the configured ports (TLS attested; UDP/TCP plain). */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Clock clock) throws SipException {
        return start(config, tls, policy, keys, listener, null, clock);
    }

    /** As above, with SRTP audio for every established call. */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Media media, Clock clock) throws SipException {
        return start(config, tls, policy, keys, listener, media, clock, Limits.DEFAULTS);
    }

    /** As above, with the given bounds on what peers can make the phone hold. */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Media media, Clock clock, Limits limits) throws SipException {
        Objects.requireNonNull(limits, "limits");
        String stackName = "tpmphone-" + config.host() + "-" + STACKS.incrementAndGet();
        Holder holder = new Holder();
        ConnectionTable connections = new ConnectionTable(limits.idleTimeout(), limits.maxAge(),
                limits.connectionsPerSource(), limits.connections(), limits.outgoing().connections(), clock,
                holder::carriesCallOrRegistration);
        HandshakeGuard guard = new HandshakeGuard(limits.tlsHandshakes(), clock);
        UdpRefusalBudget udpRefusals = new UdpRefusalBudget();
        AttestedNetworkLayer.register(stackName, new AttestedNetworkLayer.Stack(tls, holder, guard, connections,
                holder::chose,
                new TokenBucket(clock, limits.outgoing().handshakes(), limits.outgoing().handshakesPerSecond()),
                udpRefusals, clock));
        Properties p = stackProperties(stackName);
        SipFactory factory = SipFactory.getInstance();
        factory.setPathName("gov.nist");
        SipStack stack;
        try {
            stack = factory.createSipStack(p);
        } catch (javax.sip.PeerUnavailableException e) {
            AttestedNetworkLayer.unregister(stackName);
            throw new SipException("cannot create the SIP stack: " + e.getMessage(), e);
        }
        enforceServerTransactionLimit(stack);
        try {
            String ip = config.address().getHostAddress();
            ListeningPoint tlsLp = stack.createListeningPoint(ip, config.tlsPort(), ListeningPoint.TLS);
            SipProvider provider = stack.createSipProvider(tlsLp);
            if (config.tcpPort() > 0) {
                provider.addListeningPoint(stack.createListeningPoint(ip, config.tcpPort(), ListeningPoint.TCP));
            }
            if (config.udpPort() > 0) {
                provider.addListeningPoint(stack.createListeningPoint(ip, config.udpPort(), ListeningPoint.UDP));
            }
            SipPhone phone = new SipPhone(config, policy, keys, listener, media, clock, stackName, stack, provider,
                    factory, limits, connections, guard, udpRefusals);
            holder.phone = phone;
            provider.addSipListener(phone.new Events());
            stack.start();
            LOG.info("SIP phone {}@{} listening on {} (TLS {}, TCP {}, UDP {})", config.user(), config.host(), ip,
                    config.tlsPort(), config.tcpPort(), config.udpPort());
            return phone;
        } catch (InvalidArgumentException | TooManyListenersException | javax.sip.TransportNotSupportedException
                 | javax.sip.ObjectInUseException e) {
            stack.stop();
            AttestedNetworkLayer.unregister(stackName);
            throw new SipException("cannot listen: " + e.getMessage(), e);
        }
    }

    /**
     * JAIN-SIP 1.3.0-91 reads {@code MAX_SERVER_TRANSACTIONS} but never turns its limit on ({@code SipStackImpl}
     * leaves {@code unlimitedServerTransactionTableSize} true), so its table of server transactions could grow
     * without bound. This turns it on. Without it (a JAIN-SIP that renamed the field) the phone still makes no
     * transaction for what it refuses; the warning says the backstop is missing.
     */
    private static void enforceServerTransactionLimit(SipStack stack) {
        try {
            java.lang.reflect.Field unlimited = gov.nist.javax.sip.stack.SIPTransactionStack.class
                    .getDeclaredField("unlimitedServerTransactionTableSize");
            unlimited.setAccessible(true);
            unlimited.setBoolean(stack, false);
        } catch (ReflectiveOperationException | RuntimeException e) {
            LOG.warn("cannot turn on JAIN-SIP's limit on server transactions ({}); its table has no bound",
                    e.toString());
        }
    }

    /** Late binding of the TLS gate, and of what keeps a connection open, to the phone the stack serves. */
    private static final class Holder implements AttestedSslSocket.Gate {
        private volatile SipPhone phone;

        boolean carriesCallOrRegistration(InetSocketAddress remote) {
            SipPhone p = phone;
            return p != null && p.carriesCallOrRegistration(remote);
        }

        boolean chose(InetSocketAddress destination) {
            SipPhone p = phone;
            return p != null && p.chose(destination);
        }

        @Override
        public void admit(SocketAddress remote, Optional<PeerAttestation> peer) throws IOException {
            SipPhone p = phone;
            if (p != null) {
                p.admitOutgoing(remote, peer);
            }
        }

        @Override
        public void closed(SocketAddress remote, Optional<PeerAttestation> peer) {
            SipPhone p = phone;
            if (p != null) {
                p.connectionClosed(remote);
            }
        }
    }

    public Config config() {
        return config;
    }

    /** Our address of record, {@code sips:user@host}. */
    public String uri() {
        return "sips:" + config.user() + "@" + config.host();
    }

    // ---------------------------------------------------------------------------------------------- outgoing

    /**
     * Calls {@code target} (e.g. {@code sips:bob@bob}) at {@code address:port} over attested TLS. Returns at once; the
     * call's {@link Call#settled()} completes when it is established or refused (with the reason).
     */
    public Call call(String target, InetSocketAddress next) throws SipException {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(next, "next");
        return place(target, true, next, "tls", uri(), null);
    }

    /**
     * Calls {@code target} through the registrar of {@code registration} (its outbound proxy), as that registration's
     * address of record, answering the proxy's digest challenge with its credentials. The first hop is the proxy: over
     * TLS it is rated by its handshake (an ordinary proxy is {@code UNATTESTED}) and the call policy for
     * {@code target} decides on that, before the INVITE is written.
     */
    public Call call(String target, Registration registration) throws SipException {
        Objects.requireNonNull(target, "target");
        Registration.Account a = registration.account();
        return place(target, false, a.registrar(), a.transport(), a.aor(), a);
    }

    private Call place(String target, boolean secure, InetSocketAddress next, String transport, String fromUri,
                       Registration.Account account) throws SipException {
        String callId = HexFormat.of().formatHex(randomBytes(12)) + "@" + config.host();
        Call call = new Call(callId, CallPolicy.Direction.OUT, target);
        Optional<String> full = calls.add(call, account);
        if (full.isPresent()) {
            call.refused("this phone is busy: " + full.get());
            calls.remember(call);
            listener.ended(call);
            return call;
        }
        try {
            SipURI requestUri = (SipURI) addresses.createURI(target);
            if (secure) {
                requestUri.setSecure(true);
            }
            Address from = addresses.createAddress(addresses.createURI(fromUri));
            Address to = addresses.createAddress(requestUri);
            Request invite = messages.createRequest(requestUri, Request.INVITE, headers.createCallIdHeader(callId),
                    headers.createCSeqHeader(1L, Request.INVITE), headers.createFromHeader(from, tag()),
                    headers.createToHeader(to, null), new ArrayList<>(List.of(via(transport))),
                    headers.createMaxForwardsHeader(70));
            invite.addHeader(route(next, transport));
            invite.addHeader(contact(transport));
            SdesCrypto local = ownKey(callId);
            call.localCrypto(local);
            openAudio(call);
            invite.setContent(offer(call, local).getBytes(StandardCharsets.US_ASCII),
                    headers.createContentTypeHeader("application", "sdp"));
            InetSocketAddress key = new InetSocketAddress(next.getAddress(), next.getPort());
            call.hop(key);
            Hop hop = connections.get(key);
            PeerAttestation known = transport.equals("tls") ? (hop == null ? null : hop.attestation())
                    : PeerAttestation.unattested(Optional.empty(), clock.instant(), "the first hop is over "
                    + transport.toUpperCase(java.util.Locale.ROOT) + ", which carries no attestation");
            settingUp.compute(key, (k, onHop) -> {
                java.util.Set<Call> set = onHop != null ? onHop : ConcurrentHashMap.newKeySet();
                set.add(call);
                return set;
            });
            // the hop's entry goes with its last call being set up
            call.settled().whenComplete((c, e) -> settingUp.computeIfPresent(key, (k, onHop) -> {
                onHop.remove(call);
                return onHop.isEmpty() ? null : onHop;
            }));
            if (known != null) {
                // An open connection to this hop: its attestation is decided on now. Should JAIN-SIP open a new
                // connection for the INVITE after all, the TLS gate decides again on that one.
                CallPolicy.Decision d = decide(call, known);
                if (d.action() == CallPolicy.Action.REJECT) {
                    return call;
                }
            }
            // Otherwise a new connection: the TLS gate decides right after its handshake, before the INVITE is written.
            ClientTransaction ct = provider.getNewClientTransaction(invite);
            call.dialog(ct.getDialog());
            ct.sendRequest();
            return call;
        } catch (java.text.ParseException | InvalidArgumentException | IOException e) {
            call.refused("cannot build the INVITE: " + e.getMessage());
            listener.ended(call);
            return call;
        } catch (SipException e) {
            if (call.state() != Call.State.REFUSED) {
                call.refused("cannot send the INVITE: " + rootMessage(e));
            }
            listener.ended(call);
            return call;
        }
    }

    /** The TLS gate for connections this phone opens: the call policy for the destination, before any byte of SIP. */
    private void admitOutgoing(SocketAddress remote, Optional<PeerAttestation> peer) throws IOException {
        PeerAttestation p = peer.orElse(PeerAttestation.unattested(Optional.empty(), clock.instant(),
                "the peer's TLS handshake carried no attestation"));
        connections.compute(remote, (k, hop) -> new Hop(p, hop == null ? 1 : hop.open() + 1));
        String refusal = null;
        for (Call call : settingUp.getOrDefault(remote, java.util.Set.of())) {
            if (call.state() != Call.State.SETTING_UP) {
                continue;
            }
            CallPolicy.Decision d = decide(call, p);
            if (d.action() == CallPolicy.Action.REJECT) {
                refusal = d.reason();
            }
        }
        if (refusal != null) {
            // the stricter decision wins: the connection ends before any call's INVITE is written on it
            throw new SSLHandshakeException("call policy: " + refusal);
        }
    }

    /**
     * Whether the connection to {@code remote} carries a call in progress (the first hop of one we placed, or the
     * connection an incoming one came over) or one of our registrations (the connection to its registrar): such a
     * connection stays open however idle.
     */
    private boolean carriesCallOrRegistration(InetSocketAddress remote) {
        for (Call c : calls.inProgress()) {
            if (remote.equals(c.hop().orElse(null))) {
                return true;
            }
        }
        for (Registration r : registrations.values()) {
            InetSocketAddress registrar = r.account().registrar();
            if (r.state() != Registration.State.UNREGISTERED && remote.getPort() == registrar.getPort()
                    && remote.getAddress().equals(registrar.getAddress())) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether this phone chose {@code destination} to send to: a registrar of a registration not ended, the first hop of
     * a call it places, or, for a call in progress either way, its dialog's remote target or first route (where
     * requests within the call go, RFC 3261 §12.2.1.1). Nothing else gets a connection or a datagram the phone opens
     * ({@link AttestedNetworkLayer}), whatever a peer's Via says. A host name is resolved as JAIN-SIP would.
     */
    private boolean chose(InetSocketAddress destination) {
        for (Registration r : registrations.values()) {
            if (r.state() != Registration.State.UNREGISTERED && same(r.account().registrar(), destination)) {
                return true;
            }
        }
        for (SocketAddress hop : settingUp.keySet()) {
            if (hop instanceof InetSocketAddress h && same(h, destination)) {
                return true;
            }
        }
        for (Call c : calls.inProgress()) {
            if (c.direction() == CallPolicy.Direction.OUT && c.hop().filter(h -> same(h, destination)).isPresent()) {
                return true;
            }
            Optional<Dialog> dialog = c.dialog();
            if (dialog.isEmpty()) {
                continue;
            }
            Address target = dialog.get().getRemoteTarget();
            if (target != null && isAt(target.getURI(), destination)) {
                return true;
            }
            java.util.Iterator<?> routes = dialog.get().getRouteSet();
            if (routes != null && routes.hasNext() && routes.next() instanceof javax.sip.header.RouteHeader first
                    && isAt(first.getAddress().getURI(), destination)) {
                return true;
            }
        }
        return false;
    }

    private static boolean same(InetSocketAddress a, InetSocketAddress b) {
        if (a.getPort() != b.getPort()) {
            return false;
        }
        if (a.getAddress() != null) {
            return a.getAddress().equals(b.getAddress());
        }
        return resolvesTo(a.getHostString(), b.getAddress());
    }

    /** Whether a SIP URI's host and port (5061 for sips: or transport=tls, else 5060) are {@code destination}. */
    private static boolean isAt(javax.sip.address.URI uri, InetSocketAddress destination) {
        if (!(uri instanceof SipURI u) || u.getHost() == null) {
            return false;
        }
        int port = u.getPort() > 0 ? u.getPort()
                : u.isSecure() || "tls".equalsIgnoreCase(u.getTransportParam()) ? 5061 : 5060;
        return port == destination.getPort() && resolvesTo(u.getHost(), destination.getAddress());
    }

    private static boolean resolvesTo(String host, InetAddress address) {
        if (address == null) {
            return false;
        }
        String h = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
        try {
            for (InetAddress a : InetAddress.getAllByName(h)) {
                if (a.equals(address)) {
                    return true;
                }
            }
        } catch (java.net.UnknownHostException e) {
            return false;
        }
        return false;
    }

    /** A TLS connection this phone made is closed: its attestation no longer decides anything. */
    private void connectionClosed(SocketAddress remote) {
        // Only when the last one to that address closes: while any is open, JAIN-SIP may reuse it without a new
        // handshake, and place() must find the attestation it was admitted on.
        connections.computeIfPresent(remote, (k, hop) -> hop.open() <= 1 ? null : new Hop(hop.attestation(),
                hop.open() - 1));
    }

    private CallPolicy.Decision decide(Call call, PeerAttestation peer) {
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

    /** Ends an established call with BYE, or cancels one being set up. */
    public void hangUp(Call call) throws SipException {
        Optional<Dialog> dialog = call.dialog();
        if (dialog.isEmpty() || dialog.get().getState() == null) {
            call.ended("hung up before the call was set up");
            return;
        }
        if (call.state() == Call.State.ESTABLISHED) {
            Request bye = dialog.get().createRequest(Request.BYE);
            dialog.get().sendRequest(provider.getNewClientTransaction(bye));
        }
        call.ended("hung up");
        listener.ended(call);
    }

    // ---------------------------------------------------------------------------------------------- incoming

    private void incomingInvite(RequestEvent event) throws Exception {
        Request request = event.getRequest();
        String callId = ((CallIdHeader) request.getHeader(CallIdHeader.NAME)).getCallId();
        Optional<Call> existing = calls.active(callId);
        if (existing.isPresent()) {
            if (existing.get().state() == Call.State.ESTABLISHED
                    && ((ToHeader) request.getHeader(ToHeader.NAME)).getTag() != null) {
                reInvite(event.getServerTransaction() != null ? event.getServerTransaction()
                        : provider.getNewServerTransaction(request), request, existing.get());
            } else {
                // Not a re-INVITE of an established call, and not a retransmission (JAIN-SIP's transaction absorbs
                // those): another transaction with this call's Call-ID, a merged request or someone else's. It may
                // not replace the call, and it gets an answer (RFC 3261 §8.2.2.2: 482; with a To tag, no such
                // dialog: 481), so a peer is never left waiting and its connection stays usable.
                boolean tagged = ((ToHeader) request.getHeader(ToHeader.NAME)).getTag() != null;
                Response r = messages.createResponse(tagged ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST
                        : Response.LOOP_DETECTED, request);
                LOG.debug("answered {} to another INVITE for call {} in progress", r.getStatusCode(),
                        UntrustedText.forTerminal(callId, 200));
                if (event.getServerTransaction() == null) {
                    statelessly(request, r);
                } else {
                    sendFinal(event.getServerTransaction(), r);
                }
            }
            return;
        }
        try {
            // what JAIN-SIP checks before it makes a transaction: a malformed INVITE gets its 400 and leaves no call
            ((gov.nist.javax.sip.message.SIPRequest) request).checkHeaders();
        } catch (java.text.ParseException e) {
            throw new javax.sip.TransactionUnavailableException(e.getMessage(), e);
        }
        FromHeader from = (FromHeader) request.getHeader(FromHeader.NAME);
        String fromUri = from.getAddress().getURI().toString();
        Call call = new Call(callId, CallPolicy.Direction.IN, fromUri);
        // Until the INVITE is accepted it has no transaction: every refusal below is answered statelessly (over TCP
        // and TLS on the connection it came over), because an INVITE transaction refused with 4xx-5xx waits 32 s for
        // an ACK (Timer H) that an attacker never sends, and JAIN-SIP holds every one of them (its
        // MAX_SERVER_TRANSACTIONS is not enforced by 1.3.0-91). The peer's ACK for such an answer reaches nothing.
        ServerTransaction st = event.getServerTransaction();
        PeerAttestation peer = peerOf(request);

        // The From identity must be the attested one: a measured host cannot call in someone else's name.
        if (peer.host().isPresent() && from.getAddress().getURI() instanceof SipURI su
                && !peer.host().get().equalsIgnoreCase(su.getHost())) {
            CallPolicy.Decision d = new CallPolicy.Decision(CallPolicy.Action.REJECT, peer.level(),
                    peer.level(), "identity", "the From identity " + UntrustedText.forTerminal(fromUri, 200)
                    + " differs from the attested host "
                    + peer.host().get());
            call.attested(peer, d);
            listener.decided(call, d);
            refuse(request, st, call, Response.FORBIDDEN, d.reason());
            return;
        }
        CallPolicy.Decision d = policy.decide(CallPolicy.Direction.IN, fromUri, peer);
        call.attested(peer, d);
        LogBudget.Take line = decisionLines.take();
        if (line.leftOut().isPresent()) {
            LOG.info("{} more incoming call decisions were not logged (at most {} a second)",
                    line.leftOut().getAsLong(), DECISION_LINES_PER_SECOND);
        }
        if (line.log()) {
            LOG.info("call {} IN from {}: {} → {}", UntrustedText.forTerminal(callId, 200),
                    UntrustedText.forTerminal(fromUri, 200), peer.display(), d.action());
        }
        listener.decided(call, d);
        if (d.action() == CallPolicy.Action.REJECT) {
            refuse(request, st, call, Response.FORBIDDEN, d.reason());
            return;
        }
        Sdp offer;
        try {
            offer = Sdp.parse(new String(request.getRawContent() == null ? new byte[0] : request.getRawContent(),
                    StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "the SDP offer is unusable: " + e.getMessage());
            return;
        }
        Optional<SdesCrypto> theirs = offer.cryptos().stream()
                .filter(c -> c.suite() == SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80).findFirst()
                .or(() -> offer.cryptos().stream().findFirst());
        // keep only the key we accept: it is the one media uses
        call.remoteSdp(new Sdp(offer.address(), offer.port(), offer.payloadTypes(),
                theirs.map(List::of).orElse(List.of()), offer.direction()));
        if (theirs.isEmpty()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "SRTP with SDES (a=crypto) is required");
            return;
        }
        Optional<Integer> codec = Sdp.choose(offer.payloadTypes());
        if (codec.isEmpty()) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "no common audio codec: offered " + offer.payloadTypes()
                    + ", we support PCMU (0) and PCMA (8)");
            return;
        }
        call.payloadType(codec.get());
        try {
            byte[] k = theirs.get().masterKey();
            byte[] s = theirs.get().masterSalt();
            try {
                keys.checkOffered(k, s, callId);
            } finally {
                java.util.Arrays.fill(k, (byte) 0);
                java.util.Arrays.fill(s, (byte) 0);
            }
        } catch (BrokerClient.RefusedException e) {
            refuse(request, st, call, Response.NOT_ACCEPTABLE_HERE, "the offered SRTP key was seen before (a replayed SDES"
                    + " offer): " + e.reason());
            return;
        }
        call.hop(connectionOf(request).orElse(null));
        // Accepted: only now does the call take a place among those being set up (refusals above take none, so a
        // flood the policy refuses cannot crowd out callers it accepts), and a caller that never ACKs holds it, and
        // after our 200 a media session, for at most the setup timeout.
        Optional<String> full = calls.add(call, null, sourceOf(request));
        if (full.isPresent()) {
            call.refused("503 this phone is busy: " + full.get());
            if (st != null) {
                sendFinal(st, busy(request, full.get()));
                countTurnedAway(full.get());
            } else {
                turnAway(request, full.get());
            }
            return;
        }
        java.util.concurrent.ScheduledFuture<?> deadline = timers.schedule(() -> {
            if (call.abandon("not set up within " + config.setupTimeout().toSeconds() + " s (no ACK)")) {
                listener.ended(call);
            }
        }, config.setupTimeout().toMillis(), TimeUnit.MILLISECONDS);
        call.settled().whenComplete((c, e) -> deadline.cancel(false));
        if (st == null) {
            st = serverTransaction(call, request);
        }
        call.dialog(st.getDialog());
        st.sendResponse(messages.createResponse(Response.RINGING, request));
        call.ringing();
        listener.ringing(call);
        SdesCrypto local = ownKey(callId, theirs.get().tag());
        call.localCrypto(local);
        openAudio(call);
        Response ok = messages.createResponse(Response.OK, request);
        tagTo(request, ok);
        ok.addHeader(contact());
        ok.setContent(sdp(call, local, List.of(codec.get())).getBytes(StandardCharsets.US_ASCII),
                headers.createContentTypeHeader("application", "sdp"));
        st.sendResponse(ok);
    }

    /**
     * Answers an INVITE the phone has no room for with {@code 503} and {@code Retry-After}, statelessly: no call, no
     * transaction, no dialog, no media and no key are made for it. One log line per burst, not per INVITE.
     */
    private void turnAway(Request request, String why) {
        try {
            statelessly(request, busy(request, why));
        } catch (Exception e) {
            // the peer's address may be unreachable; the INVITE is dropped all the same
        }
        countTurnedAway(why);
    }

    private Response busy(Request request, String why) throws java.text.ParseException, InvalidArgumentException {
        Response r = messages.createResponse(Response.SERVICE_UNAVAILABLE, request);
        tagTo(request, r);
        r.addHeader(headers.createRetryAfterHeader(5));
        if (!overUdp(request)) {
            r.addHeader(headers.createWarningHeader(config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    "this phone is busy: " + why));
        }
        return r;
    }

    private void countTurnedAway(String why) {
        if (turnedAway.incrementAndGet() == 1) {
            try {
                timers.schedule(() -> LOG.warn("turned away {} INVITEs with 503 in the last second: {}",
                        turnedAway.getAndSet(0), why), 1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                turnedAway.set(0);
            }
        }
    }

    /**
     * A re-INVITE in an established call (hold and resume, RFC 3264 §8.4): the same SDES key of this call is no replay;
     * a new one is checked like any offer. We answer with our key of this call and the complementary direction.
     */
    private void reInvite(ServerTransaction st, Request request, Call call) throws Exception {
        Sdp offer;
        try {
            offer = Sdp.parse(new String(request.getRawContent() == null ? new byte[0] : request.getRawContent(),
                    StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            sendFinal(st, messages.createResponse(Response.NOT_ACCEPTABLE_HERE, request));
            return;
        }
        Optional<SdesCrypto> theirs = offer.cryptos().stream().findFirst();
        Optional<SdesCrypto> current = call.remoteSdp().flatMap(s -> s.cryptos().stream().findFirst());
        if (theirs.isEmpty() || current.isEmpty() || !sameKey(theirs.get(), current.get())) {
            Response r = messages.createResponse(Response.NOT_ACCEPTABLE_HERE, request);
            r.addHeader(headers.createWarningHeader(config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                    "a re-INVITE must keep this call's SDES key (rekeying is not supported)"));
            sendFinal(st, r);
            return;
        }
        String ours = switch (offer.direction()) {
            case "sendonly" -> "recvonly";
            case "recvonly" -> "sendonly";
            case "inactive" -> "inactive";
            default -> "sendrecv";
        };
        call.remoteSdp(offer);
        call.held(!offer.direction().equals("sendrecv"));
        call.audio().ifPresent(a -> a.direction(ours));
        Response ok = messages.createResponse(Response.OK, request);
        ok.addHeader(contact());
        SdesCrypto local = call.localCrypto().orElseThrow();
        int port = call.audio().map(io.tpmphone.softphone.media.AudioSession::localPort).orElse(9);
        ok.setContent(new Sdp(config.address().getHostAddress(), port, List.of(call.payloadType()), List.of(local),
                ours)
                .encode(config.user(), clock.millis()).getBytes(StandardCharsets.US_ASCII),
                headers.createContentTypeHeader("application", "sdp"));
        sendFinal(st, ok);
        LOG.info("call {}: the peer {}", UntrustedText.forTerminal(call.callId(), 200), call.held() ? "put it on hold" : "resumed it");
    }

    private static boolean sameKey(SdesCrypto a, SdesCrypto b) {
        byte[] x = a.masterKey();
        byte[] y = b.masterKey();
        byte[] sx = a.masterSalt();
        byte[] sy = b.masterSalt();
        try {
            return java.security.MessageDigest.isEqual(x, y) & java.security.MessageDigest.isEqual(sx, sy);
        } finally {
            java.util.Arrays.fill(x, (byte) 0);
            java.util.Arrays.fill(y, (byte) 0);
            java.util.Arrays.fill(sx, (byte) 0);
            java.util.Arrays.fill(sy, (byte) 0);
        }
    }

    /**
     * Puts an established call on hold ({@code hold}: re-INVITE with {@code a=sendonly}) or resumes it
     * ({@code a=sendrecv}), keeping the call's SDES keys. The answer arrives asynchronously; {@link Call#held()}
     * follows it.
     */
    public void hold(Call call, boolean hold) throws SipException {
        if (call.state() != Call.State.ESTABLISHED || call.dialog().isEmpty() || call.localCrypto().isEmpty()) {
            throw new SipException("only an established call can be put on hold");
        }
        Dialog dialog = call.dialog().get();
        Request reinvite = dialog.createRequest(Request.INVITE);
        try {
            reinvite.addHeader(contact());
            int port = call.audio().map(io.tpmphone.softphone.media.AudioSession::localPort).orElse(9);
            reinvite.setContent(new Sdp(config.address().getHostAddress(), port, List.of(call.payloadType()),
                    List.of(call.localCrypto().get()), hold ? "sendonly" : "sendrecv").encode(config.user(),
                    clock.millis()).getBytes(StandardCharsets.US_ASCII),
                    headers.createContentTypeHeader("application", "sdp"));
        } catch (java.text.ParseException e) {
            throw new SipException("cannot build the re-INVITE", e);
        }
        dialog.sendRequest(provider.getNewClientTransaction(reinvite));
    }

    /**
     * Refuses an incoming INVITE, through its transaction or (null: not accepted yet, the usual case) statelessly.
     * {@code why} may carry the peer's text (a URI, an SDP line): it goes to the user escaped, and over TCP and TLS
     * escaped in a {@code Warning}; over UDP, where the source address is anyone's, the answer carries no
     * {@code Warning} at all (nothing to reflect at a spoofed source, and never more bytes than the INVITE).
     */
    private void refuse(Request request, ServerTransaction st, Call call, int status, String why) throws Exception {
        String shown = UntrustedText.forTerminal(why, 500);
        call.refused(status + " " + shown);
        calls.remember(call);
        listener.ended(call);
        Response r = messages.createResponse(status, request);
        tagTo(request, r);
        if (!overUdp(request)) {
            r.addHeader(headers.createWarningHeader(config.host(), WarningHeader.MISCELLANEOUS_WARNING, shown));
        }
        if (st != null) {
            sendFinal(st, r);
        } else {
            statelessly(request, r);
        }
    }

    /**
     * Sends a final answer without a transaction, so it holds nothing. Over TCP and TLS on the very connection the
     * request came over (the socket of its channel, {@link ConnectionBoundProcessors.BoundChannel#answer}), or not at
     * all when that connection is closed: never through an address lookup, a reconnect or a datagram (a request whose
     * Via named another transport never gets here: {@link ViaTransportValve} closed its connection). Over UDP to the
     * request's source (its Via says UDP: {@link ViaTransportValve}; JAIN-SIP reads Via's {@code received} and
     * {@code rport}, RFC 3261 §18.2.2, RFC 3581), and a refusal only if it is no larger than the request: a spoofed
     * source gets no more bytes than the spoofer sent (a request in compact form, whose answer JAIN-SIP writes in long
     * form, may get none). A 200 to an OPTIONS keeps its {@code Allow} and may be a few bytes larger than a minimal
     * request.
     */
    private void statelessly(Request request, Response r) throws SipException {
        gov.nist.javax.sip.message.SIPRequest sr = (gov.nist.javax.sip.message.SIPRequest) request;
        if (sr.getMessageChannel() instanceof gov.nist.javax.sip.stack.MessageChannel channel
                && channel.isReliable()) {
            if (!(channel instanceof ConnectionBoundProcessors.BoundChannel bound)) {
                // every TCP and TLS channel of this stack is bound (ConnectionBoundProcessors); never another's
                LOG.warn("not answering {}: the request came over a channel not bound to its connection ({})",
                        r.getStatusCode(), channel.getClass().getName());
                return;
            }
            try {
                bound.answer((gov.nist.javax.sip.message.SIPResponse) r);
            } catch (IOException e) {
                // the peer left meanwhile: an answer nobody can receive is dropped
                LOG.debug("could not answer {} on the connection from {}: {}", r.getStatusCode(),
                        connectionOf(request).map(Object::toString).orElse("?"), e.toString());
            }
            return;
        }
        int requestBytes = sr.getSize() + (sr.getRawContent() == null ? 0 : sr.getRawContent().length);
        int responseBytes = ((gov.nist.javax.sip.message.SIPResponse) r).encodeAsBytes(ListeningPoint.UDP).length;
        if (r.getStatusCode() >= 300 && sr.getSize() > 0 && responseBytes > requestBytes) {
            countUnanswered(r.getStatusCode(), requestBytes, responseBytes);
            return;
        }
        provider.sendResponse(r);
    }

    /** UDP answers not sent because they were larger than their request, since the last log line about them. */
    private final java.util.concurrent.atomic.AtomicInteger unanswered =
            new java.util.concurrent.atomic.AtomicInteger();
    /** Every UDP answer not sent because it was larger than its request (for the bounds tests). */
    private final AtomicLong unansweredTotal = new AtomicLong();

    private void countUnanswered(int status, int requestBytes, int responseBytes) {
        unansweredTotal.incrementAndGet();
        if (unanswered.incrementAndGet() == 1) {
            try {
                timers.schedule(() -> LOG.info("did not send {} UDP answers in the last second that were larger than"
                        + " their requests (the first: {} of {} bytes to a request of {})", unanswered.getAndSet(0),
                        status, responseBytes, requestBytes), 1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                unanswered.set(0);
            }
        }
    }

    private ServerTransaction serverTransaction(Call call, Request request) throws SipException {
        try {
            return provider.getNewServerTransaction(request);
        } catch (SipException | RuntimeException e) {
            call.refused("no SIP transaction for the INVITE: " + UntrustedText.forTerminal(rootMessage(e), 300));
            throw e;
        }
    }

    /** The remote address of the TCP or TLS connection a request came over; empty over UDP. */
    private static Optional<InetSocketAddress> connectionOf(Request request) {
        if (((gov.nist.javax.sip.message.SIPRequest) request).getMessageChannel()
                instanceof gov.nist.javax.sip.stack.MessageChannel channel && channel.isReliable()
                && channel.getPeerPacketSourceAddress() != null) {
            return Optional.of(new InetSocketAddress(channel.getPeerPacketSourceAddress(),
                    channel.getPeerPacketSourcePort()));
        }
        return Optional.empty();
    }

    /** The source a request came from (an IPv4 address, an IPv6 /64): its connection's peer, or its datagram's. */
    private static InetAddress sourceOf(Request request) {
        gov.nist.javax.sip.message.SIPRequest sr = (gov.nist.javax.sip.message.SIPRequest) request;
        InetAddress from = sr.getPeerPacketSourceAddress() != null ? sr.getPeerPacketSourceAddress()
                : sr.getRemoteAddress();
        return from == null ? null : HandshakeGuard.sourceOf(from);
    }

    private static boolean overUdp(Request request) {
        Object channel = ((gov.nist.javax.sip.message.SIPRequest) request).getMessageChannel();
        return channel instanceof gov.nist.javax.sip.stack.MessageChannel mc
                && ListeningPoint.UDP.equalsIgnoreCase(mc.getTransport());
    }

    private static void sendFinal(ServerTransaction st, Response r) throws SipException {
        try {
            st.sendResponse(r);
        } catch (InvalidArgumentException e) {
            throw new SipException("cannot send " + r.getStatusCode(), e);
        }
    }

    /**
     * Adds our To tag to a response — except for an RFC 2543 request (no {@code z9hG4bK} branch), whose transaction
     * JAIN-SIP matches by the request's (tagless) To, so a tagged response would not belong to it.
     */
    private void tagTo(Request request, Response r) throws java.text.ParseException {
        ViaHeader via = (ViaHeader) request.getHeader(ViaHeader.NAME);
        if (via != null && via.getBranch() != null && via.getBranch().startsWith("z9hG4bK")) {
            ((ToHeader) r.getHeader(ToHeader.NAME)).setTag(tag());
        }
    }

    /** The attestation of the connection a message arrived on: TLS → the peer's; UDP/TCP → UNATTESTED. */
    private PeerAttestation peerOf(Request request) {
        Object channel = ((gov.nist.javax.sip.message.SIPRequest) request).getMessageChannel();
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

    // ---------------------------------------------------------------------------------------------- SDP, keys

    private SdesCrypto ownKey(String callId) throws IOException {
        return ownKey(callId, 1);
    }

    private SdesCrypto ownKey(String callId, int tag) throws IOException {
        try (BrokerClient.SrtpKeyMaterial m = keys.srtpKey(SUITE, callId.replace(' ', '_'))) {
            return SdesCrypto.of(tag, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, m.key(), m.salt());
        }
    }

    /** Our offer: our media address and RTP port, PCMU and PCMA, our SDES key. */
    private String offer(Call call, SdesCrypto local) {
        return sdp(call, local, Sdp.AUDIO_PAYLOADS);
    }

    private String sdp(Call call, SdesCrypto local, List<Integer> payloads) {
        int port = call.audio().map(io.tpmphone.softphone.media.AudioSession::localPort).orElse(9);
        return new Sdp(config.address().getHostAddress(), port, payloads, List.of(local))
                .encode(config.user(), clock.millis());
    }

    private void openAudio(Call call) throws IOException {
        if (media != null) {
            call.audio(media.open(call.callId()));
        }
    }

    /** Starts SRTP audio once the call is established: our key out, the peer's in, to the peer's SDP address. */
    private void startAudio(Call call) {
        Optional<io.tpmphone.softphone.media.AudioSession> audio = call.audio();
        Optional<Sdp> remote = call.remoteSdp();
        Optional<SdesCrypto> local = call.localCrypto();
        if (audio.isEmpty() || remote.isEmpty() || local.isEmpty() || remote.get().cryptos().isEmpty()) {
            return;
        }
        try {
            audio.get().start(local.get(), remote.get().cryptos().get(0),
                    new InetSocketAddress(InetAddress.getByName(remote.get().address()), remote.get().port()),
                    call.payloadType());
        } catch (IOException | RuntimeException e) {
            LOG.warn("call {}: starting SRTP audio failed: {}", UntrustedText.forTerminal(call.callId(), 200),
                    UntrustedText.forTerminal(e.toString()));
        }
    }

    private ContactHeader contact() throws java.text.ParseException {
        return contact("tls");
    }

    /** Our contact for {@code transport}: where requests in a dialog (or for our registration) reach us. */
    private ContactHeader contact(String transport) throws java.text.ParseException {
        SipURI c = addresses.createSipURI(config.user(), config.address().getHostAddress());
        c.setPort(port(transport));
        c.setTransportParam(transport);
        return headers.createContactHeader(addresses.createAddress(c));
    }

    private int port(String transport) {
        return switch (transport) {
            case "tls" -> config.tlsPort();
            case "tcp" -> config.tcpPort();
            default -> config.udpPort();
        };
    }

    private ViaHeader via(String transport) throws java.text.ParseException {
        try {
            return headers.createViaHeader(config.address().getHostAddress(), port(transport), transport, null);
        } catch (InvalidArgumentException e) {
            throw new java.text.ParseException("bad Via port: " + e.getMessage(), 0);
        }
    }

    /** A loose route to the next hop (a peer, or a registrar acting as outbound proxy). */
    private javax.sip.header.RouteHeader route(InetSocketAddress next, String transport)
            throws java.text.ParseException {
        SipURI route = addresses.createSipURI(null, next.getAddress().getHostAddress());
        route.setPort(next.getPort());
        route.setTransportParam(transport);
        route.setLrParam();
        return headers.createRouteHeader(addresses.createAddress(route));
    }

    // ---------------------------------------------------------------------------------------------- registration

    /**
     * Registers our contact for {@code account}'s address of record. Returns at once; {@link
     * Registration#firstOutcome()} completes when the registrar accepted (or refused) it. A digest challenge is
     * answered with the account's credentials (MD5 or SHA-256, the registrar's topmost that we support); the binding is
     * refreshed at half the granted time; a failure is retried after 5 s, doubling up to 60 s.
     */
    public Registration register(Registration.Account account) {
        Objects.requireNonNull(account, "account");
        if (port(account.transport()) <= 0) {
            throw new IllegalArgumentException("this phone does not listen on " + account.transport());
        }
        Registration reg = new Registration(account, HexFormat.of().formatHex(randomBytes(12)) + "@"
                + config.host());
        registrations.put(reg.callId(), reg);
        sendRegister(reg, account.expires().toSeconds());
        return reg;
    }

    /** Removes our binding (REGISTER with Expires 0) and stops refreshing; waits at most {@code timeout}. */
    public void unregister(Registration reg, Duration timeout) throws InterruptedException {
        reg.cancelSchedule();
        if (reg.state() != Registration.State.REGISTERED) {
            reg.unregistered("not registered");
            return;
        }
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        unregistering.put(reg.callId(), done);
        sendRegister(reg, 0);
        if (!done.await(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            reg.unregistered("the registrar did not confirm the unregistration within " + timeout.toSeconds()
                    + " s");
        }
        unregistering.remove(reg.callId());
    }

    private final Map<String, java.util.concurrent.CountDownLatch> unregistering = new ConcurrentHashMap<>();

    private void sendRegister(Registration reg, long expires) {
        Registration.Account a = reg.account();
        try {
            SipURI aor = (SipURI) addresses.createURI(a.aor());
            SipURI registrar = addresses.createSipURI(null, aor.getHost());
            registrar.setSecure(aor.isSecure());
            Address address = addresses.createAddress(aor);
            Request r = messages.createRequest(registrar, Request.REGISTER,
                    headers.createCallIdHeader(reg.callId()),
                    headers.createCSeqHeader(reg.nextCseq(), Request.REGISTER),
                    headers.createFromHeader(address, tag()), headers.createToHeader(address, null),
                    new ArrayList<>(List.of(via(a.transport()))), headers.createMaxForwardsHeader(70));
            r.addHeader(route(a.registrar(), a.transport()));
            r.addHeader(contact(a.transport()));
            r.addHeader(headers.createExpiresHeader((int) Math.min(Integer.MAX_VALUE, expires)));
            provider.getNewClientTransaction(r).sendRequest();
        } catch (java.text.ParseException | InvalidArgumentException | ClassCastException e) {
            registrationFailed(reg, "cannot build the REGISTER for " + a.aor() + ": " + e.getMessage());
        } catch (SipException e) {
            registrationFailed(reg, "cannot send the REGISTER to " + a.registrar() + ": " + rootMessage(e));
        }
    }

    private void registrationFailed(Registration reg, String why) {
        java.util.concurrent.CountDownLatch unreg = unregistering.get(reg.callId());
        if (unreg != null) {
            reg.unregistered("unregistration failed: " + why);
            unreg.countDown();
            return;
        }
        int failures = reg.failed(why);
        long delay = Math.min(60, 5L << Math.min(4, failures - 1));
        LOG.info("registration of {} failed ({}); retrying in {} s", reg.account().aor(), why, delay);
        listener.registration(reg);
        reg.schedule(timers.schedule(() -> sendRegister(reg, reg.account().expires().toSeconds()), delay,
                TimeUnit.SECONDS));
    }

    private void registerResponse(ClientTransaction ct, Response r, Registration reg) {
        int status = r.getStatusCode();
        if (status < 200) {
            return;
        }
        Request sent = ct.getRequest();
        ExpiresHeader asked = sent.getExpires();
        boolean removing = asked != null && asked.getExpires() == 0;
        if (status == Response.UNAUTHORIZED || status == Response.PROXY_AUTHENTICATION_REQUIRED) {
            String problem = answerChallenge(ct, r, reg.account(), reg.nextCseq());
            if (problem != null) {
                registrationFailed(reg, status + " from the registrar: " + problem);
            }
            return;
        }
        if (status == Response.INTERVAL_TOO_BRIEF && !removing) {
            MinExpiresHeader min = (MinExpiresHeader) r.getHeader(MinExpiresHeader.NAME);
            if (min != null && min.getExpires() > (asked == null ? 0 : asked.getExpires())) {
                sendRegister(reg, min.getExpires());
                return;
            }
        }
        if (status >= 300) {
            WarningHeader w = (WarningHeader) r.getHeader(WarningHeader.NAME);
            registrationFailed(reg, "the registrar answered " + status + " " + UntrustedText.forTerminal(
                    r.getReasonPhrase(), 200) + (w != null ? ": " + UntrustedText.forTerminal(w.getText(), 500) : ""));
            return;
        }
        if (removing) {
            reg.unregistered("unregistered");
            java.util.concurrent.CountDownLatch done = unregistering.get(reg.callId());
            if (done != null) {
                done.countDown();
            }
            listener.registration(reg);
            return;
        }
        long granted = grantedSeconds(r, asked == null ? reg.account().expires().toSeconds() : asked.getExpires());
        if (granted <= 0) {
            registrationFailed(reg, "the registrar's 200 lists no binding for our contact");
            return;
        }
        AuthorizationHeader used = (AuthorizationHeader) sent.getHeader(AuthorizationHeader.NAME);
        if (used == null) {
            used = (AuthorizationHeader) sent.getHeader(ProxyAuthorizationHeader.NAME);
        }
        reg.registered(Duration.ofSeconds(granted), clock.instant(), used == null ? null
                : used.getAlgorithm() == null ? "MD5" : used.getAlgorithm());
        LOG.info("registered {} at {} for {} s", reg.account().aor(), reg.account().registrar(), granted);
        listener.registration(reg);
        long refreshMs = Math.max(1000, granted * 500);
        reg.schedule(timers.schedule(() -> sendRegister(reg, reg.account().expires().toSeconds()), refreshMs,
                TimeUnit.MILLISECONDS));
    }

    /** The time granted to our contact: its expires parameter in the 200, else the Expires header, else asked. */
    private long grantedSeconds(Response r, long asked) {
        ExpiresHeader global = r.getExpires();
        java.util.ListIterator<?> it = r.getHeaders(ContactHeader.NAME);
        boolean anyContact = false;
        while (it.hasNext()) {
            ContactHeader c = (ContactHeader) it.next();
            anyContact = true;
            if (c.getAddress().getURI() instanceof SipURI u && config.user().equals(u.getUser())
                    && config.address().getHostAddress().equals(u.getHost()) && isOurPort(u.getPort())) {
                return c.getExpires() >= 0 ? c.getExpires() : global != null ? global.getExpires() : asked;
            }
        }
        return anyContact ? 0 : global != null ? global.getExpires() : asked;
    }

    private boolean isOurPort(int port) {
        return port == config.tlsPort() || port == config.tcpPort() || port == config.udpPort();
    }

    /**
     * Answers a 401/407 by sending the challenged request again with our credentials (a new transaction, CSeq
     * {@code cseq}). Returns null when sent, or why the challenge cannot be answered: no usable challenge, or the same
     * realm challenged again after we answered it without the nonce being stale (the credentials were refused).
     */
    private String answerChallenge(ClientTransaction ct, Response r, Registration.Account account, long cseq) {
        boolean proxy = r.getStatusCode() == Response.PROXY_AUTHENTICATION_REQUIRED;
        Request challenged = ct.getRequest();
        List<DigestAuth.Challenge> offered = new ArrayList<>();
        boolean stale = false;
        java.util.ListIterator<?> it = r.getHeaders(proxy ? ProxyAuthenticateHeader.NAME : WWWAuthenticateHeader.NAME);
        while (it.hasNext()) {
            WWWAuthenticateHeader h = (WWWAuthenticateHeader) it.next();
            if (h.getScheme() != null && h.getScheme().equalsIgnoreCase("Digest") && h.getRealm() != null
                    && h.getNonce() != null) {
                offered.add(new DigestAuth.Challenge(h.getRealm(), h.getNonce(), h.getAlgorithm(), h.getQop(),
                        h.getOpaque()));
                stale |= h.isStale();
            }
        }
        String authName = proxy ? ProxyAuthorizationHeader.NAME : AuthorizationHeader.NAME;
        DigestAuth.Challenge chosen;
        try {
            chosen = DigestAuth.choose(offered);
        } catch (DigestAuth.UnsupportedChallengeException e) {
            return e.getMessage();
        }
        java.util.ListIterator<?> previous = challenged.getHeaders(authName);
        while (previous.hasNext()) {
            AuthorizationHeader p = (AuthorizationHeader) previous.next();
            if (chosen.realm().equals(p.getRealm()) && !stale) {
                return "our credentials for " + account.username() + " in realm \"" + chosen.realm()
                        + "\" were refused";
            }
        }
        char[] password = account.password().get();
        DigestAuth.Answer answer;
        try {
            answer = DigestAuth.answer(chosen, challenged.getMethod(), challenged.getRequestURI().toString(),
                    account.username(), password, HexFormat.of().formatHex(randomBytes(16)), 1);
        } catch (DigestAuth.UnsupportedChallengeException e) {
            return e.getMessage();
        } finally {
            java.util.Arrays.fill(password, '\0');
        }
        try {
            Request retry = (Request) challenged.clone();
            retry.removeHeader(authName);
            retry.removeHeader(ViaHeader.NAME);
            ViaHeader old = (ViaHeader) challenged.getHeader(ViaHeader.NAME);
            retry.addHeader(via(old.getTransport().toLowerCase(java.util.Locale.ROOT)));
            ((CSeqHeader) retry.getHeader(CSeqHeader.NAME)).setSeqNumber(cseq);
            AuthorizationHeader auth = proxy ? headers.createProxyAuthorizationHeader("Digest")
                    : headers.createAuthorizationHeader("Digest");
            auth.setUsername(answer.username());
            auth.setRealm(answer.realm());
            auth.setNonce(answer.nonce());
            auth.setURI(challenged.getRequestURI());
            auth.setResponse(answer.response());
            auth.setAlgorithm(answer.algorithm().token());
            if (answer.qop().isPresent()) {
                auth.setQop(answer.qop().get());
                auth.setCNonce(answer.cnonce().orElseThrow());
                auth.setNonceCount(1);
            } else if (answer.cnonce().isPresent()) {
                auth.setCNonce(answer.cnonce().get());
            }
            if (answer.opaque().isPresent()) {
                auth.setOpaque(answer.opaque().get());
            }
            retry.addHeader(auth);
            ClientTransaction next = provider.getNewClientTransaction(retry);
            next.sendRequest();
            if (Request.INVITE.equals(retry.getMethod())) {
                calls.active(((CallIdHeader) retry.getHeader(CallIdHeader.NAME)).getCallId())
                        .ifPresent(call -> call.dialog(next.getDialog()));
            }
            return null;
        } catch (java.text.ParseException | InvalidArgumentException | SipException e) {
            return "cannot send the request again with credentials: " + rootMessage(e);
        }
    }

    private String tag() {
        return HexFormat.of().formatHex(randomBytes(6));
    }

    private byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        random.nextBytes(b);
        return b;
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c.getMessage() == null ? c.toString() : c.getMessage();
    }

    /**
     * The calls in progress (being set up or established), then the last {@link Limits#endedHistory()} refused or
     * ended ones, oldest first.
     */
    public java.util.Collection<Call> calls() {
        return calls.all();
    }

    /** A call in progress, or one of the recent ended ones, by its Call-ID. */
    public Optional<Call> callById(String callId) {
        return calls.any(callId);
    }

    /**
     * What the phone holds for its calls and connections, and what JAIN-SIP holds for it (server transactions,
     * dialogs); for diagnostics and the bounds tests.
     */
    record Held(int callsInProgress, int callsSettingUp, int endedCalls, int hopsSettingUp, int tlsConnections,
                int registrations, int sipServerTransactions, int sipDialogs, long udpAnswersWithheld,
                int connectionsOpen, long connectionsClosedIdle, int tlsHandshakesInProgress,
                long udpRefusalsWithheld) {
    }

    Held held() {
        CallTable.Counts c = calls.counts();
        gov.nist.javax.sip.stack.SIPTransactionStack jain = (gov.nist.javax.sip.stack.SIPTransactionStack) stack;
        return new Held(c.active(), c.settingUp(), c.ended(), settingUp.size(), connections.size(),
                registrations.size(), jain.getServerTransactionTableSize(), jain.getDialogs().size(),
                unansweredTotal.get(), connectionTable.openCount(), connectionTable.closedIdle(),
                guard.inProgress(), udpRefusals.withheld());
    }

    /** The stack's connection table (for the bounds tests). */
    ConnectionTable connectionTable() {
        return connectionTable;
    }

    /** The remote addresses of the open TCP and TLS connections (for the bounds tests). */
    List<InetSocketAddress> connectionRemotes() {
        return connectionTable.remotes();
    }

    @Override
    public void close() {
        for (Registration reg : registrations.values()) {
            try {
                unregister(reg, Duration.ofSeconds(2));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        timers.shutdownNow();
        stack.stop();
        AttestedNetworkLayer.unregister(stackName);
        calls.inProgress().forEach(c -> c.ended("the phone stopped"));
    }

    // ---------------------------------------------------------------------------------------------- events

    private final class Events implements SipListener {
        @Override
        public void processRequest(RequestEvent event) {
            Request r = event.getRequest();
            try {
                switch (r.getMethod()) {
                    case Request.INVITE -> incomingInvite(event);
                    case Request.ACK -> {
                        Call c = callOf(r);
                        if (c != null && c.state() != Call.State.ESTABLISHED) {
                            startAudio(c);
                            c.established();
                        }
                    }
                    case Request.BYE -> {
                        Call c = callOf(r);
                        respond(event, c == null && event.getServerTransaction() == null
                                ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST : Response.OK);
                        if (c != null) {
                            c.ended("the peer hung up");
                            listener.ended(c);
                        }
                    }
                    case Request.CANCEL -> {
                        Call c = callOf(r);
                        respond(event, c == null && event.getServerTransaction() == null
                                ? Response.CALL_OR_TRANSACTION_DOES_NOT_EXIST : Response.OK);
                        if (c != null) {
                            c.ended("the caller cancelled");
                            listener.ended(c);
                        }
                    }
                    case Request.OPTIONS -> {
                        Response ok = messages.createResponse(Response.OK, r);
                        ok.addHeader(headers.createAllowHeader("INVITE, ACK, BYE, CANCEL, OPTIONS"));
                        send(event, ok);
                    }
                    default -> respond(event, Response.METHOD_NOT_ALLOWED);
                }
            } catch (javax.sip.TransactionUnavailableException e) {
                // A request JAIN-SIP cannot make a transaction of (e.g. a missing Contact or Max-Forwards): 400,
                // statelessly, naming what is wrong.
                LOG.info("refusing a malformed {}: {}", UntrustedText.forTerminal(r.getMethod(), 50),
                        UntrustedText.forTerminal(e.getMessage()));
                try {
                    Response bad = messages.createResponse(Response.BAD_REQUEST, r);
                    // over UDP the standard phrase: nothing of the request's goes back to a source anyone can spoof
                    if (e.getMessage() != null && !overUdp(r)) {
                        bad.setReasonPhrase(UntrustedText.forTerminal(e.getMessage(), 200));
                    }
                    statelessly(r, bad);
                } catch (Exception ignored) {
                    // the peer's address may be unreachable; the request is dropped
                }
            } catch (Exception e) {
                LOG.warn("handling {} failed: {}", UntrustedText.forTerminal(r.getMethod(), 50),
                        UntrustedText.forTerminal(e.toString()));
                try {
                    respond(event, Response.SERVER_INTERNAL_ERROR);
                } catch (Exception ignored) {
                    // the transaction may be gone already
                }
            }
        }

        private Call callOf(Request r) {
            CallIdHeader id = (CallIdHeader) r.getHeader(CallIdHeader.NAME);
            return id == null ? null : calls.active(id.getCallId()).orElse(null);
        }

        private void respond(RequestEvent event, int status) throws Exception {
            send(event, messages.createResponse(status, event.getRequest()));
        }

        /**
         * Answers through the request's transaction; a request without one gets a transaction only if it belongs to
         * a call in progress, and is otherwise answered statelessly: an OPTIONS, a request we do not support or one
         * for a call we do not have holds nothing (over UDP a non-INVITE transaction lingers 32 s, Timer J).
         */
        private void send(RequestEvent event, Response response) throws Exception {
            ServerTransaction st = event.getServerTransaction();
            Request request = event.getRequest();
            if (st == null) {
                if (request.getMethod().equals(Request.ACK)) {
                    return;
                }
                if (callOf(request) == null) {
                    statelessly(request, response);
                    return;
                }
                st = provider.getNewServerTransaction(request);
            }
            sendFinal(st, response);
        }

        @Override
        public void processResponse(ResponseEvent event) {
            Response r = event.getResponse();
            CSeqHeader cseq = (CSeqHeader) r.getHeader(CSeqHeader.NAME);
            CallIdHeader id = (CallIdHeader) r.getHeader(CallIdHeader.NAME);
            if (id != null && cseq != null && cseq.getMethod().equals(Request.REGISTER)) {
                Registration reg = registrations.get(id.getCallId());
                if (reg != null && event.getClientTransaction() != null) {
                    registerResponse(event.getClientTransaction(), r, reg);
                }
                return;
            }
            Call call = id == null ? null : calls.active(id.getCallId()).orElse(null);
            if (call == null || cseq == null || !cseq.getMethod().equals(Request.INVITE)) {
                return;
            }
            int status = r.getStatusCode();
            Registration.Account account = calls.account(call.callId()).orElse(null);
            if ((status == Response.UNAUTHORIZED || status == Response.PROXY_AUTHENTICATION_REQUIRED)
                    && account != null && event.getClientTransaction() != null
                    && call.state() != Call.State.ESTABLISHED) {
                String problem = answerChallenge(event.getClientTransaction(), r, account, cseq.getSeqNumber() + 1);
                if (problem != null) {
                    call.refused(status + " " + UntrustedText.forTerminal(r.getReasonPhrase(), 200) + ": "
                            + UntrustedText.forTerminal(problem, 500));
                    listener.ended(call);
                }
                return;
            }
            try {
                if (status >= 180 && status < 200) {
                    call.ringing();
                } else if (status >= 200 && status < 300) {
                    Dialog dialog = event.getDialog() != null ? event.getDialog() : event.getClientTransaction()
                            .getDialog();
                    Request ack = dialog.createAck(cseq.getSeqNumber());
                    dialog.sendAck(ack);
                    call.dialog(dialog);
                    Sdp answer = Sdp.parse(new String(r.getRawContent() == null ? new byte[0] : r.getRawContent(),
                            StandardCharsets.US_ASCII));
                    Optional<SdesCrypto> theirs = answer.cryptos().stream().findFirst();
                    boolean reInvite = call.state() == Call.State.ESTABLISHED;
                    boolean sameKey = reInvite && theirs.isPresent() && call.remoteSdp().isPresent()
                            && !call.remoteSdp().get().cryptos().isEmpty()
                            && sameKey(theirs.get(), call.remoteSdp().get().cryptos().get(0));
                    call.remoteSdp(answer);
                    String problem = null;
                    Optional<Integer> codec = Sdp.choose(answer.payloadTypes());
                    if (theirs.isEmpty()) {
                        problem = "the answer has no SDES key";
                    } else if (codec.isEmpty() && !reInvite) {
                        problem = "the answer has no codec we offered: " + answer.payloadTypes();
                    } else if (sameKey) {
                        // a re-INVITE answered with the key of this very call: no replay
                        call.held(!answer.direction().equals("sendrecv"));
                        call.audio().ifPresent(a -> a.direction(answer.direction().equals("inactive") ? "inactive"
                                : call.held() ? "sendonly" : "sendrecv"));
                    } else {
                        byte[] k = theirs.get().masterKey();
                        byte[] s = theirs.get().masterSalt();
                        try {
                            keys.checkOffered(k, s, call.callId());
                        } catch (BrokerClient.RefusedException e) {
                            problem = "the answered SRTP key was seen before (replayed): " + e.reason();
                        } finally {
                            java.util.Arrays.fill(k, (byte) 0);
                            java.util.Arrays.fill(s, (byte) 0);
                        }
                    }
                    if (problem != null) {
                        dialog.sendRequest(provider.getNewClientTransaction(dialog.createRequest(Request.BYE)));
                        call.ended(problem);
                        listener.ended(call);
                    } else if (!reInvite) {
                        call.payloadType(codec.orElseThrow());
                        startAudio(call);
                        call.established();
                    }
                } else if (status >= 300) {
                    WarningHeader w = (WarningHeader) r.getHeader(WarningHeader.NAME);
                    call.refused(status + " " + UntrustedText.forTerminal(r.getReasonPhrase(), 200)
                            + (w != null ? ": " + UntrustedText.forTerminal(w.getText(), 500) : ""));
                    listener.ended(call);
                }
            } catch (Exception e) {
                LOG.warn("handling the {} to INVITE failed: {}", status, UntrustedText.forTerminal(e.toString()));
                call.ended("handling the answer failed: " + UntrustedText.forTerminal(e.getMessage(), 500));
                listener.ended(call);
            }
        }

        @Override
        public void processTimeout(TimeoutEvent event) {
            Request r = event.isServerTransaction() ? event.getServerTransaction().getRequest()
                    : event.getClientTransaction().getRequest();
            if (r.getMethod().equals(Request.REGISTER)) {
                Registration reg = registrations.get(((CallIdHeader) r.getHeader(CallIdHeader.NAME)).getCallId());
                if (reg != null) {
                    registrationFailed(reg, "no answer from the registrar " + reg.account().registrar()
                            + " (SIP timer expired)");
                }
                return;
            }
            Call c = callOf(r);
            if (c != null) {
                c.ended("no answer (SIP timer expired for " + r.getMethod() + ")");
                listener.ended(c);
            }
        }

        @Override
        public void processIOException(IOExceptionEvent event) {
            LOG.info("SIP transport error towards {}:{} ({})", UntrustedText.forTerminal(event.getHost(), 100),
                    event.getPort(), UntrustedText.forTerminal(event.getTransport(), 20));
        }

        @Override
        public void processTransactionTerminated(TransactionTerminatedEvent event) {
            // nothing to clean up: calls are keyed by Call-ID
        }

        @Override
        public void processDialogTerminated(DialogTerminatedEvent event) {
            // the call's state is already final when its dialog ends
        }
    }

    /** Waits for a call to settle (established, refused or ended) at most {@link Config#setupTimeout()}. */
    public Call await(Call call) throws InterruptedException {
        try {
            return call.settled().get(config.setupTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException("a call's future never fails", e);
        } catch (java.util.concurrent.TimeoutException e) {
            call.ended("no final answer within " + config.setupTimeout().toSeconds() + " s");
            listener.ended(call);
            return call;
        }
    }
}
