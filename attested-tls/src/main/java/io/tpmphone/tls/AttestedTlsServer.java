package io.tpmphone.tls;

import java.io.IOException;
import java.util.Hashtable;
import java.util.Objects;
import java.util.Optional;
import java.util.Vector;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.ClientCertificateType;
import org.bouncycastle.tls.DefaultTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsExtensionsUtils;
import org.bouncycastle.tls.TlsSession;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * The server side of attested TLS 1.3 (docs/tls-attestation.md): no resumption; answers a client's
 * {@code attestation_request} in EncryptedExtensions with its own nonce, presents its device certificate with evidence
 * bound to the client's nonce (CertificateVerify by the TIK), requests the client's certificate, and appraises the
 * client's evidence. A client without the extension (an ordinary SIP phone) gets no extension back, since TLS forbids
 * unsolicited ones, and is rated UNATTESTED. A peer that speaks only TLS 1.2 (many deployed phones and PBXs) is
 * served with ECDHE-ECDSA and an AEAD cipher, and is UNATTESTED: evidence rides in TLS 1.3's certificate entries, so
 * an attested connection is always TLS 1.3. One instance per connection; {@link #peer()} is the result.
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

    /** TLS 1.3's suites, and for a TLS 1.2 peer only ECDHE with our ECDSA key and an AEAD cipher. */
    static final int[] SUITES = {
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    };

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
        return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    @Override
    protected int[] getSupportedCipherSuites() {
        return TlsUtils.getSupportedCipherSuites(getCrypto(), SUITES);
    }

    @Override
    public boolean requiresExtendedMasterSecret() {
        return true; // TLS 1.2 without it is open to the triple-handshake attack (RFC 7627); TLS 1.3 always has it
    }

    /** Whether this connection runs TLS 1.2 (a peer that cannot attest); false before the version is chosen. */
    private boolean tls12() {
        ProtocolVersion v = context == null ? null : context.getServerVersion();
        return v != null && !TlsUtils.isTLSv13(v);
    }

    @Override
    public String protocol() {
        ProtocolVersion v = context == null ? null : context.getServerVersion();
        return v == null ? "NONE" : TlsUtils.isTLSv13(v) ? "TLSv1.3" : "TLSv1.2";
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
        if (clients != null && !tls12()) {
            ext.put(AttestationRequest.EXTENSION_TYPE, ours.encode());
        }
        return ext;
    }

    @Override
    public TlsCredentials getCredentials() throws IOException {
        HostIdentity id = config.identity().orElseThrow();
        if (tls12()) {
            return new TikCredentials(DtlsSrtpHandshakes.certificate(context, id), id);
        }
        Certificate c = Handshakes.certificate(context, TlsUtils.EMPTY_BYTES, id, true,
                clients == null ? null : clients.nonce());
        return new TikCredentials(c, id);
    }

    @Override
    public CertificateRequest getCertificateRequest() throws IOException {
        Vector<?> algorithms = TlsUtils.getDefaultSupportedSignatureAlgorithms(context);
        if (tls12()) {
            return new CertificateRequest(new short[] {ClientCertificateType.ecdsa_sign,
                ClientCertificateType.rsa_sign}, algorithms, null);
        }
        return new CertificateRequest(TlsUtils.EMPTY_BYTES, algorithms, null, null);
    }

    @Override
    public void notifyClientCertificate(Certificate clientCertificate) throws IOException {
        peerChain = clientCertificate == null || clientCertificate.isEmpty() ? java.util.List.of()
                : Handshakes.x509(clientCertificate);
        PeerAttestation p = tls12()
                ? PeerAttestation.unattested(config.verifier().deviceHost(peerChain), config.clock().instant(),
                        "the peer speaks TLS 1.2 (attestation needs TLS 1.3)")
                : Handshakes.appraise(config, context, clientCertificate,
                        clients == null ? null : ours.nonce(), false, config.attest()
                                ? "the peer does not attest (its ClientHello had no attestation_request)"
                                : "attestation is off on this side");
        peer = p;
        Handshakes.enforceFloor(config, p);
    }
}
