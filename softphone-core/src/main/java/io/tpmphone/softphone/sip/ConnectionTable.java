package io.tpmphone.softphone.sip;

import io.tpmphone.tls.HandshakeGuard;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
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
 * overall. One beyond its source's cap is reset inside {@code accept()}, before any TLS work or thread is spent on it.
 * One beyond the overall cap takes the place of the connection idle longest of the source with the most, if that
 * source has at least two more than the newcomer's and that connection carries no call or registration; otherwise it
 * is reset too. So a few sources holding every place cannot keep everyone else out.
 *
 * <p>Only a complete SIP message counts as something arriving ({@link #messageArrived}): not a CRLF keep-alive, not
 * TLS records, not a part of a message. A connection on which no message arrived for the idle timeout is closed, and
 * so is an accepted one older than its maximum age, unless it carries a call in progress or a registration
 * ({@code inUse}, asked with the connection's remote address). A peer that wants to keep a connection to the phone
 * open makes a call on it. Connections the phone opens are closed when idle too, and capped ({@link #outgoing}).
 *
 * <p>Idleness and age are measured on {@code clock} and looked at by a sweep every second at most (a quarter of the
 * timeout when that is shorter). Thread-safe; one daemon thread sweeps.
 */
final class ConnectionTable implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ConnectionTable.class);

    private final Duration idleTimeout;
    private final Duration maxAge;
    private final int perSource;
    private final int total;
    private final int outgoingCap;
    private int outgoingOpen;
    private final Clock clock;
    private final Predicate<InetSocketAddress> inUse;
    private final ScheduledThreadPoolExecutor sweeper;
    private final Set<Tracked> open = new LinkedHashSet<>();
    private final Map<InetAddress, Integer> acceptedBySource = new HashMap<>();
    private int accepted;
    private final AtomicLong closedIdle = new AtomicLong();
    private final AtomicInteger refusedInBurst = new AtomicInteger();
    private final AtomicInteger evictedInBurst = new AtomicInteger();

    /**
     * @param inUse whether the connection to a remote address carries a call in progress or a registration, and so
     *              stays however idle; asked from the sweeping thread, outside this table's lock
     */
    ConnectionTable(Duration idleTimeout, Duration maxAge, int perSource, int total, int outgoing, Clock clock,
                    Predicate<InetSocketAddress> inUse) {
        this.idleTimeout = Objects.requireNonNull(idleTimeout, "idleTimeout");
        this.maxAge = Objects.requireNonNull(maxAge, "maxAge");
        this.perSource = perSource;
        this.total = total;
        this.outgoingCap = outgoing;
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

    /**
     * Tests only: called with each admitted connection just before {@code accept()} returns it, as if another thread
     * (the TLS listener making room) closed it then.
     */
    volatile java.util.function.Consumer<Socket> afterAdmit;

    /** A listening socket whose {@code accept()} returns tracked connections within the caps. */
    ServerSocket listen(int port, int backlog, InetAddress bindAddress) throws IOException {
        return new Listener(port, backlog, bindAddress);
    }

    /**
     * An unconnected socket for a connection the phone opens to {@code to}; tracked from now until it is closed. At
     * most {@code outgoing} of them are open at once (beyond that, an {@link IOException}).
     */
    Socket outgoing(InetSocketAddress to) throws IOException {
        Tracked t = new Tracked();
        synchronized (this) {
            if (outgoingOpen >= outgoingCap) {
                throw new IOException("not connecting to " + to + ": " + outgoingOpen + " connections this phone"
                        + " opened are open (at most " + outgoingCap + ")");
            }
            outgoingOpen++;
            t.outgoing = true;
            open.add(t);
        }
        return t;
    }

    /**
     * A complete SIP message arrived on {@code connection} (a tracked socket, or a TLS socket over one): it is not
     * idle.
     */
    void messageArrived(Socket connection) {
        Tracked t = find(connection);
        if (t != null) {
            t.lastMessage.set(clock.millis());
        }
    }

    /** The tracked socket that is, or carries, {@code connection}: the same local port and remote address. */
    private synchronized Tracked find(Socket connection) {
        if (connection instanceof Tracked t) {
            return t;
        }
        if (connection == null) {
            return null;
        }
        SocketAddress remote = connection.getRemoteSocketAddress();
        int local = connection.getLocalPort();
        for (Tracked t : open) {
            if (t.getLocalPort() == local && remote != null && remote.equals(t.getRemoteSocketAddress())) {
                return t;
            }
        }
        return null;
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

    /**
     * Closes the connections on which no SIP message arrived for the idle timeout, and the accepted ones older than
     * the maximum age, that carry no call or registration; how many.
     */
    int sweep() {
        long now = clock.millis();
        List<Tracked> due = new ArrayList<>();
        synchronized (this) {
            for (Tracked t : open) {
                if (overdue(t, now)) {
                    due.add(t);
                }
            }
        }
        int closed = 0;
        for (Tracked t : due) {
            if (!t.isClosed() && !t.isConnected()) {
                continue; // still connecting (within its connect timeout)
            }
            if (!t.isClosed() && t.getRemoteSocketAddress() instanceof InetSocketAddress remote
                    && inUse.test(remote)) {
                continue;
            }
            // a message may have arrived since the first look (it counts for the idle timeout, not for the age)
            if (!t.isClosed() && !overdue(t, clock.millis())) {
                continue;
            }
            if (!t.isClosed()) {
                closed++;
                closedIdle.incrementAndGet();
            }
            closeQuietly(t);
        }
        if (closed > 0) {
            LOG.info("closed {} SIP connections without a call or registration, on which no SIP message arrived for"
                    + " {} s or accepted more than {} s ago", closed, idleTimeout.toSeconds(), maxAge.toSeconds());
        }
        return closed;
    }

    private boolean overdue(Tracked t, long now) {
        return now - t.lastMessage.get() >= idleTimeout.toMillis()
                || t.source != null && now - t.opened >= maxAge.toMillis();
    }

    private void sweepQuietly() {
        try {
            sweep();
        } catch (RuntimeException e) {
            // the next sweep tries again; a failing one must not end the sweeper
            LOG.warn("sweeping idle SIP connections failed: {}", e.toString());
        }
    }

    /** Why an accepted connection is beyond the caps; {@code overall}: the overall cap (room may be made). */
    private record Refusal(String why, boolean overall) {
    }

    /** Counts an accepted connection, or says why it is beyond the caps. */
    private synchronized Refusal admit(Tracked t) {
        InetAddress source = HandshakeGuard.sourceOf(t.getInetAddress());
        int fromSource = acceptedBySource.getOrDefault(source, 0);
        if (fromSource >= perSource) {
            return new Refusal(fromSource + " connections from one source are open (at most " + perSource + ")",
                    false);
        }
        if (accepted >= total) {
            return new Refusal(accepted + " connections accepted are open (at most " + total + "), none of them"
                    + " from a source with two more than this one's that is not in a call", true);
        }
        acceptedBySource.put(source, fromSource + 1);
        accepted++;
        t.source = source;
        open.add(t);
        return null;
    }

    /**
     * Closes the connection idle longest (then oldest) of the source with the most accepted connections, if it has at
     * least two more than {@code newcomer}'s and that connection carries no call or registration; whether it did.
     */
    private boolean makeRoomFor(Tracked newcomer) {
        List<Tracked> candidates = new ArrayList<>();
        int heaviestCount;
        synchronized (this) {
            InetAddress mine = HandshakeGuard.sourceOf(newcomer.getInetAddress());
            InetAddress heaviest = null;
            heaviestCount = 0;
            for (Map.Entry<InetAddress, Integer> e : acceptedBySource.entrySet()) {
                if (!e.getKey().equals(mine) && e.getValue() > heaviestCount) {
                    heaviest = e.getKey();
                    heaviestCount = e.getValue();
                }
            }
            if (heaviest == null || heaviestCount < acceptedBySource.getOrDefault(mine, 0) + 2) {
                return false;
            }
            for (Tracked t : open) {
                if (heaviest.equals(t.source)) {
                    candidates.add(t);
                }
            }
        }
        // idle longest first; the set keeps them in the order they were accepted, and the sort is stable
        candidates.sort(java.util.Comparator.comparingLong(t -> t.lastMessage.get()));
        for (Tracked t : candidates) {
            if (t.isClosed() || t.getRemoteSocketAddress() instanceof InetSocketAddress remote && inUse.test(remote)) {
                continue;
            }
            evicted(t, heaviestCount);
            closeQuietly(t);
            return true;
        }
        return false;
    }

    private void evicted(Tracked t, int sourceHad) {
        if (evictedInBurst.incrementAndGet() == 1) {
            String first = String.valueOf(t.getRemoteSocketAddress());
            try {
                sweeper.schedule(() -> LOG.warn("closed {} SIP connections in the last second to make room for other"
                        + " sources (the first with {}, whose source had {} open)", evictedInBurst.getAndSet(0),
                        first, sourceHad), 1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                evictedInBurst.set(0);
            }
        }
    }

    private synchronized void forget(Tracked t) {
        if (!open.remove(t)) {
            return;
        }
        if (t.outgoing) {
            outgoingOpen--;
        }
        if (t.source == null) {
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
     * A connection that knows when it was made and when its last SIP message arrived, and leaves the table when it is
     * closed. An accepted one is added by {@code admit}, an outgoing one by {@link #outgoing}.
     */
    private final class Tracked extends Socket {
        /** When it was made. */
        private final long opened = clock.millis();
        /** When the last complete SIP message arrived on it (when it was made, before the first). */
        private final AtomicLong lastMessage = new AtomicLong(opened);
        private final AtomicBoolean forgotten = new AtomicBoolean();
        /** The source it is counted under, for an accepted connection within the caps; null otherwise. */
        private volatile InetAddress source;
        /** Whether the phone opened it (counted against the cap on those). */
        private volatile boolean outgoing;

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
                Refusal refusal = admit(t);
                if (refusal != null && refusal.overall() && makeRoomFor(t)) {
                    refusal = admit(t);
                }
                if (refusal == null) {
                    java.util.function.Consumer<Socket> hook = afterAdmit;
                    if (hook != null) {
                        hook.accept(t);
                    }
                    return t;
                }
                refused(t.getInetAddress(), refusal.why());
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
