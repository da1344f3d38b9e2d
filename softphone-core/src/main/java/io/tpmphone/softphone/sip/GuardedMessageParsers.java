package io.tpmphone.softphone.sip;

import gov.nist.javax.sip.message.SIPMessage;
import gov.nist.javax.sip.parser.MessageParser;
import gov.nist.javax.sip.parser.MessageParserFactory;
import gov.nist.javax.sip.parser.ParseExceptionListener;
import gov.nist.javax.sip.parser.StringMsgParserFactory;
import gov.nist.javax.sip.stack.SIPTransactionStack;
import java.text.ParseException;
import javax.sip.header.ContentLengthHeader;

/**
 * JAIN-SIP's {@code gov.nist.javax.sip.MESSAGE_PARSER_FACTORY}: its own message parser, with the messages it cannot
 * parse safely refused first, and its failures made refusals: a {@link ParseException}, which every channel handles (a
 * {@code 400} over UDP, the message dropped over TCP and TLS).
 *
 * <p>Refused: a message with a Via header whose text ends in a backslash. JAIN-SIP 1.3.0-91's {@code ViaParser} reads
 * a comment after a Via's parameters ({@code "(…"}) until {@code ')'} or the end of the line, and takes a backslash as
 * escaping the next character: one just before the end of the line escapes the line end itself, and the loop then reads
 * past the end forever, appending to a string until the heap is gone. One such datagram held one of the stack's 8 UDP
 * threads for good (found by {@code SipMessageFuzzTest#datagram}, a per-input timeout); over TCP and TLS it held the
 * connection's parser thread. A backslash cannot end a Via: RFC 3261's quoted-pair escapes neither CR nor LF.
 *
 * <p>And a runtime exception from JAIN-SIP's parser is a {@link ParseException}, as its contract says: an empty
 * {@code RSeq} made {@code RSeqParser} throw {@code NumberFormatException} (found by {@code SipMessageFuzzTest#datagram});
 * over UDP the stack logged it, over TCP and TLS it ended the connection's parser thread with a stack trace, as any
 * other header parser's runtime exception would.
 *
 * <p>And a message whose Content-Length exceeds the stack's largest message is refused: JAIN-SIP's pipelined parser
 * (TCP and TLS) threw a {@code RuntimeException} for it out of its thread, which ended the connection with a stack
 * trace on stderr (found by {@code SipMessageFuzzTest#stream}).
 *
 * <p>And a message whose Content-Type names a charset the JVM does not know is refused: JAIN-SIP parses it, but its
 * {@code SIPMessage.encode()} then throws {@code RuntimeException("Unexpected internal error")} wherever the message
 * is encoded again (found by {@code SipMessageFuzzTest#datagram} in a 10-minute run).
 *
 * <p>The header lines are found as JAIN-SIP's {@code StringMsgParser} finds them: lines end at CR, LF or CRLF, end
 * whitespace is trimmed, a line starting with a space or a tab continues the header before it, an empty line ends the
 * headers. Instantiated by JAIN-SIP by name; thread-safe (the parser it wraps is stateless).
 */
public final class GuardedMessageParsers implements MessageParserFactory {
    private final StringMsgParserFactory jainSip = new StringMsgParserFactory();

    public GuardedMessageParsers() {
        // instantiated by JAIN-SIP
    }

    @Override
    public MessageParser createMessageParser(SIPTransactionStack stack) {
        MessageParser parser = jainSip.createMessageParser(stack);
        int maxMessageSize = stack.getMaxMessageSize();
        return (byte[] message, boolean readBody, boolean strict, ParseExceptionListener listener) -> {
            refuseWhatJainSipCannotParse(message);
            SIPMessage parsed;
            try {
                parsed = parser.parseSIPMessage(message, readBody, strict, listener);
            } catch (RuntimeException e) {
                ParseException refused = new ParseException("JAIN-SIP's parser failed on the message ("
                        + e.getClass().getSimpleName() + "); refused as malformed", 0);
                refused.initCause(e);
                throw refused;
            }
            ContentLengthHeader length = parsed == null ? null : parsed.getContentLength();
            if (length != null && maxMessageSize > 0 && length.getContentLength() > maxMessageSize) {
                throw new ParseException("Content-Length " + length.getContentLength() + " exceeds the largest"
                        + " message the phone takes (" + maxMessageSize + " bytes)", 0);
            }
            javax.sip.header.ContentTypeHeader type = parsed == null ? null
                    : (javax.sip.header.ContentTypeHeader) parsed.getHeader(javax.sip.header.ContentTypeHeader.NAME);
            String charset = type == null ? null : type.getParameter("charset");
            if (charset != null && !knownCharset(charset)) {
                throw new ParseException("the Content-Type names a charset this phone does not know; JAIN-SIP could"
                        + " not encode the message again", 0);
            }
            return parsed;
        };
    }

    /** Whether the JVM knows {@code name} (JAIN-SIP encodes a message's body in its Content-Type's charset). */
    static boolean knownCharset(String name) {
        try {
            return java.nio.charset.Charset.isSupported(name);
        } catch (java.nio.charset.IllegalCharsetNameException e) {
            return false;
        }
    }

    /** Throws for a message JAIN-SIP's parser would not return from (see the class documentation). */
    static void refuseWhatJainSipCannotParse(byte[] message) throws ParseException {
        if (message == null) {
            return;
        }
        int i = 0;
        while (i < message.length && (message[i] & 0xff) < 0x20) {
            i++; // JAIN-SIP skips leading control characters
        }
        boolean firstLine = true;
        int headerStart = -1;
        int headerEnd = -1; // the end of the header's last line, trimmed
        while (i < message.length) {
            int start = i;
            while (i < message.length && message[i] != '\r' && message[i] != '\n') {
                i++;
            }
            int end = i;
            while (end > start && (message[end - 1] & 0xff) <= 0x20) {
                end--; // trimEndOfLine
            }
            if (i < message.length && message[i] == '\r' && i + 1 < message.length && message[i + 1] == '\n') {
                i++;
            }
            i++;
            if (end == start) {
                break; // the end of the headers
            }
            if (firstLine) {
                firstLine = false;
            } else if (message[start] == ' ' || message[start] == '\t') {
                headerEnd = end; // a continuation of the header before it
            } else {
                check(message, headerStart, headerEnd);
                headerStart = start;
                headerEnd = end;
            }
        }
        check(message, headerStart, headerEnd);
    }

    private static void check(byte[] message, int start, int end) throws ParseException {
        if (start < 0 || message[end - 1] != '\\' || !isVia(message, start, end)) {
            return;
        }
        throw new ParseException("a Via header ends in a backslash, which escapes nothing (RFC 3261 §25.1) and on"
                + " which JAIN-SIP's Via parser would never return", start);
    }

    /** Whether the header at {@code start} is a Via ({@code Via} or its compact form {@code v}). */
    private static boolean isVia(byte[] message, int start, int end) {
        int colon = start;
        while (colon < end && message[colon] != ':') {
            colon++;
        }
        String name = new String(message, start, colon - start, java.nio.charset.StandardCharsets.ISO_8859_1).trim();
        return name.equalsIgnoreCase("via") || name.equalsIgnoreCase("v");
    }
}
