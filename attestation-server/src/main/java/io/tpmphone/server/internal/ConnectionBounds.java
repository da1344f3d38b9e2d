package io.tpmphone.server.internal;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.ServerConnector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the server's HTTPS connector may be made to hold: connections open at once (each agent keeps one between its
 * cycles, about 11 KB of heap each), connections from one client address, connections waiting in the kernel's accept
 * queue, and how long a client may take to send a request. Immutable; {@link #apply} wires it into a connector.
 *
 * @param maxConnections   network connections open at once; at the bound the server stops accepting (new ones wait
 *                         in the accept queue) and cuts the idle timeout of open ones to {@code requestTimeout}
 * @param maxPerAddress    connections open at once from one client address (IPv6: one /64); more are closed at accept
 * @param acceptQueue      the listen backlog asked of the kernel, which caps it at {@code net.core.somaxconn}
 * @param requestTimeout   the time a client has to complete a request's header (and the TLS handshake, on a new
 *                         connection) and, separately, its body ({@link RequestDeadlines})
 */
public record ConnectionBounds(int maxConnections, int maxPerAddress, int acceptQueue, Duration requestTimeout) {
    /**
     * 10,000 agents with half as many again of headroom: about 160 MB of the server's heap when all are open
     * (10.9 KB each, measured by {@code bench connections}), and below the open-file limit of 20,000 that CI machines
     * have.
     */
    public static final int DEFAULT_MAX_CONNECTIONS = 15_000;
    /**
     * A site behind one NAT address with up to 1,000 hosts still fits; one address cannot take more than a fifteenth
     * of the default bound. Behind a load balancer that does not keep client addresses, raise it to the bound.
     */
    public static final int DEFAULT_MAX_PER_ADDRESS = 1_000;
    /** Connections the kernel may queue while the server is at its bound or busy accepting (a fleet reconnecting). */
    public static final int DEFAULT_ACCEPT_QUEUE = 1_024;
    /** The agent's own request timeout ({@code AttestationClient}): a request slower than that is given up anyway. */
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(15);

    private static final Logger LOG = LoggerFactory.getLogger(ConnectionBounds.class);

    public ConnectionBounds {
        if (maxConnections < 1 || maxConnections > 1_000_000) {
            throw new IllegalArgumentException("the connection bound must be 1..1000000, got " + maxConnections);
        }
        if (maxPerAddress < 1 || maxPerAddress > maxConnections) {
            throw new IllegalArgumentException("the per-address connection bound must be 1.." + maxConnections
                    + " (the connection bound), got " + maxPerAddress);
        }
        if (acceptQueue < 1 || acceptQueue > 65_535) {
            throw new IllegalArgumentException("the accept queue must be 1..65535, got " + acceptQueue);
        }
        Objects.requireNonNull(requestTimeout, "requestTimeout");
        if (requestTimeout.compareTo(Duration.ofSeconds(1)) < 0 || requestTimeout.compareTo(Duration.ofMinutes(10))
                > 0) {
            throw new IllegalArgumentException("the request timeout must be 1 s..10 min, got " + requestTimeout);
        }
    }

    /** The defaults above. */
    public static ConnectionBounds defaults() {
        return new ConnectionBounds(DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_ADDRESS, DEFAULT_ACCEPT_QUEUE,
                DEFAULT_REQUEST_TIMEOUT);
    }

