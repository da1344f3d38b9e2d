package io.tpmphone.tls;

import java.io.IOException;
import java.util.Hashtable;
import java.util.Objects;
import java.util.Optional;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.DefaultTlsClient;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.TlsAuthentication;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsExtensionsUtils;
import org.bouncycastle.tls.TlsServerCertificate;
import org.bouncycastle.tls.TlsSession;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * The client side of attested TLS 1.3 (docs/tls-attestation.md): offers TLS 1.3 only, sends
 * {@code attestation_request} in the ClientHello, appraises the server's evidence before the handshake completes,
 * and — when the server answered with its own request and asks for a certificate — presents its device certificate
 * with evidence bound to the server's nonce, CertificateVerify signed by the TIK. Never resumes a session (no PSK,
 * no 0-RTT). One instance per connection; {@link #peer()} is the result.
 */
public final class AttestedTlsClient extends DefaultTlsClient implements AttestedTlsPeer {
    private final AttestedTlsConfig config;
    private final AttestationRequest ours;
    private AttestationRequest servers;
    private volatile PeerAttestation peer;
    private volatile java.util.List<java.security.cert.X509Certificate> peerChain = java.util.List.of();

    public AttestedTlsClient(TlsCrypto crypto, AttestedTlsConfig config) {
        super(crypto);
        this.config = Objects.requireNonNull(config, "config");
        this.ours = Handshakes.request(config);
    }

    /** The server's attestation, once its Certificate message was processed. */
    @Override
    public Optional<PeerAttestation> peer() {
        return Optional.ofNullable(peer);
    }

    @Override
    public java.util.List<java.security.cert.X509Certificate> peerCertificates() {
        return peerChain;
    }

    @Override
    public Optional<HostIdentity> identity() {
        return config.identity();
    }

    @Override
    public int cipherSuite() {
        org.bouncycastle.tls.SecurityParameters sp = context == null ? null
                : context.getSecurityParametersConnection();
        return sp == null ? -1 : sp.getCipherSuite();
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
        return ProtocolVersion.TLSv13.only();
    }

    @Override
    public TlsSession getSessionToResume() {
        return null;
    }

    @Override
    public Hashtable<Integer, byte[]> getClientExtensions() throws IOException {
        @SuppressWarnings("unchecked")
        Hashtable<Integer, byte[]> ext = TlsExtensionsUtils.ensureExtensionsInitialised(super.getClientExtensions());
        if (config.attest()) {
            ext.put(AttestationRequest.EXTENSION_TYPE, ours.encode());
        }
        return ext;
    }

    @Override
    @SuppressWarnings("rawtypes") // the Bouncy Castle API is raw
    public void processServerExtensions(Hashtable serverExtensions) throws IOException {
        super.processServerExtensions(serverExtensions);
        servers = Handshakes.parseRequest(serverExtensions);
    }

    @Override
    public TlsAuthentication getAuthentication() {
        return new TlsAuthentication() {
            @Override
            public void notifyServerCertificate(TlsServerCertificate serverCertificate) throws IOException {
                peerChain = Handshakes.x509(serverCertificate.getCertificate());
                PeerAttestation p = Handshakes.appraise(config, context, serverCertificate.getCertificate(),
                        config.attest() ? ours.nonce() : null, true);
                peer = p;
                Handshakes.enforceFloor(config, p);
            }

            @Override
            public TlsCredentials getClientCredentials(CertificateRequest request) throws IOException {
                if (config.identity().isEmpty()) {
                    return null;
                }
                return new TikCredentials(Handshakes.certificate(context, request.getCertificateRequestContext(),
                        config.identity().get(), false, servers == null ? null : servers.nonce()),
                        config.identity().get());
            }
        };
    }
}
