package io.tpmphone.tls;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.security.Principal;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;
import javax.net.ssl.HandshakeCompletedEvent;
import javax.net.ssl.HandshakeCompletedListener;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSessionContext;
import javax.net.ssl.SSLSocket;
import org.bouncycastle.tls.TlsClient;
import org.bouncycastle.tls.TlsClientProtocol;
import org.bouncycastle.tls.TlsProtocol;
import org.bouncycastle.tls.TlsServer;
import org.bouncycastle.tls.TlsServerProtocol;

/**
 * A JSSE-shaped {@link SSLSocket} over an already connected plain socket and Bouncy Castle's low-level TLS 1.3 with
 * attestation (so code written for {@code SSLSocket}, e.g. JAIN-SIP's blocking TLS transport, gets attested TLS).
 *
 * <p>The handshake runs once, in {@link #startHandshake()} or on the first read or write; every failure closes the
 * socket and is an {@link SSLHandshakeException} (JAIN-SIP keeps sockets whose handshake failed with any other
 * exception). Listeners get the {@link HandshakeCompletedEvent} synchronously before {@code startHandshake}
 * returns. The peer's {@link PeerAttestation} is in the session as value {@link #PEER_ATTESTATION} and via
 * {@link #peerAttestation()}. Reads and writes may run concurrently (full duplex). Closing either stream closes the
 * socket. Protocol and cipher-suite settings are recorded but do not change what is negotiated: TLS 1.3, and as a
 * server TLS 1.2 with AEAD suites for a peer that cannot attest ({@link AttestedTlsServer}).
 */
public final class AttestedSslSocket extends SSLSocket {
    /** The session value under which the peer's {@link PeerAttestation} is stored. */
    public static final String PEER_ATTESTATION = "tpmphone.peerAttestation";

    private final Socket raw;
    private final boolean client;
    private final Supplier<? extends AttestedTlsPeer> peers;
    private final Gate gate;
    private final HandshakeGuard.Ticket ticket;
    /** Whether the gate was asked about this connection, so it hears once that the connection closed. */
    private final java.util.concurrent.atomic.AtomicReference<Optional<PeerAttestation>> admitted =
            new java.util.concurrent.atomic.AtomicReference<>();
    private final List<HandshakeCompletedListener> listeners = new CopyOnWriteArrayList<>();
    private final Object handshakeLock = new Object();
    private volatile TlsProtocol protocol;
    private volatile AttestedTlsPeer tlsPeer;
    private volatile Session session;
    private IOException failure;
    private String[] enabledProtocols = {"TLSv1.3"};
    private String[] enabledSuites = Session.SUITES.clone();
    private boolean needClientAuth;
    private boolean wantClientAuth;
    private boolean sessionCreation = true;

    /**
     * @param raw     a connected plain socket; this socket owns it from now on
     * @param client  whether this side is the TLS client
     * @param peers   makes this connection's {@link AttestedTlsClient} (client) or {@link AttestedTlsServer} (server)
     */
    public AttestedSslSocket(Socket raw, boolean client, Supplier<? extends AttestedTlsPeer> peers) {
        this(raw, client, peers, (remote, peer) -> { });
    }

    /** As above, with a {@link Gate} that decides, right after the handshake, whether the connection may be used. */
    public AttestedSslSocket(Socket raw, boolean client, Supplier<? extends AttestedTlsPeer> peers, Gate gate) {
        this(raw, client, peers, gate, null);
    }

    /**
     * As above, holding {@code ticket} (a place among the handshakes in progress, with a deadline, from a
     * {@link HandshakeGuard}) until the handshake completed or failed, or the socket closed.
     */
    public AttestedSslSocket(Socket raw, boolean client, Supplier<? extends AttestedTlsPeer> peers, Gate gate,
                             HandshakeGuard.Ticket ticket) {
        this.raw = raw;
        this.client = client;
        this.peers = peers;
        this.gate = gate;
        this.ticket = ticket;
    }

    /**
     * Decides whether a freshly attested connection may carry traffic (e.g. the call policy for the destination):
     * throwing ends the connection before any application data is written, as a handshake failure.
     */
    @FunctionalInterface
    public interface Gate {
        void admit(SocketAddress remote, Optional<PeerAttestation> peer) throws IOException;

        /**
         * A connection this gate was asked about (whatever it answered) is closed: called once per such connection,
         * with what {@link #admit} was given, so per-connection state can go with it.
         */
        default void closed(SocketAddress remote, Optional<PeerAttestation> peer) {
        }

        /**
         * The handshake of a connection with {@code remote} failed (once per connection, before its socket is
         * closed): a TLS alert either side raised (a {@code TlsFatalAlert} or {@code TlsFatalAlertReceived} in the
         * cause chain), the peer leaving, the handshake's deadline, or this gate's own refusal. For telling the user
         * why a peer could not connect; must not block.
         */
        default void failed(SocketAddress remote, IOException cause) {
        }
    }

