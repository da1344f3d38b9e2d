package io.tpmphone.softphone.sip;

import gov.nist.core.HostPort;
import gov.nist.javax.sip.SipStackImpl;
import gov.nist.javax.sip.message.SIPMessage;
import gov.nist.javax.sip.message.SIPResponse;
import gov.nist.javax.sip.stack.MessageChannel;
import gov.nist.javax.sip.stack.MessageProcessor;
import gov.nist.javax.sip.stack.MessageProcessorFactory;
import gov.nist.javax.sip.stack.OIOMessageProcessorFactory;
import gov.nist.javax.sip.stack.SIPTransactionStack;
import gov.nist.javax.sip.stack.TCPMessageChannel;
import gov.nist.javax.sip.stack.TCPMessageProcessor;
import gov.nist.javax.sip.stack.TLSMessageChannel;
import gov.nist.javax.sip.stack.TLSMessageProcessor;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.UnknownHostException;
import javax.sip.ListeningPoint;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JAIN-SIP's {@code gov.nist.javax.sip.MESSAGE_PROCESSOR_FACTORY}: its blocking processors, with TCP and TLS channels
 * bound to their connection. UDP is JAIN-SIP's own.
 *
 * <p>Why: a JAIN-SIP 1.3.0-91 channel takes the top Via of every request it reads as where it sends: that Via's
 * transport (a Via saying UDP turns the channel's sends into datagrams), the first request's Via host and the latest
 * Via port as a fallback. A send that gets no socket (and a datagram never does) is retried to that host and port,
 * through JAIN-SIP's table of sockets by address, and the channel then keeps it as its peer. JAIN-SIP answers a
 * CRLF keep-alive by itself, so any peer could make those sends happen: the phone's answers, and even the socket of
 * its connection to its registrar, were moved into an attacker's channel, and the phone connected out (TCP, and TLS
 * with a TPM signature) wherever a Via said.
 *
 * <p>Here a channel of a connection the phone <b>accepted</b> writes only to that connection's socket: when it is
 * closed, nothing is sent (an {@link IOException}), and no other socket, connection or datagram is ever tried. A
 * channel of a connection the phone <b>opened</b> writes to its socket and reconnects only to the peer it was opened
 * for, over its own transport, never to a Via's address. {@link BoundChannel#answer} writes a response on the
 * channel's own connection, whichever kind. Every complete SIP message that arrives counts as activity of its
 * connection ({@link ConnectionTable#messageArrived}); a bare CRLF does not. The transport check that closes a
 * connection whose request names another transport is {@link ViaTransportValve}'s. Every connection's bytes pass
 * {@link SipStreamGuard} on their way to JAIN-SIP's parser.
 *
 * <p>Instantiated by JAIN-SIP by name; the stack's {@link ConnectionTable} comes from {@link AttestedNetworkLayer}'s
 * registration under the stack's name.
 */
public final class ConnectionBoundProcessors implements MessageProcessorFactory {
    private static final Logger LOG = LoggerFactory.getLogger(ConnectionBoundProcessors.class);
    private final OIOMessageProcessorFactory blocking = new OIOMessageProcessorFactory();

    public ConnectionBoundProcessors() {
        // instantiated by JAIN-SIP
    }

    @Override
    public MessageProcessor createMessageProcessor(SIPTransactionStack stack, InetAddress address, int port,
                                                   String transport) throws IOException {
        if (transport.equalsIgnoreCase(ListeningPoint.TCP)) {
            return new TcpProcessor(address, stack, port);
        }
        if (transport.equalsIgnoreCase(ListeningPoint.TLS)) {
            return new TlsProcessor(address, stack, port);
        }
        if (transport.equalsIgnoreCase(ListeningPoint.UDP)) {
            return blocking.createMessageProcessor(stack, address, port, transport);
        }
        throw new IllegalArgumentException("the phone serves SIP over UDP, TCP and TLS, not " + transport);
    }

    /** A TCP or TLS channel of this factory. */
    interface BoundChannel {
        /**
         * Writes {@code response} on this channel's own connection, or throws if that connection is closed: never
         * anywhere else.
         */
        void answer(SIPResponse response) throws IOException;

        /** Whether the phone accepted this connection (rather than opened it). */
        boolean accepted();

        /** The address this connection's peer sends from, or null once it is closed. */
        InetSocketAddress remote();
    }

    private static InetSocketAddress remoteOf(Socket s) {
        return s == null || s.isClosed() || !(s.getRemoteSocketAddress() instanceof InetSocketAddress a) ? null : a;
    }

    /** The table of the connections of the stack that {@code stack} is, if it is still registered. */
    private static ConnectionTable table(SIPTransactionStack stack) {
        return stack instanceof SipStackImpl s ? AttestedNetworkLayer.connectionsOf(s.getStackName()) : null;
    }

    /**
     * Writes {@code bytes} on {@code socket} (the channel's lock held by the caller), or throws when it is gone. JAIN-SIP
     * sets a channel's socket to null when it closes it.
     */
    private static void write(Socket socket, byte[] bytes, String what) throws IOException {
        if (socket == null || socket.isClosed()) {
            throw new SocketException(what + " is closed; the message goes on no other connection");
        }
        OutputStream out = socket.getOutputStream();
        out.write(bytes);
        out.flush();
    }

    /** Writes {@code bytes} on an accepted connection, if {@code address:port} is its peer: never elsewhere. */
    private static void writeTo(Socket socket, InetAddress address, int port, byte[] bytes) throws IOException {
        if (socket != null && !(socket.getInetAddress().equals(address) && socket.getPort() == port)) {
            throw new SocketException("not sending to " + address + ":" + port + " on the connection from "
                    + socket.getRemoteSocketAddress());
        }
        write(socket, bytes, "the connection from " + address + ":" + port);
    }

    /** How long an accept loop pauses after {@code accept()} failed on an open listening socket. */
    static final long ACCEPT_BACKOFF_NANOS = java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(100);

    /**
     * An accept loop's {@code accept()} threw {@code e}: whether the loop ends (only when its listening socket is
     * closed). Otherwise, out of file descriptors or any other failure, it waits {@link #ACCEPT_BACKOFF_NANOS} (the
     * failure would repeat at once) and goes on.
     */
    private static boolean acceptFailed(java.net.ServerSocket listening, Exception e, String transport) {
        if (listening == null || listening.isClosed()) {
            return true;
        }
        LOG.debug("accepting a {} connection failed: {}", transport, e.toString());
        java.util.concurrent.locks.LockSupport.parkNanos(ACCEPT_BACKOFF_NANOS);
        return Thread.currentThread().isInterrupted() && listening.isClosed();
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing is all
        }
    }

    // ------------------------------------------------------------------------------------------------------- TCP

    /** JAIN-SIP's TCP processor, making {@link TcpChannel}s. */
    static final class TcpProcessor extends TCPMessageProcessor {
        TcpProcessor(InetAddress address, SIPTransactionStack stack, int port) {
            super(address, stack, port);
        }

        /**
         * JAIN-SIP's accept loop (the stack sets no MAX_CONNECTIONS: the ConnectionTable caps connections). Only a closed
         * listening socket ends it (issue 12's third review, finding 3): a connection closed between {@code accept()}
         * and its channel (the table making room from the TLS listener's thread) is dropped, and a failing
         * {@code accept()} (out of file descriptors) is retried after a pause.
         */
        @Override
        public void run() {
            while (isRunning) {
                Socket s;
                try {
                    s = sock.accept();
                    synchronized (this) {
                        nConnections++;
                    }
                } catch (IOException | RuntimeException e) {
                    if (acceptFailed(sock, e, "TCP")) {
                        isRunning = false;
                    }
                    continue;
                }
                try {
                    try {
                        s.setTcpNoDelay(true);
                    } catch (SocketException gone) {
                        // the peer left already; the channel's thread sees it
                    }
                    TcpChannel channel = new TcpChannel(s, sipStack, this, "TCPMessageChannelThread-" + nConnections);
                    incomingMessageChannels.put(channel.getKey(), channel);
                } catch (IOException | RuntimeException e) {
                    closeQuietly(s);
                    LOG.debug("taking a TCP connection failed: {}", e.toString());
                }
            }
        }

        @Override
        public synchronized MessageChannel createMessageChannel(HostPort target) throws IOException {
            return createMessageChannel(target.getInetAddress(), target.getPort());
        }

        @Override
        public synchronized MessageChannel createMessageChannel(InetAddress host, int port) throws IOException {
            String key = MessageChannel.getKey(host, port, "TCP");
            MessageChannel cached = messageChannels.get(key);
            if (cached != null) {
                return cached;
            }
            TcpChannel c = new TcpChannel(host, port, sipStack, this);
            messageChannels.put(key, c);
            c.cached();
            return c;
        }
    }

    /**
     * A TCP channel bound to its connection. Whether it was accepted is what JAIN-SIP's own constructors leave: only
     * the accepting one sets {@code mythread} (a reconnect starts its reader in a local variable), and it does so
     * before starting that thread, so even the channel's first message sees it (a field of this class would not be
     * assigned yet then).
     */
    static final class TcpChannel extends TCPMessageChannel implements BoundChannel {
        TcpChannel(Socket socket, SIPTransactionStack stack, TcpProcessor processor, String threadName)
                throws IOException {
            super(socket, stack, processor, threadName);
        }

        TcpChannel(InetAddress peer, int port, SIPTransactionStack stack, TcpProcessor processor) throws IOException {
            super(peer, port, stack, processor);
        }

        @Override
        public boolean accepted() {
            return mythread != null;
        }

        @Override
        public InetSocketAddress remote() {
            return remoteOf(mySock);
        }

        void cached() {
            isCached = true;
        }

        @Override
        protected synchronized void sendMessage(byte[] msg, boolean isClient) throws IOException {
            if (accepted()) {
                write(mySock, msg, "the connection from " + peerAddress + ":" + peerPort);
                return;
            }
            // Opened by the phone: to the peer it was opened for, over its own transport, never to a Via's address.
            peerAddressAdvertisedInHeaders = null;
            peerProtocol = getTransport();
            super.sendMessage(msg, isClient);
        }

        @Override
        public synchronized void sendMessage(byte[] message, InetAddress receiverAddress, int receiverPort,
                                             boolean retry) throws IOException {
            if (accepted()) {
                writeTo(mySock, receiverAddress, receiverPort, message);
                return;
            }
            peerAddressAdvertisedInHeaders = null;
            super.sendMessage(message, receiverAddress, receiverPort, retry);
        }

        @Override
        public synchronized void answer(SIPResponse response) throws IOException {
            write(mySock, response.encodeAsBytes(getTransport()), "the connection with " + peerAddress + ":"
                    + peerPort);
        }

        /**
         * The channel's reader: JAIN-SIP's, over the connection's bytes as {@link SipStreamGuard} passes them. Runs on
         * the channel's thread, before anything is read (a reconnect runs it again: guarded once).
         */
        @Override
        public void run() {
            myClientInputStream = SipStreamGuard.around(myClientInputStream);
            super.run();
        }

        @Override
        public void processMessage(SIPMessage message) throws Exception {
            ConnectionTable t = table(sipStack);
            if (t != null) {
                t.messageArrived(mySock);
            }
            super.processMessage(message);
        }
    }

    // ------------------------------------------------------------------------------------------------------- TLS

    /** JAIN-SIP's TLS processor, making {@link TlsChannel}s; its listening socket is JAIN-SIP's (start()). */
    static final class TlsProcessor extends TLSMessageProcessor {
        TlsProcessor(InetAddress address, SIPTransactionStack stack, int port) {
            super(address, stack, port);
        }

        /**
         * JAIN-SIP's accept loop: the handshake runs on the channel's own thread (a silent client cannot block
         * accepting); connections beyond the HandshakeGuard's and the ConnectionTable's limits never come out of
         * {@code accept()}.
         */
        @Override
        public void run() {
            while (isRunning) {
                Socket s;
                try {
                    s = sock.accept();
                    synchronized (this) {
                        nConnections++;
                    }
                } catch (IOException | RuntimeException e) {
                    if (acceptFailed(sock, e, "TLS")) {
                        isRunning = false;
                        break;
                    }
                    continue;
                }
                try {
                    TlsChannel channel = new TlsChannel(s, sipStack, this, "TLSMessageChannelThread-" + nConnections);
                    if (channel.isHandshakeCompleted()) {
                        incomingMessageChannels.put(channel.getKey(), channel);
                    }
                } catch (IOException | RuntimeException e) {
                    closeQuietly(s);
                    LOG.debug("taking a TLS connection failed: {}", e.toString());
                }
            }
        }

        @Override
        public synchronized MessageChannel createMessageChannel(HostPort target) throws IOException {
            return createMessageChannel(target.getInetAddress(), target.getPort());
        }

        @Override
        public synchronized MessageChannel createMessageChannel(InetAddress host, int port) throws IOException {
            try {
                String key = MessageChannel.getKey(host, port, "TLS");
                MessageChannel cached = messageChannels.get(key);
                if (cached != null) {
                    return cached;
                }
                TlsChannel c = new TlsChannel(host, port, sipStack, this);
                messageChannels.put(key, c);
                c.cached();
                return c;
            } catch (UnknownHostException e) {
                throw new IOException(e.getMessage(), e);
            }
        }
    }

    /** A TLS channel bound to its connection; as {@link TcpChannel}. */
    static final class TlsChannel extends TLSMessageChannel implements BoundChannel {
        TlsChannel(Socket socket, SIPTransactionStack stack, TlsProcessor processor, String threadName)
                throws IOException {
            super(socket, stack, processor, threadName);
        }

        TlsChannel(InetAddress peer, int port, SIPTransactionStack stack, TlsProcessor processor) throws IOException {
            super(peer, port, stack, processor);
        }

        @Override
        public boolean accepted() {
            return mythread != null;
        }

        @Override
        public InetSocketAddress remote() {
            return remoteOf(mySock);
        }

        void cached() {
            isCached = true;
        }

        @Override
        protected synchronized void sendMessage(byte[] msg, boolean isClient) throws IOException {
            if (accepted()) {
                write(mySock, msg, "the connection from " + peerAddress + ":" + peerPort);
                return;
            }
            peerAddressAdvertisedInHeaders = null;
            peerProtocol = getTransport();
            super.sendMessage(msg, isClient);
        }

        @Override
        public synchronized void sendMessage(byte[] message, InetAddress receiverAddress, int receiverPort,
                                             boolean retry) throws IOException {
            if (accepted()) {
                writeTo(mySock, receiverAddress, receiverPort, message);
                return;
            }
            peerAddressAdvertisedInHeaders = null;
            super.sendMessage(message, receiverAddress, receiverPort, retry);
        }

        @Override
        public synchronized void answer(SIPResponse response) throws IOException {
            write(mySock, response.encodeAsBytes(getTransport()), "the connection with " + peerAddress + ":"
                    + peerPort);
        }

        /**
         * The channel's reader: JAIN-SIP's, over the connection's bytes as {@link SipStreamGuard} passes them. Runs on
         * the channel's thread, before anything is read (a reconnect runs it again: guarded once).
         */
        @Override
        public void run() {
            myClientInputStream = SipStreamGuard.around(myClientInputStream);
            super.run();
        }

        @Override
        public void processMessage(SIPMessage message) throws Exception {
            ConnectionTable t = table(sipStack);
            if (t != null) {
                t.messageArrived(mySock);
            }
            super.processMessage(message);
        }
    }
}
