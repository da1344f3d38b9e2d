package io.tpmphone.tls;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.time.Duration;
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
 * {@link Limits#perSource()} handshakes in progress per source address and {@link Limits#total()} overall — a
 * connection beyond them is closed at once, before any TLS work. Per source, at most {@link Limits#perSource()} new
 * handshakes may start in a burst, refilled at {@link Limits#perSourcePerSecond()} a second: the server's
 * CertificateVerify is a TPM signature (and its evidence a quote when the client asks for it), and TLS 1.3 makes the
 * server sign before the client proves anything, so this is how fast one address can make the TPM work. No TPM work
 * happens before a complete ClientHello arrives ({@link AttestedTlsServer#getCredentials()} runs after ServerHello).
 *
 * <p>Refusals are logged one line per burst (per second at most), not per connection. Thread-safe; one daemon timer
 * thread per guard closes overdue sockets.
 */
public final class HandshakeGuard implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HandshakeGuard.class);

    /**
     * The bounds. {@code deadline}: from accept to a completed handshake (BC's TLS 1.3 handshake with a TPM signature
     * and quote takes milliseconds; a few seconds leaves room for a slow network and a busy TPM).
     */
    public record Limits(Duration deadline, int perSource, int total, double perSourcePerSecond) {
        /** 5 s; 8 handshakes in progress per address, 64 overall; 8 new ones per address in a burst, then 2 a second. */
        public static final Limits DEFAULTS = new Limits(Duration.ofSeconds(5), 8, 64, 2.0);

        public Limits {
            Objects.requireNonNull(deadline, "deadline");
            if (deadline.isNegative() || deadline.isZero() || perSource < 1 || total < perSource
                    || !(perSourcePerSecond > 0)) {
                throw new IllegalArgumentException("handshake limits need a positive deadline, 1 <= perSource <= total"
                        + " and a positive rate; got " + deadline + ", " + perSource + ", " + total + ", "
                        + perSourcePerSecond);
            }
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

    private static final class Source {
        int inProgress;
        double tokens;
        long refilledNanos;
    }

    private final Limits limits;
    private final ScheduledThreadPoolExecutor timer;
    private final Map<InetAddress, Source> sources = new HashMap<>();
    private int inProgress;
    private final AtomicInteger refusedInBurst = new AtomicInteger();
    private final AtomicInteger deadlinesInBurst = new AtomicInteger();

    public HandshakeGuard(Limits limits) {
        this.limits = Objects.requireNonNull(limits, "limits");
        this.timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "tls-handshake-deadlines");
            t.setDaemon(true);
            return t;
        });
        timer.setRemoveOnCancelPolicy(true);
    }

    public Limits limits() {
        return limits;
    }

    /**
     * Admits a freshly accepted connection, arming its deadline (the socket is closed when it passes unless the ticket
     * was released), or refuses it: then the caller closes it without any TLS work.
     */
    public Optional<Ticket> admit(Socket socket) {
        InetAddress source = socket.getInetAddress();
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
                    closeQuietly(socket);
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

    /** Source addresses with state kept now (bounded by the handshakes in progress and the rate's refill time). */
    public synchronized int sourcesTracked() {
        return sources.size();
    }

    private synchronized String take(InetAddress source) {
        long now = System.nanoTime();
        if (sources.size() > 4 * limits.total()) {
            prune(now);
        }
        Source s = sources.get(source);
        if (s == null) {
            s = new Source();
            s.tokens = limits.perSource();
            s.refilledNanos = now;
            sources.put(source, s);
        }
        refill(s, now);
        if (inProgress >= limits.total()) {
            return inProgress + " TLS handshakes in progress (at most " + limits.total() + ")";
        }
        if (s.inProgress >= limits.perSource()) {
            return s.inProgress + " TLS handshakes in progress from one address (at most " + limits.perSource() + ")";
        }
        if (s.tokens < 1) {
            return "more than " + limits.perSource() + " new TLS handshakes from one address, then more than "
                    + limits.perSourcePerSecond() + " a second";
        }
        s.tokens -= 1;
        s.inProgress++;
        inProgress++;
        return null;
    }

    private void refill(Source s, long now) {
        s.tokens = Math.min(limits.perSource(), s.tokens + (now - s.refilledNanos) / 1e9 * limits.perSourcePerSecond());
        s.refilledNanos = now;
    }

    /** Forgets addresses with no handshake in progress whose rate allowance is full again. */
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
            refill(s, System.nanoTime());
            if (s.inProgress == 0 && s.tokens >= limits.perSource()) {
                sources.remove(source);
            }
        }
    }

    private void refused(InetAddress source, String why) {
        if (refusedInBurst.incrementAndGet() == 1) {
            String first = source.getHostAddress();
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
            String first = source.getHostAddress();
            timer.schedule(() -> LOG.info("closed {} TLS connections whose handshake did not complete within {} ms"
                    + " (the first from {})", deadlinesInBurst.getAndSet(0), limits.deadline().toMillis(), first),
                    1, TimeUnit.SECONDS);
        }
    }

    private static void closeQuietly(Socket s) {
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
