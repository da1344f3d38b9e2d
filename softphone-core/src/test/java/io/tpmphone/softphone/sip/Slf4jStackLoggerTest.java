package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's log lines (issue 12's second review, finding 5): a failed inbound TLS handshake was an ERROR with a full
 * stack trace (some 20 lines), failed sends quoted whole SIP messages, and nothing bounded how many lines peers could
 * cause. Now: one line, peer text escaped and cut short, a budget a second with a count of what was left out.
 */
class Slf4jStackLoggerTest {
    private final Logger sip = (Logger) LoggerFactory.getLogger("gov.nist.javax.sip");
    private final ListAppender<ILoggingEvent> lines = new ListAppender<>();
    private final ManualClock clock = new ManualClock();
    private Level before;

    @BeforeEach
    void capture() {
        before = sip.getLevel();
        sip.setLevel(Level.INFO);
        lines.start();
        sip.addAppender(lines);
    }

    @AfterEach
    void release() {
        sip.detachAppender(lines);
        sip.setLevel(before);
    }

    @Test
    @Timeout(10)
    void anErrorWithAnException_isOneEscapedLine_withoutAStackTrace() {
        Slf4jStackLogger log = new Slf4jStackLogger(new LogBudget(clock, 10));
        String painted = "Problem connecting 192.0.2.1 5060 for message INVITE sip:x SIP/2.0\r\nFrom: \u001b[31mred"
                + "\u202e" + "x".repeat(9_000);
        log.logError(painted, new javax.net.ssl.SSLHandshakeException("attested TLS handshake failed: \u001b[2J"));
        assertEquals(1, lines.list.size(), "lines logged: " + lines.list);
        ILoggingEvent e = lines.list.get(0);
        assertEquals(Level.ERROR, e.getLevel());
        assertNull(e.getThrowableProxy(), "no stack trace at ERROR");
        String m = e.getFormattedMessage();
        assertFalse(m.chars().anyMatch(c -> c < 0x20 || c == 0x7f || c == 0x202e), "no control characters: " + m);
        assertTrue(m.contains("\\x0d\\x0a") && m.contains("\\x1b[31m") && m.contains("SSLHandshakeException"), m);
        assertTrue(m.length() < 2 * Slf4jStackLogger.LINE_CHARS, "the 9,000 characters of the message are cut: "
                + m.length() + " characters");
    }

    @Test
    @Timeout(10)
    void linesBeyondTheBudget_areLeftOut_andCountedOnTheNextSecondsFirstLine() {
        Slf4jStackLogger log = new Slf4jStackLogger(new LogBudget(clock, 10));
        for (int i = 0; i < 1_000; i++) {
            log.logError("A problem occured while Accepting connection", new java.net.SocketException("reset " + i));
            log.logWarning("Couldn't connect to peerAddress " + i);
        }
        assertEquals(10, lines.list.size(), "lines in the first second: " + lines.list.size());
        clock.advance(Duration.ofSeconds(1));
        log.logException(new java.io.IOException("later"));
        List<String> next = lines.list.subList(10, lines.list.size()).stream()
                .map(ILoggingEvent::getFormattedMessage).toList();
        assertEquals(List.of("1990 lines of JAIN-SIP's log were left out (at most 10 a second)",
                "JAIN-SIP: java.io.IOException: later"), next);
    }

    @Test
    @Timeout(10)
    void aFailedInboundHandshake_isLeftToThePhonesOwnLine() {
        Slf4jStackLogger log = new Slf4jStackLogger(new LogBudget(clock, 10));
        log.logError(Slf4jStackLogger.FAILED_INBOUND_HANDSHAKE, new javax.net.ssl.SSLHandshakeException(
                "attested TLS handshake with /127.0.0.1:40000 failed: protocol_version(70)"));
        assertEquals(List.of(), lines.list.stream().map(ILoggingEvent::getFormattedMessage).toList(),
                "nothing at INFO and above: HandshakeFailures logs the one line");
        sip.setLevel(Level.DEBUG);
        log.logError(Slf4jStackLogger.FAILED_INBOUND_HANDSHAKE, new javax.net.ssl.SSLHandshakeException("again"));
        assertEquals(1, lines.list.size(), "at DEBUG: " + lines.list);
        assertEquals(Level.DEBUG, lines.list.get(0).getLevel());
    }

    @Test
    @Timeout(10)
    void debugLines_areNotBudgeted_andStackTracesAppearOnlyThere() {
        sip.setLevel(Level.DEBUG);
        Slf4jStackLogger log = new Slf4jStackLogger(new LogBudget(clock, 1));
        log.logError("failed", new java.io.IOException("boom"));
        log.logError("failed again", new java.io.IOException("boom"));
        List<ILoggingEvent> traced = lines.list.stream().filter(e -> e.getThrowableProxy() != null).toList();
        assertEquals(2, traced.size(), "both stack traces at DEBUG: " + lines.list);
        assertTrue(traced.stream().allMatch(e -> e.getLevel() == Level.DEBUG), "traces only at DEBUG");
        assertEquals(1, lines.list.stream().filter(e -> e.getLevel() == Level.ERROR).count(), "one ERROR line a"
                + " second here");
    }
}
