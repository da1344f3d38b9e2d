package io.tpmphone.softphone.logging;

import java.nio.charset.Charset;
import java.util.logging.Level;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Run by {@link SoftphoneLoggingTest} in a JVM of its own, as the agent runs the softphone: logs one decision-like
 * line through SLF4J, and reports on stdout the default charset and what java.util.logging would let through.
 */
public final class LoggingProbe {
    private static final Logger LOG = LoggerFactory.getLogger(LoggingProbe.class);

    private LoggingProbe() {
    }

    public static void main(String[] args) {
        LOG.warn("decision — peer level FAILED → REJECT");
        System.out.println("defaultCharset=" + Charset.defaultCharset().name());
        for (String name : args) {
            System.out.println("julWarning " + name + "="
                    + java.util.logging.Logger.getLogger(name).isLoggable(Level.WARNING));
        }
    }
}
