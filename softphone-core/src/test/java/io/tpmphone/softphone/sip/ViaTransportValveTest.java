package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import gov.nist.javax.sip.message.SIPRequest;
import gov.nist.javax.sip.parser.StringMsgParser;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link ViaTransportValve#answerable}: the requests JAIN-SIP cannot answer, found by {@code SipMessageFuzzTest}. */
@Timeout(10)
class ViaTransportValveTest {
    private static SIPRequest request(String secondVia) throws Exception {
        String text = "OPTIONS sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1\r\n"
                + "Via: " + secondVia + "\r\n"
                + "Max-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\n"
                + "Call-ID: via-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        return (SIPRequest) new StringMsgParser().parseSIPMessage(text.getBytes(StandardCharsets.US_ASCII), true,
                false, null);
    }

    @Test
    void aViaWithAnRportThatIsNotAPortNumber_makesTheRequestUnanswerable() throws Exception {
        for (String rport : new String[] {"z9hG4bKkdjuw", "390skdjuw", "99999999999"}) {
            SIPRequest r = request("SIP/2.0/UDP t1.example.com;rport=" + rport);
            assertThrows(NumberFormatException.class, () -> r.createResponse(400),
                    "JAIN-SIP 1.3.0-91 cannot answer it (if this passes, the guard may go)");
            assertFalse(ViaTransportValve.answerable(r), "rport=" + rport);
        }
    }

    @Test
    void viasWithAnEmptyOrNumericRport_areAnswered() throws Exception {
        for (String via : new String[] {"SIP/2.0/UDP t1.example.com;rport", "SIP/2.0/TCP t1.example.com;rport=5060",
                "SIP/2.0/TLS t1.example.com:5061"}) {
            SIPRequest r = request(via);
            assertTrue(ViaTransportValve.answerable(r), via);
            assertEquals(200, r.createResponse(200).getStatusCode());
        }
    }
}
