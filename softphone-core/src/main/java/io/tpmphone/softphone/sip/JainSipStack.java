package io.tpmphone.softphone.sip;

import java.lang.reflect.Field;
import java.util.Properties;
import java.util.TooManyListenersException;
import javax.sip.InvalidArgumentException;
import javax.sip.ListeningPoint;
import javax.sip.ObjectInUseException;
import javax.sip.PeerUnavailableException;
import javax.sip.SipException;
import javax.sip.SipFactory;
import javax.sip.SipListener;
import javax.sip.SipProvider;
import javax.sip.SipStack;
import javax.sip.TransportNotSupportedException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The JAIN-SIP 1.3 stack of one phone, configured for what it must hold and where it may send: our network layer
 * (attested TLS, chosen destinations: {@link AttestedNetworkLayer}), channels bound to their connection
 * ({@link ConnectionBoundProcessors}), the Via valve ({@link ViaTransportValve}), TLS 1.3 (and 1.2 for peers that
 * cannot attest), its logs through
 * SLF4J, and its table of server transactions bounded. Not thread-safe: used once, while the phone starts.
 */
final class JainSipStack {
    private static final Logger LOG = LoggerFactory.getLogger(SipPhone.class);

    private JainSipStack() {
    }

    /** The JAIN-SIP factory (path {@code gov.nist}). */
    static SipFactory factory() {
        SipFactory factory = SipFactory.getInstance();
        factory.setPathName("gov.nist");
        return factory;
    }

    /** A new stack named {@code stackName}, whose network layer must already be registered under that name. */
    static SipStack create(SipFactory factory, String stackName) throws PeerUnavailableException {
        SipStack stack = factory.createSipStack(properties(stackName));
        enforceServerTransactionLimit(stack);
        return stack;
    }

    /**
     * The configuration of a stack named {@code stackName}: the connection-bound processors, the valve, the guarded message parser, TLS 1.3, the
     * bounds on transactions and message sizes, and our loggers. The SIP fuzz tests parse with it.
     */
    static Properties properties(String stackName) {
        Properties p = new Properties();
        p.setProperty("javax.sip.STACK_NAME", stackName);
        p.setProperty("gov.nist.javax.sip.NETWORK_LAYER", AttestedNetworkLayer.class.getName());
        // TCP and TLS channels that answer only on their own connection and never reconnect to a Via's address,
        // and a valve that closes a connection whose request names another transport (docs/softphone.md, "Bounds")
        p.setProperty("gov.nist.javax.sip.MESSAGE_PROCESSOR_FACTORY", ConnectionBoundProcessors.class.getName());
        p.setProperty("gov.nist.javax.sip.SIP_MESSAGE_VALVE", ViaTransportValve.class.getName());
        // JAIN-SIP's parser, refusing first what it would never return from (a Via ending in a backslash) or would
        // throw out of a connection's parser thread (docs/fuzzing.md)
        p.setProperty("gov.nist.javax.sip.MESSAGE_PARSER_FACTORY", GuardedMessageParsers.class.getName());
        p.setProperty("gov.nist.javax.sip.TLS_CLIENT_PROTOCOLS", "TLSv1.3");
        p.setProperty("gov.nist.javax.sip.ENABLED_CIPHER_SUITES",
                "TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256");
        p.setProperty("gov.nist.javax.sip.TLS_CLIENT_AUTH_TYPE", "Want");
        p.setProperty("gov.nist.javax.sip.REENTRANT_LISTENER", "true");
        p.setProperty("gov.nist.javax.sip.THREAD_POOL_SIZE", "8");
        p.setProperty("gov.nist.javax.sip.MAX_MESSAGE_SIZE", "65536");
        p.setProperty("gov.nist.javax.sip.READ_TIMEOUT", "10000");
        // JAIN-SIP's own state, bounded: beyond 800 server transactions it drops new requests at random, beyond
        // 1,000 all of them, instead of growing (enforceServerTransactionLimit). A backstop: the phone makes a
        // transaction only for an INVITE it accepted and a request in a call in progress, everything else is
        // answered statelessly. Client transactions are the phone's own requests (JAIN-SIP 1.3.0-91 does not enforce
        // MAX_CLIENT_TRANSACTIONS either). Not MAX_CONNECTIONS: JAIN-SIP 1.3 counts every accepted TLS socket but
        // uncounts it only when an established connection closes, so each failed handshake would hold a slot for
        // good and 256 of them would stop the TLS listener until a restart. Connections are bounded by the
        // ConnectionTable, TLS handshakes by the HandshakeGuard instead.
        p.setProperty("gov.nist.javax.sip.MAX_SERVER_TRANSACTIONS", "1000");
        p.setProperty("gov.nist.javax.sip.MAX_CLIENT_TRANSACTIONS", "1000");
        p.setProperty("gov.nist.javax.sip.TRACE_LEVEL", "0");
        p.setProperty("gov.nist.javax.sip.STACK_LOGGER", Slf4jStackLogger.class.getName());
        p.setProperty("gov.nist.javax.sip.SERVER_LOGGER", Slf4jServerLogger.class.getName());
        p.setProperty("javax.sip.AUTOMATIC_DIALOG_SUPPORT", "on");
        return p;
    }