    /** The peer's attestation once the handshake completed. */
    public Optional<PeerAttestation> peerAttestation() {
        AttestedTlsPeer p = tlsPeer;
        return p == null || session == null ? Optional.empty() : p.peer();
    }

    @Override
    public void startHandshake() throws IOException {
        synchronized (handshakeLock) {
            if (session != null) {
                return;
            }
            if (failure != null) {
                throw handshakeFailure(failure);
            }
            AttestedTlsPeer p = peers.get();
            boolean handshaken = false;
            long started = System.nanoTime();
            EndNotingInputStream in = null;
            try {
                in = new EndNotingInputStream(raw.getInputStream());
                if (client) {
                    TlsClientProtocol c = new TlsClientProtocol(in, raw.getOutputStream());
                    protocol = c;
                    c.connect((TlsClient) p);
                } else {
                    TlsServerProtocol s = new TlsServerProtocol(in, raw.getOutputStream());
                    protocol = s;
                    s.accept((TlsServer) p);
                }
                handshaken = true;
                admit(p.peer());
                if (ticket != null) {
                    // accepted by the policy, a client that proved a device key certified by the device CA: its
                    // source is known-good (never before the policy: a FAILED or UNATTESTED device is not)
                    ticket.completed(p.peer().flatMap(PeerAttestation::host).isPresent());
                }
            } catch (IOException | RuntimeException e) {
                IOException cause = e instanceof IOException io ? io : new IOException(e.getMessage(), e);
                Optional<String> closedByGuard = ticket == null ? Optional.empty() : ticket.closedBecause();
                if (closedByGuard.isPresent()) {
                    // our own guard closed the socket under the handshake (its deadline, or room for others): say
                    // so rather than the "socket closed" the handshake then hit
                    cause = new IOException(closedByGuard.get(), cause);
                } else if (!handshaken && in != null && in.ended()) {
                    cause = closedDuringHandshake(cause, System.nanoTime() - started);
                }
                Optional<PeerAttestation> seen = p.peer();
                if (client && !handshaken && seen.isPresent()) {
                    // The server's evidence was appraised before the handshake broke (e.g. a tampered host whose TPM
                    // will not sign its CertificateVerify): the caller's policy decides on what was seen, and the
                    // failure names it, rather than a bare TLS alert.
                    try {
                        admit(seen);
                        cause = new IOException("the peer, rated " + seen.get().display() + ", ended the handshake: "
                                + cause.getMessage(), cause);
                    } catch (IOException refusedByPolicy) {
                        cause = refusedByPolicy;
                    }
                }
                failure = cause;
                try {
                    gate.failed(raw.getRemoteSocketAddress(), cause);
                } catch (RuntimeException listenerFailed) {
                    // the gate's trouble must not change how the handshake ends
                }
                closeQuietly();
                throw handshakeFailure(failure);
            } finally {
                releaseTicket();
            }
            tlsPeer = p;
            Session s = new Session(p, p.cipherSuite());
            p.peer().ifPresent(a -> s.putValue(PEER_ATTESTATION, a));
            session = s;
        }
        HandshakeCompletedEvent event = new HandshakeCompletedEvent(this, session);
        for (HandshakeCompletedListener l : listeners) {
            l.handshakeCompleted(event);
        }
    }

    /**
     * The peer closed the connection before the handshake completed, without an alert. Bouncy Castle reports that as a
     * {@code handshake_failure(40)} it raises itself, which reads like a negotiation that failed; a server closes a
     * handshake this way when its deadline passes or it is beyond its limits ({@link HandshakeGuard}). The alert is
     * BC's rendering of the end of stream, not its cause, so it is kept as suppressed: the end of stream is the root
     * whose message callers show.
     */
    static IOException closedDuringHandshake(IOException seen, long afterNanos) {
        java.io.EOFException end = new java.io.EOFException("the peer closed the connection "
                + java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(afterNanos) + " ms into the TLS handshake,"
                + " without an alert (a server does so when the handshake passes its deadline or it is beyond its"
                + " connection limits: see the peer's log)");
        end.addSuppressed(seen);
        return end;
    }

    /** The raw input, noting whether it reached its end (the peer closed its side). */
    private static final class EndNotingInputStream extends java.io.FilterInputStream {
        private volatile boolean ended;

        EndNotingInputStream(InputStream in) {
            super(in);
        }

        boolean ended() {
            return ended;
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            ended |= b < 0;
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            ended |= n < 0;
            return n;
        }
    }

    private SSLHandshakeException handshakeFailure(IOException cause) {
        SSLHandshakeException e = new SSLHandshakeException("attested TLS handshake with " + raw.getRemoteSocketAddress()
                + " failed: " + cause);
        e.initCause(cause);
        return e;
    }

