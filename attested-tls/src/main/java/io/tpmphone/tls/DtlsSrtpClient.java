package io.tpmphone.tls;

import java.io.IOException;
import java.security.cert.X509Certificate;
import java.util.Hashtable;
import java.util.List;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.DefaultTlsClient;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.TlsAuthentication;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsExtensionsUtils;
import org.bouncycastle.tls.TlsSRTPUtils;
import org.bouncycastle.tls.TlsServerCertificate;
import org.bouncycastle.tls.TlsSession;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * The DTLS-SRTP client ({@code a=setup:active}): offers {@code use_srtp} and, when this side attests, the
 * {@code attestation_request} extension with its nonce; checks the server's certificate against the SDP fingerprint
 * and answers the certificate request with the device certificate (the TIK signs CertificateVerify). One instance per
 * association.
 */
final class DtlsSrtpClient extends DefaultTlsClient {
    private final DtlsSrtpConfig config;
    private final DtlsSrtpPeer state = new DtlsSrtpPeer();

    DtlsSrtpClient(TlsCrypto crypto, DtlsSrtpConfig config) {
        super(crypto);
        this.config = config;
        state.ours = config.tls().attest() ? Handshakes.request(config.tls()) : null;
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
        return DtlsSrtpHandshakes.supported(getCrypto(), DtlsSrtpHandshakes.CLIENT_SUITES);
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
    public TlsSession getSessionToResume() {
        return null;
    }

    @Override
    public Hashtable<Integer, byte[]> getClientExtensions() throws IOException {
        @SuppressWarnings("unchecked")
        Hashtable<Integer, byte[]> ext = TlsExtensionsUtils.ensureExtensionsInitialised(super.getClientExtensions());
        TlsSRTPUtils.addUseSRTPExtension(ext, DtlsSrtpHandshakes.offer());
        if (state.ours != null) {
            ext.put(AttestationRequest.EXTENSION_TYPE, state.ours.encode());
        }
        return ext;
    }

    @Override
    @SuppressWarnings("rawtypes") // the Bouncy Castle API is raw
    public void processServerExtensions(Hashtable serverExtensions) throws IOException {
        super.processServerExtensions(serverExtensions);
        try {
            state.profile = DtlsSrtpHandshakes.chosenProfile(serverExtensions);
        } catch (DtlsRefusal e) {
            throw state.refused(e);
        }
        // Only an answer to our own request is possible: Bouncy Castle refuses unsolicited server extensions.
        state.theirs = Handshakes.parseRequest(serverExtensions);
    }

    @Override
    public TlsAuthentication getAuthentication() {
        return new TlsAuthentication() {
            @Override
            public void notifyServerCertificate(TlsServerCertificate serverCertificate) throws IOException {
                state.peerChain = checked(serverCertificate.getCertificate());
            }

            @Override
            public TlsCredentials getClientCredentials(CertificateRequest request) throws IOException {
                HostIdentity id = config.tls().identity().orElseThrow();
                return state.signing(new TikCredentials(DtlsSrtpHandshakes.certificate(context, id), id));
            }
        };
    }

    private List<X509Certificate> checked(org.bouncycastle.tls.Certificate c) throws IOException {
        try {
            return DtlsSrtpHandshakes.checkFingerprint(c, config.remoteFingerprints());
        } catch (DtlsRefusal e) {
            throw state.refused(e);
        }
    }
}
