package io.tpmphone.tls;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Hashtable;
import java.util.List;
import java.util.Optional;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CertificateEntry;
import org.bouncycastle.tls.SecurityParameters;
import org.bouncycastle.tls.TlsContext;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.crypto.TlsCertificate;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** What the attested client and server share: building our Certificate with evidence, appraising the peer's. */
final class Handshakes {
    private static final Logger LOG = LoggerFactory.getLogger(Handshakes.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    private Handshakes() {
    }

    static byte[] nonce() {
        byte[] n = new byte[32];
        RANDOM.nextBytes(n);
        return n;
    }

    /** The request this side sends: the level it wants, the one format it accepts, a fresh nonce. */
    static AttestationRequest request(AttestedTlsConfig config) {
        return new AttestationRequest(config.requestedLevel(), new byte[] {AttestationRequest.FORMAT_TPM2_PASSPORT},
                nonce());
    }

    static AttestationRequest parseRequest(Hashtable<?, ?> extensions) throws IOException {
        byte[] data = extensions == null ? null : (byte[]) extensions.get(AttestationRequest.EXTENSION_TYPE);
        if (data == null) {
            return null;
        }
        try {
            return AttestationRequest.decode(data);
        } catch (MalformedExtensionException e) {
            throw alert(e);
        }
    }

    static TlsFatalAlert alert(MalformedExtensionException e) {
        return new TlsFatalAlert(e.illegalParameter() ? AlertDescription.illegal_parameter
                : AlertDescription.decode_error, e.getMessage());
    }

    /**
     * Our Certificate message: the device certificate chain, with evidence bound to {@code peerNonce} in the
     * end-entity entry when the peer asked for it (null: no evidence).
     */
    static Certificate certificate(TlsContext context, byte[] requestContext, HostIdentity identity, boolean server,
                                   byte[] peerNonce) throws IOException {
        TlsCrypto crypto = context.getCrypto();
        List<X509Certificate> chain = identity.certificateChain();
        if (chain.isEmpty()) {
            throw new TlsFatalAlert(AlertDescription.internal_error, "this host has no device certificate yet");
        }
        CertificateEntry[] entries = new CertificateEntry[chain.size()];
        for (int i = 0; i < chain.size(); i++) {
            Hashtable<Integer, byte[]> ext = new Hashtable<>();
            if (i == 0 && peerNonce != null) {
                SecurityParameters sp = context.getSecurityParametersHandshake();
                byte[] spki = chain.get(0).getPublicKey().getEncoded();
                byte[] binder = Binder.compute(server, sp.getClientRandom(), sp.getServerRandom(), spki, peerNonce);
                ext.put(Evidence.EXTENSION_TYPE, identity.evidence(binder).encode());
            }
            try {
                entries[i] = new CertificateEntry(crypto.createCertificate(chain.get(i).getEncoded()), ext);
            } catch (GeneralSecurityException e) {
                throw new TlsFatalAlert(AlertDescription.internal_error, "cannot encode our certificate", e);
            }
        }
        return new Certificate(requestContext, entries);
    }

    static List<X509Certificate> x509(Certificate c) throws IOException {
        List<X509Certificate> out = new ArrayList<>();
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            for (TlsCertificate t : c.getCertificateList()) {
                out.add((X509Certificate) cf.generateCertificate(new ByteArrayInputStream(t.getEncoded())));
            }
        } catch (GeneralSecurityException e) {
            throw new TlsFatalAlert(AlertDescription.bad_certificate, "the peer's certificate does not parse", e);
        }
        return out;
    }

    /**
     * The peer's level from its Certificate message. {@code ourNonce} is the nonce we sent (null if we asked for no
     * evidence); {@code peerIsServer} picks the binder label.
     */
    static PeerAttestation appraise(AttestedTlsConfig config, TlsContext context, Certificate peer, byte[] ourNonce,
                                    boolean peerIsServer) throws IOException {
        return appraise(config, context, peer, ourNonce, peerIsServer, "no evidence was asked for");
    }

    /** As above; {@code whyNotAsked} says why there is no nonce of ours (for the UNATTESTED reason). */
    static PeerAttestation appraise(AttestedTlsConfig config, TlsContext context, Certificate peer, byte[] ourNonce,
                                    boolean peerIsServer, String whyNotAsked) throws IOException {
        java.time.Instant now = config.clock().instant();
        if (peer == null || peer.isEmpty()) {
            return PeerAttestation.unattested(Optional.empty(), now, "the peer presented no certificate");
        }
        List<X509Certificate> chain = x509(peer);
        Optional<String> host = config.verifier().deviceHost(chain);
        Hashtable<?, ?> ext = peer.getCertificateEntryAt(0).getExtensions();
        byte[] data = ext == null ? null : (byte[]) ext.get(Evidence.EXTENSION_TYPE);
        if (data == null) {
            return PeerAttestation.unattested(host, now, ourNonce == null ? whyNotAsked
                    : "the peer sent no evidence (it does not attest, or the attestation extension was stripped)");
        }
        if (ourNonce == null) {
            return PeerAttestation.unattested(host, now, "the peer sent evidence that was not asked for");
        }
        Evidence evidence;
        try {
            evidence = Evidence.decode(data);
        } catch (MalformedExtensionException e) {
            throw alert(e);
        }
        SecurityParameters sp = context.getSecurityParametersHandshake();
        byte[] binder = Binder.compute(peerIsServer, sp.getClientRandom(), sp.getServerRandom(),
                chain.get(0).getPublicKey().getEncoded(), ourNonce);
        PeerAttestation result = config.verifier().appraise(chain, evidence, binder);
        LOG.info("peer attestation: {}", result.display());
        return result;
    }

    /** Ends the handshake if the peer is below the configured floor. */
    static void enforceFloor(AttestedTlsConfig config, PeerAttestation peer) throws TlsFatalAlert {
        if (!peer.level().atLeast(config.handshakeFloor())) {
            throw new TlsFatalAlert(AlertDescription.access_denied, "the peer's level " + peer.level()
                    + " is below the required " + config.handshakeFloor() + ": " + peer.reason());
        }
    }
}
