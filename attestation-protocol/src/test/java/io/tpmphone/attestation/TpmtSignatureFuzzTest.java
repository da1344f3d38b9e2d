package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.math.BigInteger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of {@code TPMT_SIGNATURE}: the parser, then the quote verifier with the swtpm's real quote
 * and AK, so every signature the fuzzer writes is checked against a genuine key (ECDSA and, by the input's length,
 * RSASSA). Contract: a value, or {@link MalformedStructureException} / {@link VerificationException}; only the swtpm's
 * own signature verifies. Regression inputs under {@code TpmtSignatureFuzzTestInputs/}; fuzz with
 * {@code ./tpmphone fuzz tpmt-signature}.
 */
@Timeout(10)
class TpmtSignatureFuzzTest {
    private static final byte[] ECC_QUOTE = SwtpmSamples.bytes("quote-ecc.tpms-attest");
    private static final byte[] ECC_SIGNATURE = SwtpmSamples.bytes("quote-ecc.tpmt-signature");
    private static final byte[] RSA_SIGNATURE = SwtpmSamples.bytes("quote-rsa.tpmt-signature");
    private static TpmtPublic eccAk;
    private static TpmtPublic rsaAk;

    @BeforeAll
    static void theSwtpmsQuoteVerifies() throws Exception {
        eccAk = SwtpmSamples.publicArea("ak-ecc-p256.tpmt-public");
        rsaAk = SwtpmSamples.publicArea("ak-rsa-2048.tpmt-public");
        QuoteVerifier.verify(ECC_QUOTE, ECC_SIGNATURE, eccAk, SwtpmSamples.QUOTE_NONCE, SwtpmSamples.quotePcrValues());
    }

    @FuzzTest
    void verify(byte[] data) {
        try {
            TpmtSignature s = TpmtSignature.parse(data);
            assertArrayEquals(data, s.encoded());
            if (s.algorithm() == SchemeAlgorithm.ECDSA) {
                assertTrue(s.toDer().length > 0);
            } else {
                assertTrue(s.rsaSignature().length <= 512);
            }
        } catch (MalformedStructureException e) {
            assertEquals("TPMT_SIGNATURE", e.structure());
        }
        // The RSA AK for inputs as long as an RSA signature, the ECC AK for the rest: both verifiers see every shape.
        TpmtPublic ak = data.length >= 2 + 2 + 2 + 256 ? rsaAk : eccAk;
        try {
            QuoteVerifier.verify(ECC_QUOTE, data, ak, SwtpmSamples.QUOTE_NONCE, SwtpmSamples.quotePcrValues());
            assertTrue(isTheSwtpmsSignature(data), "only the swtpm's own signature verifies its quote");
        } catch (VerificationException e) {
            assertNotNull(e.check());
            assertTrue(!SwtpmSamples.same(ECC_SIGNATURE, data), "the swtpm's own signature is refused: "
                    + e.getMessage());
        }
    }

    /**
     * The swtpm's signature in any of the encodings ECDSA allows: the same r, and s or n - s (ECDSA is malleable, and
     * a TPM2B may carry leading zeros); neither yields another message's signature.
     */
    private static boolean isTheSwtpmsSignature(byte[] data) {
        try {
            TpmtSignature genuine = TpmtSignature.parse(ECC_SIGNATURE);
            TpmtSignature s = TpmtSignature.parse(data);
            BigInteger n = ((java.security.interfaces.ECPublicKey) eccAk.toPublicKey()).getParams().getOrder();
            BigInteger s0 = new BigInteger(1, genuine.s());
            BigInteger s1 = new BigInteger(1, s.s());
            return s.algorithm() == SchemeAlgorithm.ECDSA && s.hash() == genuine.hash()
                    && new BigInteger(1, s.r()).equals(new BigInteger(1, genuine.r()))
                    && (s1.equals(s0) || s1.equals(n.subtract(s0)));
        } catch (MalformedStructureException | java.security.InvalidKeyException e) {
            return false;
        }
    }
}
