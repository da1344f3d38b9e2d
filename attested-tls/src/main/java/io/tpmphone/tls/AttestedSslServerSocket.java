package io.tpmphone.tls;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.util.Optional;
import java.util.function.Supplier;
import javax.net.ssl.SSLServerSocket;

/**
 * A JSSE-shaped {@link SSLServerSocket} whose {@link #accept()} returns {@link AttestedSslSocket}s in server mode,
 * without handshaking: the handshake runs on the connection's own thread (a silent client cannot block accepting).
 * With a {@link HandshakeGuard}, every returned socket's handshake has a deadline, and a connection beyond the guard's
 * limits is closed inside {@code accept} (which goes on accepting) before any TLS work or thread is spent on it.
 * {@link #close()} unblocks {@code accept}.
 */
public final class AttestedSslServerSocket extends SSLServerSocket {
    private final ServerSocket raw;
    private final Supplier<AttestedTlsServer> servers;
    private final HandshakeGuard guard;
    private final AttestedSslSocket.Gate gate;
    private String[] enabledProtocols = {"TLSv1.3"};
    private String[] enabledSuites = AttestedSslSocket.Session.SUITES.clone();
    private boolean needClientAuth;
    private boolean wantClientAuth = true;
    private boolean sessionCreation = true;

    public AttestedSslServerSocket(ServerSocket raw, Supplier<AttestedTlsServer> servers) throws IOException {
        this(raw, servers, null);
    }

    /** As above, bounding handshakes with {@code guard} (null: unbounded); closing this socket closes the guard. */
    public AttestedSslServerSocket(ServerSocket raw, Supplier<AttestedTlsServer> servers, HandshakeGuard guard)
            throws IOException {
        this(raw, servers, guard, (remote, peer) -> { });
    }

    /**
     * As above, with a {@link AttestedSslSocket.Gate} for every accepted connection: it decides right after each
     * handshake whether the connection may carry traffic, and hears of every handshake that failed.
     */
    public AttestedSslServerSocket(ServerSocket raw, Supplier<AttestedTlsServer> servers, HandshakeGuard guard,
                                   AttestedSslSocket.Gate gate) throws IOException {
        this.raw = raw;
        this.servers = servers;
        this.guard = guard;
        this.gate = java.util.Objects.requireNonNull(gate, "gate");
    }

    @Override
    public Socket accept() throws IOException {
        while (true) {
            Socket s = raw.accept();
            if (guard == null) {
                s.setTcpNoDelay(true);
                return new AttestedSslSocket(s, false, servers, gate);
            }
            Optional<HandshakeGuard.Ticket> ticket = guard.admit(s);
            if (ticket.isEmpty()) {
                refuse(s);
                continue;
            }
            try {
                s.setTcpNoDelay(true);
            } catch (SocketException gone) {
                // the peer left already; the handshake will fail and release its place
            }
            return new AttestedSslSocket(s, false, servers, gate, ticket.get());
        }
    }

    /** Closes a connection beyond the guard's limits with a reset: no TLS work, no thread, no TIME_WAIT here. */
    private static void refuse(Socket s) {
        try {
            s.setSoLinger(true, 0);
        } catch (SocketException ignored) {
            // closing is what matters
        }
        try {
            s.close();
        } catch (IOException ignored) {
            // already gone
        }
    }

    @Override
    public void close() throws IOException {
        try {
            raw.close();
        } finally {
            if (guard != null) {
                guard.close();
            }
        }
    }

    @Override
    public boolean isClosed() {
        return raw.isClosed();
    }

    @Override
    public boolean isBound() {
        return raw.isBound();
    }

    @Override
    public InetAddress getInetAddress() {
        return raw.getInetAddress();
    }

    @Override
    public int getLocalPort() {
        return raw.getLocalPort();
    }

    @Override
    public SocketAddress getLocalSocketAddress() {
        return raw.getLocalSocketAddress();
    }

    @Override
    public void setSoTimeout(int timeout) throws SocketException {
        raw.setSoTimeout(timeout);
    }

    @Override
    public int getSoTimeout() throws IOException {
        return raw.getSoTimeout();
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
    public String[] getSupportedCipherSuites() {
        return AttestedSslSocket.Session.SUITES.clone();
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
    public void setUseClientMode(boolean mode) {
        if (mode) {
            throw new IllegalArgumentException("accepted sockets are TLS servers");
        }
    }

    @Override
    public boolean getUseClientMode() {
        return false;
    }

    @Override
    public void setEnableSessionCreation(boolean flag) {
        sessionCreation = flag;
    }

    @Override
    public boolean getEnableSessionCreation() {
        return sessionCreation;
    }

    @Override
    public String toString() {
        return "AttestedSslServerSocket[" + raw.getLocalSocketAddress() + "]";
    }
}
