package io.tpmphone.tls;

import io.tpmphone.attestation.HashAlgorithm;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * The qualifying data of the quote each side sends: {@code SHA-256(label || client_random || server_random ||
 * SHA-256(TIK SubjectPublicKeyInfo) || peer nonce)} (DESIGN §3). The randoms tie the evidence to this handshake (a
 * relaying man-in-the-middle has other randoms on each leg), the SPKI to the key that signs this handshake's
 * CertificateVerify (evidence made for another TIK does not verify), and the peer's nonce to this peer's request.
 * The label differs per direction, so the client's evidence can never stand in for the server's.
 */
public final class Binder {
    public static final String CLIENT_LABEL = "tpmphone attested TLS client evidence v1";
    public static final String SERVER_LABEL = "tpmphone attested TLS server evidence v1";

    public static final String DTLS_CLIENT_LABEL = "tpmphone attested DTLS-SRTP client evidence v1";
    public static final String DTLS_SERVER_LABEL = "tpmphone attested DTLS-SRTP server evidence v1";
    /** RFC 5705 exporter label of the association value a DTLS binder covers (an EXPORTER- label is private use). */
    public static final String DTLS_EXPORTER_LABEL = "EXPORTER-tpmphone-evidence-v1";
    public static final int DTLS_EXPORTER_LENGTH = 32;

    private Binder() {
    }

    /** The binder for evidence sent by the client ({@code server} false) or the server ({@code server} true). */
    public static byte[] compute(boolean server, byte[] clientRandom, byte[] serverRandom, byte[] tikSpki,
                                 byte[] peerNonce) {
        Objects.requireNonNull(clientRandom, "clientRandom");
        Objects.requireNonNull(serverRandom, "serverRandom");
        Objects.requireNonNull(tikSpki, "tikSpki");
        Objects.requireNonNull(peerNonce, "peerNonce");
        if (clientRandom.length != 32 || serverRandom.length != 32) {
            throw new IllegalArgumentException("TLS randoms are 32 bytes");
        }
        byte[] label = (server ? SERVER_LABEL : CLIENT_LABEL).getBytes(StandardCharsets.US_ASCII);
        return HashAlgorithm.SHA256.digest(label, clientRandom, serverRandom, HashAlgorithm.SHA256.digest(tikSpki),
                peerNonce);
    }

    /**
     * The binder of evidence sent over a DTLS-SRTP association: {@code SHA-256(label || exporter || SHA-256(SPKI of
     * the certificate that signed the sender's handshake) || peer nonce)}, where {@code exporter} is this
     * association's {@link #DTLS_EXPORTER_LABEL} value (with extended master secret it covers the whole handshake,
     * randoms and certificates included, so a relay that terminates DTLS has another one on each leg).
     */
    public static byte[] computeDtls(boolean server, byte[] exporter, byte[] tikSpki, byte[] peerNonce) {
        Objects.requireNonNull(exporter, "exporter");
        Objects.requireNonNull(tikSpki, "tikSpki");
        Objects.requireNonNull(peerNonce, "peerNonce");
        if (exporter.length != DTLS_EXPORTER_LENGTH) {
            throw new IllegalArgumentException("the DTLS exporter value is " + DTLS_EXPORTER_LENGTH + " bytes");
        }
        byte[] label = (server ? DTLS_SERVER_LABEL : DTLS_CLIENT_LABEL).getBytes(StandardCharsets.US_ASCII);
        return HashAlgorithm.SHA256.digest(label, exporter, HashAlgorithm.SHA256.digest(tikSpki), peerNonce);
    }
}
