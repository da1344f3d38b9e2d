package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.SipStackImpl;
import gov.nist.javax.sip.header.Via;
import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.stack.MessageChannel;
import gov.nist.javax.sip.stack.SIPMessageValve;
import io.tpmphone.attestation.UntrustedText;
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
 *   <li>Over TCP and TLS, a request whose top Via names another transport than the connection's ends the connection:
 *       it is closed and the request dropped. A peer on a connection knows which transport it uses; a Via that says
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
        String sentOver = via == null || via.getTransport() == null ? "" : via.getTransport();
        if (channel.isReliable()) {
            if (channel.getTransport().equalsIgnoreCase(sentOver)) {
                return true;
            }
            channel.close();
            LogBudget.Take line = lines.take();
            if (line.log()) {
                LOG.info("closed a {} connection from {}: its request's Via says {}{}", channel.getTransport(),
                        channel.getPeerAddress(), UntrustedText.forTerminal(sentOver, 20), line.leftOut().isPresent()
                                ? " (and " + line.leftOut().getAsLong() + " more such since the last line)" : "");
            }
            return false;
        }
        if (via != null && !ListeningPoint.UDP.equalsIgnoreCase(sentOver)) {
            try {
                via.setTransport(ListeningPoint.UDP);
            } catch (java.text.ParseException e) {
                return false; // cannot happen for "UDP"; then the request goes unanswered
            }
        }
        return true;
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
