package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.tpmphone.softphone.SdesCrypto;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of the peer's SDP as the phone reads an offer or answer ({@link Sdp#parse}) with its SDES
 * crypto attributes ({@link SdesCrypto#parse}). Contract: a value whose crypto attributes format back to themselves,
 * or {@link IllegalArgumentException} with a message. Regression inputs under {@code SdpFuzzTestInputs/}; fuzz with
 * {@code ./tpmphone fuzz sdp}.
 */
@Timeout(10)
class SdpFuzzTest {
    @FuzzTest
    void offer(byte[] data) {
        String text = new String(data, StandardCharsets.UTF_8);
        Sdp sdp;
        try {
            sdp = Sdp.parse(text);
        } catch (IllegalArgumentException refused) {
            assertNotNull(refused.getMessage());
            return;
        }
        assertTrue(sdp.port() >= 0 && sdp.port() <= 65_535, "port " + sdp.port());
        for (SdesCrypto c : sdp.cryptos()) {
            SdesCrypto again = SdesCrypto.parse(c.format());
            assertEquals(c.tag(), again.tag());
            assertEquals(c.suite(), again.suite());
            assertTrue(Arrays.equals(c.masterKey(), again.masterKey()), "the key survives formatting");
        }
        Sdp.choose(sdp.payloadTypes());
        assertNotNull(sdp.encode("fuzz", 1));
    }
}
