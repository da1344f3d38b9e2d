package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import gov.nist.javax.sip.SipStackImpl;
import gov.nist.javax.sip.header.CSeq;
import gov.nist.javax.sip.header.CallID;
import gov.nist.javax.sip.header.ContentLength;
import gov.nist.javax.sip.header.From;
import gov.nist.javax.sip.header.RequestLine;
import gov.nist.javax.sip.header.StatusLine;
import gov.nist.javax.sip.header.To;
import gov.nist.javax.sip.header.Via;
import gov.nist.javax.sip.message.SIPMessage;
import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.message.SIPResponse;
import gov.nist.javax.sip.parser.MessageParser;
import gov.nist.javax.sip.parser.ParseExceptionListener;
import gov.nist.javax.sip.parser.Pipeline;
import gov.nist.javax.sip.parser.PipelinedMsgParser;
import gov.nist.javax.sip.parser.SIPMessageListener;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.SplittableRandom;
import javax.sip.message.Response;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of SIP messages as JAIN-SIP parses them for the phone, with the message parser the phone's
 * stack configures ({@link JainSipStack#properties}: JAIN-SIP's, behind {@link GuardedMessageParsers}):
 * <ul>
 *   <li>{@code datagram}: one message as the UDP channel parses a datagram (body read, lenient);</li>
 *   <li>{@code stream}: a TCP/TLS byte stream as the connection's channel feeds it to JAIN-SIP's
 *       {@link PipelinedMsgParser}, split into reads where the input's first byte says (0: one read; n: reads of
 *       1..n bytes), then the CRLF the channel writes at end of stream.</li>
 * </ul>
 * Each message that comes out goes through what the phone and the stack do next: the valve's Via rewrite, encoding,
 * and a stateless answer to a request. Header errors are handled as the channels handle them (a bad From, To, CSeq,
 * Via, Call-ID, Content-Length or first line refuses the message; any other bad header is kept unparsed). Contract:
 * messages or {@link ParseException}; any other exception or error is a finding, and so is a parser thread that
 * would die. Regression inputs under {@code SipMessageFuzzTestInputs/}, seeded with the 49 RFC 4475 torture messages;
 * fuzz with {@code ./tpmphone fuzz sip-datagram} or {@code sip-stream}.
 */
@Timeout(10)
class SipMessageFuzzTest {
    private static final InetSocketAddress SOURCE = new InetSocketAddress(InetAddress.getLoopbackAddress(), 5070);
    private static SipStackImpl stack;

    @BeforeAll
    static void stack() throws Exception {
        Properties p = JainSipStack.properties("sip-fuzz");
        // The phone's parser settings only: no network layer, processors or valve are needed to parse.
        p.keySet().removeIf(k -> k.toString().endsWith("NETWORK_LAYER") || k.toString().endsWith("PROCESSOR_FACTORY")
                || k.toString().endsWith("MESSAGE_VALVE"));
        stack = new SipStackImpl(p);
    }

    @AfterAll
    static void stop() {
        stack.stop();
    }

    /** The harness reaches the phone's code: an RFC 4475 INVITE parses, both ways, into one request with a body. */
    @Test
    void theTortureInvite_parsesFromADatagramAndFromAStreamSplitInto1ByteReads() throws Exception {
        byte[] invite;
        try (InputStream in = SipMessageFuzzTest.class.getResourceAsStream("/rfc4475/inv2543.dat")) {
            invite = in.readAllBytes();
        }
        SIPMessage m = parser().parseSIPMessage(invite, true, false, new ChannelRules());
        assertTrue(m instanceof SIPRequest r && r.getMethod().equals("INVITE"), "parsed: " + m);
        byte[] stream = new byte[invite.length + 1];
        stream[0] = 1;
        System.arraycopy(invite, 0, stream, 1, invite.length);
        List<SIPMessage> out = pipelined(stream);
        assertEquals(1, out.size(), "messages from the stream: " + out);
        assertEquals("INVITE", ((SIPRequest) out.get(0)).getMethod());
    }

    @FuzzTest
    void datagram(byte[] data) throws Exception {
        SIPMessage m;
        try {
            m = parser().parseSIPMessage(data, true, false, new ChannelRules());
        } catch (ParseException refused) {
            return;
        }
        if (m != null) {
            afterParsing(m);
        }
    }

    @FuzzTest
    void stream(byte[] data) throws Exception {
        for (SIPMessage m : pipelined(data)) {
            afterParsing(m);
        }
    }

    private static MessageParser parser() {
        return stack.getMessageParserFactory().createMessageParser(stack);
    }

    /**
     * Runs JAIN-SIP's pipelined parser over {@code data} (after its first byte, the split) on this thread, as the
     * channel's parser thread runs it, and returns the messages it passed on. The bytes reach it as the connection's
     * channel passes them ({@code ConnectionOrientedMessageChannel.run}): through {@link SipStreamGuard} (as
     * {@link ConnectionBoundProcessors} reads every connection), one socket read at a time, then {@code "\r\n"} at the
     * end of the stream or {@code "\r\n\r\n"} after a read error. Throws what would end the parser's thread.
     */
    private static List<SIPMessage> pipelined(byte[] data) throws IOException {
        if (data.length == 0) {
            return List.of();
        }
        int max = data[0] & 0xff;
        SplittableRandom split = new SplittableRandom(max);
        List<byte[]> reads = new ArrayList<>();
        for (int at = 1; at < data.length; ) {
            int n = max == 0 ? data.length - at : Math.min(1 + split.nextInt(max), data.length - at);
            reads.add(Arrays.copyOfRange(data, at, at + n));
            at += n;
        }
        InputStream socket = SipStreamGuard.around(new InputStream() {
            private int i;
            private int at;

            @Override
            public int read() {
                throw new UnsupportedOperationException("the channel reads blocks");
            }

            @Override
            public int read(byte[] b, int off, int len) {
                if (i == reads.size()) {
                    return -1;
                }
                byte[] r = reads.get(i);
                int n = Math.min(len, r.length - at);
                System.arraycopy(r, at, b, off, n);
                at += n;
                if (at == r.length) {
                    i++;
                    at = 0;
                }
                return n;
            }
        });
        Pipeline pipe = new Pipeline(new ByteArrayInputStream(new byte[0]), -1, null);
        while (true) {
            byte[] msg = new byte[4096];
            int n;
            try {
                n = socket.read(msg, 0, msg.length);
            } catch (IOException closed) {
                pipe.write("\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                break;
            }
            if (n == -1) {
                pipe.write("\r\n".getBytes(StandardCharsets.US_ASCII));
                break;
            }
            pipe.write(msg, 0, n);
        }
        pipe.close();
        Collector collector = new Collector();
        new PipelinedMsgParser(stack, collector, pipe, stack.getMaxMessageSize()).run();
        return collector.messages;
    }

    /** What the valve, the stack and the phone do with a message that parsed. */
    private static void afterParsing(SIPMessage m) throws Exception {
        assertNotNull(m.encode()); // what the stack's message log writes
        if (m.getTopmostVia() == null || m.getCSeq() == null || m.getFrom() == null || m.getTo() == null
                || m.getCallId() == null) {
            return; // the channels drop these before anything else sees them
        }
        m.encodeAsBytes("TCP");
        if (m instanceof SIPRequest r) {
            if (r.getRequestLine() == null || !ViaTransportValve.answerable(r)) {
                return; // the valve drops it before any transaction or listener
            }
            Via via = r.getTopmostVia();
            ViaTransportValve.answerTo(via, SOURCE);
            SIPResponse answer = r.createResponse(Response.BAD_REQUEST);
            assertNotNull(answer.encodeAsBytes("UDP"));
            if (r.getContent() != null && r.getContentTypeHeader() != null
                    && "sdp".equalsIgnoreCase(r.getContentTypeHeader().getContentSubType())) {
                try {
                    Sdp.parse(new String(r.getRawContent(), StandardCharsets.UTF_8));
                } catch (IllegalArgumentException refused) {
                    assertNotNull(refused.getMessage());
                }
            }
        } else if (m instanceof SIPResponse r) {
            r.getStatusCode();
        }
    }

    /** The channels' rule for a header that does not parse (UDPMessageChannel and the connection channels alike). */
    static class ChannelRules implements ParseExceptionListener {
        @Override
        public void handleException(ParseException ex, SIPMessage message, Class hdrClass, String header,
                                    String raw) throws ParseException {
            if (hdrClass != null && (hdrClass.equals(From.class) || hdrClass.equals(To.class)
                    || hdrClass.equals(CSeq.class) || hdrClass.equals(Via.class) || hdrClass.equals(CallID.class)
                    || hdrClass.equals(ContentLength.class) || hdrClass.equals(RequestLine.class)
                    || hdrClass.equals(StatusLine.class))) {
                throw ex;
            }
            message.addUnparsed(header);
        }
    }

    /** The channel as its parser thread sees it: it takes messages and answers keep-alives. */
    private static final class Collector extends ChannelRules implements SIPMessageListener {
        final List<SIPMessage> messages = new ArrayList<>();

        @Override
        public void processMessage(SIPMessage message) {
            messages.add(message);
        }

        @Override
        public void sendSingleCLRF() {
            // a keep-alive answer: nothing to send here
        }
    }
}
