package io.tpmphone.softphone.sip;

import gov.nist.core.net.NetworkLayer;
import gov.nist.javax.sip.SipStackImpl;
import io.tpmphone.tls.AttestedSslServerSocket;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsClient;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.AttestedTlsServer;
import io.tpmphone.tls.HandshakeGuard;
import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.security.SecureRandom;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * JAIN-SIP's {@code gov.nist.javax.sip.NETWORK_LAYER}: plain sockets for UDP and TCP, and for TLS our
 * {@link AttestedSslSocket}s — Bouncy Castle TLS 1.3 with attestation — under the stack's blocking TLS transport.
 * Every TCP and TLS connection, accepted or opened, is one of the stack's {@link ConnectionTable} (capped per source
 * and overall when accepted, closed when idle). JAIN-SIP instantiates this class by name, so each stack's
 * {@link AttestedTlsConfig} is registered under its stack name first ({@link #register}).
 */
public final class AttestedNetworkLayer implements NetworkLayer {
    private static final Map<String, AttestedTlsConfig> CONFIGS = new ConcurrentHashMap<>();
    private static final Map<String, AttestedSslSocket.Gate> GATES = new ConcurrentHashMap<>();
    private static final Map<String, HandshakeGuard> GUARDS = new ConcurrentHashMap<>();
    private static final Map<String, ConnectionTable> TABLES = new ConcurrentHashMap<>();
    private static final int CONNECT_TIMEOUT_MS = 5_000;

    private final TlsCrypto crypto = new JcaTlsCryptoProvider().create(new SecureRandom());
    private volatile AttestedTlsConfig config;
    private volatile AttestedSslSocket.Gate gate = (remote, peer) -> { };
    private volatile HandshakeGuard guard;
    private volatile ConnectionTable connections;

    public AttestedNetworkLayer() {
        // configured through setSipStack
    }

    /**
     * The attested TLS configuration of the stack named {@code stackName}, the gate for connections it opens, the
     * guard that bounds the handshakes of connections it accepts, and the table of its connections; call before
     * creating the stack.
     */
    static void register(String stackName, AttestedTlsConfig config, AttestedSslSocket.Gate outgoingGate,
                         HandshakeGuard incomingGuard, ConnectionTable connections) {
        CONFIGS.put(stackName, config);
        GATES.put(stackName, outgoingGate);
        GUARDS.put(stackName, incomingGuard);
        TABLES.put(stackName, connections);
    }

    static void unregister(String stackName) {
        CONFIGS.remove(stackName);
        GATES.remove(stackName);
        HandshakeGuard g = GUARDS.remove(stackName);
        if (g != null) {
            g.close();
        }
        ConnectionTable t = TABLES.remove(stackName);
        if (t != null) {
            t.close();
        }
    }

    @Override
    public void setSipStack(SipStackImpl sipStack) {
        config = CONFIGS.get(sipStack.getStackName());
        AttestedSslSocket.Gate g = GATES.get(sipStack.getStackName());
        if (g != null) {
            gate = g;
        }
        guard = GUARDS.get(sipStack.getStackName());
        connections = TABLES.get(sipStack.getStackName());
        if (config == null || connections == null) {
            throw new IllegalStateException("no attested TLS configuration registered for stack "
                    + sipStack.getStackName());
        }
    }

    @Override
    public ServerSocket createServerSocket(int port, int backlog, InetAddress bindAddress) throws IOException {
        return connections.listen(port, backlog, bindAddress);
    }

    @Override
    public SSLServerSocket createSSLServerSocket(int port, int backlog, InetAddress bindAddress) throws IOException {
        AttestedTlsConfig c = config;
        return new AttestedSslServerSocket(connections.listen(port, backlog, bindAddress),
                () -> new AttestedTlsServer(crypto, c), guard);
    }

    @Override
    public Socket createSocket(InetAddress address, int port) throws IOException {
        return connect(address, port, null);
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress myAddress) throws IOException {
        return connect(address, port, myAddress == null ? null : new InetSocketAddress(myAddress, 0));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress myAddress, int myPort) throws IOException {
        return connect(address, port, myAddress == null ? null : new InetSocketAddress(myAddress, myPort));
    }

    @Override
    public SSLSocket createSSLSocket(InetAddress address, int port) throws IOException {
        return createSSLSocket(address, port, null);
    }

    @Override
    public SSLSocket createSSLSocket(InetAddress address, int port, InetAddress myAddress) throws IOException {
        AttestedTlsConfig c = config;
        Socket raw = connect(address, port, myAddress == null ? null : new InetSocketAddress(myAddress, 0));
        return new AttestedSslSocket(raw, true, () -> new AttestedTlsClient(crypto, c), gate);
    }

    @Override
    public DatagramSocket createDatagramSocket() throws SocketException {
        return new DatagramSocket();
    }

    @Override
    public DatagramSocket createDatagramSocket(int port, InetAddress bindAddress) throws SocketException {
        return new DatagramSocket(port, bindAddress);
    }

    private Socket connect(InetAddress address, int port, InetSocketAddress local) throws IOException {
        Socket s = connections.outgoing();
        try {
            if (local != null) {
                s.bind(local);
            }
            s.connect(new InetSocketAddress(address, port), CONNECT_TIMEOUT_MS);
            s.setTcpNoDelay(true);
            return s;
        } catch (IOException e) {
            s.close();
            throw e;
        }
    }
}
