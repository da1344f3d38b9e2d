package io.tpmphone.swtpm.testing;

import io.tpmphone.swtpm.internal.LoopbackPorts;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;

/**
 * Loopback (127.0.0.1) ports that were free a moment ago.
 *
 * <p>Every method here binds an ephemeral port, reads its number and releases it, so the port is free only "a moment
 * ago": another process (or another test in this JVM) may bind it before the caller does. That race is inherent to
 * handing a port number to a server that binds it itself (swtpm, kamailio, baresip, our own SIP stack). Callers whose
 * server can bind port 0 and report the port should do that instead. Callers that cannot should treat "address already
 * in use" from the server as a reason to pick a new port and start again, not as a test failure; a test that sees
 * "address already in use" and fails is reporting this race, not a product bug.
 */
public final class FreePorts {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final int MAX_TRIES = 100;

    private FreePorts() {
    }

    /** A TCP port on 127.0.0.1 nobody listened on a moment ago; also a port to expect "connection refused" from. */
    public static int tcp() {
        try (ServerSocket s = new ServerSocket(0, 1, LOOPBACK)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot bind an ephemeral TCP port on " + LOOPBACK, e);
        }
    }

    /** A UDP port on 127.0.0.1 nobody had bound a moment ago. */
    public static int udp() {
        try (DatagramSocket s = new DatagramSocket(0, LOOPBACK)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot bind an ephemeral UDP port on " + LOOPBACK, e);
        }
    }

    /** A port number free for both TCP and UDP on 127.0.0.1 a moment ago (a SIP endpoint listens on both). */
    public static int tcpAndUdp() {
        return find(false);
    }

    /**
     * A port P free for TCP and UDP, whose P + 1 was free for TCP, a moment ago: for a SIP user agent that puts its TLS
     * listener on the next port (baresip does).
     */
    public static int tcpAndUdpWithNextTcp() {
        return find(true);
    }

    /** An even UDP port P whose P + 1 was free too, a moment ago: an RTP and RTCP pair (RFC 3550 §11). */
    public static int rtpPair() {
        IOException last = null;
        for (int i = 0; i < MAX_TRIES; i++) {
            try (DatagramSocket rtp = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0))) {
                int port = rtp.getLocalPort();
                if (port % 2 != 0 || port >= 65_535) {
                    continue;
                }
                try (DatagramSocket rtcp = new DatagramSocket(new InetSocketAddress(LOOPBACK, port + 1))) {
                    if (rtcp.isBound()) {
                        return port;
                    }
                } catch (IOException taken) {
                    last = taken;
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot bind an ephemeral UDP port on " + LOOPBACK, e);
            }
        }
        throw new UncheckedIOException("found no free RTP/RTCP port pair on " + LOOPBACK + " in " + MAX_TRIES
                + " tries", last == null ? new IOException("only odd ports") : last);
    }

    /** A port P such that TCP ports P and P + 1 were free a moment ago (swtpm's data and control ports). */
    public static int consecutiveTcpPair() {
        return LoopbackPorts.pickConsecutivePair();
    }

    /** Null when UDP {@code port} (and TCP {@code port + 1} if asked) could be bound; else why not. */
    private static IOException alsoFree(int port, boolean nextTcpToo) {
        try (DatagramSocket udp = new DatagramSocket(new InetSocketAddress(LOOPBACK, port))) {
            if (nextTcpToo) {
                new ServerSocket(port + 1, 1, LOOPBACK).close();
            }
            return udp.isBound() ? null : new IOException("UDP port " + port + " not bound");
        } catch (IOException taken) {
            return taken;
        }
    }

    private static int find(boolean nextTcpToo) {
        IOException last = null;
        for (int i = 0; i < MAX_TRIES; i++) {
            try (ServerSocket tcp = new ServerSocket(0, 1, LOOPBACK)) {
                int port = tcp.getLocalPort();
                if (nextTcpToo && port >= 65_535) {
                    continue;
                }
                last = alsoFree(port, nextTcpToo);
                if (last == null) {
                    return port;
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot bind an ephemeral TCP port on " + LOOPBACK, e);
            }
        }
        throw new UncheckedIOException("found no port free for " + (nextTcpToo ? "TCP+UDP with the next TCP" : "TCP+UDP")
                + " on " + LOOPBACK + " in " + MAX_TRIES + " tries", last == null ? new IOException("port 65535") : last);
    }
}
