package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.Test;

class EkCertificatesTest {
    private static final KeyPair CA = keys();
    private static final X509Certificate ROOT = certificate(new X500Name("CN=test TPM vendor root"), CA, CA, true,
            null, null);

    private static KeyPair keys() {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
            g.initialize(2048);
            return g.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static X509Certificate certificate(X500Name subject, KeyPair subjectKeys, KeyPair issuerKeys, boolean ca,
                                               KeyPurposeId eku, Integer keyUsage) {
        try {
            Instant now = Instant.now();
            JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(new X500Name("CN=test TPM vendor root"),
                    BigInteger.valueOf(now.toEpochMilli()), Date.from(now.minus(1, ChronoUnit.DAYS)),
                    Date.from(now.plus(1, ChronoUnit.DAYS)), subject, subjectKeys.getPublic());
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(ca));
            if (eku != null) {
                b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(eku));
            }
            if (keyUsage != null) {
                b.addExtension(Extension.keyUsage, true, new KeyUsage(keyUsage));
            }
            return new JcaX509CertificateConverter().getCertificate(
                    b.build(new JcaContentSignerBuilder("SHA256withRSA").build(issuerKeys.getPrivate())));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static final KeyPurposeId EK_EKU = KeyPurposeId.getInstance(new ASN1ObjectIdentifier("2.23.133.8.1"));

    private final EkCertificates validator = new EkCertificates(List.of(ROOT), Clock.systemUTC());

    @Test
    void anEkCertificateWithTheTcgEku_isAccepted_andOneWithoutExtensionsToo() throws Exception {
        X509Certificate ek = certificate(new X500Name("CN=ek"), keys(), CA, false, EK_EKU, KeyUsage.keyEncipherment);
        assertEquals(ek, validator.validate(ek.getEncoded()));
        X509Certificate bare = certificate(new X500Name("CN=ek2"), keys(), CA, false, null, null);
        assertEquals(bare, validator.validate(bare.getEncoded()), "vendors that omit the extensions still work");
    }

    @Test
    void aCertificateForAnotherPurposeFromTheSameCa_isRefused() {
        X509Certificate tls = certificate(new X500Name("CN=server"), keys(), CA, false, KeyPurposeId.id_kp_serverAuth,
                KeyUsage.keyEncipherment);
        GeneralSecurityException e = assertThrows(GeneralSecurityException.class,
                () -> validator.validate(tls.getEncoded()));
        assertTrue(e.getMessage().contains("2.23.133.8.1"), e.getMessage());
        X509Certificate signing = certificate(new X500Name("CN=signer"), keys(), CA, false, EK_EKU,
                KeyUsage.digitalSignature);
        assertThrows(GeneralSecurityException.class, () -> validator.validate(signing.getEncoded()));
    }

    @Test
    void aCertificateFromAnotherCa_isRefused() {
        KeyPair other = keys();
        X509Certificate foreign = certificate(new X500Name("CN=ek"), keys(), other, false, EK_EKU,
                KeyUsage.keyEncipherment);
        assertThrows(GeneralSecurityException.class, () -> validator.validate(foreign.getEncoded()));
    }
}
