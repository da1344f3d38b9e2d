package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A verifier that expected an empty nonce would accept every quote without extraData: refused up front. */
class ExpectedNonceTest {

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 8, 15})
    void expectedNonceShorterThan16Bytes_isAProgrammingError(int length) throws Exception {
        TpmtPublic ak = Evidence.eccAk(Evidence.ecKeyPair(EccCurve.NIST_P256), HashAlgorithm.SHA256);
        PcrValues pcrs = Evidence.pcrValues("sha256:0");
        IllegalArgumentException quote = assertThrows(IllegalArgumentException.class,
                () -> QuoteVerifier.verify(new byte[10], new byte[10], ak, new byte[length], pcrs));
        assertTrue(quote.getMessage().contains("at least 16 bytes"), quote.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> CertifyVerifier.verify(new byte[10], new byte[10], ak, new byte[length], ak));
    }
}
