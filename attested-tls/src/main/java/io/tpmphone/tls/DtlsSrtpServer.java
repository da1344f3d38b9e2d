package io.tpmphone.tls;

import java.io.IOException;
import java.util.Hashtable;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.ClientCertificateType;
import org.bouncycastle.tls.DefaultTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsExtensionsUtils;
import org.bouncycastle.tls.TlsSRTPUtils;
import org.bouncycastle.tls.TlsSession;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.UseSRTPData;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * The DTLS-SRTP server ({@code a=setup:passive}): takes the client's {@code use_srtp} offer, answers an
 * {@code attestation_request} with its own nonce when this side attests (a ServerHello extension may only answer
 * one the client sent, so a standard client gets none), presents the device certificate (the TIK signs
 * ServerKeyExchange), requires the client's certificate and checks it against the SDP fingerprint. One instance per
 * association.
 */
final class DtlsSrtpServer extends DefaultTlsServer {
    private final DtlsSrtpConfig config;
    private final DtlsSrtpPeer state = new DtlsSrtpPeer();

    DtlsSrtpServer(TlsCrypto crypto, DtlsSrtpConfig config) {
        super(crypto);
        this.config = config;
    }

    /** What this handshake learned. */
    DtlsSrtpPeer state() {
        return state;
    }

    @Override
    public void notifyAlertReceived(short alertLevel, short alertDescription) {
        super.notifyAlertReceived(alertLevel, alertDescription);
        state.alertReceived(alertDescription);
    }

    /** Bouncy Castle allows exporting only here (it forgets the master secret afterwards). */
    @Override
    public void notifyHandshakeComplete() throws java.io.IOException {
        super.notifyHandshakeComplete();
        state.handshakeComplete(context);
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
        return DtlsSrtpHandshakes.VERSIONS;
    }

    @Override
    protected int[] getSupportedCipherSuites() {
        return DtlsSrtpHandshakes.supported(getCrypto(), DtlsSrtpHandshakes.SERVER_SUITES);
    }

    @Override
    public boolean requiresExtendedMasterSecret() {
        return true;
    }

    @Override
    public int getHandshakeTimeoutMillis() {
        return (int) Math.min(Integer.MAX_VALUE, config.handshakeTimeout().toMillis());
    }

    @Override
    public int getMaxHandshakeMessageSize() {
        return DtlsSrtpHandshakes.MAX_HANDSHAKE_MESSAGE;
    }

    @Override
    public TlsSession getSessionToResume(byte[] sessionID) {
        return null;
    }

    @Override
    @SuppressWarnings("rawtypes") // the Bouncy Castle API is raw
    public void processClientExtensions(Hashtable clientExtensions) throws IOException {
        super.processClientExtensions(clientExtensions);
        try {
            state.profile = DtlsSrtpHandshakes.chooseProfile(clientExtensions);
        } catch (DtlsRefusal e) {
            throw state.refused(e);
        }
        state.theirs = Handshakes.parseRequest(clientExtensions);
        state.ours = state.theirs != null && config.tls().attest() ? Handshakes.request(config.tls()) : null;
    }

    @Override
    public Hashtable<Integer, byte[]> getServerExtensions() throws IOException {
        @SuppressWarnings("unchecked")
        Hashtable<Integer, byte[]> ext = TlsExtensionsUtils.ensureExtensionsInitialised(super.getServerExtensions());
        TlsSRTPUtils.addUseSRTPExtension(ext, new UseSRTPData(new int[] {state.profile}, TlsUtils.EMPTY_BYTES));
        if (state.ours != null) {
            ext.put(AttestationRequest.EXTENSION_TYPE, state.ours.encode());
        }
        return ext;
    }

    @Override
    public TlsCredentials getCredentials() throws IOException {
        HostIdentity id = config.tls().identity().orElseThrow();
        return state.signing(new TikCredentials(DtlsSrtpHandshakes.certificate(context, id), id));
    }

    @Override
    public CertificateRequest getCertificateRequest() {
        return new CertificateRequest(new short[] {ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign},
                TlsUtils.getDefaultSupportedSignatureAlgorithms(context), null);
    }

    @Override
    public void notifyClientCertificate(Certificate clientCertificate) throws IOException {
        try {
            state.peerChain = DtlsSrtpHandshakes.checkFingerprint(clientCertificate, config.remoteFingerprints());
        } catch (DtlsRefusal e) {
            throw state.refused(e);
        }
    }
}
