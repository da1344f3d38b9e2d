package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.SipStackImpl;
import gov.nist.javax.sip.header.Via;
import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.stack.MessageChannel;
import gov.nist.javax.sip.stack.SIPMessageValve;
import io.tpmphone.attestation.UntrustedText;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Clock;
import javax.sip.ListeningPoint;
import javax.sip.SipStack;
import javax.sip.message.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's {@code gov.nist.javax.sip.SIP_MESSAGE_VALVE}: every request meets it before any transaction, dialog or
 * listener, and after JAIN-SIP has taken the request's top Via as where its channel sends (docs/softphone.md, "Bounds").
 *
 * <ul>
 *   <li>Every request's top Via is made to name where the request came from: {@code received} the source IP,
 *       {@code rport} the source port, no {@code maddr} (issue 12's third review, findings 1 and 2). JAIN-SIP routes
 *       answers by them; a peer-written {@code received} or {@code maddr} would send them to another address (over
 *       UDP) or onto another connection (over TCP and TLS: the hop's key names a cached channel).</li>
 *   <li>Over TCP and TLS, a request whose top Via names another transport than the connection's is dropped, and the
 *       connection closed if the phone accepted it (never one the phone opened, such as its registrar's). A peer on a connection knows which transport it uses; a Via that says
 *       otherwise (UDP on a TCP connection) would turn the channel's sends into datagrams, or connections, to wherever
 *       the Via says. Nothing is answered.</li>
 *   <li>Over UDP, the top Via of a request whose Via names another transport is rewritten to UDP, so its answers
 *       (stateless or in a transaction) go back as datagrams to its source, never over a connection the phone would
 *       open to a host a datagram named.</li>
 * </ul>
 * Responses pass. Instantiated by JAIN-SIP by name; thread-safe.
 */
public final class ViaTransportValve implements SIPMessageValve {
    private static final Logger LOG = LoggerFactory.getLogger(ViaTransportValve.class);
    private volatile LogBudget lines = new LogBudget(Clock.systemUTC(), 1);

    public ViaTransportValve() {
        // instantiated by JAIN-SIP
    }

    @Override
    public boolean processRequest(SIPRequest request, MessageChannel channel) {
        Via via = request.getTopmostVia();
        if (via == null) {
            return false; // JAIN-SIP refuses such a request before this; nothing to answer to
        }
        if (!answerable(request)) {
            LogBudget.Take line = lines.take();
            if (line.log()) {
                LOG.info("dropped a request whose Via has an rport that is not a port number (it cannot be answered){}",
                        line.leftOut().isPresent() ? " (and " + line.leftOut().getAsLong()
                                + " more such since the last line)" : "");
            }
            return false;
        }
        // JAIN-SIP 1.3.0-91 reads "SIP/7.0" in a request line as SIP/2.0 and would answer it (RFC 4475 badvers got a
        // 200 once its answer reached the sender); the Via keeps what was sent. A version we do not speak is dropped,
        // never answered as if we did.
        var sent = via.getSentProtocol();
        String version = sent == null ? null : sent.getProtocolName() + "/" + sent.getProtocolVersion();
        if (version == null || !version.equalsIgnoreCase("SIP/2.0")) {
            LogBudget.Take line = lines.take();
            if (line.log()) {
                LOG.info("dropped a request in {} (only SIP/2.0 is spoken){}",
                        UntrustedText.forTerminal(String.valueOf(version), 20), line.leftOut().isPresent()
                                ? " (and " + line.leftOut().getAsLong() + " more such since the last line)" : "");
            }
            return false;
        }
        String sentOver = via.getTransport() == null ? "" : via.getTransport();
        if (channel.isReliable()) {
            if (!(channel instanceof ConnectionBoundProcessors.BoundChannel bound)) {
                return false; // every TCP and TLS channel is one of ConnectionBoundProcessors'
            }
            InetSocketAddress remote = bound.remote();
            if (remote == null) {
                return false; // its connection is closed: nothing can be answered
            }
            if (!channel.getTransport().equalsIgnoreCase(sentOver)) {
                if (bound.accepted()) {
                    channel.close();
                }
                // a connection the phone opened (its registrar's) is never closed for what a request on it says
                LogBudget.Take line = lines.take();
                if (line.log()) {
                    LOG.info("{} a {} request from {}: its Via says {}{}", bound.accepted() ? "closed the connection of"
                                    : "dropped", channel.getTransport(), remote,
                            UntrustedText.forTerminal(sentOver, 20), line.leftOut().isPresent()
                                    ? " (and " + line.leftOut().getAsLong() + " more such since the last line)" : "");
                }
                return false;
            }
            return answerTo(via, remote);
        }
        if (!ListeningPoint.UDP.equalsIgnoreCase(sentOver)) {
            try {
                via.setTransport(ListeningPoint.UDP);
            } catch (java.text.ParseException e) {
                return false; // cannot happen for "UDP"; then the request goes unanswered
            }
        }
        InetAddress source = channel.getPeerPacketSourceAddress();
        int port = channel.getPeerPacketSourcePort();
        if (source == null || port <= 0) {
            return false;
        }
        return answerTo(via, new InetSocketAddress(source, port));
    }

    /**
     * Whether JAIN-SIP can answer {@code request} at all: an answer copies every Via, and JAIN-SIP 1.3.0-91 keeps a
     * Via's {@code rport} as the text it was sent and reads it as a number only when it copies the Via
     * ({@code Via.clone}), so a Via with {@code rport=abc} (or beyond an int) made every answer to its request throw a
     * {@code NumberFormatException}: the phone's own stateless answers and JAIN-SIP's alike (found by
     * {@code SipMessageFuzzTest}). Such a request is dropped unanswered, as RFC 3581 allows no other rport.
     */
    static boolean answerable(SIPRequest request) {
        var vias = request.getViaHeaders();
        if (vias == null || vias.isEmpty()) {
            return false;
        }
        for (Via v : vias) {
            try {
                v.getRPort();
            } catch (NumberFormatException e) {
                return false;
            }
        }
        return true;
    }

    /**
     * Makes {@code via} say that answers go to {@code source}, the address the request came from: {@code received}
     * its IP, {@code rport} its port, no {@code maddr}. JAIN-SIP routes every answer (stateless or in a transaction) by
     * these, and keeps a {@code received} the peer wrote itself when the Via's host is the source's IP.
     */
    static boolean answerTo(Via via, InetSocketAddress source) {
        try {
            via.removeParameter(Via.MADDR);
            via.setParameter(Via.RECEIVED, source.getAddress().getHostAddress());
            via.setParameter(Via.RPORT, Integer.toString(source.getPort()));
            return true;
        } catch (java.text.ParseException | RuntimeException e) {
            return false; // cannot happen for an address and a number; then the request goes unanswered
        }
    }

    @Override
    public boolean processResponse(Response response, MessageChannel channel) {
        return true;
    }

    @Override
    public void init(SipStack stack) {
        if (stack instanceof SipStackImpl s) {
            Clock clock = AttestedNetworkLayer.clockOf(s.getStackName());
            if (clock != null) {
                lines = new LogBudget(clock, 1);
            }
        }
    }

    @Override
    public void destroy() {
        // nothing held
    }
}
