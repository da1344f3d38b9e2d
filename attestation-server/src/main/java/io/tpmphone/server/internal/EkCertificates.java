package io.tpmphone.server.internal;

import java.io.ByteArrayInputStream;
import java.security.GeneralSecurityException;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertStore;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.PKIXCertPathBuilderResult;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Date;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Checks EK certificates against the TPM manufacturers' CAs the server trusts: self-signed certificates are trust
 * anchors, the others intermediates for path building. Revocation is not checked (TPM vendors publish no OCSP; CRL
 * distribution points are often dead) — document and configure the trusted set narrowly instead. Immutable.
 */
public final class EkCertificates {
    /** tcg-kp-EKCertificate (TCG EK Credential Profile). */
    static final String EK_CERTIFICATE_EKU = "2.23.133.8.1";

    private final Set<TrustAnchor> anchors = new HashSet<>();
    private final List<X509Certificate> intermediates = new ArrayList<>();
    private final Clock clock;

    public EkCertificates(List<X509Certificate> trusted, Clock clock) {
        this.clock = clock;
        for (X509Certificate c : trusted) {
            if (c.getSubjectX500Principal().equals(c.getIssuerX500Principal())) {
                anchors.add(new TrustAnchor(c, null));
            } else {
                intermediates.add(c);
            }
        }
    }

    public boolean isConfigured() {
        return !anchors.isEmpty();
    }

    /** Parses {@code der} and builds a path to a trusted root; throws with the reason when there is none. */
    public X509Certificate validate(byte[] der) throws GeneralSecurityException {
        if (anchors.isEmpty()) {
            throw new GeneralSecurityException("no trusted EK CA is configured (server --ek-ca FILE)");
        }
        X509Certificate cert = (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(der));
        // TCG EK Credential Profile: the EKU tcg-kp-EKCertificate; an EK decrypts (keyEncipherment for RSA,
        // keyAgreement for ECC). Some manufacturers omit these extensions, so they are enforced when present.
        List<String> eku = cert.getExtendedKeyUsage();
        if (eku != null && !eku.contains(EK_CERTIFICATE_EKU)) {
            throw new GeneralSecurityException("the certificate's extended key usage " + eku + " lacks "
                    + EK_CERTIFICATE_EKU + " (tcg-kp-EKCertificate): not an EK certificate");
        }
        boolean[] usage = cert.getKeyUsage();
        if (usage != null && !usage[2] && !usage[4]) {
            throw new GeneralSecurityException("the certificate allows neither keyEncipherment nor keyAgreement:"
                    + " not an EK certificate");
        }
        X509CertSelector target = new X509CertSelector();
        target.setCertificate(cert);
        PKIXBuilderParameters params = new PKIXBuilderParameters(anchors, target);
        params.setRevocationEnabled(false);
        params.setDate(Date.from(clock.instant()));
        List<X509Certificate> store = new ArrayList<>(intermediates);
        store.add(cert);
        params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(store)));
        PKIXCertPathBuilderResult result = (PKIXCertPathBuilderResult) CertPathBuilder.getInstance("PKIX")
                .build(params);
        if (result.getTrustAnchor() == null) {
            throw new GeneralSecurityException("EK certificate does not chain to a trusted CA");
        }
        return cert;
    }
}
