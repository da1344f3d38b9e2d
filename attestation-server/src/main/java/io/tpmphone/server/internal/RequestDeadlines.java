package io.tpmphone.server.internal;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.ssl.SslConnection;
import org.eclipse.jetty.server.AbstractConnector;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Attributes;
import org.eclipse.jetty.util.Callback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Closes connections whose client is too slow to send a request (slowloris: a request's header or body sent a byte
 * at a time, each byte resetting the idle timeout, to hold a connection, and for a body a server thread, forever).
 * With {@code timeout} T, a connection is closed when
 * <ul>
 *   <li>its first request has not reached the server's handlers T after it was accepted (TLS handshake and header);
 *   <li>a request's body has not been read in full T after its header was (the handlers read bodies whole, at most
 *       1 MiB); or
 *   <li>no request is in progress and none has reached the handlers for the connection's idle timeout plus T since
 *       the last one ended: an idle connection is closed by Jetty's idle timeout; one that still sends bytes that
 *       never make a request is closed here ({@link Stage#NEXT_REQUEST}), and so is one whose client sent nothing but
 *       did not answer the close Jetty began at its idle timeout ({@link Stage#IDLE}, not a slow client: Jetty alone
 *       drops those after a second idle timeout, 240 s).
 * </ul>
 * Time spent in the handlers once the body is in (database, audit commit) and writing the answer never counts: that
 * is the server's time, not the client's. A client that does send a whole request in time is served as before, so
 * this bounds what a connection costs to what an agent's own connection costs: a complete request per idle timeout.
 *
 * <p>This is the handler in front of all others (it notes each request's progress on its connection) and, while it is
 * started (with the server), a sweep of the connector's open connections once a second, so a too-slow connection is
 * closed within T + 1 s. Jetty 12's
 * {@code HttpConfiguration.setMinRequestDataRate} is not enforced by its core HTTP/1.1 server (12.1.14), hence this.
 * Thread-safe.
 */
public final class RequestDeadlines extends Handler.Wrapper {
    private static final Logger LOG = LoggerFactory.getLogger(RequestDeadlines.class);
    private static final String PROGRESS = RequestDeadlines.class.getName() + ".progress";
    private static final long SWEEP_MILLIS = 1000;

    /** What a close by a deadline is reported to. */
    public interface Closes {
        void closed(Stage stage);
    }

    /** Which deadline a connection missed. */
    public enum Stage {
        /** TLS handshake and the first request's header. */
        FIRST_REQUEST("its first request (TLS handshake and header)"),
        /** A request's body. */
        BODY("a request's body"),
        /** Bytes after a request that never made the next one. */
        NEXT_REQUEST("its next request"),
        /**
         * Not a slow client: idle past the idle timeout, sending nothing, and not answering the close Jetty began
         * then (a client that does not read: Jetty alone drops it only after a second idle timeout).
         */
        IDLE("anything after its idle timeout");

        private final String description;

        Stage(String description) {
            this.description = description;
        }

        /** What the client did not send in time, for a log line. */
        public String description() {
            return description;
        }
    }

    private final AbstractConnector connector;
    private final long timeoutNanos;
    private final Closes closes;
    private ScheduledExecutorService sweeper;

    /**
     * @param connector the connector whose connections are swept (started and stopped by the caller)
     * @param timeout T, at least 1 s
     */
    public RequestDeadlines(Handler next, AbstractConnector connector, Duration timeout, Closes closes) {
        super(Objects.requireNonNull(next, "next"));
        if (timeout.compareTo(Duration.ofSeconds(1)) < 0) {
            throw new IllegalArgumentException("the request timeout must be at least 1 s, got " + timeout);
        }
        this.connector = Objects.requireNonNull(connector, "connector");
        this.timeoutNanos = timeout.toNanos();
        this.closes = Objects.requireNonNull(closes, "closes");
    }

    /** Started with the server: the sweep runs while it does. */
    @Override
    protected void doStart() throws Exception {
        sweeper = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "attestation-request-deadlines");
            t.setDaemon(true);
            return t;
        });
        sweeper.scheduleWithFixedDelay(this::sweepQuietly, SWEEP_MILLIS, SWEEP_MILLIS, TimeUnit.MILLISECONDS);
        super.doStart();
    }

    @Override
    protected void doStop() throws Exception {
        sweeper.shutdownNow();
        super.doStop();
    }

    @Override
    public boolean handle(Request request, Response response, Callback callback) throws Exception {
        Progress progress = progress(request);
        if (progress.network == null) {
            progress.network = network(request);
        }
        boolean body = hasBody(request);
        progress.started(System.nanoTime(), body);
        Callback ended = new Callback.Nested(callback) {
            @Override
            public void succeeded() {
                progress.ended(System.nanoTime());
                super.succeeded();
            }

            @Override
            public void failed(Throwable x) {
                progress.ended(System.nanoTime());
                super.failed(x);
            }
        };
        boolean handled;
        try {
            handled = super.handle(body ? new BodyWatch(request, progress) : request, response, ended);
        } catch (Exception | Error e) {
            progress.ended(System.nanoTime());
            throw e;
        }
        if (!handled) {
            progress.ended(System.nanoTime()); // Jetty answers 404 with its own callback
        }
        return handled;
    }

    private static Progress progress(Request request) {
        Attributes connection = request.getConnectionMetaData();
        Object p = connection.getAttribute(PROGRESS);
        if (p instanceof Progress existing) {
            return existing;
        }
        Progress created = new Progress();
        connection.setAttribute(PROGRESS, created);
        return created;
    }

    /** The connection on the network endpoint under the request's (TLS) layers: it counts the bytes received. */
    private static Connection network(Request request) {
        EndPoint endPoint = request.getConnectionMetaData().getConnection().getEndPoint();
        while (endPoint instanceof EndPoint.Wrapper wrapper) {
            endPoint = wrapper.unwrap();
        }
        return endPoint.getConnection();
    }

    private static boolean hasBody(Request request) {
        if (request.getHeaders().contains(HttpHeader.TRANSFER_ENCODING)) {
            return true;
        }
        try {
            return request.getHeaders().getLongField(HttpHeader.CONTENT_LENGTH) > 0;
        } catch (NumberFormatException e) {
            return true; // Jetty's parser refuses such a header first; if one got here, expect a body
        }
    }

    private void sweepQuietly() {
        try {
            sweep(System.nanoTime(), System.currentTimeMillis());
        } catch (RuntimeException e) {
            LOG.warn("could not check the connections' request deadlines: {}", e.toString());
        }
    }

    /** One pass over the open connections; returns how many it closed. Package-private for tests. */
    int sweep(long nowNanos, long nowMillis) {
        int closed = 0;
        for (EndPoint endPoint : connector.getConnectedEndPoints()) {
            Stage missed = missed(endPoint, nowNanos, nowMillis);
            if (missed != null && endPoint.isOpen()) {
                endPoint.close();
                closes.closed(missed);
                closed++;
            }
        }
        return closed;
    }

    /** The deadline {@code endPoint} has missed at that instant, or null. Package-private for tests. */
    Stage missed(EndPoint endPoint, long nowNanos, long nowMillis) {
        Progress p = progressOf(endPoint);
        if (p == null) {
            // The endpoint's creation time is wall-clock milliseconds; a clock step forward can cut this short once.
            return nowMillis - endPoint.getCreatedTimeStamp() > TimeUnit.NANOSECONDS.toMillis(timeoutNanos)
                    ? Stage.FIRST_REQUEST : null;
        }
        if (p.inRequest) {
            return p.bodyPending && nowNanos - p.startedNanos > timeoutNanos ? Stage.BODY : null;
        }
        long idleNanos = TimeUnit.MILLISECONDS.toNanos(Math.max(0, endPoint.getIdleTimeout()));
        if (nowNanos - p.endedNanos <= idleNanos + timeoutNanos) {
            return null;
        }
        Connection network = endPoint.getConnection();
        return network != null && network.getBytesIn() > p.bytesAtEnd ? Stage.NEXT_REQUEST : Stage.IDLE;
    }

    /** The progress noted on the HTTP connection over this network endpoint (under TLS), if a request came. */
    private static Progress progressOf(EndPoint endPoint) {
        Connection c = endPoint.getConnection();
        if (c instanceof SslConnection tls) {
            c = tls.getSslEndPoint().getConnection();
        }
        return c instanceof Attributes a && a.getAttribute(PROGRESS) instanceof Progress p ? p : null;
    }

    /** One connection's progress: written by the thread handling its request, read by the sweep. */
    private static final class Progress {
        volatile boolean inRequest;
        volatile boolean bodyPending;
        volatile long startedNanos;
        volatile long endedNanos;
        /** The network bytes received when the last request ended: more since, and it is sending something. */
        volatile long bytesAtEnd;
        /** Set by the first request's thread; read by later ones (Jetty orders a connection's requests). */
        volatile Connection network;

        void started(long now, boolean body) {
            startedNanos = now;
            bodyPending = body;
            inRequest = true;
        }

        void bodyRead() {
            bodyPending = false;
        }

        void ended(long now) {
            Connection n = network;
            bytesAtEnd = n == null ? 0 : n.getBytesIn();
            endedNanos = now;
            bodyPending = false;
            inRequest = false;
        }
    }

    /** Notes when the handlers have read a request's body to its end (or its failure). */
    private static final class BodyWatch extends Request.Wrapper {
        private final Progress progress;

        BodyWatch(Request request, Progress progress) {
            super(request);
            this.progress = progress;
        }

        @Override
        public Content.Chunk read() {
            Content.Chunk chunk = super.read();
            if (chunk != null && chunk.isLast()) {
                progress.bodyRead();
            }
            return chunk;
        }
    }
}
