package io.tpmphone.tls;

import java.security.cert.X509Certificate;
import java.util.List;

/** What the DTLS-SRTP client and server learn in their handshake, for {@link DtlsSrtpEndpoint}. */
interface DtlsSrtpPeer {
    /** Our request (with our nonce) if we announced attestation, else null. */
    AttestationRequest ours();

    /** The peer's request (with its nonce) if its hello announced attestation, else null. */
    AttestationRequest theirs();

    /** The SRTP profile both took, or 0 before it was negotiated. */
    int profile();

    /** The peer's certificate chain, after the fingerprint check; empty before. */
    List<X509Certificate> peerChain();

    /** The {@code EXTRACTOR-dtls_srtp} output, once, after the handshake (the caller wipes it). */
    byte[] takeSrtpMaterial();

    /** This association's {@link Binder#DTLS_EXPORTER_LABEL} value, after the handshake. */
    byte[] evidenceExporter();

    /** Whether the far end sent close_notify. */
    boolean peerClosed();

    /** Why the handshake failed, if this side ended it on purpose; null otherwise. */
    DtlsSrtpException.Reason failure();
}
