package io.tpmphone.softphone.sip;

import gov.nist.core.StackLogger;
import io.tpmphone.attestation.UntrustedText;
import java.time.Clock;
import java.util.Objects;
import java.util.Properties;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.event.Level;

/**
 * JAIN-SIP's stack log through SLF4J (its default writer needs log4j 1.x, which we do not ship), logger
 * {@code gov.nist.javax.sip}. Peers decide much of what JAIN-SIP logs (every failed TLS handshake is an error, a
 * failed send quotes the whole SIP message), so:
 * <ul>
 *   <li>an error, warning or exception is one line: its message and the exception's one-line summary, never a stack
 *       trace (stack traces only at DEBUG);</li>
 *   <li>every line renders what peers sent with {@link UntrustedText} (escaped, on one line), cut to
 *       {@value #LINE_CHARS} characters at INFO and above, 8,000 at DEBUG;</li>
 *   <li>lines at INFO and above are budgeted: at most {@value #LINES_PER_SECOND} a second, and the first line of a
 *       later second says how many were left out. DEBUG and TRACE, off by default, are for debugging and are not.</li>
 * </ul>
 * JAIN-SIP's "info" goes to DEBUG, and so does its error about an inbound TLS handshake that failed: the phone logs
 * one line of its own for that, naming the peer and the reason ({@link HandshakeFailures}). Instantiated by JAIN-SIP by
 * name (one logger serves every stack of the JVM, so the
 * budget is the JVM's). Thread-safe.
 */
public final class Slf4jStackLogger implements StackLogger {
    private static final Logger LOG = LoggerFactory.getLogger("gov.nist.javax.sip");
    /** Lines at INFO and above a second, all stacks together. */
    static final int LINES_PER_SECOND = 10;
    /** What one line at INFO and above shows of a message. */
    static final int LINE_CHARS = 500;
    private static final LogBudget SHARED = new LogBudget(Clock.systemUTC(), LINES_PER_SECOND);
    /** How JAIN-SIP 1.3.0-91's TLS channel begins its error line about an inbound handshake that failed. */
    static final String FAILED_INBOUND_HANDSHAKE = "A problem occured while Accepting connection";
    private final LogBudget budget;
    private volatile boolean enabled = true;

    public Slf4jStackLogger() {
        this(SHARED);
    }

    /** A logger with a budget of its own (tests). */
    Slf4jStackLogger(LogBudget budget) {
        this.budget = Objects.requireNonNull(budget, "budget");
    }

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
        line(Level.WARN, "JAIN-SIP: " + line(String.valueOf(ex)));
        if (LOG.isDebugEnabled()) {
            LOG.debug("JAIN-SIP exception", ex);
        }
    }

    @Override
    public void logDebug(String message) {
        LOG.debug("{}", debug(message));
    }

    @Override
    public void logDebug(String message, Exception ex) {
        LOG.debug("{}", debug(message), ex);
    }

    @Override
    public void logTrace(String message) {
        LOG.trace("{}", debug(message));
    }

    @Override
    public void logFatalError(String message) {
        line(Level.ERROR, line(message));
    }

    @Override
    public void logError(String message) {
        line(Level.ERROR, line(message));
    }

    @Override
    public void logError(String message, Exception ex) {
        if (ex instanceof javax.net.ssl.SSLHandshakeException && message != null
                && message.startsWith(FAILED_INBOUND_HANDSHAKE)) {
            // the phone logs its own line for it, naming the peer and the reason in words (HandshakeFailures)
            LOG.debug("JAIN-SIP: {}: {}", message, debug(ex.toString()));
            return;
        }
        line(Level.ERROR, line(message) + (ex == null ? "" : ": " + line(ex.toString())));
        if (ex != null && LOG.isDebugEnabled()) {
            LOG.debug("JAIN-SIP: " + debug(message), ex);
        }
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
    public void logWarning(String message) {
        line(Level.WARN, line(message));
    }

    @Override
    public void logInfo(String message) {
        LOG.debug("{}", debug(message));
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

    /** One budgeted line at {@code level}, if that level is on. */
    private void line(Level level, String text) {
        if (!LOG.isEnabledForLevel(level)) {
            return;
        }
        LogBudget.Take take = budget.take();
        if (take.leftOut().isPresent()) {
            LOG.warn("{} lines of JAIN-SIP's log were left out (at most {} a second)", take.leftOut().getAsLong(),
                    LINES_PER_SECOND);
        }
        if (take.log()) {
            LOG.atLevel(level).log(text);
        }
    }

    /** A message for a line at INFO and above: rendered, never obeyed, on one line, cut short. */
    private static String line(String message) {
        return UntrustedText.forTerminal(String.valueOf(message), LINE_CHARS);
    }

    /** A message at DEBUG or TRACE (whole SIP messages): rendered, never obeyed, on one line. */
    private static String debug(String message) {
        return UntrustedText.forTerminal(String.valueOf(message), 8000);
    }
}
