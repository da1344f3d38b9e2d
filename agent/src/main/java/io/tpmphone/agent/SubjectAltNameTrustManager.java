package io.tpmphone.agent;

import io.tpmphone.attestation.UntrustedText;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Trust in a private CA's server certificates, for the names in their subject alternative names only. The JDK's
 * HTTPS host-name check ({@code HostnameChecker}, RFC 2818 §3.1) takes the subject's common name when a certificate has
 * no DNS name in its SAN, so any SAN-less certificate the CA ever issued with {@code CN=localhost} (or a server's
 * name) would pass for it. This manager runs the JDK's chain and host-name checks and then refuses a server
 * certificate without a SAN entry of the URL's kind: a DNS name for a host name, an IP address for an IP literal.
 * Only for the client side. Thread-safe (stateless beyond the delegate, which is).
 */
final class SubjectAltNameTrustManager extends X509ExtendedTrustManager {
    private static final int DNS_NAME = 2;
    private static final int IP_ADDRESS = 7;

    private final X509ExtendedTrustManager delegate;

    SubjectAltNameTrustManager(X509ExtendedTrustManager delegate) {
        this.delegate = Objects.requireNonNull(delegate, "delegate");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        delegate.checkServerTrusted(chain, authType, engine);
        requireSubjectAltName(chain[0], engine == null ? null : engine.getPeerHost());
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        delegate.checkServerTrusted(chain, authType, socket);
        String host = null;
        if (socket instanceof SSLSocket s && s.getHandshakeSession() != null) {
            host = s.getHandshakeSession().getPeerHost();
        }
        requireSubjectAltName(chain[0], host);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        delegate.checkServerTrusted(chain, authType);
        requireSubjectAltName(chain[0], null);
    }

    /**
     * Refuses {@code leaf} unless its SAN holds an entry of the kind {@code host} is (any DNS name or IP address when
     * the host is not known).
     */
    static void requireSubjectAltName(X509Certificate leaf, String host) throws CertificateException {
        boolean ip = host != null && isIpLiteral(host);
        Collection<List<?>> names;
        try {
            names = leaf.getSubjectAlternativeNames();
        } catch (CertificateParsingException e) {
            throw new CertificateException("the attestation server's certificate has an unreadable"
                    + " subjectAltName: " + e.getMessage(), e);
        }
        if (names != null) {
            for (List<?> n : names) {
                Object type = n.get(0);
                if (type instanceof Integer t && (host == null ? t == DNS_NAME || t == IP_ADDRESS
                        : t == (ip ? IP_ADDRESS : DNS_NAME))) {
                    return;
                }
            }
        }
        throw new CertificateException("the attestation server's certificate for "
                + UntrustedText.forTerminal(leaf.getSubjectX500Principal().getName(), 200) + " has no "
                + (host == null ? "DNS name or IP address" : ip ? "IP address" : "DNS name")
                + " in its subjectAltName" + (host == null ? "" : " for "
                + UntrustedText.forTerminal(host, 200)) + "; the common name is not taken for the host name when a"
                + " CA is trusted: have the CA issue the instance a certificate with subjectAltName="
                + (ip ? "IP:" : "DNS:") + (host == null ? "NAME" : UntrustedText.forTerminal(host, 200)));
    }

    private static boolean isIpLiteral(String host) {
        return host.contains(":") || host.matches("[0-9.]+");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        throw new CertificateException("the attestation client does not accept client certificates");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        throw new CertificateException("the attestation client does not accept client certificates");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("the attestation client does not accept client certificates");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return delegate.getAcceptedIssuers();
    }
}
