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
import java.time.Clock;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's {@code gov.nist.javax.sip.NETWORK_LAYER}: plain sockets for UDP and TCP, and for TLS our
 * {@link AttestedSslSocket}s — Bouncy Castle TLS 1.3 with attestation — under the stack's blocking TLS transport.
 * Every TCP and TLS connection, accepted or opened, is one of the stack's {@link ConnectionTable} (capped per source
 * and overall when accepted, closed when idle).
 *
 * <p>The phone opens connections, and sends datagrams from sockets of its own, only to destinations it chose
 * ({@link Stack#chosen}: its registrars, a call's first hop, a call's dialog's remote target and route): any other
 * destination is refused before a connection or a byte, whatever JAIN-SIP was made to want. Connections it opens are
 * capped ({@link SipPhone.Limits.Outgoing#connections}), and so are its TLS handshakes as a client (each costs a TPM
 * signature, and a quote when the peer asks for evidence: {@link SipPhone.Limits.Outgoing#handshakes} at once, then
 * {@link SipPhone.Limits.Outgoing#handshakesPerSecond}). JAIN-SIP instantiates this class by name, so each stack's
 * parts are registered under its stack name first ({@link #register}).
 */
public final class AttestedNetworkLayer implements NetworkLayer {
    private static final Logger LOG = LoggerFactory.getLogger(AttestedNetworkLayer.class);
    private static final Map<String, Stack> STACKS = new ConcurrentHashMap<>();
    private static final int CONNECT_TIMEOUT_MS = 5_000;

    /**
     * What one stack's network layer works with: the attested TLS configuration, the gate for connections it opens
     * and the one for connections it accepts (which hears of their failed handshakes), the guard that bounds the
     * handshakes of connections it accepts, the table of its connections, the destinations the phone chose, the
     * allowance of TLS handshakes it makes as a client, the bytes that pay for its UDP refusals, and its clock.
     */
    record Stack(AttestedTlsConfig tls, AttestedSslSocket.Gate gate, AttestedSslSocket.Gate accepted,
                 HandshakeGuard guard, ConnectionTable connections, Predicate<InetSocketAddress> chosen,
                 TokenBucket outgoingHandshakes, UdpRefusalBudget udpRefusals, Clock clock) {
        Stack {
            Objects.requireNonNull(udpRefusals, "udpRefusals");
            Objects.requireNonNull(tls, "tls");
            Objects.requireNonNull(gate, "gate");
            Objects.requireNonNull(accepted, "accepted");
            Objects.requireNonNull(guard, "guard");
            Objects.requireNonNull(connections, "connections");
            Objects.requireNonNull(chosen, "chosen");
            Objects.requireNonNull(outgoingHandshakes, "outgoingHandshakes");
            Objects.requireNonNull(clock, "clock");
        }
    }

    private final TlsCrypto crypto = new JcaTlsCryptoProvider().create(new SecureRandom());
    private volatile Stack stack;
    private volatile LogBudget refusalLines = new LogBudget(Clock.systemUTC(), 1);

    public AttestedNetworkLayer() {
        // configured through setSipStack
    }

    /** Registers the parts of the stack named {@code stackName}; call before creating the stack. */
    static void register(String stackName, Stack parts) {
        STACKS.put(stackName, parts);
    }

    static void unregister(String stackName) {
        Stack s = STACKS.remove(stackName);
        if (s != null) {
            s.guard().close();
            s.connections().close();
        }
    }

    /** The connection table of a registered stack, or null. */
    static ConnectionTable connectionsOf(String stackName) {
        Stack s = STACKS.get(stackName);
        return s == null ? null : s.connections();
    }

    /** The clock of a registered stack, or null. */
    static Clock clockOf(String stackName) {
        Stack s = STACKS.get(stackName);
        return s == null ? null : s.clock();
    }

    @Override
    public void setSipStack(SipStackImpl sipStack) {
        Stack s = STACKS.get(sipStack.getStackName());
        if (s == null) {
            throw new IllegalStateException("no attested TLS configuration registered for stack "
                    + sipStack.getStackName());
        }
        bind(s);
    }

    /** Works with {@code parts} from now on (JAIN-SIP's stack, or a test's). */
    void bind(Stack parts) {
        stack = parts;
        refusalLines = new LogBudget(parts.clock(), 1);
    }

    @Override
    public ServerSocket createServerSocket(int port, int backlog, InetAddress bindAddress) throws IOException {
        return stack.connections().listen(port, backlog, bindAddress);
    }

    @Override
    public SSLServerSocket createSSLServerSocket(int port, int backlog, InetAddress bindAddress) throws IOException {
        Stack s = stack;
        return new AttestedSslServerSocket(s.connections().listen(port, backlog, bindAddress),
                () -> new AttestedTlsServer(crypto, s.tls()), s.guard(), s.accepted());
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
        Stack s = stack;
        InetSocketAddress to = new InetSocketAddress(address, port);
        refuseUnchosen(s, to, "TLS");
        if (!s.outgoingHandshakes().take()) {
            refused(to, "the allowance of TLS handshakes as a client is spent");
            throw new IOException("not connecting to " + to + ": this phone made too many TLS handshakes as a client"
                    + " lately (each costs a TPM signature); try again in a second");
        }
        Socket raw = connect(address, port, myAddress == null ? null : new InetSocketAddress(myAddress, 0));
        return new AttestedSslSocket(raw, true, () -> new AttestedTlsClient(crypto, s.tls()), s.gate());
    }

    /**
     * A socket for datagrams JAIN-SIP sends from a socket of its own (its answers over UDP go out through the
     * listening socket): only to destinations the phone chose.
     */
    @Override
    public DatagramSocket createDatagramSocket() throws SocketException {
        Stack s = stack;
        return new DatagramSocket() {
            @Override
            public void send(java.net.DatagramPacket p) throws IOException {
                InetSocketAddress to = new InetSocketAddress(p.getAddress(), p.getPort());
                refuseUnchosen(s, to, "UDP");
                super.send(p);
            }
        };
    }

    /**
     * The listening UDP socket: every datagram JAIN-SIP sends, answers and the phone's own requests, goes out through
     * it. It sends only to a destination the phone chose or to the address and port a datagram came from lately (one
     * of the last {@value UdpRefusalBudget#ADDRESSES} sources): a peer-written {@code received} or {@code maddr}
     * cannot aim the phone's answers at a third party (issue 12's third review, finding 1). A refusal goes only within
     * what its destination sent ({@link UdpRefusalBudget}), whichever part of JAIN-SIP or the phone made it.
     */
    @Override
    public DatagramSocket createDatagramSocket(int port, InetAddress bindAddress) throws SocketException {
        Stack s = stack;
        UdpRefusalBudget budget = s.udpRefusals();
        return new DatagramSocket(new InetSocketAddress(bindAddress, port)) {
            @Override
            public void receive(java.net.DatagramPacket p) throws IOException {
                super.receive(p);
                budget.received(new InetSocketAddress(p.getAddress(), p.getPort()), p.getLength());
            }

            @Override
            public void send(java.net.DatagramPacket p) throws IOException {
                InetSocketAddress to = new InetSocketAddress(p.getAddress(), p.getPort());
                if (!budget.heardFrom(to)) {
                    refuseUnchosen(s, to, "UDP");
                }
                if (budget.maySend(p)) {
                    super.send(p);
                } else {
                    refused(to, "a UDP refusal of " + p.getLength() + " bytes, more than its source sent (not sent)");
                }
            }
        };
    }

    private Socket connect(InetAddress address, int port, InetSocketAddress local) throws IOException {
        InetSocketAddress to = new InetSocketAddress(address, port);
        Stack parts = stack;
        refuseUnchosen(parts, to, "TCP");
        Socket s = parts.connections().outgoing(to);
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

    /** Throws unless the phone chose {@code to} as a destination. */
    private void refuseUnchosen(Stack s, InetSocketAddress to, String transport) throws IOException {
        if (!s.chosen().test(to)) {
            refused(to, "not a destination the phone chose");
            throw new IOException("not sending to " + to + " over " + transport + ": the phone did not choose it as a"
                    + " destination (a registrar, a call's first hop, or a call's peer); a peer cannot make it go there");
        }
    }

    /** One log line a second at most, for whatever peers make the phone refuse. */
    private void refused(InetSocketAddress to, String why) {
        LogBudget.Take line = refusalLines.take();
        if (line.log()) {
            LOG.warn("refused to connect or send to {}: {}{}", to, why, line.leftOut().isPresent() ? " ("
                    + line.leftOut().getAsLong() + " more refusals since the last line)" : "");
        }
    }
}
