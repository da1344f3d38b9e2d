package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;

import gov.nist.javax.sip.message.SIPResponse;
import gov.nist.javax.sip.parser.StringMsgParser;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link OutgoingCalls#said}: what a caller is told of a final refusal — the reason phrase, the far end's
 * {@code Warning} and a proxy's {@code Reason} — so a proxy that could not reach the far end is named by what it said,
 * never just "not answered" (issue 14).
 */
@Timeout(10)
class FinalRefusalTextTest {
    private static SIPResponse response(String statusLine, String headers) throws Exception {
        String text = "SIP/2.0 " + statusLine + "\r\n"
                + "Via: SIP/2.0/TLS 127.0.0.1:5070;branch=z9hG4bK1\r\n"
                + "To: <sip:bob@example.test>;tag=2\r\nFrom: <sip:alice@example.test>;tag=1\r\n"
                + "Call-ID: said-1\r\nCSeq: 1 INVITE\r\n" + headers + "Content-Length: 0\r\n\r\n";
        return (SIPResponse) new StringMsgParser().parseSIPMessage(text.getBytes(StandardCharsets.US_ASCII), true,
                false, null);
    }

    @Test
    void aTamperedCalleesRefusal_namesItsWarning() throws Exception {
        assertEquals("Server Internal Error: this phone could not set up DTLS-SRTP: this host's TPM did not sign",
                OutgoingCalls.said(response("500 Server Internal Error", "Warning: 399 bob \"this phone could not"
                        + " set up DTLS-SRTP: this host's TPM did not sign\"\r\n")));
    }

    @Test
    void aProxysFailure_namesItsReasonHeader() throws Exception {
        assertEquals("Request Timeout (Reason: SIP 408 no connection to the next hop)", OutgoingCalls.said(
                response("408 Request Timeout", "Reason: SIP ;cause=408;text=\"no connection to the next hop\"\r\n")));
    }

    @Test
    void aReasonThatRepeatsTheWarning_isNamedOnce_andAnAnswerWithNeither_byItsPhrase() throws Exception {
        assertEquals("Forbidden: levels", OutgoingCalls.said(response("403 Forbidden",
                "Warning: 399 bob \"levels\"\r\nReason: SIP ;cause=403;text=\"levels\"\r\n")));
        assertEquals("Unfortunately error on sending to next hop occurred", OutgoingCalls.said(response(
                "477 Unfortunately error on sending to next hop occurred", "")));
    }
}
