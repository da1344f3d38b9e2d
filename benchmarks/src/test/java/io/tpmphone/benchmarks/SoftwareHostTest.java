package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.CredentialBlob;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MakeCredential;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.NonceRequest;
import io.tpmphone.attestation.NonceRequestVerifier;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.VerificationException;
import io.tpmphone.attestation.VerifiedQuote;
import io.tpmphone.tpm.TpmQuote;
import java.io.ByteArrayInputStream;
import java.security.SecureRandom;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The software host makes what a TPM makes: each structure goes through the verifier the server uses for a real
 * TPM's (the fleet benchmark's enrollments and appraisals go through the real server on top).
 */
@Timeout(60)
class SoftwareHostTest {
    private static final PcrSelection PCRS = PcrSelection.parse("sha256:0-7,14");
    private static final SecureRandom RANDOM = new SecureRandom();

    private static SoftwareHost.Template template() {
        List<byte[]> values = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            values.add(HashAlgorithm.SHA256.digest(new byte[] {(byte) i}));
        }
        return new SoftwareHost.Template(PcrValues.of(PCRS, values), MeasurementLog.empty(),
                new ClockInfo(1_000_000, 3, 1, true), 0x2023_0101_0000_0000L);
    }

    @Test
    void itsQuote_passesTheQuoteVerifier_withTheTemplatesPcrs_andItsClockMovesOn() throws Exception {
        SoftwareHost host = SoftwareHost.create("fleet-00001", new SoftwareHost.EkCa(), template());
        byte[] nonce = new byte[32];
        RANDOM.nextBytes(nonce);
        TpmQuote quote = host.quote(PCRS, nonce);
        VerifiedQuote verified = QuoteVerifier.verify(quote.attest(), quote.signature(), host.akPublic(), nonce,
                quote.pcrValues());
        assertEquals(template().pcrValues().selection(), verified.pcrValues().selection());
        ClockInfo first = TpmsAttest.parse(quote.attest()).clockInfo();
        assertEquals(3, first.resetCount());
        assertEquals(1, first.restartCount());
        assertTrue(first.clock() >= 1_000_000, () -> "the clock starts at the template's: " + first);

        byte[] other = new byte[32];
        RANDOM.nextBytes(other);
        assertThrows(VerificationException.class, () -> QuoteVerifier.verify(quote.attest(), quote.signature(),
                host.akPublic(), other, quote.pcrValues()), "a quote over another nonce is refused");
        assertThrows(IllegalArgumentException.class, () -> host.quote(PcrSelection.parse("sha256:14"), nonce),
                "a selection other than the template's cannot be quoted");
    }

    @Test
    void itsNonceRequest_verifiesWithItsAk_andTimesOnlyGoForward() throws Exception {
        SoftwareHost host = SoftwareHost.create("fleet-00002", new SoftwareHost.EkCa(), template());
        host.enrolled(java.util.HexFormat.of().formatHex(host.akPublic().name())); // the server's AK id
        NonceRequest r1 = host.nonceRequest(5_000);
        NonceRequest r2 = host.nonceRequest(4_000); // the wall clock stepped back
        assertTrue(r2.requestedAt() > r1.requestedAt(), () -> r1 + " then " + r2);
        NonceRequestVerifier.verify(r2, host.sign(r2.encoded()), host.akPublic());
        assertThrows(VerificationException.class, () -> NonceRequestVerifier.verify(r1, host.sign(r2.encoded()),
                host.akPublic()), "a signature over another request is refused");
    }

    @Test
    void itActivatesTheServersCredential_onlyForItsOwnAk() throws Exception {
        SoftwareHost host = SoftwareHost.create("fleet-00003", new SoftwareHost.EkCa(), template());
        byte[] secret = new byte[32];
        RANDOM.nextBytes(secret);
        CredentialBlob blob = MakeCredential.make(host.ekPublic(), host.akPublic().name(), secret, RANDOM);
        assertArrayEquals(secret, host.activate(blob));
        SoftwareHost other = SoftwareHost.create("fleet-00004", new SoftwareHost.EkCa(), template());
        CredentialBlob forOther = MakeCredential.make(host.ekPublic(), other.akPublic().name(), secret, RANDOM);
        assertThrows(java.security.GeneralSecurityException.class, () -> host.activate(forOther),
                "a credential bound to another AK's name does not activate");
    }

    @Test
    void itsEkCertificate_chainsToTheCa_namesTheEk_andIsAnEkCertificate() throws Exception {
        SoftwareHost.EkCa ca = new SoftwareHost.EkCa();
        SoftwareHost host = SoftwareHost.create("fleet-00005", ca, template());
        X509Certificate cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(
                new ByteArrayInputStream(host.ekCertificate()));
        assertArrayEquals(host.ekPublic().toPublicKey().getEncoded(), cert.getPublicKey().getEncoded(),
                "the certificate's key is the EK's, as the registrar compares them");
        List<String> eku = cert.getExtendedKeyUsage();
        assertTrue(eku.contains("2.23.133.8.1"), () -> "tcg-kp-EKCertificate: " + eku);
        PKIXParameters params = new PKIXParameters(Set.of(new TrustAnchor(ca.certificate(), null)));
        params.setRevocationEnabled(false);
        CertPathValidator.getInstance("PKIX").validate(CertificateFactory.getInstance("X.509")
                .generateCertPath(List.of(cert)), params);
    }
}
