package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.TestCertificateAuthority;
import java.io.InputStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server serves a certificate a private CA issued (a real openssl CA), which a client that trusts only that CA
 * accepts with the JDK's host-name check; a key that is not the certificate's, or a key file others can read, stops the
 * start with a reason.
 */
@Timeout(60)
class CaIssuedTlsCertificateTest {
    @TempDir
    Path dir;

    @Test
    void aCaIssuedCertificate_isServed_andAcceptedByAClientTrustingOnlyTheCa() throws Exception {
        TestCertificateAuthority ca = TestCertificateAuthority.create(dir.resolve("ca"), "fleet CA");
        TestCertificateAuthority.Issued issued = ca.issue("127.0.0.1", "localhost");
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir.resolve("state"))
                .adminToken("an-admin-token-for-this-test").tlsCertificate(issued.chain(), issued.key()).start()) {
            X509Certificate leaf = certificate(issued.certificate());
            assertEquals(leaf, server.tlsCertificate(), "the server reports the certificate it serves");
            HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + "/v1/server").openConnection();
            c.setSSLSocketFactory(trusting(certificate(ca.certificate())).getSocketFactory());
            // no host-name verifier of ours: the JDK's default checks 127.0.0.1 against the SAN
            assertEquals(200, c.getResponseCode(), "GET /v1/server over TLS to the CA-issued certificate");
            assertEquals(leaf, c.getServerCertificates()[0], "the certificate on the wire is the CA-issued one");
        }
    }

    @Test
    void aKeyOfAnotherCertificate_orAKeyFileOthersCanRead_stopsTheStart() throws Exception {
        TestCertificateAuthority ca = TestCertificateAuthority.create(dir.resolve("ca"), "fleet CA");
        TestCertificateAuthority.Issued one = ca.issue("127.0.0.1");
        TestCertificateAuthority.Issued other = ca.issue("127.0.0.1");
        GeneralSecurityException wrong = assertThrows(GeneralSecurityException.class, () -> AttestationServer
                .builder().stateDirectory(dir.resolve("s1")).adminToken("an-admin-token-for-this-test")
                .tlsCertificate(one.chain(), other.key()).start());
        assertTrue(wrong.getMessage().contains("is not the key of the first certificate"), wrong.getMessage());

        Files.setPosixFilePermissions(one.key(), PosixFilePermissions.fromString("rw-r--r--"));
        java.io.IOException readable = assertThrows(java.io.IOException.class, () -> AttestationServer.builder()
                .stateDirectory(dir.resolve("s2")).adminToken("an-admin-token-for-this-test")
                .tlsCertificate(one.chain(), one.key()).start());
        assertTrue(readable.getMessage().contains(one.key().toString()), "names the key file: "
                + readable.getMessage());
    }

    private static X509Certificate certificate(Path pem) throws Exception {
        try (InputStream in = Files.newInputStream(pem)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static SSLContext trusting(X509Certificate ca) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("ca", ca);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }
}
