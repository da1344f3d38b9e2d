package io.tpmphone.tls;

import java.io.Closeable;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.Socket;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bounds what unauthenticated TCP peers can make an attested TLS server spend before a handshake completes: every
 * accepted connection gets a handshake deadline after which its socket is closed, and there are at most
 * {@link Limits#perSource()} handshakes in progress per source and {@link Limits#total()} overall. Per source, at most
 * {@link Limits#perSource()} new handshakes may start in a burst, refilled at {@link Limits#perSourcePerSecond()} a
 * second; overall, at most {@link Limits#total()} in a burst, refilled at {@link Limits#totalPerSecond()} a second,
 * whatever the sources. The server's CertificateVerify is a TPM signature (and its evidence a quote when the client
 * asks for it), and TLS 1.3 makes the server sign before the client proves anything, so these rates are how fast one
 * source, and everyone together, can make the TPM work. No TPM work happens before a complete ClientHello arrives
 * ({@link AttestedTlsServer#getCredentials()} runs after ServerHello). A connection beyond the limits is closed at
 * once, before any TLS work.
 *
 * <p>A flood from a few sources must not keep everyone else out, so two rules favour the many over the few:
 * <ul>
 *   <li>When {@link Limits#total()} handshakes are in progress, a newcomer takes the place of the oldest handshake of
 *       the source with the most in progress, if that source has at least two more than the newcomer's (a
 *       known-good newcomer: at least one); that handshake's connection is closed. Eight sources holding eight idle
 *       handshakes each no longer fill the table for everyone.</li>
 *   <li>A <em>known-good</em> source, whose last handshake completed with a client certificate from the device CA
 *       (the peer proved a device key; {@link Ticket#completed}), may start handshakes from a reserve of its own
 *       ({@link Limits#reserve()} at once, refilled at {@link Limits#reservePerSecond()}) when the allowance shared
 *       by all sources is spent, and its handshakes in progress are never the ones closed to make room. The guard
 *       remembers the last {@link Limits#knownGood()} such sources; a source whose handshake fails is no longer
 *       known-good.</li>
 * </ul>
 * All together the TPM signs for at most {@code totalPerSecond + reservePerSecond} new handshakes a second after the
 * bursts.
 *
 * <p>A source is what one party can be assumed to hold ({@link #sourceOf}): an IPv4 address, or an IPv6 /64 prefix (a
 * single host or subscriber gets a whole /64, RFC 6177, so counting IPv6 addresses one by one would give it 2^64
 * allowances). The guard remembers at most {@link Limits#sources()} sources; it forgets only those whose state is that
 * of a source never seen (no handshake in progress, full allowance), so cycling through new sources cannot reset a
 * busy source's count. When every remembered source is busy, connections from new sources are refused until one is
 * not.
 *
 * <p>Refusals and evictions are logged one line per burst (per second at most), not per connection. Thread-safe; one
 * daemon timer thread per guard closes overdue sockets.
 */
public final class HandshakeGuard implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HandshakeGuard.class);

    /**
     * The bounds. {@code deadline}: from accept to a completed handshake (BC's TLS 1.3 handshake with a TPM signature
     * and quote takes milliseconds between warm phones; the first one of a freshly started phone, with both sides'
     * TPM work through their brokers and cold JVMs, took 5.1 s on a 2-core machine at load ~15, so 10 s leaves room
     * for a slow network and a busy TPM too). {@code perSource} and
     * {@code total}: handshakes in progress, and the bursts of new ones, per source and overall; {@code
     * perSourcePerSecond} and {@code totalPerSecond}: how fast those bursts refill; {@code sources}: how many sources
     * the guard remembers at most; {@code knownGood}: how many known-good sources it remembers; {@code reserve} and
     * {@code reservePerSecond}: the allowance only known-good sources may use once the shared one is spent (0: none).
     */
    public record Limits(Duration deadline, int perSource, int total, double perSourcePerSecond,
                         double totalPerSecond, int sources, int knownGood, int reserve, double reservePerSecond) {
        /**
         * 10 s; 8 handshakes in progress per source, 64 overall; 8 new ones per source in a burst, then 2 a second; 64
         * new ones overall in a burst, then 16 a second (a software TPM signs thousands a second, a hardware one tens:
         * well above what people calling one phone need); 4,096 sources remembered; the last 1,024 known-good sources
         * with a reserve of 16 handshakes at once, then 4 a second (the phones that called lately keep getting
         * through a flood from new sources; at most 20 signatures a second in all).
         */
        public static final Limits DEFAULTS = new Limits(Duration.ofSeconds(10), 8, 64, 2.0, 16.0, 4096, 1024, 16,
                4.0);

        public Limits {
            Objects.requireNonNull(deadline, "deadline");
            if (deadline.isNegative() || deadline.isZero()) {
                throw new IllegalArgumentException("the handshake deadline must be positive, got " + deadline);
            }
            if (perSource < 1 || total < perSource) {
                throw new IllegalArgumentException("handshake limits need 1 <= perSource <= total, got perSource "
                        + perSource + ", total " + total);
            }
            if (!(perSourcePerSecond > 0) || !(totalPerSecond >= perSourcePerSecond)) {
                throw new IllegalArgumentException("handshake rates need 0 < perSourcePerSecond <= totalPerSecond, got "
                        + perSourcePerSecond + " and " + totalPerSecond);
            }
            if (sources < total) {
                throw new IllegalArgumentException("the guard must remember at least as many sources as handshakes may"
                        + " be in progress (total " + total + "), got sources " + sources);
            }
            if (knownGood < 0 || reserve < 0 || !(reservePerSecond >= 0)) {
                throw new IllegalArgumentException("known-good sources and their reserve need knownGood >= 0, reserve"
                        + " >= 0 and reservePerSecond >= 0, got " + knownGood + ", " + reserve + ", "
                        + reservePerSecond);
            }
        }

        /** Limits without a reserve for known-good sources (the remembered ones still go first to make room). */
        public Limits(Duration deadline, int perSource, int total, double perSourcePerSecond, double totalPerSecond,
                      int sources) {
            this(deadline, perSource, total, perSourcePerSecond, totalPerSecond, sources, 1024, 0, 0.0);
        }

        /** These limits with another deadline. */
        public Limits withDeadline(Duration d) {
            return new Limits(d, perSource, total, perSourcePerSecond, totalPerSecond, sources, knownGood, reserve,
                    reservePerSecond);
        }

        /** These limits with another reserve for known-good sources. */
        public Limits withReserve(int knownGoodSources, int reserveBurst, double reserveRate) {
            return new Limits(deadline, perSource, total, perSourcePerSecond, totalPerSecond, sources,
                    knownGoodSources, reserveBurst, reserveRate);
        }
    }

    /**
     * One admitted connection's place; {@link #completed} when its handshake completed, {@link #release()} when it ended
     * (either way). Idempotent.
     */
    public final class Ticket {
        private final InetAddress source;
        private final Closeable connection;
        private final AtomicBoolean released = new AtomicBoolean();
        private volatile boolean succeeded;
        /** Taken from the known-good reserve (counted against its source's share of the reserve until released). */
        private boolean fromReserve;
        private volatile ScheduledFuture<?> deadline;
        /** Why the guard closed this connection itself (its deadline passed, or room was made), or null. */
        private volatile String closedBecause;

        private Ticket(InetAddress source, Closeable connection) {
            this.source = source;
            this.connection = connection;
        }

        /**
         * The handshake completed and the connection was accepted (its peer passed the policy, at the minimum level
         * the policy asks); {@code certifiedDevice}: the client presented a certificate from the device CA and proved
         * its key, so its source is known-good from now on. Call it only after the policy admitted the peer: a
         * handshake the policy refuses is a failure (issue 12's third review, finding 4).
         */
        public void completed(boolean certifiedDevice) {
            succeeded = true;
            HandshakeGuard.this.completed(source, certifiedDevice);
        }

        /**
         * Why the guard itself closed this connection before its handshake completed: its deadline passed, or it was
         * closed to make room for other sources. Empty if it did not (the handshake's own failure is then the reason).
         * The handshake's thread reads it to say why its socket closed under it.
         */
        public Optional<String> closedBecause() {
            return Optional.ofNullable(closedBecause);
        }

        /** The handshake completed or failed: the deadline no longer applies and the place is free. */
        public void release() {
            if (released.compareAndSet(false, true)) {
                ScheduledFuture<?> d = deadline;
                if (d != null) {
                    d.cancel(false);
                }
                HandshakeGuard.this.release(this);
            }
        }
    }

    /** What is remembered of one source: its handshakes in progress (oldest first) and its allowance of new ones. */
    private static final class Source {
        final ArrayDeque<Ticket> inProgress = new ArrayDeque<>();
        int fromReserve;
        double tokens;
        long refilledNanos;
    }

    private final Limits limits;
    private final Clock clock;
    private final ScheduledThreadPoolExecutor timer;
    private final Map<InetAddress, Source> sources = new HashMap<>();
    /** Known-good sources, least recently good first; at most {@link Limits#knownGood()}. */
    private final LinkedHashMap<InetAddress, Integer> knownGood = new LinkedHashMap<>(16, 0.75f, true);
    /** Failed handshakes in a row after which a known-good source is no longer known-good. */
    static final int FAILURES_TO_FORGET = 3;
    private int inProgress;
    private double totalTokens;
    private long totalRefilledNanos;
    private double reserveTokens;
    private long reserveRefilledNanos;
    private final AtomicInteger refusedInBurst = new AtomicInteger();
    private final AtomicInteger deadlinesInBurst = new AtomicInteger();
    private final AtomicInteger evictedInBurst = new AtomicInteger();
    private final AtomicLong deadlinesPassed = new AtomicLong();
    private final AtomicLong evictedTotal = new AtomicLong();
    private final AtomicLong refusedTotal = new AtomicLong();

    public HandshakeGuard(Limits limits) {
        this(limits, Clock.systemUTC());
    }

    /**
     * A guard whose rates run on {@code clock} (tests move a fixed clock; the deadlines run on the guard's own timer
     * thread in real time).
     */
    public HandshakeGuard(Limits limits, Clock clock) {
        this.limits = Objects.requireNonNull(limits, "limits");
        this.clock = Objects.requireNonNull(clock, "clock");
        this.timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "tls-handshake-deadlines");
            t.setDaemon(true);
            return t;
        });
        timer.setRemoveOnCancelPolicy(true);
        this.totalTokens = limits.total();
        this.totalRefilledNanos = nanos();
        this.reserveTokens = limits.reserve();
        this.reserveRefilledNanos = totalRefilledNanos;
    }

    public Limits limits() {
        return limits;
    }

    /**
     * The source a peer address is counted under: an IPv4 address itself, an IPv6 address its /64 prefix (the rest
     * zero). An IPv4-mapped IPv6 address counts as its IPv4 address.
     */
    public static InetAddress sourceOf(InetAddress peer) {
        Objects.requireNonNull(peer, "peer");
        if (!(peer instanceof Inet6Address)) {
            return peer;
        }
        byte[] a = peer.getAddress();
        boolean mapped = true;
        for (int i = 0; i < 10; i++) {
            mapped &= a[i] == 0;
        }
        mapped &= a[10] == (byte) 0xff && a[11] == (byte) 0xff;
        try {
            if (mapped) {
                return InetAddress.getByAddress(Arrays.copyOfRange(a, 12, 16));
            }
            Arrays.fill(a, 8, 16, (byte) 0);
            return InetAddress.getByAddress(a);
        } catch (java.net.UnknownHostException e) {
            throw new IllegalStateException("a 4- or 16-byte address is always valid", e);
        }
    }

    /** How a source is shown in a log line: {@code 192.0.2.7}, or {@code 2001:db8:0:1::/64}. */
    static String display(InetAddress source) {
        return source instanceof Inet6Address ? source.getHostAddress() + "/64" : source.getHostAddress();
    }

    /**
     * Admits a freshly accepted connection, arming its deadline (the socket is closed when it passes unless the ticket
     * was released), or refuses it: then the caller closes it without any TLS work.
     */
    public Optional<Ticket> admit(Socket socket) {
        return admit(socket.getInetAddress(), socket);
    }

    /** As {@link #admit(Socket)}, for a connection from {@code peer} that {@code connection} closes. */
    Optional<Ticket> admit(InetAddress peer, Closeable connection) {
        InetAddress source = sourceOf(peer);
        Ticket t = new Ticket(source, connection);
        Decision d = take(source, t);
        if (d.evicted() != null) {
            d.evicted().closedBecause = "the server closed this handshake to make room for other sources' handshakes"
                    + " (at most " + limits.total() + " in progress)";
            evictedTotal.incrementAndGet();
            evicted(d.evicted(), d.evictedFrom());
            closeQuietly(d.evicted().connection);
        }
        if (d.refusal() != null) {
            refusedTotal.incrementAndGet();
            refused(source, d.refusal());
            return Optional.empty();
        }
        try {
            t.deadline = timer.schedule(() -> {
                if (!t.released.get()) {
                    t.closedBecause = "the handshake did not complete within the server's deadline of "
                            + limits.deadline().toMillis() + " ms, so the server closed the connection (the server's"
                            + " TPM signature, quote and passport check all run inside it; a loaded host can take"
                            + " longer)";
                    deadlinesPassed.incrementAndGet();
                    overdue(source);
                    closeQuietly(connection);
                    t.release();
                }
            }, limits.deadline().toNanos(), TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException closed) {
            t.release();
            return Optional.empty();
        }
        return Optional.of(t);
    }

    /**
     * Connections closed because their handshake passed the deadline, since this guard started. Not zero on a host
     * that only serves real phones means the deadline is too short for its load (or a peer stalls on purpose).
     */
    public long deadlinesPassed() {
        return deadlinesPassed.get();
    }

    /** Handshakes in progress closed to make room for other sources, since this guard started. */
    public long evictions() {
        return evictedTotal.get();
    }

    /** Connections refused at once (beyond the limits), since this guard started. */
    public long refusals() {
        return refusedTotal.get();
    }

    /** Whether a source is known-good now (for diagnostics and tests). */
    public synchronized boolean knownGood(InetAddress peer) {
        return knownGood.containsKey(sourceOf(peer));
    }

    /** Handshakes in progress now, overall (for diagnostics and tests). */
    public synchronized int inProgress() {
        return inProgress;
    }

    /** Sources remembered now (at most {@link Limits#sources()}). */
    public synchronized int sourcesTracked() {
        return sources.size();
    }

    private long nanos() {
        Instant now = clock.instant();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }

    /** What {@link #take} decided: a refusal (or null), and a handshake closed to make room (or null). */
    private record Decision(String refusal, Ticket evicted, int evictedFrom) {
    }

    private synchronized Decision take(InetAddress key, Ticket t) {
        long now = nanos();
        Source s = sources.get(key);
        boolean known = s != null;
        if (!known) {
            if (sources.size() >= limits.sources()) {
                prune(now);
            }
            if (sources.size() >= limits.sources()) {
                return new Decision("every one of the " + limits.sources() + " sources remembered has a TLS handshake"
                        + " in progress or has started one recently", null, 0);
            }
            s = new Source();
            s.tokens = limits.perSource();
            s.refilledNanos = now;
        }
        refill(s, now);
        totalTokens = Math.min(limits.total(), totalTokens + elapsedSeconds(totalRefilledNanos, now)
                * limits.totalPerSecond());
        totalRefilledNanos = now;
        reserveTokens = Math.min(limits.reserve(), reserveTokens + elapsedSeconds(reserveRefilledNanos, now)
                * limits.reservePerSecond());
        reserveRefilledNanos = now;
        boolean good = knownGood.containsKey(key);
        if (s.inProgress.size() >= limits.perSource()) {
            return new Decision(s.inProgress.size() + " TLS handshakes in progress from one source (at most "
                    + limits.perSource() + ")", null, 0);
        }
        if (s.tokens < 1) {
            return new Decision("more than " + limits.perSource() + " new TLS handshakes from one source, then more"
                    + " than " + limits.perSourcePerSecond() + " a second", null, 0);
        }
        boolean fromReserve = false;
        if (totalTokens < 1) {
            if (!good || reserveTokens < 1 || s.fromReserve >= reservePerSource()) {
                return new Decision("more than " + limits.total() + " new TLS handshakes, then more than "
                        + limits.totalPerSecond() + " a second, from all sources together" + (good
                        ? ", and the reserve of sources known to be good is spent too" : ""), null, 0);
            }
            fromReserve = true;
        }
        Ticket evicted = null;
        int evictedFrom = 0;
        if (inProgress >= limits.total()) {
            Source heaviest = heaviestUnknown(key);
            int mine = s.inProgress.size();
            if (heaviest == null || heaviest.inProgress.size() < (good ? 1 : mine + 2)) {
                // no unknown source to take it from: the known-good source with the most, if it has two more
                Source heaviestGood = heaviestKnownGood(key);
                heaviest = heaviestGood != null && heaviestGood.inProgress.size() >= mine + 2 ? heaviestGood : null;
            }
            if (heaviest == null) {
                return new Decision(inProgress + " TLS handshakes in progress (at most " + limits.total()
                        + "), none of them from a source with more in progress than this one", null, 0);
            }
            evictedFrom = heaviest.inProgress.size();
            evicted = heaviest.inProgress.pollFirst();
            evicted.released.set(true);
            if (evicted.fromReserve) {
                heaviest.fromReserve--;
            }
            ScheduledFuture<?> d = evicted.deadline;
            if (d != null) {
                d.cancel(false);
            }
            inProgress--;
        }
        s.tokens -= 1;
        if (fromReserve) {
            reserveTokens -= 1;
            t.fromReserve = true;
            s.fromReserve++;
        } else {
            totalTokens -= 1;
        }
        s.inProgress.addLast(t);
        inProgress++;
        if (!known) {
            sources.put(key, s);
        }
        return new Decision(null, evicted, evictedFrom);
    }

    /** The source, other than {@code except} and the known-good ones, with the most handshakes in progress. */
    private Source heaviestUnknown(InetAddress except) {
        Source heaviest = null;
        for (Map.Entry<InetAddress, Source> e : sources.entrySet()) {
            Source c = e.getValue();
            if (!e.getKey().equals(except) && !knownGood.containsKey(e.getKey()) && !c.inProgress.isEmpty()
                    && (heaviest == null || c.inProgress.size() > heaviest.inProgress.size())) {
                heaviest = c;
            }
        }
        return heaviest;
    }

    /** The known-good source, other than {@code except}, with the most handshakes in progress. */
    private Source heaviestKnownGood(InetAddress except) {
        Source heaviest = null;
        for (InetAddress k : knownGood.keySet()) {
            Source c = sources.get(k);
            if (c != null && !k.equals(except) && !c.inProgress.isEmpty()
                    && (heaviest == null || c.inProgress.size() > heaviest.inProgress.size())) {
                heaviest = c;
            }
        }
        return heaviest;
    }

    /** How many handshakes in progress one known-good source may hold from the reserve: a quarter of it, at least 1. */
    private int reservePerSource() {
        return Math.max(1, limits.reserve() / 4);
    }

    private static double elapsedSeconds(long from, long to) {
        // a clock set back refills nothing
        return Math.max(0, to - from) / 1e9;
    }

    private void refill(Source s, long now) {
        s.tokens = Math.min(limits.perSource(), s.tokens + elapsedSeconds(s.refilledNanos, now)
                * limits.perSourcePerSecond());
        s.refilledNanos = now;
    }

    /**
     * Forgets the sources whose state is that of a source never seen: no handshake in progress and a full allowance.
     * Nothing else is forgotten, so new sources cannot push out a busy one and reset its count.
     */
    private void prune(long now) {
        sources.values().removeIf(s -> {
            refill(s, now);
            return s.inProgress.isEmpty() && s.tokens >= limits.perSource();
        });
    }

    private synchronized void release(Ticket t) {
        Source s = sources.get(t.source);
        if (s != null && s.inProgress.remove(t)) {
            inProgress--;
            if (t.fromReserve) {
                s.fromReserve--;
            }
            refill(s, nanos());
            if (s.inProgress.isEmpty() && s.tokens >= limits.perSource()) {
                sources.remove(t.source);
            }
        }
        if (!t.succeeded) {
            // a failed handshake (an error, the deadline, closed to make room, or refused by the policy): a source
            // that shares its address with a real phone (a NAT, a /64) strips it only with several in a row
            Integer failures = knownGood.get(t.source);
            if (failures != null) {
                if (failures + 1 >= FAILURES_TO_FORGET) {
                    knownGood.remove(t.source);
                } else {
                    knownGood.put(t.source, failures + 1);
                }
            }
        }
    }

    private synchronized void completed(InetAddress source, boolean certifiedDevice) {
        if (!certifiedDevice) {
            return; // an ordinary phone: neither known-good nor a failure
        }
        knownGood.put(source, 0);
        if (knownGood.size() > limits.knownGood()) {
            knownGood.remove(knownGood.keySet().iterator().next());
        }
    }

    private void evicted(Ticket t, int inProgressThen) {
        if (evictedInBurst.incrementAndGet() == 1) {
            String first = display(t.source);
            try {
                timer.schedule(() -> LOG.warn("closed {} TLS handshakes in progress to make room for other sources"
                        + " (the first from {}, which had {} in progress)", evictedInBurst.getAndSet(0), first,
                        inProgressThen), 1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.RejectedExecutionException closed) {
                evictedInBurst.set(0);
            }
        }
    }

    private void refused(InetAddress source, String why) {
        if (refusedInBurst.incrementAndGet() == 1) {
            String first = display(source);
            try {
                timer.schedule(() -> LOG.warn("closed {} TLS connections at once in the last second (the first from"
                        + " {}): {}", refusedInBurst.getAndSet(0), first, why), 1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.RejectedExecutionException closed) {
                refusedInBurst.set(0);
            }
        }
    }

    private void overdue(InetAddress source) {
        if (deadlinesInBurst.incrementAndGet() == 1) {
            String first = display(source);
            // WARN: a real phone on a loaded host can miss the deadline (its TPM signs and quotes inside it), and the
            // caller then sees only a connection closed mid-handshake
            timer.schedule(() -> LOG.warn("closed {} TLS connections whose handshake did not complete within {} ms"
                    + " (the first from {}; {} in all since start)", deadlinesInBurst.getAndSet(0),
                    limits.deadline().toMillis(), first, deadlinesPassed.get()), 1, TimeUnit.SECONDS);
        }
    }

    private static void closeQuietly(Closeable s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing is all we wanted
        }
    }

    /** Stops the timer; sockets still handshaking keep no deadline. */
    @Override
    public void close() {
        timer.shutdownNow();
    }
}