    /** A provider listening on the configured ports (TLS always; TCP and UDP when their port is not 0). */
    /**
     * Stops {@code stack} without JAIN-SIP's fixed pause. {@code SIPTransactionStack.stopStack()} removes its message
     * processors, closes every socket and stops its timer, then sleeps one second ("let the processing complete")
     * before it clears its transaction and dialog tables, and swallows an interrupt of that sleep. By then nothing
     * can reach the phone any more (its sockets are closed, its timer is stopped), so the second only delays every
     * close: of each phone, of each measured softphone at exit (and so each agent's relaunch). This runs the stop
     * with the calling thread's interrupt flag set, which ends that sleep at once, and restores the flag as it was.
     * Nothing before the sleep waits interruptibly (closing sockets, shutting executors down, cancelling a timer).
     */
    static void stop(SipStack stack) {
        boolean interrupted = Thread.interrupted();
        Thread.currentThread().interrupt();
        try {
            stack.stop();
        } finally {
            Thread.interrupted(); // swallowed by the sleep, or still set: cleared either way
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    static SipProvider listen(SipStack stack, SipPhone.Config config) throws SipException {
        try {
            String ip = config.address().getHostAddress();
            ListeningPoint tls = stack.createListeningPoint(ip, config.tlsPort(), ListeningPoint.TLS);
            SipProvider provider = stack.createSipProvider(tls);
            if (config.tcpPort() > 0) {
                provider.addListeningPoint(stack.createListeningPoint(ip, config.tcpPort(), ListeningPoint.TCP));
            }
            if (config.udpPort() > 0) {
                provider.addListeningPoint(stack.createListeningPoint(ip, config.udpPort(), ListeningPoint.UDP));
            }
            return provider;
        } catch (InvalidArgumentException | TransportNotSupportedException | ObjectInUseException e) {
            throw new SipException("cannot listen: " + e.getMessage(), e);
        }
    }

    /** Hands every event of {@code provider} to {@code listener}. */
    static void listenWith(SipProvider provider, SipListener listener) throws SipException {
        try {
            provider.addSipListener(listener);
        } catch (TooManyListenersException e) {
            throw new SipException("the SIP provider has a listener already", e);
        }
    }

    /**
     * JAIN-SIP 1.3.0-91 reads {@code MAX_SERVER_TRANSACTIONS} but never turns its limit on ({@code SipStackImpl}
     * leaves {@code unlimitedServerTransactionTableSize} true), so its table of server transactions could grow
     * without bound. This turns it on. Without it (a JAIN-SIP that renamed the field) the phone still makes no
     * transaction for what it refuses; the warning says the backstop is missing.
     */
    private static void enforceServerTransactionLimit(SipStack stack) {
        try {
            Field unlimited = gov.nist.javax.sip.stack.SIPTransactionStack.class
                    .getDeclaredField("unlimitedServerTransactionTableSize");
            unlimited.setAccessible(true);
            unlimited.setBoolean(stack, false);
        } catch (ReflectiveOperationException | RuntimeException e) {
            LOG.warn("cannot turn on JAIN-SIP's limit on server transactions ({}); its table has no bound",
                    e.toString());
        }
    }
}
