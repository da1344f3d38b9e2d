package io.tpmphone.tls;

import java.io.IOException;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.HashAlgorithm;
import org.bouncycastle.tls.SignatureAlgorithm;
import org.bouncycastle.tls.SignatureAndHashAlgorithm;
import org.bouncycastle.tls.TlsCredentialedSigner;
import org.bouncycastle.tls.crypto.TlsStreamSigner;

/**
 * TLS credentials whose private key is the TIK inside the TPM: {@link #getStreamSigner()} returns null, so Bouncy
 * Castle hashes the TLS 1.3 CertificateVerify content itself and asks {@link #generateRawSignature(byte[])} for an
 * ECDSA signature of that SHA-256 hash — one {@code TPM2_Sign} (PITFALLS).
 */
final class TikCredentials implements TlsCredentialedSigner {
    private final Certificate certificate;
    private final HostIdentity identity;

    TikCredentials(Certificate certificate, HostIdentity identity) {
        this.certificate = certificate;
        this.identity = identity;
    }

    @Override
    public Certificate getCertificate() {
        return certificate;
    }

    @Override
    public byte[] generateRawSignature(byte[] hash) throws IOException {
        return identity.sign(hash);
    }

    @Override
    public SignatureAndHashAlgorithm getSignatureAndHashAlgorithm() {
        return SignatureAndHashAlgorithm.getInstance(HashAlgorithm.sha256, SignatureAlgorithm.ecdsa);
    }

    @Override
    public TlsStreamSigner getStreamSigner() {
        return null;
    }
}
