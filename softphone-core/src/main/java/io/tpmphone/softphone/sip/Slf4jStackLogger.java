package io.tpmphone.softphone.sip;

import io.tpmphone.attestation.UntrustedText;
import gov.nist.core.StackLogger;
import java.util.Properties;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's stack log through SLF4J (its default writer needs log4j 1.x, which we do not ship). Debug and trace go to
 * DEBUG/TRACE of logger {@code gov.nist.javax.sip}; stack traces only at DEBUG. Instantiated by JAIN-SIP by name.
 */
public final class Slf4jStackLogger implements StackLogger {
    private static final Logger LOG = LoggerFactory.getLogger("gov.nist.javax.sip");
    private volatile boolean enabled = true;

    @Override
    public void logStackTrace() {
        if (LOG.isDebugEnabled()) {
            LOG.debug("stack trace", new Throwable("stack trace"));
        }
    }

    @Override
    public void logStackTrace(int traceLevel) {
        logStackTrace();
    }

    @Override
    public int getLineCount() {
        return 0;
    }

    @Override
    public void logException(Throwable ex) {
        LOG.warn("JAIN-SIP: {}", safe(ex.toString()));
        LOG.debug("JAIN-SIP exception", ex);
    }

    @Override
    public void logDebug(String message) {
        LOG.debug("{}", safe(message));
    }

    @Override
    public void logDebug(String message, Exception ex) {
        LOG.debug("{}", safe(message), ex);
    }

    @Override
    public void logTrace(String message) {
        LOG.trace("{}", safe(message));
    }

    @Override
    public void logFatalError(String message) {
        LOG.error("{}", safe(message));
    }

    @Override
    public void logError(String message) {
        LOG.error("{}", safe(message));
    }

    @Override
    public boolean isLoggingEnabled() {
        return enabled;
    }

    @Override
    public boolean isLoggingEnabled(int logLevel) {
        if (!enabled) {
            return false;
        }
        if (logLevel >= TRACE_DEBUG) {
            return logLevel >= TRACE_TRACE ? LOG.isTraceEnabled() : LOG.isDebugEnabled();
        }
        if (logLevel >= TRACE_INFO) {
            return LOG.isInfoEnabled();
        }
        return logLevel >= TRACE_WARN ? LOG.isWarnEnabled() : LOG.isErrorEnabled();
    }

    @Override
    public void logError(String message, Exception ex) {
        LOG.error("{}", safe(message), ex);
    }

    @Override
    public void logWarning(String message) {
        LOG.warn("{}", safe(message));
    }

    @Override
    public void logInfo(String message) {
        LOG.debug("{}", safe(message));
    }

    @Override
    public void disableLogging() {
        enabled = false;
    }

    @Override
    public void enableLogging() {
        enabled = true;
    }

    @Override
    public void setBuildTimeStamp(String buildTimeStamp) {
        // not logged
    }

    @Override
    public void setStackProperties(Properties stackProperties) {
        // configured through SLF4J
    }

    @Override
    public String getLoggerName() {
        return LOG.getName();
    }

    /**
     * JAIN-SIP's messages quote what peers sent (whole SIP messages at DEBUG): rendered, never obeyed, on one line
     * each ({@link UntrustedText}).
     */
    private static String safe(String message) {
        return UntrustedText.forTerminal(message, 8000);
    }
}
