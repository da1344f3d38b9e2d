package io.tpmphone.server.internal;

import java.nio.channels.SelectableChannel;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.NetworkConnectionLimit;

/**
 * The bound on the network connections open at once, with what it did reported: Jetty's
 * {@link NetworkConnectionLimit}, which counts network endpoints (a TLS connection once, however many protocol layers
 * run over it; Jetty 12.0's {@code ConnectionLimit} counted each layer on close but the accept once, so its bound rose
 * with every close). At the bound the connector stops accepting, so new connections wait in the kernel's accept queue
 * ({@code ServerConnector.setAcceptQueueSize}), and the idle timeout of the open ones is cut to
 * {@link #setEndPointIdleTimeout}, so idle keep-alive connections make room; below it again, both are restored. A
 * connection accepted while the bound was already reached (accepts in flight) is closed at once. Thread-safe.
 */
public final class ReportedConnectionLimit extends NetworkConnectionLimit {
    /** What the bound did. */
    public interface Events {
        /** The bound was reached: the connector stopped accepting. */
        void reached(int bound);

        /** A connection accepted over the bound was closed at once. */
        void refused();
    }

    private final Events events;
    private final Connector connector;

    public ReportedConnectionLimit(int maxConnections, Events events, Connector connector) {
        super(maxConnections, connector);
        this.connector = connector;
        if (maxConnections < 1) {
            throw new IllegalArgumentException("the connection bound must be >= 1, got " + maxConnections);
        }
        this.events = java.util.Objects.requireNonNull(events, "events");
    }

    @Override
    public void onAccepting(SelectableChannel channel) {
        boolean wasOpen = channel.isOpen();
        super.onAccepting(channel);
        if (wasOpen && !channel.isOpen()) {
            events.refused();
        }
    }

    @Override
    protected void limit() {
        if (stopping()) {
            return; // the shutdown's idle timeout stays on every endpoint (see unlimit)
        }
        super.limit();
        events.reached(getMaxNetworkConnectionCount());
    }

    /**
     * Below the bound again: accepting and the connector's idle timeout restored on every open endpoint — except once
     * the server is stopping. Jetty's graceful stop first cuts every endpoint's idle timeout to the shutdown idle
     * timeout and then waits for the connections to close; the first that closed below the bound put the connector's
     * idle timeout (minutes) back on all the others, and a stop at the bound waited out the whole stop timeout
     * (review rC: 5,070 ms and a TimeoutException instead of ~150 ms).
     */
    @Override
    protected void unlimit() {
        if (stopping()) {
            return;
        }
        super.unlimit();
    }

    private boolean stopping() {
        org.eclipse.jetty.server.Server server = connector.getServer();
        return connector.isStopping() || connector.isStopped()
                || connector instanceof org.eclipse.jetty.server.AbstractConnector c && c.isShutdown()
                || server != null && (server.isStopping() || server.isStopped());
    }
}