    private void admit(Optional<PeerAttestation> peer) throws IOException {
        admitted.set(peer);
        gate.admit(raw.getRemoteSocketAddress(), peer);
    }

    private void releaseTicket() {
        if (ticket != null) {
            ticket.release();
        }
    }

    private void closeQuietly() {
        try {
            raw.close();
        } catch (IOException ignored) {
            // already failing
        }
        closed();
    }

    /** Tells the gate once that a connection it was asked about is closed. */
    private void closed() {
        Optional<PeerAttestation> peer = admitted.getAndSet(null);
        if (peer != null) {
            gate.closed(raw.getRemoteSocketAddress(), peer);
        }
    }

    private TlsProtocol established() throws IOException {
        startHandshake();
        return protocol;
    }

    @Override
    public InputStream getInputStream() throws IOException {
        if (raw.isClosed()) {
            throw new SocketException("socket closed");
        }
        return new InputStream() {
            @Override
            public int read() throws IOException {
                byte[] b = new byte[1];
                int n = read(b, 0, 1);
                return n < 0 ? -1 : b[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (len == 0) {
                    return 0;
                }
                return established().getInputStream().read(b, off, len);
            }

            @Override
            public int available() throws IOException {
                TlsProtocol p = protocol;
                return p == null ? 0 : p.applicationDataAvailable();
            }

            @Override
            public void close() throws IOException {
                AttestedSslSocket.this.close();
            }
        };
    }

    @Override
    public OutputStream getOutputStream() throws IOException {
        if (raw.isClosed()) {
            throw new SocketException("socket closed");
        }
        return new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                established().getOutputStream().write(b, off, len);
            }

            @Override
            public void flush() throws IOException {
                established().getOutputStream().flush();
            }

            @Override
            public void close() throws IOException {
                AttestedSslSocket.this.close();
            }
        };
    }

    @Override
    public SSLSession getSession() {
        Session s = session;
        if (s != null) {
            return s;
        }
        try {
            startHandshake();
        } catch (IOException e) {
            return new Session(null, -1);
        }
        return session;
    }

    @Override
    public synchronized void close() throws IOException {
        TlsProtocol p = protocol;
        if (p != null && session != null && !raw.isClosed()) {
            try {
                p.close();
            } catch (IOException ignored) {
                // the peer may be gone already
            }
        }
        try {
            raw.close();
        } finally {
            releaseTicket();
            closed();
        }
    }

    @Override
    public void addHandshakeCompletedListener(HandshakeCompletedListener listener) {
        listeners.add(listener);
    }

    @Override
    public void removeHandshakeCompletedListener(HandshakeCompletedListener listener) {
        listeners.remove(listener);
    }

    // ---------------------------------------------------------------------------------------------- settings

    @Override
    public String[] getSupportedCipherSuites() {
        return Session.SUITES.clone();
    }

    @Override
    public String[] getEnabledCipherSuites() {
        return enabledSuites.clone();
    }

    @Override
    public void setEnabledCipherSuites(String[] suites) {
        enabledSuites = suites.clone();
    }

    @Override
    public String[] getSupportedProtocols() {
        return new String[] {"TLSv1.3"};
    }

    @Override
    public String[] getEnabledProtocols() {
        return enabledProtocols.clone();
    }

    @Override
    public void setEnabledProtocols(String[] protocols) {
        enabledProtocols = protocols.clone();
    }

    @Override
    public void setUseClientMode(boolean mode) {
        if (mode != client) {
            throw new IllegalArgumentException("this socket's TLS role is fixed at creation");
        }
    }

    @Override
    public boolean getUseClientMode() {
        return client;
    }

    @Override
    public void setNeedClientAuth(boolean need) {
        needClientAuth = need;
    }

    @Override
    public boolean getNeedClientAuth() {
        return needClientAuth;
    }

    @Override
    public void setWantClientAuth(boolean want) {
        wantClientAuth = want;
    }

    @Override
    public boolean getWantClientAuth() {
        return wantClientAuth;
    }

    @Override
    public void setEnableSessionCreation(boolean flag) {
        sessionCreation = flag;
    }

    @Override
    public boolean getEnableSessionCreation() {
        return sessionCreation;
    }

    // ---------------------------------------------------------------------------------------------- plain socket

    @Override
    public InetAddress getInetAddress() {
        return raw.getInetAddress();
    }

    @Override
    public int getPort() {
        return raw.getPort();
    }

    @Override
    public InetAddress getLocalAddress() {
        return raw.getLocalAddress();
    }

    @Override
    public int getLocalPort() {
        return raw.getLocalPort();
    }

    @Override
    public SocketAddress getRemoteSocketAddress() {
        return raw.getRemoteSocketAddress();
    }

    @Override
    public SocketAddress getLocalSocketAddress() {
        return raw.getLocalSocketAddress();
    }

    @Override
    public boolean isConnected() {
        return raw.isConnected();
    }

    @Override
    public boolean isBound() {
        return raw.isBound();
    }

    @Override
    public boolean isClosed() {
        return raw.isClosed();
    }

    @Override
    public void setSoTimeout(int timeout) throws SocketException {
        raw.setSoTimeout(timeout);
    }

    @Override
    public int getSoTimeout() throws SocketException {
        return raw.getSoTimeout();
    }

    @Override
    public void setTcpNoDelay(boolean on) throws SocketException {
        raw.setTcpNoDelay(on);
    }

    @Override
    public boolean getTcpNoDelay() throws SocketException {
        return raw.getTcpNoDelay();
    }

    @Override
    public void setKeepAlive(boolean on) throws SocketException {
        raw.setKeepAlive(on);
    }

    @Override
    public void shutdownInput() throws IOException {
        throw new UnsupportedOperationException("TLS sockets cannot half-close their input");
    }

    @Override
    public void shutdownOutput() throws IOException {
        throw new UnsupportedOperationException("TLS sockets cannot half-close their output");
    }

    @Override
    public String toString() {
        return "AttestedSslSocket[" + (client ? "client" : "server") + " " + raw.getLocalSocketAddress() + " <-> "
                + raw.getRemoteSocketAddress() + "]";
    }

    /** The session JSSE callers see: peer certificates, the cipher suite, the protocol, and the peer's attestation. */
    static final class Session implements SSLSession {
        static final String[] SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"};
        private final AttestedTlsPeer peer;
        private final int cipherSuite;
        private final java.util.Map<String, Object> values = new java.util.concurrent.ConcurrentHashMap<>();
        private final long created = System.currentTimeMillis();

        Session(AttestedTlsPeer peer, int cipherSuite) {
            this.peer = peer;
            this.cipherSuite = cipherSuite;
        }

        @Override
        public Certificate[] getPeerCertificates() throws SSLPeerUnverifiedException {
            List<X509Certificate> chain = peer == null ? List.of() : peer.peerCertificates();
            if (chain.isEmpty()) {
                throw new SSLPeerUnverifiedException("the peer presented no certificate");
            }
            return chain.toArray(new Certificate[0]);
        }

        @Override
        public Certificate[] getLocalCertificates() {
            if (peer == null || peer.identity().isEmpty()) {
                return null;
            }
            try {
                return peer.identity().get().certificateChain().toArray(new Certificate[0]);
            } catch (IOException e) {
                return null;
            }
        }

        @Override
        @SuppressWarnings("removal")
        public javax.security.cert.X509Certificate[] getPeerCertificateChain() {
            throw new UnsupportedOperationException("use getPeerCertificates()");
        }

        @Override
        public Principal getPeerPrincipal() throws SSLPeerUnverifiedException {
            return ((X509Certificate) getPeerCertificates()[0]).getSubjectX500Principal();
        }

        @Override
        public Principal getLocalPrincipal() {
            Certificate[] local = getLocalCertificates();
            return local == null ? null : ((X509Certificate) local[0]).getSubjectX500Principal();
        }

        @Override
        public String getCipherSuite() {
            return switch (cipherSuite) {
                case 0x1301 -> SUITES[0];
                case 0x1302 -> SUITES[1];
                case 0x1303 -> SUITES[2];
                case 0xC02B -> SUITES[3];
                case 0xC02C -> SUITES[4];
                case 0xCCA9 -> SUITES[5];
                default -> "SSL_NULL_WITH_NULL_NULL";
            };
        }

        @Override
        public String getProtocol() {
            return peer == null ? "NONE" : peer.protocol();
        }

        @Override
        public boolean isValid() {
            return peer != null;
        }

        @Override
        public void invalidate() {
            // nothing is resumed on attested connections anyway; the connection and its certificates stay usable
        }

        @Override
        public byte[] getId() {
            return new byte[0];
        }

        @Override
        public SSLSessionContext getSessionContext() {
            return null;
        }

        @Override
        public long getCreationTime() {
            return created;
        }

        @Override
        public long getLastAccessedTime() {
            return created;
        }

        @Override
        public void putValue(String name, Object value) {
            values.put(name, value);
        }

        @Override
        public Object getValue(String name) {
            return values.get(name);
        }

        @Override
        public void removeValue(String name) {
            values.remove(name);
        }

        @Override
        public String[] getValueNames() {
            return values.keySet().toArray(new String[0]);
        }

        @Override
        public String getPeerHost() {
            return null;
        }

        @Override
        public int getPeerPort() {
            return -1;
        }

        @Override
        public int getPacketBufferSize() {
            return 16_709;
        }

        @Override
        public int getApplicationBufferSize() {
            return 16_384;
        }
    }
}
