package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.message.SIPResponse;
import gov.nist.javax.sip.stack.MessageChannel;
import io.tpmphone.tls.HandshakeGuard;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.text.ParseException;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import javax.sip.Dialog;
import javax.sip.DialogState;
import javax.sip.InvalidArgumentException;
import javax.sip.ListeningPoint;
import javax.sip.ServerTransaction;
import javax.sip.SipException;
import javax.sip.SipFactory;
import javax.sip.SipProvider;
import javax.sip.TransactionState;
import javax.sip.address.AddressFactory;
import javax.sip.address.SipURI;
import javax.sip.header.ContactHeader;
import javax.sip.header.HeaderFactory;
import javax.sip.header.RouteHeader;
import javax.sip.header.ToHeader;
import javax.sip.header.ViaHeader;
import javax.sip.header.WarningHeader;
import javax.sip.message.MessageFactory;
import javax.sip.message.Request;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every part of the phone's SIP stack writes with: JAIN-SIP's factories and provider, our own addresses
 * (Contact, Via, Route), tags and Call-IDs, and the two ways an answer leaves — through its transaction, or without one
 * ({@link #statelessly}), on the very connection or to the very source its request came from. Thread-safe.
 */
final class Signalling {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    final SipPhone.Config config;
    final SipProvider provider;
    final AddressFactory addresses;
    final HeaderFactory headers;
    final MessageFactory messages;
    private final ScheduledExecutorService timers;
    private final SecureRandom random = new SecureRandom();
    /** UDP answers not sent because they were larger than their request, since the last log line about them. */
    private final AtomicInteger unanswered = new AtomicInteger();
    /** Every UDP answer not sent because it was larger than its request (for the bounds tests). */
    private final AtomicLong unansweredTotal = new AtomicLong();

    Signalling(SipPhone.Config config, SipProvider provider, SipFactory factory, ScheduledExecutorService timers)
            throws SipException {
        this.config = config;
        this.provider = provider;
        this.timers = timers;
        try {
            this.addresses = factory.createAddressFactory();
            this.headers = factory.createHeaderFactory();
            this.messages = factory.createMessageFactory();
        } catch (javax.sip.PeerUnavailableException e) {
            throw new SipException("JAIN-SIP factories unavailable", e);
        }
    }

    // ------------------------------------------------------------------------------------------ our addresses

    /**
     * Our contact for {@code transport} ({@code tls}, {@code tcp} or {@code udp}): where requests in a dialog (or for
     * our registration) reach us. A dialog's contact names the transport its INVITE came over: a peer that called over
     * UDP sends its ACK and BYE over UDP.
     */
    ContactHeader contact(String transport) throws ParseException {
        SipURI c = addresses.createSipURI(config.user(), config.address().getHostAddress());
        c.setPort(port(transport));
        c.setTransportParam(transport);
        return headers.createContactHeader(addresses.createAddress(c));
    }

    /** The port we listen on for {@code transport}; 0 when the phone does not serve it. */
    int port(String transport) {
        return switch (transport) {
            case "tls" -> config.tlsPort();
            case "tcp" -> config.tcpPort();
            default -> config.udpPort();
        };
    }

    ViaHeader via(String transport) throws ParseException {
        try {
            return headers.createViaHeader(config.address().getHostAddress(), port(transport), transport, null);
        } catch (InvalidArgumentException e) {
            throw new ParseException("bad Via port: " + e.getMessage(), 0);
        }
    }

    /** A loose route to the next hop (a peer, or a registrar acting as outbound proxy). */
    RouteHeader route(InetSocketAddress next, String transport) throws ParseException {
        SipURI route = addresses.createSipURI(null, next.getAddress().getHostAddress());
        route.setPort(next.getPort());
        route.setTransportParam(transport);
        route.setLrParam();
        return headers.createRouteHeader(addresses.createAddress(route));
    }

    String tag() {
        return hex(6);
    }

    /** A fresh Call-ID of ours. */
    String callId() {
        return hex(12) + "@" + config.host();
    }

    /** {@code n} random bytes in hex. */
    String hex(int n) {
        byte[] b = new byte[n];
        random.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    // ------------------------------------------------------------------------------------------ requests we got

    /**
     * The transport a request came over, as a Contact or Via names it: {@code tls}, {@code tcp} or {@code udp} (its
     * channel's, never what the peer wrote in its Via; {@code tls} for a request that came over no channel).
     */
    static String transportOf(Request request) {
        if (((SIPRequest) request).getMessageChannel() instanceof MessageChannel channel
                && channel.getTransport() != null) {
            return channel.getTransport().toLowerCase(Locale.ROOT);
        }
        return "tls";
    }

    static boolean overUdp(Request request) {
        return ((SIPRequest) request).getMessageChannel() instanceof MessageChannel channel
                && ListeningPoint.UDP.equalsIgnoreCase(channel.getTransport());
    }

    /** The remote address of the TCP or TLS connection a request came over; empty over UDP. */
    static Optional<InetSocketAddress> connectionOf(Request request) {
        if (((SIPRequest) request).getMessageChannel() instanceof MessageChannel channel && channel.isReliable()
                && channel.getPeerPacketSourceAddress() != null) {
            return Optional.of(new InetSocketAddress(channel.getPeerPacketSourceAddress(),
                    channel.getPeerPacketSourcePort()));
        }
        return Optional.empty();
    }

    /** The source a request came from (an IPv4 address, an IPv6 /64): its connection's peer, or its datagram's. */
    static InetAddress sourceOf(Request request) {
        SIPRequest sr = (SIPRequest) request;
        InetAddress from = sr.getPeerPacketSourceAddress() != null ? sr.getPeerPacketSourceAddress()
                : sr.getRemoteAddress();
        return from == null ? null : HandshakeGuard.sourceOf(from);
    }

    // ------------------------------------------------------------------------------------------ answering

    /**
     * Adds our To tag to a response — except for an RFC 2543 request (no {@code z9hG4bK} branch), whose transaction
     * JAIN-SIP matches by the request's (tagless) To, so a tagged response would not belong to it.
     */
    void tagTo(Request request, Response r) throws ParseException {
        ViaHeader via = (ViaHeader) request.getHeader(ViaHeader.NAME);
        if (via != null && via.getBranch() != null && via.getBranch().startsWith("z9hG4bK")) {
            ((ToHeader) r.getHeader(ToHeader.NAME)).setTag(tag());
        }
    }

    static void sendFinal(ServerTransaction st, Response r) throws SipException {
        try {
            st.sendResponse(r);
        } catch (InvalidArgumentException e) {
            throw new SipException("cannot send " + r.getStatusCode(), e);
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
    void statelessly(Request request, Response r) throws SipException {
        SIPRequest sr = (SIPRequest) request;
        if (sr.getMessageChannel() instanceof MessageChannel channel && channel.isReliable()) {
            if (!(channel instanceof ConnectionBoundProcessors.BoundChannel bound)) {
                // every TCP and TLS channel of this stack is bound (ConnectionBoundProcessors); never another's
                LOG.warn("not answering {}: the request came over a channel not bound to its connection ({})",
                        r.getStatusCode(), channel.getClass().getName());
                return;
            }
            try {
                bound.answer((SIPResponse) r);
            } catch (IOException e) {
                // the peer left meanwhile: an answer nobody can receive is dropped
                LOG.debug("could not answer {} on the connection from {}: {}", r.getStatusCode(),
                        connectionOf(request).map(Object::toString).orElse("?"), e.toString());
            }
            return;
        }
        int requestBytes = sr.getSize() + (sr.getRawContent() == null ? 0 : sr.getRawContent().length);
        int responseBytes = ((SIPResponse) r).encodeAsBytes(ListeningPoint.UDP).length;
        if (r.getStatusCode() >= 300 && sr.getSize() > 0 && responseBytes > requestBytes) {
            countUnanswered(r.getStatusCode(), requestBytes, responseBytes);
            return;
        }
        provider.sendResponse(r);
    }

    private void countUnanswered(int status, int requestBytes, int responseBytes) {
        unansweredTotal.incrementAndGet();
        if (unanswered.incrementAndGet() == 1) {
            try {
                timers.schedule(() -> LOG.info("did not send {} UDP answers in the last second that were larger than"
                        + " their requests (the first: {} of {} bytes to a request of {})", unanswered.getAndSet(0),
                        status, responseBytes, requestBytes), 1, TimeUnit.SECONDS);
            } catch (RejectedExecutionException stopping) {
                unanswered.set(0);
            }
        }
    }

    /** UDP answers withheld because they were larger than their requests, in all. */
    long unansweredTotal() {
        return unansweredTotal.get();
    }

    // ------------------------------------------------------------------------------------------ within a call

    /**
     * Sends a BYE in {@code call}'s dialog if it has one that was confirmed and not ended: the phone ends a call the
     * peer still thinks is up. Returns whether one was sent. Take the dialog before the call ends (an ended call drops
     * it).
     */
    boolean bye(Optional<Dialog> dialog) throws SipException {
        if (dialog.isEmpty() || dialog.get().getState() != DialogState.CONFIRMED) {
            return false;
        }
        Request bye = dialog.get().createRequest(Request.BYE);
        dialog.get().sendRequest(provider.getNewClientTransaction(bye));
        return true;
    }

    /**
     * Gives the INVITE of an incoming {@code call} this side is ending its final answer, if it has none yet: a call
     * abandoned at the setup deadline, or whose ringing or answering failed, would otherwise leave its server
     * transaction in Proceeding (JAIN-SIP sets it no lifetime) and the caller's proxy waiting minutes (its Timer C,
     * RFC 3261 §16.6). {@code status} (e.g. {@code 480}, {@code 500}) carries {@code why} (already escaped) as its
     * {@code Warning} over TLS and TCP (a UDP answer stays no larger than its request); the early dialog's To tag is
     * kept. Returns whether it was sent; a failure is logged, never thrown (the call is over either way).
     */
    boolean answerIfUnanswered(Call call, int status, String why) {
        if (!unanswered(call) || !call.claimFinalAnswer()) {
            return false; // answered, or another sender took the one final answer
        }
        return answerClaimed(call, status, why);
    }

    private static boolean unanswered(Call call) {
        return !call.isAnswered() && call.inviteTransaction().filter(t -> t.getState() == null
                || t.getState() == TransactionState.TRYING || t.getState() == TransactionState.PROCEEDING).isPresent();
    }

    /**
     * As {@link #answerIfUnanswered}, by a sender that holds the call's final answer already ({@code why}: a phrase
     * of ours for the network, never an exception's text). Sent whenever the INVITE's transaction has no final
     * response yet — also for a call marked answered whose 200 could not be sent.
     */
    boolean answerClaimed(Call call, int status, String why) {
        Optional<ServerTransaction> st = call.inviteTransaction().filter(t -> t.getState() == null
                || t.getState() == TransactionState.TRYING || t.getState() == TransactionState.PROCEEDING);
        if (st.isEmpty()) {
            return false;
        }
        try {
            Request invite = st.get().getRequest();
            Response r = messages.createResponse(status, invite);
            Optional<String> tag = call.dialog().or(() -> Optional.ofNullable(st.get().getDialog()))
                    .map(Dialog::getLocalTag);
            if (tag.isPresent()) {
                ((ToHeader) r.getHeader(ToHeader.NAME)).setTag(tag.get());
            } else {
                tagTo(invite, r);
            }
            if (!overUdp(invite)) {
                String text = why.replace('"', '\'').replace('\\', '/');
                r.addHeader(headers.createWarningHeader(config.host(), WarningHeader.MISCELLANEOUS_WARNING,
                        text.length() > 300 ? text.substring(0, 300) : text));
            }
            sendFinal(st.get(), r);
            return true;
        } catch (Exception e) {
            LOG.info("call {}: no final answer to its INVITE ({}): {}",
                    io.tpmphone.attestation.UntrustedText.forTerminal(call.callId(), 200), status,
                    io.tpmphone.attestation.UntrustedText.forTerminal(rootMessage(e), 300));
            return false;
        }
    }

    /**
     * The final answer a sender that holds it owes the INVITE of an incoming call that ended before it was answered
     * (while our 200 was being made, or while the setup deadline held the answer): {@code 487} when the caller
     * cancelled, else {@code 480} — with a fixed phrase saying which, never the call's reason (it may carry an
     * exception's text or the caller's own words). Whether it was sent.
     */
    boolean answerEnded(Call call) {
        if (callerCancelled(call)) {
            return answerClaimed(call, Response.REQUEST_TERMINATED, "the caller cancelled");
        }
        return answerClaimed(call, Response.TEMPORARILY_UNAVAILABLE,
                call.reason().startsWith(Call.HUNG_UP) ? "hung up" : "the call ended before it was answered");
    }

    /** Whether {@code call} ended because its caller cancelled it (its reason says so first, RFC 3261 §9.2). */
    static boolean callerCancelled(Call call) {
        return call.reason().startsWith(Call.CALLER_CANCELLED);
    }

    /** The innermost cause's message: what JAIN-SIP's wrappers hide. */
    static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c.getMessage() == null ? c.toString() : c.getMessage();
    }

    /**
     * Adds a {@code Reason} header (RFC 3326: {@code SIP;cause=STATUS;text="…"}) to a CANCEL or BYE, with the text
     * already escaped for terminals ({@link io.tpmphone.attestation.UntrustedText}) and cut to 300 characters; a text
     * JAIN-SIP will not take leaves the request without it (the request still goes).
     */
    static void addReason(Signalling sip, javax.sip.message.Request request, int status, String escaped) {
        String text = escaped.replace('"', '\'').replace('\\', '/');
        text = text.length() > 300 ? text.substring(0, 300) : text;
        try {
            request.addHeader(sip.headers.createReasonHeader("SIP", status, text));
        } catch (java.text.ParseException | javax.sip.InvalidArgumentException | RuntimeException e) {
            org.slf4j.LoggerFactory.getLogger(Signalling.class).debug("no Reason header: {}", e.toString());
        }
    }
}
