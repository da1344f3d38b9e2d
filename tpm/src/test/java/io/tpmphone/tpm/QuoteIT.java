package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.AttestType;
import io.tpmphone.attestation.CertifyVerifier;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.NonceRequest;
import io.tpmphone.attestation.NonceRequestVerifier;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.attestation.VerificationException;
import io.tpmphone.attestation.VerifiedCertify;
import io.tpmphone.attestation.VerifiedNonceRequest;
import io.tpmphone.attestation.VerifiedQuote;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/** Quotes and certifications made by swtpm, checked by our pure-Java verifier, one tamper per checked field. */
@WithSwtpm
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class QuoteIT {
    private static final PcrSelection SELECTION = PcrSelection.parse("sha256:0,1,2,3,14,16");

    private TpmClient client;
    private TpmtPublic ak;
    private TpmtPublic tik;
    private TpmtPublic otherAk;

    @BeforeAll
    void enroll(SwtpmProcess swtpm) throws Exception {
        client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
        client.ensureEndorsementKey(EkType.RSA_2048);
        ak = client.createAttestationKey(PersistentHandle.EK_RSA, PersistentHandle.AK);
        otherAk = client.createAttestationKey(PersistentHandle.EK_RSA, new PersistentHandle(0x81010011));
        client.ensureStorageRootKey(TpmClient.StorageKeyType.ECC_P256);
        TpmObjectBlob tikBlob = client.createSigningKey(PersistentHandle.SRK_ECC, Optional.empty());
        client.persist(PersistentHandle.SRK_ECC, tikBlob, PersistentHandle.TIK);
        tik = TpmtPublic.parse(tikBlob.publicArea());
        client.pcrExtend(14, HashAlgorithm.SHA256.digest(new byte[] {1}));
    }

    @AfterAll
    void close() {
        client.close();
    }

    private byte[] nonce() throws TpmException {
        return client.getRandom(32);
    }

    @Test
    void quote_verifiesAndCarriesTheNonceAndPcrs() throws Exception {
        byte[] nonce = nonce();
        TpmQuote q = client.quote(PersistentHandle.AK, SELECTION, nonce);
        VerifiedQuote v = QuoteVerifier.verify(q.attest(), q.signature(), ak, nonce, q.pcrValues());
        assertArrayEquals(nonce, v.attest().extraData());
        assertEquals(AttestType.QUOTE, v.attest().type());
        assertEquals(ak.name().length, v.attest().qualifiedSigner().length, "a SHA-256 qualified name");
    }

    @Test
    void attestParser_roundTripsTpmOutput_andRejectsMalformedVariants() throws Exception {
        byte[] attest = client.quote(PersistentHandle.AK, SELECTION, nonce()).attest();
        assertArrayEquals(attest, TpmsAttest.parse(attest).encoded());
        for (int len = 0; len < attest.length; len++) {
            byte[] truncated = Arrays.copyOf(attest, len);
            assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(truncated), "length " + len);
        }
        byte[] trailing = Arrays.copyOf(attest, attest.length + 1);
        assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(trailing));
        byte[] badMagic = attest.clone();
        badMagic[3] ^= 0x01;
        assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(badMagic));
        byte[] badType = attest.clone();
        badType[5] = 0x14; // 0x8018 (quote) -> 0x8014 (TPM_ST_ATTEST_NV)
        assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(badType));
    }

    @Test
    void flippingOneBitOfEachCheckedField_isRejected() throws Exception {
        byte[] nonce = nonce();
        TpmQuote q = client.quote(PersistentHandle.AK, SELECTION, nonce);
        byte[] attest = q.attest();
        byte[] sig = q.signature();
        PcrValues pcrs = q.pcrValues();

        for (int i = 0; i < attest.length; i++) {
            byte[] a = attest.clone();
            a[i] ^= 0x01;
            expectRejected(VerificationException.Check.SIGNATURE, a, sig, ak, nonce, pcrs, "attest byte " + i);
        }
        TpmtSignature s = TpmtSignature.parse(sig);
        byte[] r = s.r();
        r[r.length - 1] ^= 0x01;
        expectRejected(VerificationException.Check.SIGNATURE, attest,
                TpmtSignature.ecdsa(HashAlgorithm.SHA256, r, s.s()).encoded(), ak, nonce, pcrs, "r");
        byte[] sv = s.s();
        sv[0] ^= 0x01;
        expectRejected(VerificationException.Check.SIGNATURE, attest,
                TpmtSignature.ecdsa(HashAlgorithm.SHA256, s.r(), sv).encoded(), ak, nonce, pcrs, "s");
        expectRejected(VerificationException.Check.SIGNATURE, attest,
                TpmtSignature.ecdsa(HashAlgorithm.SHA256, new byte[32], new byte[32]).encoded(), ak, nonce, pcrs,
                "all-zero signature");

        byte[] pcr14 = pcrs.value(14).clone();
        pcr14[7] ^= 0x01;
        expectRejected(VerificationException.Check.PCR_DIGEST, attest, sig, ak, nonce, pcrs.withValue(14, pcr14),
                "PCR 14");

        byte[] otherNonce = nonce.clone();
        otherNonce[31] ^= 0x01;
        expectRejected(VerificationException.Check.QUALIFYING_DATA, attest, sig, ak, otherNonce, pcrs, "nonce");

        assertEquals(VerificationException.Check.KEY, assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, sig, tik, nonce, pcrs)).check(), "an unrestricted key is no AK");
        expectRejected(VerificationException.Check.SIGNATURE, attest, sig, otherAk, nonce, pcrs,
                "a genuine restricted AK that did not sign this quote");
        byte[] akBytes = ak.encoded();
        akBytes[akBytes.length - 1] ^= 0x01; // last byte of the public point's y
        assertEquals(VerificationException.Check.KEY, assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, sig, TpmtPublic.parse(akBytes), nonce, pcrs)).check(),
                "AK public key with one bit flipped is off the curve");
    }

    private static void expectRejected(VerificationException.Check check, byte[] attest, byte[] sig, TpmtPublic key,
                                       byte[] nonce, PcrValues pcrs, String what) {
        VerificationException e = assertThrows(VerificationException.class,
                () -> QuoteVerifier.verify(attest, sig, key, nonce, pcrs), what);
        assertEquals(check, e.check(), what + ": " + e.getMessage());
    }

    @Test
    void certifyOfTheTik_verifies_andTamperIsRejected() throws Exception {
        byte[] nonce = nonce();
        TpmCertification c = client.certify(PersistentHandle.TIK, PersistentHandle.AK, nonce);
        VerifiedCertify v = CertifyVerifier.verify(c.attest(), c.signature(), ak, nonce, tik);
        assertArrayEquals(tik.name(), v.attest().certifyInfo().orElseThrow().name());

        byte[] a = c.attest();
        a[a.length - 3] ^= 0x01;
        assertThrows(VerificationException.class, () -> CertifyVerifier.verify(a, c.signature(), ak, nonce, tik));
        assertThrows(VerificationException.class, () -> CertifyVerifier.verify(c.attest(), c.signature(), ak,
                new byte[32], tik));
        VerificationException wrongObject = assertThrows(VerificationException.class,
                () -> CertifyVerifier.verify(c.attest(), c.signature(), ak, nonce, ak));
        assertEquals(VerificationException.Check.CERTIFIED_NAME, wrongObject.check());
    }

    @Test
    void signWithTheTik_verifiesWithJca() throws Exception {
        byte[] message = "CertificateVerify content".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        byte[] digest = HashAlgorithm.SHA256.digest(message);
        TpmtSignature sig = TpmtSignature.parse(client.sign(PersistentHandle.TIK, digest, Optional.empty()));
        java.security.Signature jca = java.security.Signature.getInstance("SHA256withECDSA");
        jca.initVerify(tik.toPublicKey());
        jca.update(message);
        assertTrue(jca.verify(sig.toDer()), () -> "the TPM's signature verifies with the AK's public key; DER "
                + java.util.HexFormat.of().formatHex(sig.toDer()));
    }

    @Test
    void failedOperations_leaveNoTransientHandle() throws Exception {
        assertThrows(TpmResponseException.class, () -> client.quote(new PersistentHandle(0x81010099), SELECTION,
                new byte[0]));
        assertEquals(java.util.List.of(), client.handles(TpmClient.HandleType.TRANSIENT));
        assertEquals(java.util.List.of(), client.handles(TpmClient.HandleType.LOADED_SESSION));
    }

    @Test
    void tpmErrors_printNothing_andNameTheResponseCode() throws Exception {
        java.io.PrintStream original = System.out;
        java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
        TpmResponseException e;
        System.setOut(new java.io.PrintStream(captured, true, java.nio.charset.StandardCharsets.UTF_8));
        try {
            e = assertThrows(TpmResponseException.class, () -> client.sign(PersistentHandle.AK,
                    HashAlgorithm.SHA256.digest(new byte[] {5}), Optional.empty()));
        } finally {
            System.setOut(original);
        }
        assertEquals("", captured.toString(java.nio.charset.StandardCharsets.UTF_8), "TSS.Java printed to stdout");
        assertEquals("Sign", e.command());
        assertTrue(e.getMessage().startsWith("TPM2_Sign failed: TPM_RC_" + e.responseCodeName()), e.getMessage());
    }

    @Test
    void signWithRestrictedKey_signsANonceRequestThatVerifiesWithTheAkOnly() throws Exception {
        NonceRequest request = new NonceRequest(HexFormat.of().formatHex(ak.name()), 1_700_000_000_123L);
        byte[] signature = client.signWithRestrictedKey(PersistentHandle.AK, request.encoded());
        VerifiedNonceRequest v = NonceRequestVerifier.verify(request, signature, ak);
        assertEquals(HashAlgorithm.SHA256, v.signature().hash(), "the AK's scheme hash");
        NonceRequest otherAksRequest = new NonceRequest(HexFormat.of().formatHex(otherAk.name()),
                request.requestedAt());
        VerificationException e = assertThrows(VerificationException.class,
                () -> NonceRequestVerifier.verify(otherAksRequest, signature, otherAk));
        assertEquals(VerificationException.Check.SIGNATURE, e.check(), e.getMessage());
        NonceRequest later = new NonceRequest(request.akId(), request.requestedAt() + 1);
        e = assertThrows(VerificationException.class, () -> NonceRequestVerifier.verify(later, signature, ak));
        assertEquals(VerificationException.Check.SIGNATURE, e.check(), "a signature covers requestedAt: " + e);
    }

    @Test
    void signWithRestrictedKey_refusesDataThatCouldPassForAnAttestation() {
        byte[] forged = TpmsAttest.encodeQuote(ak.name(), new byte[32], new io.tpmphone.attestation.ClockInfo(1, 0,
                0, true), 0, SELECTION, new byte[32]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> client.signWithRestrictedKey(PersistentHandle.AK, forged));
        assertTrue(e.getMessage().contains("TPM_GENERATED_VALUE"), e.getMessage());
    }
}
