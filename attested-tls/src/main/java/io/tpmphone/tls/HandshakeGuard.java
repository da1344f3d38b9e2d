package io.tpmphone.tls;

import java.io.Closeable;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.Socket;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bounds what unauthenticated TCP peers can make an attested TLS server spend before a handshake completes: every
 * accepted connection gets a handshake deadline after which its socket is closed, and there are at most
 * {@link Limits#perSource()} handshakes in progress per source and {@link Limits#total()} overall — a connection
 * beyond them is closed at once, before any TLS work. Per source, at most {@link Limits#perSource()} new handshakes
 * may start in a burst, refilled at {@link Limits#perSourcePerSecond()} a second; overall, at most
 * {@link Limits#total()} in a burst, refilled at {@link Limits#totalPerSecond()} a second, whatever the sources. The
 * server's CertificateVerify is a TPM signature (and its evidence a quote when the client asks for it), and TLS 1.3
 * makes the server sign before the client proves anything, so these rates are how fast one source, and everyone
 * together, can make the TPM work. No TPM work happens before a complete ClientHello arrives
 * ({@link AttestedTlsServer#getCredentials()} runs after ServerHello).
 *
 * <p>A source is what one party can be assumed to hold ({@link #sourceOf}): an IPv4 address, or an IPv6 /64 prefix (a
 * single host or subscriber gets a whole /64, RFC 6177, so counting IPv6 addresses one by one would give it 2^64
 * allowances). The guard remembers at most {@link Limits#sources()} sources; it forgets only those whose state is that
 * of a source never seen (no handshake in progress, full allowance), so cycling through new sources cannot reset a
 * busy source's count. When every remembered source is busy, connections from new sources are refused until one is
 * not.
 *
 * <p>Refusals are logged one line per burst (per second at most), not per connection. Thread-safe; one daemon timer
 * thread per guard closes overdue sockets.
 */
public final class HandshakeGuard implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HandshakeGuard.class);

    /**
     * The bounds. {@code deadline}: from accept to a completed handshake (BC's TLS 1.3 handshake with a TPM signature
     * and quote takes milliseconds; a few seconds leaves room for a slow network and a busy TPM). {@code perSource} and
     * {@code total}: handshakes in progress, and the bursts of new ones, per source and overall; {@code
     * perSourcePerSecond} and {@code totalPerSecond}: how fast those bursts refill; {@code sources}: how many sources
     * the guard remembers at most.
     */
    public record Limits(Duration deadline, int perSource, int total, double perSourcePerSecond,
                         double totalPerSecond, int sources) {
        /**
         * 5 s; 8 handshakes in progress per source, 64 overall; 8 new ones per source in a burst, then 2 a second; 64
         * new ones overall in a burst, then 16 a second (a software TPM signs thousands a second, a hardware one tens:
         * well above what people calling one phone need); 4,096 sources remembered.
         */
        public static final Limits DEFAULTS = new Limits(Duration.ofSeconds(5), 8, 64, 2.0, 16.0, 4096);

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
        }

        /** These limits with another deadline. */
        public Limits withDeadline(Duration d) {
            return new Limits(d, perSource, total, perSourcePerSecond, totalPerSecond, sources);
        }
    }

    /** One admitted connection's place; {@link #release()} when its handshake ended (either way). Idempotent. */
    public final class Ticket {
        private final InetAddress source;
        private final AtomicBoolean released = new AtomicBoolean();
        private volatile ScheduledFuture<?> deadline;

        private Ticket(InetAddress source) {
            this.source = source;
        }

        /** The handshake completed or failed: the deadline no longer applies and the place is free. */
        public void release() {
            if (released.compareAndSet(false, true)) {
                ScheduledFuture<?> d = deadline;
                if (d != null) {
                    d.cancel(false);
                }
                HandshakeGuard.this.release(source);
            }
        }
    }

    /** What is remembered of one source: its handshakes in progress and its allowance of new ones. */
    private static final class Source {
        int inProgress;
        double tokens;
        long refilledNanos;
    }

    private final Limits limits;
    private final Clock clock;
    private final ScheduledThreadPoolExecutor timer;
    private final Map<InetAddress, Source> sources = new HashMap<>();
    private int inProgress;
    private double totalTokens;
    private long totalRefilledNanos;
    private final AtomicInteger refusedInBurst = new AtomicInteger();
    private final AtomicInteger deadlinesInBurst = new AtomicInteger();

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
        String refusal = take(source);
        if (refusal != null) {
            refused(source, refusal);
            return Optional.empty();
        }
        Ticket t = new Ticket(source);
        try {
            t.deadline = timer.schedule(() -> {
                if (!t.released.get()) {
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

    private synchronized String take(InetAddress key) {
        long now = nanos();
        Source s = sources.get(key);
        boolean known = s != null;
        if (!known) {
            if (sources.size() >= limits.sources()) {
                prune(now);
            }
            if (sources.size() >= limits.sources()) {
                return "every one of the " + limits.sources() + " sources remembered has a TLS handshake in progress"
                        + " or has started one recently";
            }
            s = new Source();
            s.tokens = limits.perSource();
            s.refilledNanos = now;
        }
        refill(s, now);
        totalTokens = Math.min(limits.total(), totalTokens + elapsedSeconds(totalRefilledNanos, now)
                * limits.totalPerSecond());
        totalRefilledNanos = now;
        if (inProgress >= limits.total()) {
            return inProgress + " TLS handshakes in progress (at most " + limits.total() + ")";
        }
        if (s.inProgress >= limits.perSource()) {
            return s.inProgress + " TLS handshakes in progress from one source (at most " + limits.perSource() + ")";
        }
        if (s.tokens < 1) {
            return "more than " + limits.perSource() + " new TLS handshakes from one source, then more than "
                    + limits.perSourcePerSecond() + " a second";
        }
        if (totalTokens < 1) {
            return "more than " + limits.total() + " new TLS handshakes, then more than " + limits.totalPerSecond()
                    + " a second, from all sources together";
        }
        s.tokens -= 1;
        totalTokens -= 1;
        s.inProgress++;
        inProgress++;
        if (!known) {
            sources.put(key, s);
        }
        return null;
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
            return s.inProgress == 0 && s.tokens >= limits.perSource();
        });
    }

    private synchronized void release(InetAddress source) {
        inProgress--;
        Source s = sources.get(source);
        if (s != null) {
            s.inProgress--;
            refill(s, nanos());
            if (s.inProgress == 0 && s.tokens >= limits.perSource()) {
                sources.remove(source);
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
            timer.schedule(() -> LOG.info("closed {} TLS connections whose handshake did not complete within {} ms"
                    + " (the first from {})", deadlinesInBurst.getAndSet(0), limits.deadline().toMillis(), first),
                    1, TimeUnit.SECONDS);
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
