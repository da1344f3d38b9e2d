package io.tpmphone.softphone.sip;

import io.tpmphone.tls.HandshakeGuard;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The phone's TCP and TLS connections (JAIN-SIP's blocking transports: one thread each), bounded whatever peers do.
 * Connections it accepts are counted per source ({@link HandshakeGuard#sourceOf}: an IPv4 address, an IPv6 /64) and
 * overall; one beyond either cap is reset inside {@code accept()}, before any TLS work or thread is spent on it. A
 * connection on which nothing arrived for the idle timeout is closed, unless it carries a call in progress or a
 * registration ({@code inUse}, asked with the connection's remote address); a peer that wants to keep one open sends
 * something now and then (RFC 5626 keep-alives do). Connections the phone opens are closed when idle too, but not
 * capped: the phone chose them.
 *
 * <p>Idleness is measured on {@code clock} and looked at by a sweep every second at most (a quarter of the timeout
 * when that is shorter). Thread-safe; one daemon thread sweeps.
 */
final class ConnectionTable implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ConnectionTable.class);

    private final Duration idleTimeout;
    private final int perSource;
    private final int total;
    private final Clock clock;
    private final Predicate<InetSocketAddress> inUse;
    private final ScheduledThreadPoolExecutor sweeper;
    private final Set<Tracked> open = new LinkedHashSet<>();
    private final Map<InetAddress, Integer> acceptedBySource = new HashMap<>();
    private int accepted;
    private final AtomicLong closedIdle = new AtomicLong();
    private final AtomicInteger refusedInBurst = new AtomicInteger();

    /**
     * @param inUse whether the connection to a remote address carries a call in progress or a registration, and so
     *              stays however idle; asked from the sweeping thread, outside this table's lock
     */
    ConnectionTable(Duration idleTimeout, int perSource, int total, Clock clock, Predicate<InetSocketAddress> inUse) {
        this.idleTimeout = Objects.requireNonNull(idleTimeout, "idleTimeout");
        this.perSource = perSource;
        this.total = total;
        this.clock = Objects.requireNonNull(clock, "clock");
        this.inUse = Objects.requireNonNull(inUse, "inUse");
        this.sweeper = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "sip-idle-connections");
            t.setDaemon(true);
            return t;
        });
        long period = Math.max(100, Math.min(1_000, idleTimeout.toMillis() / 4));
        sweeper.scheduleWithFixedDelay(this::sweepQuietly, period, period, TimeUnit.MILLISECONDS);
    }

    /** A listening socket whose {@code accept()} returns tracked connections within the caps. */
    ServerSocket listen(int port, int backlog, InetAddress bindAddress) throws IOException {
        return new Listener(port, backlog, bindAddress);
    }

    /** An unconnected socket for a connection the phone opens; tracked from now until it is closed. */
    Socket outgoing() {
        Tracked t = new Tracked();
        synchronized (this) {
            open.add(t);
        }
        return t;
    }

    /** Whether a tracked connection to {@code remote} is open: an answer for it can go out on it. */
    boolean isOpen(InetSocketAddress remote) {
        synchronized (this) {
            for (Tracked t : open) {
                if (!t.isClosed() && remote.equals(t.getRemoteSocketAddress())) {
                    return true;
                }
            }
        }
        return false;
    }

    /** The remote addresses of the open connections, for diagnostics and tests. */
    synchronized List<InetSocketAddress> remotes() {
        List<InetSocketAddress> out = new ArrayList<>();
        for (Tracked t : open) {
            if (t.getRemoteSocketAddress() instanceof InetSocketAddress a) {
                out.add(a);
            }
        }
        return out;
    }

    synchronized int openCount() {
        return open.size();
    }

    /** Connections closed because they were idle, since the start. */
    long closedIdle() {
        return closedIdle.get();
    }

    /** Closes the connections idle for longer than the timeout that carry no call or registration; how many. */
    int sweep() {
        long now = clock.millis();
        List<Tracked> idle = new ArrayList<>();
        synchronized (this) {
            for (Tracked t : open) {
                if (now - t.lastRead.get() >= idleTimeout.toMillis()) {
                    idle.add(t);
                }
            }
        }
        int closed = 0;
        for (Tracked t : idle) {
            if (!t.isClosed() && !t.isConnected()) {
                continue; // still connecting (within its connect timeout)
            }
            if (!t.isClosed() && t.getRemoteSocketAddress() instanceof InetSocketAddress remote
                    && inUse.test(remote)) {
                continue;
            }
            if (!t.isClosed()) {
                closed++;
                closedIdle.incrementAndGet();
            }
            closeQuietly(t);
        }
        if (closed > 0) {
            LOG.info("closed {} SIP connections on which nothing arrived for {} s", closed, idleTimeout.toSeconds());
        }
        return closed;
    }

    private void sweepQuietly() {
        try {
            sweep();
        } catch (RuntimeException e) {
            // the next sweep tries again; a failing one must not end the sweeper
            LOG.warn("sweeping idle SIP connections failed: {}", e.toString());
        }
    }

    /** Counts an accepted connection, or says why it is beyond the caps. */
    private synchronized String admit(Tracked t) {
        InetAddress source = HandshakeGuard.sourceOf(t.getInetAddress());
        if (accepted >= total) {
            return accepted + " connections accepted are open (at most " + total + ")";
        }
        int fromSource = acceptedBySource.getOrDefault(source, 0);
        if (fromSource >= perSource) {
            return fromSource + " connections from one source are open (at most " + perSource + ")";
        }
        acceptedBySource.put(source, fromSource + 1);
        accepted++;
        t.source = source;
        open.add(t);
        return null;
    }

    private synchronized void forget(Tracked t) {
        if (!open.remove(t) || t.source == null) {
            return;
        }
        accepted--;
        acceptedBySource.computeIfPresent(t.source, (k, n) -> n <= 1 ? null : n - 1);
    }

    private void refused(InetAddress peer, String why) {
        if (refusedInBurst.incrementAndGet() == 1) {
            String first = peer.getHostAddress();
            try {
                sweeper.schedule(() -> LOG.warn("reset {} SIP connections at once in the last second (the first from"
                        + " {}): {}", refusedInBurst.getAndSet(0), first, why), 1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                refusedInBurst.set(0);
            }
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing is all we wanted
        }
    }

    /** Stops sweeping; the connections themselves are JAIN-SIP's to close. */
    @Override
    public void close() {
        sweeper.shutdownNow();
    }

    /**
     * A connection that notes when something arrived on it and leaves the table when it is closed. An accepted one is
     * added by {@code admit}, an outgoing one by {@link #outgoing()}.
     */
    private final class Tracked extends Socket {
        private final AtomicLong lastRead = new AtomicLong(clock.millis());
        private final AtomicBoolean forgotten = new AtomicBoolean();
        /** The source it is counted under, for an accepted connection within the caps; null otherwise. */
        private volatile InetAddress source;
        private InputStream in;

        @Override
        public synchronized InputStream getInputStream() throws IOException {
            if (in == null) {
                in = new FilterInputStream(super.getInputStream()) {
                    @Override
                    public int read() throws IOException {
                        int b = super.read();
                        if (b >= 0) {
                            lastRead.set(clock.millis());
                        }
                        return b;
                    }

                    @Override
                    public int read(byte[] b, int off, int len) throws IOException {
                        int n = super.read(b, off, len);
                        if (n > 0) {
                            lastRead.set(clock.millis());
                        }
                        return n;
                    }
                };
            }
            return in;
        }

        @Override
        public void close() throws IOException {
            try {
                super.close();
            } finally {
                if (forgotten.compareAndSet(false, true)) {
                    forget(this);
                }
            }
        }
    }

    /** Accepts only connections within the caps; the others are reset before anything else happens. */
    private final class Listener extends ServerSocket {
        Listener(int port, int backlog, InetAddress bindAddress) throws IOException {
            super(port, backlog, bindAddress);
        }

        @Override
        public Socket accept() throws IOException {
            while (true) {
                Tracked t = new Tracked();
                implAccept(t);
                String refusal = admit(t);
                if (refusal == null) {
                    return t;
                }
                refused(t.getInetAddress(), refusal);
                try {
                    t.setSoLinger(true, 0);
                } catch (SocketException gone) {
                    // closing is what matters
                }
                closeQuietly(t);
            }
        }
    }
}
