package io.tpmphone.tls;

import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.Hashtable;
import java.util.List;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.TlsContext;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsSRTPUtils;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.UseSRTPData;
import org.bouncycastle.tls.crypto.TlsCertificate;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * What the DTLS-SRTP client and server share: DTLS 1.2 only (Bouncy Castle has no DTLS 1.3), AEAD suites with ECDHE,
 * extended master secret required, one SRTP profile, no resumption, our device certificate chain, and the check of the
 * peer's certificate against the SDP fingerprint — the only thing that authenticates a standard DTLS-SRTP peer.
 */
final class DtlsSrtpHandshakes {
    static final ProtocolVersion[] VERSIONS = ProtocolVersion.DTLSv12.only();
    /** Our certificate is ECDSA (the TIK), so as a server we can only take ECDSA suites. */
    static final int[] SERVER_SUITES = {
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    };
    /** As a client we also take a standard peer's RSA certificate. */
    static final int[] CLIENT_SUITES = {
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    };
    static final int[] SRTP_PROFILES = {SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80};
    /** A device chain is two certificates; a standard peer's is one self-signed certificate. */
    static final int MAX_CHAIN = 4;
    static final int MAX_HANDSHAKE_MESSAGE = 16 * 1024;

    private DtlsSrtpHandshakes() {
    }

    static int[] supported(TlsCrypto crypto, int[] suites) {
        return TlsUtils.getSupportedCipherSuites(crypto, suites);
    }

    /** Our Certificate message (TLS 1.2 form: no per-entry extensions). */
    static Certificate certificate(TlsContext context, HostIdentity identity) throws IOException {
        List<X509Certificate> chain = identity.certificateChain();
        if (chain.isEmpty()) {
            throw new TlsFatalAlert(AlertDescription.internal_error, "this host has no device certificate yet");
        }
        TlsCertificate[] certs = new TlsCertificate[chain.size()];
        for (int i = 0; i < certs.length; i++) {
            try {
                certs[i] = context.getCrypto().createCertificate(chain.get(i).getEncoded());
            } catch (GeneralSecurityException e) {
                throw new TlsFatalAlert(AlertDescription.internal_error, "cannot encode our certificate", e);
            }
        }
        return new Certificate(certs);
    }

    /**
     * The peer's chain, after checking that its end-entity certificate is one the SDP fingerprints name (RFC 8122 §5:
     * one of those under our most preferred hash function among the offered ones).
     *
     * @throws TlsFatalAlert {@code bad_certificate} when it is not, or when there is no certificate
     */
    static List<X509Certificate> checkFingerprint(Certificate peer, List<DtlsFingerprint> expected)
            throws IOException {
        if (peer == null || peer.isEmpty()) {
            throw new DtlsRefusal(AlertDescription.bad_certificate, DtlsSrtpException.Reason.NO_CERTIFICATE,
                    "the peer presented no certificate (DTLS-SRTP needs one on both sides)");
        }
        if (peer.getLength() > MAX_CHAIN) {
            throw new DtlsRefusal(AlertDescription.bad_certificate, DtlsSrtpException.Reason.HANDSHAKE_FAILED,
                    "the peer's chain has " + peer.getLength() + " certificates, more than " + MAX_CHAIN);
        }
        if (!DtlsFingerprint.matchesAny(expected, peer.getCertificateAt(0).getEncoded())) {
            throw new DtlsRefusal(AlertDescription.bad_certificate, DtlsSrtpException.Reason.FINGERPRINT_MISMATCH,
                    "the peer's certificate is not one its SDP a=fingerprint attributes name (checked against its "
                    + DtlsFingerprint.preferredFunction(expected) + " fingerprints)");
        }
        return Handshakes.x509(peer);
    }

    /** The client's offered profile we take, or a handshake failure. */
    static int chooseProfile(Hashtable<?, ?> clientExtensions) throws IOException {
        UseSRTPData offered = TlsSRTPUtils.getUseSRTPExtension(clientExtensions);
        if (offered == null) {
            throw new DtlsRefusal(AlertDescription.handshake_failure, DtlsSrtpException.Reason.SRTP_NEGOTIATION,
                    "the peer did not offer use_srtp");
        }
        for (int p : offered.getProtectionProfiles()) {
            for (int ours : SRTP_PROFILES) {
                if (p == ours) {
                    return p;
                }
            }
        }
        throw new DtlsRefusal(AlertDescription.handshake_failure, DtlsSrtpException.Reason.SRTP_NEGOTIATION,
                "the peer offered no SRTP profile we support (we take SRTP_AES128_CM_HMAC_SHA1_80)");
    }

    /** The server's chosen profile: exactly one, one we offered, and no MKI (we sent none). */
    static int chosenProfile(Hashtable<?, ?> serverExtensions) throws IOException {
        UseSRTPData chosen = TlsSRTPUtils.getUseSRTPExtension(serverExtensions);
        if (chosen == null) {
            throw new DtlsRefusal(AlertDescription.handshake_failure, DtlsSrtpException.Reason.SRTP_NEGOTIATION,
                    "the peer did not answer use_srtp");
        }
        int[] p = chosen.getProtectionProfiles();
        if (p.length != 1 || p[0] != SrtpKeys.SRTP_AES128_CM_HMAC_SHA1_80 || chosen.getMki().length != 0) {
            throw new DtlsRefusal(AlertDescription.illegal_parameter, DtlsSrtpException.Reason.SRTP_NEGOTIATION,
                    "the peer's use_srtp answer is not one profile we offered without MKI");
        }
        return p[0];
    }

    static UseSRTPData offer() {
        return new UseSRTPData(SRTP_PROFILES.clone(), TlsUtils.EMPTY_BYTES);
    }
}
