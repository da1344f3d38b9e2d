package io.tpmphone.softphone.sip;

import gov.nist.core.ServerLogger;
import gov.nist.javax.sip.message.SIPMessage;
import java.util.Properties;
import javax.sip.SipStack;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's message log through SLF4J, at TRACE of {@code gov.nist.javax.sip.messages} (messages carry SDES keys in
 * their SDP, so they are never logged at a level that is on by default). Instantiated by JAIN-SIP by name.
 */
public final class Slf4jServerLogger implements ServerLogger {
    private static final Logger LOG = LoggerFactory.getLogger("gov.nist.javax.sip.messages");

    @Override
    public void closeLogFile() {
        // nothing to close
    }

    @Override
    public void logMessage(SIPMessage message, String from, String to, boolean sender, long time) {
        trace(message, from, to, sender);
    }

    @Override
    public void logMessage(SIPMessage message, String from, String to, String status, boolean sender, long time) {
        trace(message, from, to, sender);
    }

    @Override
    public void logMessage(SIPMessage message, String from, String to, String status, boolean sender) {
        trace(message, from, to, sender);
    }

    private static void trace(SIPMessage message, String from, String to, boolean sender) {
        if (LOG.isTraceEnabled()) {
            LOG.trace("{} {} -> {}: {}", sender ? "sent" : "received", from, to, message.getFirstLine().trim());
        }
    }

    @Override
    public void logException(Exception ex) {
        LOG.debug("JAIN-SIP message log exception", ex);
    }

    @Override
    public void setStackProperties(Properties stackProperties) {
        // configured through SLF4J
    }

    @Override
    public void setSipStack(SipStack sipStack) {
        // not needed
    }
}
