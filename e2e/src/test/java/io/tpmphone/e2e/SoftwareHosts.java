package io.tpmphone.e2e;

import io.tpmphone.tls.Evidence;
import io.tpmphone.tls.HostIdentity;
import io.tpmphone.tls.PassportVerifier;
import java.io.IOException;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Software stand-ins for hosts' TPM identities, for the tests of SIP and media mechanics through a real proxy that
 * need no measured hosts (and so no machine-wide lock): a device CA, device certificates issued by it, signatures by
 * software keys, and evidence without a passport — appraised {@code FAILED}. What levels mean is shown with real
 * swtpm hosts ({@code ProxyCallIT}, {@code RelayAttackIT}).
 */
final class SoftwareHosts {
    private final KeyPair ca;
    private final X509Certificate caCert;

    SoftwareHosts() throws Exception {
        ca = ecKeyPair();
        caCert = certificate("software device CA", ca, ca, null);
    }

    HostIdentity identity(String host) throws Exception {
        KeyPair key = ecKeyPair();
        List<X509Certificate> chain = List.of(certificate(host, key, ca, caCert), caCert);
        return new HostIdentity() {
            @Override
            public List<X509Certificate> certificateChain() {
                return chain;
            }

            @Override
            public byte[] sign(byte[] sha256Digest) throws IOException {
                try {
                    Signature s = Signature.getInstance("NONEwithECDSA");
                    s.initSign(key.getPrivate());
                    s.update(sha256Digest);
                    return s.sign();
                } catch (GeneralSecurityException e) {
                    throw new IOException("software signature failed", e);
                }
            }

            @Override
            public Evidence evidence(byte[] binder) {
                return new Evidence((byte) 1, new byte[] {1}, new byte[] {1}, new byte[] {1}, "");
            }
        };
    }

    PassportVerifier verifier() throws Exception {
        return new PassportVerifier(ecKeyPair().getPublic(), List.of(caCert), Clock.systemUTC());
    }

    static KeyPair ecKeyPair() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(256);
        return g.generateKeyPair();
    }

    static X509Certificate certificate(String cn, KeyPair subject, KeyPair issuer, X509Certificate issuerCert)
            throws Exception {
        X500Name name = new X500Name("CN=" + cn);
        X500Name issuerName = issuerCert == null ? name : new X500Name(issuerCert.getSubjectX500Principal().getName());
        Instant now = Instant.now();
        var builder = new JcaX509v3CertificateBuilder(issuerName, BigInteger.valueOf(System.nanoTime()),
                Date.from(now.minusSeconds(60)), Date.from(now.plusSeconds(3600)), name, subject.getPublic());
        if (issuerCert == null) {
            builder.addExtension(org.bouncycastle.asn1.x509.Extension.basicConstraints, true,
                    new org.bouncycastle.asn1.x509.BasicConstraints(true));
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getPrivate())));
    }
}
