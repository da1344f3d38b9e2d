package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.Signature;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of {@code TPMS_ATTEST}: the parser, and the quote and certify verifiers behind a valid
 * signature. Contract: a value, or {@link MalformedStructureException} / {@link VerificationException}; anything else
 * (a runtime exception, an error, a hang) is a finding. Regression inputs under {@code TpmsAttestFuzzTestInputs/};
 * fuzz with {@code ./tpmphone fuzz tpms-attest} or {@code tpms-attest-signed}.
 */
@Timeout(10)
class TpmsAttestFuzzTest {
    /** A software key with the AK template: whatever the fuzzer writes, it is validly signed. */
    private static KeyPair signer;
    private static TpmtPublic signerPublic;
    private static TpmtPublic tik;

    @BeforeAll
    static void keys() throws Exception {
        signer = Evidence.ecKeyPair(EccCurve.NIST_P256);
        signerPublic = Evidence.eccAk(signer, HashAlgorithm.SHA256);
        tik = SwtpmSamples.publicArea("tik-ecc-p256.tpmt-public");
        // The harness reaches the end of each verifier: the swtpm's own quote and certify, re-signed, verify.
        VerifiedQuote q = QuoteVerifier.verify(SwtpmSamples.bytes("quote-ecc.tpms-attest"),
                sign(SwtpmSamples.bytes("quote-ecc.tpms-attest")), signerPublic, SwtpmSamples.QUOTE_NONCE,
                SwtpmSamples.quotePcrValues());
        assertEquals(AttestType.QUOTE, q.attest().type());
        byte[] certify = certifyOverQuoteNonce();
        assertEquals(AttestType.CERTIFY, CertifyVerifier.verify(certify, sign(certify), signerPublic,
                SwtpmSamples.QUOTE_NONCE, tik).attest().type());
    }

    /** The swtpm's TPM2_Certify of the TIK, with the quote's nonce as qualifying data (as the seed holds it). */
    static byte[] certifyOverQuoteNonce() throws MalformedStructureException {
        TpmsAttest real = TpmsAttest.parse(SwtpmSamples.bytes("certify-tik.tpms-attest"));
        CertifyInfo info = real.certifyInfo().orElseThrow();
        return TpmsAttest.encodeCertify(real.qualifiedSigner(), SwtpmSamples.QUOTE_NONCE, real.clockInfo(),
                real.firmwareVersion(), info.name(), info.qualifiedName());
    }

    private static byte[] sign(byte[] data) throws GeneralSecurityException {
        Signature s = Signature.getInstance("SHA256withECDSA");
        s.initSign(signer.getPrivate());
        s.update(data);
        return TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, s.sign(), EccCurve.NIST_P256).encoded();
    }

    /** The parser alone: a parsed attestation is exactly its input, with the body its type says. */
    @FuzzTest
    void parse(byte[] data) {
        TpmsAttest a;
        try {
            a = TpmsAttest.parse(data);
        } catch (MalformedStructureException e) {
            assertEquals("TPMS_ATTEST", e.structure());
            assertTrue(e.offset() >= MalformedStructureException.NO_OFFSET && e.offset() <= data.length,
                    "offset " + e.offset() + " outside the input of " + data.length + " bytes");
            return;
        }
        assertArrayEquals(data, a.encoded());
        assertEquals(a.type() == AttestType.QUOTE, a.quoteInfo().isPresent());
        assertEquals(a.type() == AttestType.CERTIFY, a.certifyInfo().isPresent());
        assertNotNull(a.toString());
    }

    /**
     * A validly signed attestation of any content (tpm2-tools CVE-2024-29038: the signature alone proves nothing about
     * magic, type or body) through both verifiers: accepted only as what it is.
     */
    @FuzzTest
    void verifySigned(byte[] attest) throws GeneralSecurityException {
        byte[] signature = sign(attest);
        try {
            VerifiedQuote q = QuoteVerifier.verify(attest, signature, signerPublic, SwtpmSamples.QUOTE_NONCE,
                    SwtpmSamples.quotePcrValues());
            assertEquals(AttestType.QUOTE, q.attest().type());
            assertArrayEquals(SwtpmSamples.QUOTE_NONCE, q.attest().extraData());
        } catch (VerificationException e) {
            assertNotNull(e.check());
        }
        try {
            VerifiedCertify c = CertifyVerifier.verify(attest, signature, signerPublic, SwtpmSamples.QUOTE_NONCE,
                    tik);
            assertArrayEquals(tik.name(), c.attest().certifyInfo().orElseThrow().name());
        } catch (VerificationException e) {
            assertNotNull(e.check());
        }
    }
}
