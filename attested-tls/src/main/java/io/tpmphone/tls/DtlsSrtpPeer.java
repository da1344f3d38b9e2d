package io.tpmphone.tls;

import java.security.cert.X509Certificate;
import java.util.List;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.TlsContext;

/**
 * What the DTLS-SRTP client and server learn in their handshake, for {@link DtlsSrtpEndpoint} and
 * {@link DtlsSrtpAssociation}: one instance per association, filled in by Bouncy Castle's callbacks on the
 * handshake thread, then read. Both sides hold one (they extend different Bouncy Castle classes).
 */
final class DtlsSrtpPeer {
    /** Our request (with our nonce) if we announced attestation, else null. */
    AttestationRequest ours;
    /** The peer's request (with its nonce) if its hello announced attestation, else null. */
    AttestationRequest theirs;
    /** The SRTP profile both took, or 0 before it was negotiated. */
    int profile;
    /** The peer's certificate chain, after the fingerprint check; empty before. */
    volatile List<X509Certificate> peerChain = List.of();
    /** Why the handshake failed, if this side ended it on purpose; null otherwise. */
    volatile DtlsSrtpException.Reason failure;
    private byte[] srtpMaterial;
    private byte[] evidenceExporter;
    private volatile boolean peerClosed;

    /** Our TIK credentials, noting when the TIK does not sign ({@link DtlsSrtpException.Reason#LOCAL_SIGNATURE}). */
    org.bouncycastle.tls.TlsCredentialedSigner signing(TikCredentials tik) {
        return new org.bouncycastle.tls.TlsCredentialedSigner() {
            @Override
            public byte[] generateRawSignature(byte[] hash) throws java.io.IOException {
                try {
                    return tik.generateRawSignature(hash);
                } catch (java.io.IOException | RuntimeException e) {
                    failure = DtlsSrtpException.Reason.LOCAL_SIGNATURE;
                    throw e;
                }
            }

            @Override
            public org.bouncycastle.tls.SignatureAndHashAlgorithm getSignatureAndHashAlgorithm() {
                return tik.getSignatureAndHashAlgorithm();
            }

            @Override
            public org.bouncycastle.tls.crypto.TlsStreamSigner getStreamSigner() {
                return null;
            }

            @Override
            public org.bouncycastle.tls.Certificate getCertificate() {
                return tik.getCertificate();
            }
        };
    }

    /** Records why this side is ending the handshake, and passes the refusal on. */
    DtlsRefusal refused(DtlsRefusal e) {
        failure = e.reason;
        return e;
    }

    /**
     * Takes both exporter values: Bouncy Castle allows exporting only from {@code notifyHandshakeComplete} (it
     * forgets the master secret afterwards).
     */
    void handshakeComplete(TlsContext context) {
        srtpMaterial = context.exportKeyingMaterial(SrtpKeys.EXPORTER_LABEL, null,
                2 * (SrtpKeys.KEY_LENGTH + SrtpKeys.SALT_LENGTH));
        evidenceExporter = context.exportKeyingMaterial(Binder.DTLS_EXPORTER_LABEL, null,
                Binder.DTLS_EXPORTER_LENGTH);
    }

    void alertReceived(short description) {
        if (description == AlertDescription.close_notify) {
            peerClosed = true;
        }
    }

    /** The {@code EXTRACTOR-dtls_srtp} output, once, after the handshake (the caller wipes it). */
    byte[] takeSrtpMaterial() {
        byte[] m = srtpMaterial;
        srtpMaterial = null;
        return m;
    }

    /** This association's {@link Binder#DTLS_EXPORTER_LABEL} value, after the handshake (the caller wipes it). */
    byte[] evidenceExporter() {
        return evidenceExporter;
    }

    /** Whether the far end sent close_notify. */
    boolean peerClosed() {
        return peerClosed;
    }
}
