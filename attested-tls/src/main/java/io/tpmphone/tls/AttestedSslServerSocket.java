package io.tpmphone.tls;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.util.function.Supplier;
import javax.net.ssl.SSLServerSocket;

/**
 * A JSSE-shaped {@link SSLServerSocket} whose {@link #accept()} returns {@link AttestedSslSocket}s in server mode,
 * without handshaking: the handshake runs on the connection's own thread (a silent client cannot block accepting).
 * {@link #close()} unblocks {@code accept}.
 */
public final class AttestedSslServerSocket extends SSLServerSocket {
    private final ServerSocket raw;
    private final Supplier<AttestedTlsServer> servers;
    private String[] enabledProtocols = {"TLSv1.3"};
    private String[] enabledSuites = AttestedSslSocket.Session.SUITES.clone();
    private boolean needClientAuth;
    private boolean wantClientAuth = true;
    private boolean sessionCreation = true;

    public AttestedSslServerSocket(ServerSocket raw, Supplier<AttestedTlsServer> servers) throws IOException {
        this.raw = raw;
        this.servers = servers;
    }

    @Override
    public Socket accept() throws IOException {
        Socket s = raw.accept();
        s.setTcpNoDelay(true);
        return new AttestedSslSocket(s, false, servers);
    }

    @Override
    public void close() throws IOException {
        raw.close();
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
