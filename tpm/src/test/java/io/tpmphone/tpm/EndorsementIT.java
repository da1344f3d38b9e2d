package io.tpmphone.tpm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import org.junit.jupiter.api.Test;

@WithSwtpm(ekCertificate = true)
class EndorsementIT {

    @Test
    void rsaEkFromTheTcgTemplate_hasTheCertificatesPublicKey_andTheCertificateChainsToTheTestCa(SwtpmProcess swtpm)
            throws Exception {
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            TpmtPublic ek = client.ensureEndorsementKey(EkType.RSA_2048);
            byte[] der = client.readEndorsementCertificate(EkType.RSA_2048).orElseThrow();
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            X509Certificate cert = (X509Certificate) cf.generateCertificate(new ByteArrayInputStream(der));
            assertArrayEquals(cert.getPublicKey().getEncoded(), ek.toPublicKey().getEncoded());
            assertTrue(ek.has(ObjectAttribute.RESTRICTED) && ek.has(ObjectAttribute.DECRYPT)
                    && ek.has(ObjectAttribute.ADMIN_WITH_POLICY) && !ek.has(ObjectAttribute.USER_WITH_AUTH),
                    () -> "the EK has the TCG template's attributes (restricted, decrypt, adminWithPolicy, no "
                            + "userWithAuth); it has " + ek.attributes());

            X509Certificate issuer;
            try (InputStream in = Files.newInputStream(swtpm.caCertificate())) {
                issuer = (X509Certificate) cf.generateCertificate(in);
            }
            cert.verify(issuer.getPublicKey());
            assertEquals(issuer.getSubjectX500Principal(), cert.getIssuerX500Principal());

            // Second call finds the persisted EK and checks it against the template instead of creating it again.
            assertArrayEquals(ek.encoded(), client.ensureEndorsementKey(EkType.RSA_2048).encoded());
        }
    }

    @Test
    void missingCertificate_isEmpty(SwtpmProcess swtpm) throws Exception {
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            // swtpm_localca issues RSA-2048 and ECC P-384 certificates, never P-256.
            var p256 = client.readEndorsementCertificate(EkType.ECC_P256);
            assertTrue(p256.isEmpty(), () -> "no ECC P-256 EK certificate; read " + p256.map(der -> der.length
                    + " bytes: " + java.util.HexFormat.of().formatHex(der)).orElse("none"));
        }
    }

    @Test
    void tpmInfo_namesTheManufacturer(SwtpmProcess swtpm) throws Exception {
        try (TpmClient client = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            TpmInfo info = client.info();
            assertEquals("2.0", info.family());
            assertEquals("IBM", info.manufacturer());
        }
    }
}
