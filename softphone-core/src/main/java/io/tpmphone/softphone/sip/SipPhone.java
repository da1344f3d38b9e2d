package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.message.SIPMessage;
import gov.nist.javax.sip.stack.TLSMessageChannel;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.softphone.internal.BrokerClient;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsConfig;
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
import javax.sip.header.ContactHeader;
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

    /** Media keys: from the agent broker in the softphone (the sealed keystore). */
    public interface Keys {
        BrokerClient.SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException;

        /** Refuses a replayed SDES key ({@link BrokerClient.RefusedException} with reason SEEN_BEFORE). */
        void checkOffered(byte[] key, byte[] salt, String callId) throws IOException;
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
    private final Map<String, Call> calls = new ConcurrentHashMap<>();
    /** The attestation of every TLS connection this phone made or accepted, by remote address. */
    private final Map<SocketAddress, PeerAttestation> connections = new ConcurrentHashMap<>();
    /** Outgoing calls waiting for their connection, by the destination's address. */
    private final Map<SocketAddress, Call> connecting = new ConcurrentHashMap<>();
    private final SecureRandom random = new SecureRandom();

    private SipPhone(Config config, CallPolicy policy, Keys keys, Listener listener, Media media, Clock clock,
                     String stackName, SipStack stack, SipProvider provider, SipFactory factory) throws SipException {
        this.config = config;
        this.policy = policy;
        this.keys = keys;
        this.listener = listener;
        this.media = media;
        this.clock = clock;
        this.stackName = stackName;
        this.stack = stack;
        this.provider = provider;
        try {
            this.addresses = factory.createAddressFactory();
            this.headers = factory.createHeaderFactory();
            this.messages = factory.createMessageFactory();
        } catch (javax.sip.PeerUnavailableException e) {
            throw new SipException("JAIN-SIP factories unavailable", e);
        }
    }

    /** Starts the stack and listens on the configured ports (TLS attested; UDP/TCP plain). */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Clock clock) throws SipException {
        return start(config, tls, policy, keys, listener, null, clock);
    }

    /** As above, with SRTP audio for every established call. */
    public static SipPhone start(Config config, AttestedTlsConfig tls, CallPolicy policy, Keys keys, Listener listener,
                                 Media media, Clock clock) throws SipException {
        String stackName = "tpmphone-" + config.host() + "-" + STACKS.incrementAndGet();
        Holder holder = new Holder();
        AttestedNetworkLayer.register(stackName, tls, (remote, peer) -> holder.admit(remote, peer));
        Properties p = new Properties();
        p.setProperty("javax.sip.STACK_NAME", stackName);
        p.setProperty("gov.nist.javax.sip.NETWORK_LAYER", AttestedNetworkLayer.class.getName());
        p.setProperty("gov.nist.javax.sip.TLS_CLIENT_PROTOCOLS", "TLSv1.3");
        p.setProperty("gov.nist.javax.sip.ENABLED_CIPHER_SUITES",
                "TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256");
        p.setProperty("gov.nist.javax.sip.TLS_CLIENT_AUTH_TYPE", "Want");
        p.setProperty("gov.nist.javax.sip.REENTRANT_LISTENER", "true");
        p.setProperty("gov.nist.javax.sip.THREAD_POOL_SIZE", "8");
        p.setProperty("gov.nist.javax.sip.MAX_MESSAGE_SIZE", "65536");
        p.setProperty("gov.nist.javax.sip.READ_TIMEOUT", "10000");
        p.setProperty("gov.nist.javax.sip.TRACE_LEVEL", "0");
        p.setProperty("gov.nist.javax.sip.STACK_LOGGER", Slf4jStackLogger.class.getName());
        p.setProperty("gov.nist.javax.sip.SERVER_LOGGER", Slf4jServerLogger.class.getName());
        p.setProperty("javax.sip.AUTOMATIC_DIALOG_SUPPORT", "on");
        SipFactory factory = SipFactory.getInstance();
        factory.setPathName("gov.nist");
        SipStack stack;
        try {
            stack = factory.createSipStack(p);
        } catch (javax.sip.PeerUnavailableException e) {
            AttestedNetworkLayer.unregister(stackName);
            throw new SipException("cannot create the SIP stack: " + e.getMessage(), e);
        }
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
                    factory);
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

    /** Late binding of the TLS gate to the phone the stack serves. */
    private static final class Holder {
        private volatile SipPhone phone;

        void admit(SocketAddress remote, Optional<PeerAttestation> peer) throws IOException {
            SipPhone p = phone;
            if (p != null) {
                p.admitOutgoing(remote, peer);
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
        String callId = HexFormat.of().formatHex(randomBytes(12)) + "@" + config.host();
        Call call = new Call(callId, CallPolicy.Direction.OUT, target);
        calls.put(callId, call);
        try {
            SipURI requestUri = (SipURI) addresses.createURI(target);
            requestUri.setSecure(true);
            SipURI route = addresses.createSipURI(null, next.getAddress().getHostAddress());
            route.setPort(next.getPort());
            route.setTransportParam("tls");
            route.setLrParam();
            Address from = addresses.createAddress(addresses.createURI(uri()));
            Address to = addresses.createAddress(requestUri);
            ViaHeader via = headers.createViaHeader(config.address().getHostAddress(), config.tlsPort(), "tls", null);
            Request invite = messages.createRequest(requestUri, Request.INVITE, headers.createCallIdHeader(callId),
                    headers.createCSeqHeader(1L, Request.INVITE), headers.createFromHeader(from, tag()),
                    headers.createToHeader(to, null), new ArrayList<>(List.of(via)),
                    headers.createMaxForwardsHeader(70));
            invite.addHeader(headers.createRouteHeader(addresses.createAddress(route)));
            invite.addHeader(contact());
            SdesCrypto local = ownKey(callId);
            call.localCrypto(local);
            openAudio(call);
            invite.setContent(offer(call, local).getBytes(StandardCharsets.US_ASCII),
                    headers.createContentTypeHeader("application", "sdp"));
            InetSocketAddress key = new InetSocketAddress(next.getAddress(), next.getPort());
            PeerAttestation known = connections.get(key);
            if (known != null) {
                // An open connection to this hop: its attestation is decided on now, no handshake will ask.
                CallPolicy.Decision d = decide(call, known);
                if (d.action() == CallPolicy.Action.REJECT) {
                    return call;
                }
            } else {
                // A new connection: the TLS gate decides right after its handshake, before the INVITE is written.
                connecting.put(key, call);
            }
            ClientTransaction ct = provider.getNewClientTransaction(invite);
            call.dialog(ct.getDialog());
            ct.sendRequest();
            return call;
        } catch (java.text.ParseException | InvalidArgumentException | IOException e) {
            call.refused("cannot build the INVITE: " + e.getMessage());
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
        connections.put(remote, p);
        Call call = connecting.remove(remote);
        if (call == null) {
            return;
        }
        CallPolicy.Decision d = decide(call, p);
        if (d.action() == CallPolicy.Action.REJECT) {
            throw new SSLHandshakeException("call policy: " + d.reason());
        }
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
        ServerTransaction st = event.getServerTransaction() != null ? event.getServerTransaction()
                : provider.getNewServerTransaction(request);
        String callId = ((CallIdHeader) request.getHeader(CallIdHeader.NAME)).getCallId();
        Call existing = calls.get(callId);
        if (existing != null && existing.state() == Call.State.ESTABLISHED
                && ((ToHeader) request.getHeader(ToHeader.NAME)).getTag() != null) {
            reInvite(st, request, existing);
            return;
        }
        FromHeader from = (FromHeader) request.getHeader(FromHeader.NAME);
        String fromUri = from.getAddress().getURI().toString();
        Call call = new Call(callId, CallPolicy.Direction.IN, fromUri);
        calls.put(callId, call);
        call.dialog(st.getDialog());
        PeerAttestation peer = peerOf(request);

        // The From identity must be the attested one: a measured host cannot call in someone else's name.
        if (peer.host().isPresent() && from.getAddress().getURI() instanceof SipURI su
                && !peer.host().get().equalsIgnoreCase(su.getHost())) {
            CallPolicy.Decision d = new CallPolicy.Decision(CallPolicy.Action.REJECT, peer.level(),
                    peer.level(), "identity", "the From identity " + fromUri + " differs from the attested host "
                    + peer.host().get());
            call.attested(peer, d);
            listener.decided(call, d);
            refuse(st, call, Response.FORBIDDEN, d.reason());
            return;
        }
        CallPolicy.Decision d = policy.decide(CallPolicy.Direction.IN, fromUri, peer);
        call.attested(peer, d);
        LOG.info("call {} IN from {}: {} → {}", callId, fromUri, peer.display(), d.action());
        listener.decided(call, d);
        if (d.action() == CallPolicy.Action.REJECT) {
            refuse(st, call, Response.FORBIDDEN, d.reason());
            return;
        }
        Sdp offer;
        try {
            offer = Sdp.parse(new String(request.getRawContent() == null ? new byte[0] : request.getRawContent(),
                    StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            refuse(st, call, Response.NOT_ACCEPTABLE_HERE, "the SDP offer is unusable: " + e.getMessage());
            return;
        }
        Optional<SdesCrypto> theirs = offer.cryptos().stream()
                .filter(c -> c.suite() == SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80).findFirst()
                .or(() -> offer.cryptos().stream().findFirst());
        // keep only the key we accept: it is the one media uses
        call.remoteSdp(new Sdp(offer.address(), offer.port(), offer.payloadTypes(),
                theirs.map(List::of).orElse(List.of()), offer.direction()));
        if (theirs.isEmpty()) {
            refuse(st, call, Response.NOT_ACCEPTABLE_HERE, "SRTP with SDES (a=crypto) is required");
            return;
        }
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
            refuse(st, call, Response.NOT_ACCEPTABLE_HERE, "the offered SRTP key was seen before (a replayed SDES"
                    + " offer): " + e.reason());
            return;
        }
        st.sendResponse(messages.createResponse(Response.RINGING, request));
        call.ringing();
        listener.ringing(call);
        SdesCrypto local = ownKey(callId, theirs.get().tag());
        call.localCrypto(local);
        openAudio(call);
        Response ok = messages.createResponse(Response.OK, request);
        tagTo(request, ok);
        ok.addHeader(contact());
        ok.setContent(offer(call, local).getBytes(StandardCharsets.US_ASCII),
                headers.createContentTypeHeader("application", "sdp"));
        st.sendResponse(ok);
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
        ok.setContent(new Sdp(config.address().getHostAddress(), port, Sdp.AUDIO_PAYLOADS, List.of(local), ours)
                .encode(config.user(), clock.millis()).getBytes(StandardCharsets.US_ASCII),
                headers.createContentTypeHeader("application", "sdp"));
        sendFinal(st, ok);
        LOG.info("call {}: the peer {}", call.callId(), call.held() ? "put it on hold" : "resumed it");
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
            reinvite.setContent(new Sdp(config.address().getHostAddress(), port, Sdp.AUDIO_PAYLOADS,
                    List.of(call.localCrypto().get()), hold ? "sendonly" : "sendrecv").encode(config.user(),
                    clock.millis()).getBytes(StandardCharsets.US_ASCII),
                    headers.createContentTypeHeader("application", "sdp"));
        } catch (java.text.ParseException e) {
            throw new SipException("cannot build the re-INVITE", e);
        }
        dialog.sendRequest(provider.getNewClientTransaction(reinvite));
    }

    private void refuse(ServerTransaction st, Call call, int status, String why) throws Exception {
        Response r = messages.createResponse(status, st.getRequest());
        tagTo(st.getRequest(), r);
        r.addHeader(headers.createWarningHeader(config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                why.length() > 500 ? why.substring(0, 500) : why));
        sendFinal(st, r);
        call.refused(status + " " + why);
        listener.ended(call);
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

    /** Our SDP (offer or answer): our media address and RTP port, PCMU/PCMA, our SDES key. */
    private String offer(Call call, SdesCrypto local) {
        int port = call.audio().map(io.tpmphone.softphone.media.AudioSession::localPort).orElse(9);
        return new Sdp(config.address().getHostAddress(), port, Sdp.AUDIO_PAYLOADS, List.of(local))
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
                    new InetSocketAddress(InetAddress.getByName(remote.get().address()), remote.get().port()));
        } catch (IOException | RuntimeException e) {
            LOG.warn("call {}: starting SRTP audio failed: {}", call.callId(), e.toString());
        }
    }

    private ContactHeader contact() throws java.text.ParseException {
        SipURI c = addresses.createSipURI(config.user(), config.address().getHostAddress());
        c.setPort(config.tlsPort());
        c.setTransportParam("tls");
        return headers.createContactHeader(addresses.createAddress(c));
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

    public Optional<Call> callById(String callId) {
        return Optional.ofNullable(calls.get(callId));
    }

    @Override
    public void close() {
        stack.stop();
        AttestedNetworkLayer.unregister(stackName);
        calls.values().forEach(c -> c.ended("the phone stopped"));
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
                        respond(event, Response.OK);
                        Call c = callOf(r);
                        if (c != null) {
                            c.ended("the peer hung up");
                            listener.ended(c);
                        }
                    }
                    case Request.CANCEL -> {
                        respond(event, Response.OK);
                        Call c = callOf(r);
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
                LOG.info("refusing a malformed {}: {}", r.getMethod(), e.getMessage());
                try {
                    Response bad = messages.createResponse(Response.BAD_REQUEST, r);
                    bad.setReasonPhrase(e.getMessage() == null ? "Bad Request" : e.getMessage().replaceAll(
                            "[\\r\\n]", " "));
                    provider.sendResponse(bad);
                } catch (Exception ignored) {
                    // the peer's address may be unreachable; the request is dropped
                }
            } catch (Exception e) {
                LOG.warn("handling {} failed: {}", r.getMethod(), e.toString());
                try {
                    respond(event, Response.SERVER_INTERNAL_ERROR);
                } catch (Exception ignored) {
                    // the transaction may be gone already
                }
            }
        }

        private Call callOf(Request r) {
            CallIdHeader id = (CallIdHeader) r.getHeader(CallIdHeader.NAME);
            return id == null ? null : calls.get(id.getCallId());
        }

        private void respond(RequestEvent event, int status) throws Exception {
            send(event, messages.createResponse(status, event.getRequest()));
        }

        private void send(RequestEvent event, Response response) throws Exception {
            ServerTransaction st = event.getServerTransaction();
            if (st == null) {
                if (event.getRequest().getMethod().equals(Request.ACK)) {
                    return;
                }
                st = provider.getNewServerTransaction(event.getRequest());
            }
            sendFinal(st, response);
        }

        @Override
        public void processResponse(ResponseEvent event) {
            Response r = event.getResponse();
            CSeqHeader cseq = (CSeqHeader) r.getHeader(CSeqHeader.NAME);
            CallIdHeader id = (CallIdHeader) r.getHeader(CallIdHeader.NAME);
            Call call = id == null ? null : calls.get(id.getCallId());
            if (call == null || cseq == null || !cseq.getMethod().equals(Request.INVITE)) {
                return;
            }
            int status = r.getStatusCode();
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
                    if (theirs.isEmpty()) {
                        problem = "the answer has no SDES key";
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
                        startAudio(call);
                        call.established();
                    }
                } else if (status >= 300) {
                    WarningHeader w = (WarningHeader) r.getHeader(WarningHeader.NAME);
                    call.refused(status + " " + r.getReasonPhrase() + (w != null ? ": " + w.getText() : ""));
                    listener.ended(call);
                }
            } catch (Exception e) {
                LOG.warn("handling the {} to INVITE failed: {}", status, e.toString());
                call.ended("handling the answer failed: " + e.getMessage());
                listener.ended(call);
            }
        }

        @Override
        public void processTimeout(TimeoutEvent event) {
            Request r = event.isServerTransaction() ? event.getServerTransaction().getRequest()
                    : event.getClientTransaction().getRequest();
            Call c = callOf(r);
            if (c != null) {
                c.ended("no answer (SIP timer expired for " + r.getMethod() + ")");
                listener.ended(c);
            }
        }

        @Override
        public void processIOException(IOExceptionEvent event) {
            LOG.info("SIP transport error towards {}:{} ({})", event.getHost(), event.getPort(),
                    event.getTransport());
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