    /**
     * Bounds {@code connector} (before it starts) and returns the handler to serve in front of {@code next}, which
     * enforces the request timeout. What the bounds refuse is counted in {@code metrics} and logged at WARN, at most
     * one line a minute per reason.
     */
    public Handler apply(ServerConnector connector, Handler next, ServerMetrics metrics) {
        Objects.requireNonNull(metrics, "metrics");
        connector.setAcceptQueueSize(acceptQueue);
        RateLimitedWarning atBound = new RateLimitedWarning();
        RateLimitedWarning overAddress = new RateLimitedWarning();
        RateLimitedWarning tooSlow = new RateLimitedWarning();
        ReportedConnectionLimit.Events events = new ReportedConnectionLimit.Events() {
            @Override
            public void reached(int max) {
                metrics.connectionLimitReached();
                atBound.warn(n -> LOG.warn("{} HTTPS connections open, the bound (--max-connections): new connections"
                        + " wait in the accept queue and idle ones close after {} s (reached {} time(s) since the"
                        + " last such line)", max, requestTimeout.toSeconds(), n));
            }

            @Override
            public void refused() {
                metrics.connectionRefused(ServerMetrics.ConnectionRefusal.CONNECTION_LIMIT);
            }
        };
        ReportedConnectionLimit bound = new ReportedConnectionLimit(maxConnections, events, connector);
        bound.setEndPointIdleTimeout(requestTimeout.toMillis());
        connector.addBean(bound);
        // After the bound: a connection it closed is not counted per address.
        connector.addBean(new ClientAddressLimit(maxPerAddress, (address, open) -> {
            metrics.connectionRefused(ServerMetrics.ConnectionRefusal.ADDRESS_LIMIT);
            overAddress.warn(n -> LOG.warn("refused {} connection(s) from addresses that had {} open"
                    + " (--max-connections-per-address), the latest from {}", n, open, address.getHostAddress()));
        }));
        return new RequestDeadlines(next, connector, requestTimeout, stage -> {
            ServerMetrics.ConnectionRefusal refusal = switch (stage) {
                case FIRST_REQUEST -> ServerMetrics.ConnectionRefusal.SLOW_FIRST_REQUEST;
                case BODY -> ServerMetrics.ConnectionRefusal.SLOW_BODY;
                case NEXT_REQUEST -> ServerMetrics.ConnectionRefusal.SLOW_NEXT_REQUEST;
                case IDLE -> null; // served, then idle: only its close was finished, nothing was refused
            };
            if (refusal == null) {
                return;
            }
            metrics.connectionRefused(refusal);
            tooSlow.warn(n -> LOG.warn("closed {} connection(s) whose client was too slow (--request-timeout {} s),"
                    + " the latest for not sending {} in time", n, requestTimeout.toSeconds(), stage.description()));
        });
    }

    /** Descriptors left for everything but HTTPS connections: files, the database pool, the JVM's own. */
    static final int RESERVED_DESCRIPTORS = 512;

    /**
     * What the machine does not give these bounds, for a WARN at start: an open-file limit too low for
     * {@link #maxConnections} (accepting then fails before the bound is reached), an accept queue above what the
     * kernel allows. Empty when a limit is not known.
     */
    public static java.util.List<String> hostLimitWarnings(ConnectionBounds bounds, java.util.OptionalLong openFiles,
                                                           java.util.OptionalInt somaxconn) {
        java.util.List<String> warnings = new java.util.ArrayList<>();
        if (openFiles.isPresent() && bounds.maxConnections() + RESERVED_DESCRIPTORS > openFiles.getAsLong()) {
            warnings.add("--max-connections " + bounds.maxConnections() + " is more than this process can open: its"
                    + " open-file limit is " + openFiles.getAsLong() + ", and about " + RESERVED_DESCRIPTORS + " go to"
                    + " files, the database and the JVM; raise the limit (LimitNOFILE= in the unit, ulimit -n) or lower"
                    + " --max-connections to " + Math.max(1, openFiles.getAsLong() - RESERVED_DESCRIPTORS));
        }
        if (somaxconn.isPresent() && bounds.acceptQueue() > somaxconn.getAsInt()) {
            warnings.add("--accept-queue " + bounds.acceptQueue() + " is above the kernel's net.core.somaxconn ("
                    + somaxconn.getAsInt() + "), which caps it: raise it with sysctl or lower --accept-queue");
        }
        return warnings;
    }

    /** This process's open-file limit, if the JVM can say. */
    public static java.util.OptionalLong openFileLimit() {
        if (java.lang.management.ManagementFactory.getOperatingSystemMXBean()
                instanceof com.sun.management.UnixOperatingSystemMXBean unix) {
            return java.util.OptionalLong.of(unix.getMaxFileDescriptorCount());
        }
        return java.util.OptionalLong.empty();
    }

    /** Linux's cap on a listen backlog, if it can be read. */
    public static java.util.OptionalInt somaxconn() {
        // Through a stream: Files.readString/readAllBytes returned "4" for this file's "4096\n" (JDK 17.0.15).
        try (java.io.InputStream in = new java.io.FileInputStream("/proc/sys/net/core/somaxconn")) {
            return java.util.OptionalInt.of(Integer.parseInt(new String(in.readNBytes(32),
                    java.nio.charset.StandardCharsets.US_ASCII).strip()));
        } catch (java.io.IOException | RuntimeException e) {
            return java.util.OptionalInt.empty();
        }
    }

    /** One line at once, then at most one a minute with the count since the last; lock-free. */
    private static final class RateLimitedWarning {
        private static final long MINUTE_NANOS = 60_000_000_000L;
        private final AtomicLong count = new AtomicLong();
        private final AtomicLong lastNanos = new AtomicLong(System.nanoTime() - MINUTE_NANOS);

        void warn(java.util.function.LongConsumer line) {
            count.incrementAndGet();
            long now = System.nanoTime();
            long last = lastNanos.get();
            if (now - last >= MINUTE_NANOS && lastNanos.compareAndSet(last, now)) {
                line.accept(count.getAndSet(0));
            }
        }
    }
}
