package io.tpmphone.tls;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Optional;
import org.bouncycastle.tls.DTLSClientProtocol;
import org.bouncycastle.tls.DTLSServerProtocol;
import org.bouncycastle.tls.DTLSTransport;
import org.bouncycastle.tls.DatagramTransport;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.bouncycastle.tls.TlsTimeoutException;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sets up one DTLS-SRTP association with end-to-end evidence (docs/tls-attestation.md, "End to end over DTLS-SRTP"):
 * <ol>
 *   <li>the DTLS 1.2 handshake, with {@code use_srtp}, extended master secret, the device certificate on both sides
 *       (the TIK signs), the peer's certificate checked against the SDP fingerprint, and — when both announce it in
 *       their hellos — each side's nonce in the {@code attestation_request} extension;</li>
 *   <li>the evidence exchange as DTLS application data: each attesting side sends a fresh quote whose qualifying data
 *       is {@link Binder#computeDtls} over this association's exporter value, its own SPKI and the peer's nonce,
 *       with its passport;</li>
 *   <li>the appraisal of the far end, exactly as for attested TLS ({@link PassportVerifier}).</li>
 * </ol>
 * A peer that does not announce attestation (a standard DTLS-SRTP phone) is {@code UNATTESTED}; its fingerprint is
 * still checked. The caller must not send or accept SRTP before its call policy accepted the result. Blocking; one
 * call per association.
 */
public final class DtlsSrtpEndpoint {
    private static final Logger LOG = LoggerFactory.getLogger(DtlsSrtpEndpoint.class);
    private static final int FIRST_RESEND_MILLIS = 100;
    private static final int MAX_RESEND_MILLIS = 1000;

    private final TlsCrypto crypto;

    /**
     * Bouncy Castle's JCA provider for the handshake's crypto: a standard phone's RSA certificate signs its
     * CertificateVerify with RSA-PSS ({@code rsa_pss_rsae_sha256}, what OpenSSL and so baresip choose), whose JCA name
     * Bouncy Castle asks for ({@code SHA256WITHRSAANDMGF1}) only its own provider knows; and it is much faster than
     * SunEC for ECDSA (PITFALLS). One instance for all endpoints: making a provider is slow.
     */
    private static final java.security.Provider PROVIDER = new org.bouncycastle.jce.provider.BouncyCastleProvider();

    public DtlsSrtpEndpoint() {
        this(new JcaTlsCryptoProvider().setProvider(PROVIDER).create(new SecureRandom()));
    }

    public DtlsSrtpEndpoint(TlsCrypto crypto) {
        this.crypto = crypto;
    }

    /**
     * Runs the handshake as DTLS client ({@code client} true, {@code a=setup:active}) or server over
     * {@code transport}, then the evidence exchange and the appraisal.
     *
     * @throws DtlsSrtpException when no association came about; its reason says why
     * @throws InterruptedIOException when the thread was interrupted
     */
    public DtlsSrtpAssociation establish(DatagramTransport transport, boolean client, DtlsSrtpConfig config)
            throws DtlsSrtpException, InterruptedIOException {
        DtlsSrtpClient dtlsClient = client ? new DtlsSrtpClient(crypto, config) : null;
        DtlsSrtpServer dtlsServer = client ? null : new DtlsSrtpServer(crypto, config);
        DtlsSrtpPeer peer = client ? dtlsClient.state() : dtlsServer.state();
        DTLSTransport dtls = handshake(transport, dtlsClient, dtlsServer, peer);
        boolean done = false;
        SrtpKeys keys = null;
        byte[] exporter = peer.evidenceExporter();
        try {
            keys = SrtpKeys.fromExporter(peer.profile, peer.takeSrtpMaterial(), client);
            boolean attesting = peer.ours != null && peer.theirs != null;
            byte[] ourEvidence = attesting ? ourEvidence(config, client, exporter, peer.theirs.nonce()) : null;
            DtlsEvidenceExchange exchange = attesting
                    ? new DtlsEvidenceExchange(ourEvidence, true, dtls.getSendLimit()) : null;
            PeerAttestation result;
            byte[] digest = null;
            if (attesting) {
                byte[] theirEvidence = exchange(dtls, exchange, config);
                digest = evidenceDigest(client ? ourEvidence : theirEvidence, client ? theirEvidence : ourEvidence);
                // The far end is the server exactly when we are the client: its evidence carries the server label.
                result = appraise(config, peer.peerChain, theirEvidence, Binder.computeDtls(client, exporter,
                        peer.peerChain.get(0).getPublicKey().getEncoded(), peer.ours.nonce()));
            } else {
                result = PeerAttestation.unattested(config.tls().verifier().deviceHost(peer.peerChain),
                        config.tls().clock().instant(), peer.ours == null && (client || peer.theirs != null)
                                ? "attestation is off on this side"
                                : "the far end does not attest (its DTLS hello had no attestation_request)");
            }
            LOG.info("DTLS-SRTP far end: {}", result.display());
            DtlsSrtpAssociation association = new DtlsSrtpAssociation(dtls, exchange, keys, result,
                    peer.peerChain, client, peer, digest);
            done = true;
            return association;
        } catch (IOException e) {
            if (e instanceof InterruptedIOException i) {
                throw i;
            }
            throw new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_FAILED,
                    "the association failed after its handshake: " + e.getClass().getSimpleName(), e);
        } finally {
            java.util.Arrays.fill(exporter, (byte) 0); // the binders are computed; nothing else needs it
            if (!done) {
                if (keys != null) {
                    keys.destroy();
                }
                try {
                    dtls.close();
                } catch (IOException e) {
                    LOG.debug("closing a failed DTLS-SRTP association: {}", e.toString());
                }
            }
        }
    }

    private static DTLSTransport handshake(DatagramTransport transport, DtlsSrtpClient client, DtlsSrtpServer server,
                                           DtlsSrtpPeer peer) throws DtlsSrtpException, InterruptedIOException {
        try {
            return client != null ? new DTLSClientProtocol().connect(client, transport)
                    : new DTLSServerProtocol().accept(server, transport);
        } catch (TlsTimeoutException e) {
            throw new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_TIMEOUT,
                    "the DTLS handshake did not finish in time", e);
        } catch (InterruptedIOException e) {
            throw e;
        } catch (TlsFatalAlertReceived e) {
            throw new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_FAILED, "the far end ended the DTLS "
                    + "handshake with alert " + org.bouncycastle.tls.AlertDescription.getText(e.getAlertDescription()),
                    e);
        } catch (TlsFatalAlert e) {
            DtlsSrtpException.Reason reason = peer.failure != null ? peer.failure
                    : e instanceof DtlsRefusal r ? r.reason : DtlsSrtpException.Reason.HANDSHAKE_FAILED;
            throw new DtlsSrtpException(reason, reason == DtlsSrtpException.Reason.LOCAL_SIGNATURE
                    ? "this host's TPM did not sign the DTLS handshake (its state is not one the attestation server"
                    + " approved)" : "the DTLS handshake failed: " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            if (peer.failure == DtlsSrtpException.Reason.LOCAL_SIGNATURE) {
                throw new DtlsSrtpException(peer.failure, "this host's TPM did not sign the DTLS handshake (its state"
                        + " is not one the attestation server approved): " + e.getClass().getSimpleName(), e);
            }
            throw new DtlsSrtpException(DtlsSrtpException.Reason.HANDSHAKE_FAILED, "the DTLS handshake failed: "
                    + e.getClass().getSimpleName(), e);
        }
    }

    /**
     * SHA-256 over both evidence structures, the DTLS client's first, each with a 4-byte length: the same value on both
     * sides of one association, so both sides' call decisions can be joined (and neither side's evidence read back
     * from it).
     */
    static byte[] evidenceDigest(byte[] clientEvidence, byte[] serverEvidence) {
        try {
            java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
            for (byte[] e : new byte[][] {clientEvidence, serverEvidence}) {
                md.update(java.nio.ByteBuffer.allocate(4).putInt(e.length).array());
                md.update(e);
            }
            return md.digest();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    private static byte[] ourEvidence(DtlsSrtpConfig config, boolean client, byte[] exporter, byte[] peerNonce)
            throws DtlsSrtpException {
        HostIdentity id = config.tls().identity().orElseThrow();
        try {
            List<X509Certificate> chain = id.certificateChain();
            byte[] binder = Binder.computeDtls(!client, exporter, chain.get(0).getPublicKey().getEncoded(), peerNonce);
            return id.evidence(binder).encode();
        } catch (IOException | RuntimeException e) {
            throw new DtlsSrtpException(DtlsSrtpException.Reason.LOCAL_EVIDENCE, "this side could not make its "
                    + "evidence: " + e.getClass().getSimpleName(), e);
        }
    }

    /** Runs the evidence exchange to its end or its deadline; returns the peer's evidence. */
    static byte[] exchange(DatagramTransport dtls, DtlsEvidenceExchange x, DtlsSrtpConfig config)
            throws DtlsSrtpException, IOException {
        long start = System.nanoTime();
        long deadline = start + config.evidenceTimeout().toNanos();
        long resendAt = start;
        int interval = FIRST_RESEND_MILLIS;
        byte[] buffer = new byte[Math.max(1, dtls.getReceiveLimit())];
        while (!x.done()) {
            long now = System.nanoTime();
            if (now - deadline >= 0) {
                if (x.peerEvidence().isPresent()) {
                    // Ours was not acknowledged: the far end decides about us on its own deadline.
                    LOG.debug("our evidence was not acknowledged within {} ms", config.evidenceTimeout().toMillis());
                    break;
                }
                throw new DtlsSrtpException(DtlsSrtpException.Reason.EVIDENCE_MISSING, "the far end announced "
                        + "attestation but its evidence did not arrive within " + config.evidenceTimeout().toMillis()
                        + " ms (" + x.progress() + "; stripped or lost)");
            }
            int n;
            try {
                if (now - resendAt >= 0) {
                    for (byte[] r : x.unacknowledgedFragments()) {
                        dtls.send(r, 0, r.length);
                    }
                    resendAt = now + interval * 1_000_000L;
                    interval = Math.min(2 * interval, MAX_RESEND_MILLIS);
                }
                long until = Math.min(resendAt, deadline);
                int wait = (int) Math.max(1, (until - now + 999_999) / 1_000_000);
                n = dtls.receive(buffer, 0, buffer.length, wait);
            } catch (IOException e) {
                if (x.peerEvidence().isPresent() && !(e instanceof InterruptedIOException)) {
                    // We have the far end's evidence; it went away (closed, unreachable) before acknowledging ours:
                    // that is its failure to report, not ours (the association notices the close later).
                    LOG.debug("the far end went away before acknowledging our evidence: {}", e.toString());
                    break;
                }
                throw e;
            }
            if (n >= 0) {
                try {
                    x.receive(buffer, n);
                } catch (MalformedExtensionException e) {
                    throw new DtlsSrtpException(DtlsSrtpException.Reason.EVIDENCE_MALFORMED, e.getMessage());
                }
                Optional<byte[]> ack = x.takeAcknowledgement();
                if (ack.isPresent()) {
                    dtls.send(ack.get(), 0, ack.get().length);
                }
            }
        }
        return x.peerEvidence().orElseThrow();
    }

    private static PeerAttestation appraise(DtlsSrtpConfig config, List<X509Certificate> chain, byte[] data,
                                            byte[] binder) throws DtlsSrtpException {
        Evidence evidence;
        try {
            evidence = Evidence.decode(data);
        } catch (MalformedExtensionException e) {
            throw new DtlsSrtpException(DtlsSrtpException.Reason.EVIDENCE_MALFORMED, e.getMessage());
        }
        PeerAttestation result = config.tls().verifier().appraise(chain, evidence, binder);
        if (result.level() == IntegrityLevel.FAILED) {
            LOG.info("DTLS-SRTP far end's evidence refused: {}", result.reason());
        }
        return result;
    }
}
