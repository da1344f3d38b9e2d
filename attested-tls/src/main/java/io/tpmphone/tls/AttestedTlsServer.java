package io.tpmphone.tls;

import java.io.IOException;
import java.util.Hashtable;
import java.util.Objects;
import java.util.Optional;
import java.util.Vector;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.DefaultTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsExtensionsUtils;
import org.bouncycastle.tls.TlsSession;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * The server side of attested TLS 1.3 (docs/tls-attestation.md): TLS 1.3 only, no resumption; answers a client's
 * {@code attestation_request} in EncryptedExtensions with its own nonce, presents its device certificate with evidence
 * bound to the client's nonce (CertificateVerify by the TIK), requests the client's certificate, and appraises the
 * client's evidence. A client without the extension (an ordinary SIP phone) gets no extension back, since TLS forbids
 * unsolicited ones, and is rated UNATTESTED. One instance per connection; {@link #peer()} is the result.
 */
public final class AttestedTlsServer extends DefaultTlsServer implements AttestedTlsPeer {
    private final AttestedTlsConfig config;
    private final AttestationRequest ours;
    private AttestationRequest clients;
    private volatile PeerAttestation peer;
    private volatile java.util.List<java.security.cert.X509Certificate> peerChain = java.util.List.of();

    public AttestedTlsServer(TlsCrypto crypto, AttestedTlsConfig config) {
        super(crypto);
        this.config = Objects.requireNonNull(config, "config");
        if (config.identity().isEmpty()) {
            throw new IllegalArgumentException("a TLS server needs an identity (its device certificate)");
        }
        this.ours = Handshakes.request(config);
    }

    /** The client's attestation, once its Certificate message was processed. */
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
    public TlsSession getSessionToResume(byte[] sessionID) {
        return null;
    }

    @Override
    @SuppressWarnings("rawtypes") // the Bouncy Castle API is raw
    public void processClientExtensions(Hashtable clientExtensions) throws IOException {
        super.processClientExtensions(clientExtensions);
        clients = config.attest() ? Handshakes.parseRequest(clientExtensions) : null;
    }

    @Override
    public Hashtable<Integer, byte[]> getServerExtensions() throws IOException {
        @SuppressWarnings("unchecked")
        Hashtable<Integer, byte[]> ext = TlsExtensionsUtils.ensureExtensionsInitialised(super.getServerExtensions());
        if (clients != null) {
            ext.put(AttestationRequest.EXTENSION_TYPE, ours.encode());
        }
        return ext;
    }

    @Override
    public TlsCredentials getCredentials() throws IOException {
        HostIdentity id = config.identity().orElseThrow();
        Certificate c = Handshakes.certificate(context, TlsUtils.EMPTY_BYTES, id, true,
                clients == null ? null : clients.nonce());
        return new TikCredentials(c, id);
    }

    @Override
    public CertificateRequest getCertificateRequest() throws IOException {
        Vector<?> algorithms = TlsUtils.getDefaultSupportedSignatureAlgorithms(context);
        return new CertificateRequest(TlsUtils.EMPTY_BYTES, algorithms, null, null);
    }

    @Override
    public void notifyClientCertificate(Certificate clientCertificate) throws IOException {
        peerChain = clientCertificate == null || clientCertificate.isEmpty() ? java.util.List.of()
                : Handshakes.x509(clientCertificate);
        PeerAttestation p = Handshakes.appraise(config, context, clientCertificate,
                clients == null ? null : ours.nonce(), false, config.attest()
                        ? "the peer does not attest (its ClientHello had no attestation_request)"
                        : "attestation is off on this side");
        peer = p;
        Handshakes.enforceFloor(config, p);
    }
}
