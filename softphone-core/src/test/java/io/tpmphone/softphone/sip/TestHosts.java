package io.tpmphone.softphone.sip;

import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.tls.Evidence;
import io.tpmphone.tls.HostIdentity;
import io.tpmphone.tls.PassportVerifier;
import java.io.IOException;
import java.math.BigInteger;
import java.net.InetAddress;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Software stand-ins for a host's TPM identity in SIP tests without swtpm: a device CA, device certificates issued by
 * it, CertificateVerify signatures by a software key, and evidence that appraises as FAILED (no passport). Each
 * identity counts the signatures and quotes asked of it — what a TPM would have had to do.
 */
final class TestHosts {
    static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    private final KeyPair ca;
    private final X509Certificate caCert;

    TestHosts() throws GeneralSecurityException {
        ca = ecKeyPair();
        caCert = certificate("test device CA", ca, ca, null);
    }

    /** A host identity with counters of TPM work. */
    static final class CountingIdentity implements HostIdentity {
        final AtomicInteger signatures = new AtomicInteger();
        final AtomicInteger quotes = new AtomicInteger();
        private final List<X509Certificate> chain;
        private final KeyPair key;

        CountingIdentity(List<X509Certificate> chain, KeyPair key) {
            this.chain = chain;
            this.key = key;
        }

        @Override
        public List<X509Certificate> certificateChain() {
            return chain;
        }

        @Override
        public byte[] sign(byte[] sha256Digest) throws IOException {
            signatures.incrementAndGet();
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
            quotes.incrementAndGet();
            return new Evidence((byte) 1, new byte[] {1}, new byte[] {1}, new byte[] {1}, "");
        }
    }

    CountingIdentity identity(String host) throws GeneralSecurityException {
        KeyPair device = ecKeyPair();
        return new CountingIdentity(List.of(certificate(host, device, ca, caCert), caCert), device);
    }

    PassportVerifier verifier() throws GeneralSecurityException {
        return new PassportVerifier(ecKeyPair().getPublic(), List.of(caCert), Clock.systemUTC());
    }

    /** Keys for SDES: fresh zero keys, every offer new. */
    static SipPhone.Keys keys() {
        return new SipPhone.Keys() {
            @Override
            public SrtpKeyMaterial srtpKey(String suite, String callId) {
                return SrtpKeyMaterial.of(new byte[16], new byte[14]);
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) {
                // every offer is new here
            }
        };
    }

    static int freePort() {
        return io.tpmphone.swtpm.testing.FreePorts.tcp();
    }

    private static KeyPair ecKeyPair() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(256);
        return g.generateKeyPair();
    }

    private static X509Certificate certificate(String cn, KeyPair subject, KeyPair issuer, X509Certificate issuerCert)
            throws GeneralSecurityException {
        try {
            X500Name name = new X500Name("CN=" + cn);
            X500Name issuerName = issuerCert == null ? name : new X500Name(issuerCert.getSubjectX500Principal()
                    .getName());
            Instant now = Instant.now();
            var builder = new JcaX509v3CertificateBuilder(issuerName, BigInteger.valueOf(now.toEpochMilli()),
                    Date.from(now.minusSeconds(60)), Date.from(now.plusSeconds(3600)), name, subject.getPublic());
            if (issuerCert == null) {
                builder.addExtension(org.bouncycastle.asn1.x509.Extension.basicConstraints, true,
                        new org.bouncycastle.asn1.x509.BasicConstraints(true));
            }
            return new JcaX509CertificateConverter().getCertificate(builder.build(
                    new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getPrivate())));
        } catch (org.bouncycastle.operator.OperatorCreationException | org.bouncycastle.cert.CertIOException e) {
            throw new GeneralSecurityException("cannot make a test certificate", e);
        }
    }
}
