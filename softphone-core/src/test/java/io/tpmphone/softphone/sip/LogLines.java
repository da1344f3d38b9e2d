package io.tpmphone.softphone.sip;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.util.List;

/**
 * Lines a test captures while the phone's threads go on logging. Logback's {@link ListAppender} appends under the
 * appender's lock ({@code AppenderBase.doAppend} is synchronized) into a plain {@code ArrayList}: reading {@code list}
 * from the test thread meanwhile may miss lines or throw {@code ConcurrentModificationException}. Read through here.
 */
final class LogLines extends ListAppender<ILoggingEvent> {
    /** The lines appended so far, copied under the lock the appending threads take. */
    synchronized List<ILoggingEvent> events() {
        return List.copyOf(list);
    }

    /** {@link #events()}' formatted messages. */
    List<String> messages() {
        return events().stream().map(ILoggingEvent::getFormattedMessage).toList();
    }
}
