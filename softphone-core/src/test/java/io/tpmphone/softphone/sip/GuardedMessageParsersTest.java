package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import gov.nist.javax.sip.SipStackImpl;
import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.parser.MessageParser;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.util.Properties;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link GuardedMessageParsers}, as the phone's stack makes it: a Via ending in a backslash (on which JAIN-SIP's Via
 * parser loops for good, found by {@code SipMessageFuzzTest#datagram}) is refused at once, everything else parses as
 * JAIN-SIP parses it.
 */
@Timeout(10)
class GuardedMessageParsersTest {
    private static SipStackImpl stack;
    private static MessageParser parser;

    @BeforeAll
    static void stack() throws Exception {
        Properties p = JainSipStack.properties("guarded-parsers-test");
        p.keySet().removeIf(k -> k.toString().endsWith("NETWORK_LAYER") || k.toString().endsWith("PROCESSOR_FACTORY")
                || k.toString().endsWith("MESSAGE_VALVE"));
        stack = new SipStackImpl(p);
        parser = stack.getMessageParserFactory().createMessageParser(stack);
        assertTrue(stack.getMessageParserFactory() instanceof GuardedMessageParsers, "the phone's stack parses with it");
    }

    @AfterAll
    static void stop() {
        stack.stop();
    }

    private static byte[] options(String... extraHeaders) {
        StringBuilder m = new StringBuilder("OPTIONS sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n");
        for (String h : extraHeaders) {
            m.append(h).append("\r\n");
        }
        m.append("Max-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\n"
                + "Call-ID: guard-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        return m.toString().getBytes(StandardCharsets.ISO_8859_1);
    }

    @Test
    void aViaWhoseCommentEndsInABackslash_isRefusedAtOnce() {
        for (String via : new String[] {"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK2 (a comment\\",
                "v: SIP/2.0/TCP h.example.com (x\\  ", "VIA  : SIP/2.0/UDP h.example.com\r\n (folded\\",
                "Via: SIP/2.0/UDP a.example.com (one, SIP/2.0/UDP b.example.com\\"}) {
            ParseException e = assertThrows(ParseException.class, () -> parser.parseSIPMessage(options(via), true,
                    false, null), via);
            assertTrue(e.getMessage().contains("Via header ends in a backslash"), e.getMessage());
        }
    }

    @Test
    void otherMessages_parseAsJainSipParsesThem() throws Exception {
        SIPRequest r = (SIPRequest) parser.parseSIPMessage(options(
                "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK3 (a \\) comment)", "Subject: ends in a backslash \\"),
                true, false, null);
        assertEquals(2, r.getViaHeaders().size());
        assertEquals("ends in a backslash \\", r.getHeader("Subject").toString().substring(9).trim());
    }

    @Test
    void aHeaderJainSipsParserThrowsOn_isARefusal_notARuntimeException() {
        // RSeqParser: Long.parseLong("") (found by SipMessageFuzzTest#datagram, crash-07ac40d1…)
        ParseException e = assertThrows(ParseException.class, () -> parser.parseSIPMessage(options("RSeq:"), true,
                false, null));
        assertTrue(e.getCause() instanceof NumberFormatException, "the cause is kept: " + e.getCause());
    }

    @Test
    void aContentLengthBeyondTheLargestMessage_isARefusal() throws Exception {
        // PipelinedMsgParser threw RuntimeException("Max content size Exceeded!") out of the connection's thread
        // (found by SipMessageFuzzTest#stream)
        String big = new String(options(), StandardCharsets.ISO_8859_1).replace("Content-Length: 0",
                "Content-Length: " + (stack.getMaxMessageSize() + 1));
        ParseException e = assertThrows(ParseException.class, () -> parser.parseSIPMessage(
                big.getBytes(StandardCharsets.ISO_8859_1), false, false, null));
        assertTrue(e.getMessage().contains("exceeds the largest message"), e.getMessage());
        String fits = new String(options(), StandardCharsets.ISO_8859_1).replace("Content-Length: 0",
                "Content-Length: " + stack.getMaxMessageSize());
        assertEquals(stack.getMaxMessageSize(), parser.parseSIPMessage(fits.getBytes(StandardCharsets.ISO_8859_1),
                false, false, null).getContentLength().getContentLength());
    }

    @Test
    void aContentTypeWithAnUnknownCharset_isRefused_forJainSipCouldNotEncodeItAgain() throws Exception {
        ParseException e = assertThrows(ParseException.class, () -> parser.parseSIPMessage(options(
                "Content-Type: text/plain;charset=7a9cbec02ceef655"), true, false, null));
        assertTrue(e.getMessage().contains("charset"), e.getMessage());
        assertThrows(ParseException.class, () -> parser.parseSIPMessage(options(
                "Content-Type: text/plain;charset=\"x-no-such\""), true, false, null), "a quoted unknown charset");
        // a known one parses and encodes again
        gov.nist.javax.sip.message.SIPMessage ok = parser.parseSIPMessage(options(
                "Content-Type: text/plain;charset=UTF-8"), true, false, null);
        assertTrue(ok.encode().contains("charset=UTF-8"), ok::encode);
    }
}
