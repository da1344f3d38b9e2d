package io.tpmphone.tpm.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.tpmphone.tpm.TpmTransportException;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of the reader of TPM response frames ({@link ResponseParameters}): what a TPM — or whatever
 * answers on its socket or device — sends back. The input's first byte is the number of response handles (0–3), the
 * rest the response; it is read the ways {@code TpmClient} reads its commands' responses (Quote and Certify, Sign,
 * Create and ReadPublic). Contract: values, or
 * {@link TpmTransportException}. Regression inputs under {@code ResponseParametersFuzzTestInputs/}; fuzz with
 * {@code ./tpmphone fuzz tpm-response}.
 */
@Timeout(10)
class ResponseParametersFuzzTest {
    @Test
    void aQuoteResponse_readsAsTheAttestationAndTheSignature() throws Exception {
        byte[] input = getClass().getResourceAsStream("ResponseParametersFuzzTestInputs/read/swtpm-quote-response")
                .readAllBytes();
        ResponseParameters out = ResponseParameters.of(Arrays.copyOfRange(input, 1, input.length), input[0]);
        assertEquals(145, out.tpm2b().length, "TPM2B_ATTEST of the swtpm's ECC quote");
        assertEquals(72, out.rest().length, "its TPMT_SIGNATURE");
    }

    /** The fuzzer's finding (crash-d3a7873a…): rest() threw IllegalArgumentException ("22 > 18"). */
    @Test
    void aFrameTooShortForItsHandles_orAParameterSizeNearTheIntLimit_isATransportError() {
        byte[] eighteen = new byte[18];
        TpmTransportException e = assertThrows(TpmTransportException.class,
                () -> ResponseParameters.of(eighteen, 3).rest());
        assertTrue(e.getMessage().contains("cannot hold the header and 3 response handle(s)"), e.getMessage());
        byte[] sessions = new byte[20];
        sessions[0] = (byte) 0x80;
        sessions[1] = 0x02;
        sessions[14] = 0x7f; // parameterSize 0x7fffffff after one handle: pos + size overflowed an int
        sessions[15] = sessions[16] = sessions[17] = (byte) 0xff;
        e = assertThrows(TpmTransportException.class, () -> ResponseParameters.of(sessions, 1).rest());
        assertTrue(e.getMessage().contains("exceeds frame"), e.getMessage());
    }

    @FuzzTest
    void read(byte[] data) {
        if (data.length == 0) {
            return;
        }
        int handles = data[0] & 3;
        byte[] response = Arrays.copyOfRange(data, 1, data.length);
        // Quote and Certify: TPM2B, then the rest (the signature).
        try {
            ResponseParameters out = ResponseParameters.of(response, handles);
            byte[] first = out.tpm2b();
            byte[] rest = out.rest();
            assertTrue(first.length + rest.length <= response.length);
            assertEquals(0, out.rest().length, "rest() leaves nothing");
        } catch (TpmTransportException e) {
            assertTrue(e.getMessage().contains("TPM response"), e.getMessage());
        }
        // Sign: the rest (the signature) and nothing else.
        try {
            byte[] rest = ResponseParameters.of(response, handles).rest();
            assertTrue(rest.length <= response.length);
        } catch (TpmTransportException e) {
            assertTrue(e.getMessage().contains("TPM response"), e.getMessage());
        }
        // Create: two TPM2Bs; ReadPublic: one after a handle; and the fixed-size reads.
        try {
            ResponseParameters out = ResponseParameters.of(response, handles);
            byte[] a = out.tpm2b();
            byte[] b = out.bytes(Math.min(out.u16(), 64));
            assertArrayEquals(a, a.clone());
            out.u32();
            assertTrue(b.length <= 64);
        } catch (TpmTransportException e) {
            assertTrue(e.getMessage().contains("TPM response"), e.getMessage());
        }
    }
}
