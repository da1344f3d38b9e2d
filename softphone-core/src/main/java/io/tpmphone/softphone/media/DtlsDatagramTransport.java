package io.tpmphone.softphone.media;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.bouncycastle.tls.DatagramTransport;

/**
 * The DTLS side of a call's media socket before its SRTP starts: datagrams from the far end's media address whose
 * first byte says DTLS (20–63, RFC 7983 §7) go to the DTLS stack; everything else — early RTP, STUN, datagrams from
 * other addresses — is dropped and counted. Sends go to the far end's media address only. The socket stays the
 * caller's (closing this transport leaves it open: SRTP takes it over). Not thread-safe for concurrent receives.
 */
public final class DtlsDatagramTransport implements DatagramTransport {
    /** A conservative path MTU for UDP over IPv4 or IPv6 with room for tunnels (RFC 8085 §3.2 suggests 1,280). */
    public static final int PATH_MTU = 1200;
    private static final int IP_UDP_OVERHEAD = 48;

    private final DatagramSocket socket;
    private final InetSocketAddress remote;
    private final byte[] buffer = new byte[2048];
    private final AtomicLong dropped = new AtomicLong();

    public DtlsDatagramTransport(DatagramSocket socket, InetSocketAddress remote) {
        this.socket = Objects.requireNonNull(socket, "socket");
        this.remote = Objects.requireNonNull(remote, "remote");
        if (remote.isUnresolved()) {
            throw new IllegalArgumentException("the far end's media address is not resolved");
        }
    }

    /** Whether a datagram starting with {@code first} is DTLS (RFC 7983 §7: 20..63). */
    static boolean isDtls(int first) {
        return first >= 20 && first <= 63;
    }

    /** Datagrams dropped so far (not DTLS, or not from the far end). */
    public long dropped() {
        return dropped.get();
    }

    @Override
    public int getReceiveLimit() {
        return buffer.length;
    }

    @Override
    public int getSendLimit() {
        return PATH_MTU - IP_UDP_OVERHEAD;
    }

    @Override
    public int receive(byte[] buf, int off, int len, int waitMillis) throws IOException {
        long deadline = System.nanoTime() + Math.max(1, waitMillis) * 1_000_000L;
        DatagramPacket p = new DatagramPacket(buffer, buffer.length);
        int before = socket.getSoTimeout();
        try {
            return receive(p, buf, off, len, deadline);
        } finally {
            socket.setSoTimeout(before); // SRTP takes this socket over: it must not inherit our short waits
        }
    }

    private int receive(DatagramPacket p, byte[] buf, int off, int len, long deadline) throws IOException {
        while (true) {
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                return -1;
            }
            socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, left));
            try {
                socket.receive(p);
            } catch (SocketTimeoutException e) {
                return -1;
            }
            int n = p.getLength();
            if (n == 0 || !isDtls(buffer[0] & 0xff) || !remote.equals(p.getSocketAddress())) {
                dropped.incrementAndGet();
                p.setLength(buffer.length);
                continue;
            }
            int copy = Math.min(n, len);
            System.arraycopy(buffer, 0, buf, off, copy);
            return copy;
        }
    }

    @Override
    public void send(byte[] buf, int off, int len) throws IOException {
        if (len > getSendLimit()) {
            throw new IOException("a DTLS datagram of " + len + " bytes exceeds the path limit of " + getSendLimit());
        }
        socket.send(new DatagramPacket(buf, off, len, remote));
    }

    /** Leaves the socket open: the call's SRTP takes it over. */
    @Override
    public void close() {
        // nothing of ours to release
    }
}
