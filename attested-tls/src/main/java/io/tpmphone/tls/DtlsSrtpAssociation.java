package io.tpmphone.tls;

import java.io.IOException;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One finished DTLS-SRTP association: the far end's attestation (established end to end over this association), its
 * certificate chain, and the SRTP keys. The keys are handed out but must not be used — no SRTP sent or accepted —
 * before the call policy accepted {@link #peer()}. {@link #serviceIncoming(int)} keeps answering the far end after
 * the exchange (a lost acknowledgement makes it resend its evidence; a close_notify ends the association).
 */
public final class DtlsSrtpAssociation implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DtlsSrtpAssociation.class);

    private final org.bouncycastle.tls.DTLSTransport transport;
    private final DtlsEvidenceExchange exchange;
    private final SrtpKeys keys;
    private final PeerAttestation peer;
    private final List<X509Certificate> peerChain;
    private final boolean client;
    private final byte[] buffer;
    private final DtlsSrtpPeer tls;
    private volatile boolean closed;

    DtlsSrtpAssociation(org.bouncycastle.tls.DTLSTransport transport, DtlsEvidenceExchange exchange, SrtpKeys keys,
                        PeerAttestation peer, List<X509Certificate> peerChain, boolean client, DtlsSrtpPeer tls)
            throws IOException {
        this.tls = Objects.requireNonNull(tls, "tls");
        this.transport = Objects.requireNonNull(transport, "transport");
        this.exchange = exchange;
        this.keys = Objects.requireNonNull(keys, "keys");
        this.peer = Objects.requireNonNull(peer, "peer");
        this.peerChain = List.copyOf(peerChain);
        this.client = client;
        this.buffer = new byte[Math.max(1, transport.getReceiveLimit())];
    }

    /** The far end's level and why, established over this association. */
    public PeerAttestation peer() {
        return peer;
    }

    /** The far end's certificate chain as presented (its fingerprint matched the SDP). */
    public List<X509Certificate> peerCertificates() {
        return peerChain;
    }

    public SrtpKeys keys() {
        return keys;
    }

    /** Whether this side was the DTLS client ({@code a=setup:active}). */
    public boolean client() {
        return client;
    }

    /**
     * Reads at most one DTLS record for up to {@code waitMillis}: a resent evidence fragment is acknowledged again;
     * anything else the peer may send as application data is not ours to take and is dropped.
     *
     * @return false once the association is closed (by us, or by the peer's close_notify)
     * @throws IOException when the peer broke the association (a fatal alert, a bad record)
     */
    public boolean serviceIncoming(int waitMillis) throws IOException {
        if (closed || tls.peerClosed()) {
            return false;
        }
        int n = transport.receive(buffer, 0, buffer.length, waitMillis);
        if (n < 0) {
            return !closed && !tls.peerClosed();
        }
        if (exchange != null) {
            try {
                exchange.receive(buffer, n);
            } catch (MalformedExtensionException e) {
                LOG.debug("a DTLS application-data record after the evidence exchange was refused: {}",
                        e.getMessage());
                return true;
            }
            java.util.Optional<byte[]> ack = exchange.takeAcknowledgement();
            if (ack.isPresent()) {
                transport.send(ack.get(), 0, ack.get().length);
            }
        }
        return true;
    }

    /** Sends close_notify, closes the transport and wipes the keys. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        keys.destroy();
        try {
            transport.close();
        } catch (IOException e) {
            LOG.debug("closing a DTLS-SRTP association: {}", e.toString());
        }
    }
}
