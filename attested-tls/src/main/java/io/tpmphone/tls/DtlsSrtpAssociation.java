package io.tpmphone.tls;

import io.tpmphone.attestation.IntegrityLevel;
import java.io.IOException;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One finished DTLS-SRTP association: the far end's attestation (established end to end over this association), its
 * certificate chain, and the SRTP keys. The keys are not obtainable before the caller's call policy accepted the far
 * end: {@link #accept(IntegrityLevel)} names the level the policy accepted (it must be the far end's, {@link #peer()})
 * and only then hands them out, so no SRTP can be sent or accepted before that decision. {@link #serviceIncoming(int)}
 * keeps answering the far end after the exchange (a lost acknowledgement makes it resend its evidence; a
 * close_notify ends the association). Thread-safe for {@link #accept} and {@link #close}; one thread receives.
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
    private final byte[] evidenceDigest;
    private volatile boolean closed;
    private volatile boolean accepted;
    /** Our verdict on the far end, resent until acknowledged; the far end's on us (the first one counts). */
    private volatile DtlsVerdict ourVerdict;
    private volatile boolean ourVerdictAcknowledged;
    private volatile long ourVerdictSentNanos;
    private volatile DtlsVerdict peerVerdict;
    /** Resend interval of our verdict. */
    private static final long VERDICT_RESEND_NANOS = 100_000_000L;

    DtlsSrtpAssociation(org.bouncycastle.tls.DTLSTransport transport, DtlsEvidenceExchange exchange, SrtpKeys keys,
                        PeerAttestation peer, List<X509Certificate> peerChain, boolean client, DtlsSrtpPeer tls,
                        byte[] evidenceDigest) throws IOException {
        this.evidenceDigest = evidenceDigest == null ? null : evidenceDigest.clone();
        this.tls = Objects.requireNonNull(tls, "tls");
        this.transport = Objects.requireNonNull(transport, "transport");
        this.exchange = exchange;
        this.keys = Objects.requireNonNull(keys, "keys");
        this.peer = Objects.requireNonNull(peer, "peer");
        this.peerChain = List.copyOf(peerChain);
        this.client = client;
        this.buffer = new byte[Math.max(1, transport.getReceiveLimit())];
        if (exchange != null) {
            java.util.Optional<byte[]> early = exchange.takeEarlyVerdict();
            if (early.isPresent()) {
                verdictRecord(early.get(), early.get().length);
            }
        }
    }

    /**
     * Whether both sides attested in this association (each announced it and sent evidence): then each sends the
     * other its verdict ({@link #sendVerdict}); a standard DTLS-SRTP phone neither sends nor expects one.
     */
    public boolean exchangesVerdicts() {
        return exchange != null;
    }

    /**
     * Sends our verdict on the far end inside the association; {@link #serviceIncoming} resends it until the far end
     * acknowledges it. Only in an association that {@link #exchangesVerdicts()}; the first verdict counts.
     */
    public synchronized void sendVerdict(DtlsVerdict verdict) throws IOException {
        if (exchange == null) {
            throw new IllegalStateException("the far end does not attest: it takes no verdict");
        }
        if (ourVerdict != null || closed) {
            return;
        }
        ourVerdict = verdict;
        byte[] r = verdict.encode();
        ourVerdictSentNanos = System.nanoTime();
        transport.send(r, 0, r.length);
    }

    /** Whether the far end acknowledged our verdict. */
    public boolean verdictAcknowledged() {
        return ourVerdictAcknowledged;
    }

    /** The far end's verdict on us, once it arrived. */
    public java.util.Optional<DtlsVerdict> peerVerdict() {
        return java.util.Optional.ofNullable(peerVerdict);
    }

    /** Takes a verdict or its acknowledgement; whether the record was one. */
    private boolean verdictRecord(byte[] record, int n) throws IOException {
        int type = DtlsVerdict.typeOf(record, n);
        if (type == DtlsVerdict.TYPE_RECEIVED) {
            ourVerdictAcknowledged = ourVerdict != null;
            return true;
        }
        if (type != DtlsVerdict.TYPE) {
            return false;
        }
        try {
            DtlsVerdict v = DtlsVerdict.decode(record, n);
            if (peerVerdict == null) {
                peerVerdict = v;
            }
            byte[] ack = DtlsVerdict.acknowledgement();
            transport.send(ack, 0, ack.length); // every copy: our acknowledgement may have been lost
        } catch (MalformedExtensionException e) {
            LOG.debug("a malformed verdict record was refused: {}", e.getMessage());
        }
        return true;
    }

    /**
     * The DTLS transport itself, for tests in this package that play a far end sending what a genuine one would not
     * (random application data inside the association).
     */
    org.bouncycastle.tls.DTLSTransport transport() {
        return transport;
    }

    /** The far end's level and why, established over this association. */
    public PeerAttestation peer() {
        return peer;
    }

    /** The far end's certificate chain as presented (its fingerprint matched the SDP). */
    public List<X509Certificate> peerCertificates() {
        return peerChain;
    }

    /**
     * The SRTP keys, for the level the call policy accepted. {@code acceptedLevel} must be the far end's level as this
     * association established it: a caller cannot accept something else than what was seen.
     *
     * @throws IllegalArgumentException when {@code acceptedLevel} is not {@link #peer()}'s level
     * @throws IllegalStateException when the association is closed (its keys are wiped)
     */
    public synchronized SrtpKeys accept(IntegrityLevel acceptedLevel) {
        Objects.requireNonNull(acceptedLevel, "acceptedLevel");
        if (acceptedLevel != peer.level()) {
            throw new IllegalArgumentException("the policy accepted " + acceptedLevel + " but the far end is "
                    + peer.level());
        }
        if (closed) {
            throw new IllegalStateException("this DTLS-SRTP association is closed; its keys are wiped");
        }
        accepted = true;
        return keys;
    }

    /** Whether {@link #accept} handed the keys out. */
    public boolean accepted() {
        return accepted;
    }

    /**
     * SHA-256 over both sides' evidence (the DTLS client's first), the same on both ends of the association: what
     * joins both sides' audit records of one call. Empty when no evidence was exchanged (a far end that does not
     * attest).
     */
    public java.util.Optional<byte[]> evidenceDigest() {
        return java.util.Optional.ofNullable(evidenceDigest).map(byte[]::clone);
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
        DtlsVerdict v = ourVerdict;
        if (v != null && !ourVerdictAcknowledged && System.nanoTime() - ourVerdictSentNanos >= VERDICT_RESEND_NANOS) {
            byte[] r = v.encode();
            ourVerdictSentNanos = System.nanoTime();
            transport.send(r, 0, r.length);
        }
        int n = transport.receive(buffer, 0, buffer.length, waitMillis);
        if (n < 0) {
            return !closed && !tls.peerClosed();
        }
        if (exchange != null && verdictRecord(buffer, n)) {
            return true;
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

    /** Whether neither side closed the association yet. */
    public boolean open() {
        return !closed && !tls.peerClosed();
    }

    /** Sends close_notify, closes the transport and wipes the keys. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        keys.destroy();
        try {
            transport.close();
        } catch (IOException e) {
            LOG.debug("closing a DTLS-SRTP association: {}", e.toString());
        }
    }
}
