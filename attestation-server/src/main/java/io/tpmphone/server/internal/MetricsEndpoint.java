package io.tpmphone.server.internal;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves {@code GET /metrics} in the Prometheus text format (0.0.4) on a port of its own, over plain HTTP (the JDK's
 * server, one thread): bind it to an address only the monitoring network reaches. The metrics name no hosts, keys or
 * nonces. Anything but {@code GET /metrics} is 404/405. Thread-safe; {@link #close} stops it.
 */
public final class MetricsEndpoint implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MetricsEndpoint.class);

    private final HttpServer server;
    private final ExecutorService thread;

    private MetricsEndpoint(HttpServer server, ExecutorService thread) {
        this.server = server;
        this.thread = thread;
    }

    /** Starts serving {@code metrics} on {@code address} (port 0: any free port). */
    public static MetricsEndpoint start(InetSocketAddress address, ServerMetrics metrics) throws IOException {
        Objects.requireNonNull(metrics, "metrics");
        HttpServer server = HttpServer.create(address, 16);
        PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
        server.createContext("/", exchange -> {
            try (exchange) {
                if (!exchange.getRequestURI().getPath().equals("/metrics")) {
                    send(exchange, 404, "text/plain; charset=utf-8", "not found: GET /metrics\n".getBytes(
                            java.nio.charset.StandardCharsets.UTF_8));
                } else if (!exchange.getRequestMethod().equals("GET")) {
                    send(exchange, 405, "text/plain; charset=utf-8", "only GET\n".getBytes(
                            java.nio.charset.StandardCharsets.UTF_8));
                } else {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    writer.write(out, metrics.registry().scrape());
                    send(exchange, 200, writer.getContentType(), out.toByteArray());
                }
            } catch (IOException | RuntimeException e) {
                LOG.warn("metrics scrape failed: {}", e.toString());
            }
        });
        ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "metrics-http");
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(thread);
        server.start();
        return new MetricsEndpoint(server, thread);
    }

    private static void send(HttpExchange exchange, int status, String contentType, byte[] body) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", contentType);
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    /** The address served (with the port chosen when 0 was asked for). */
    public InetSocketAddress address() {
        return server.getAddress();
    }

    @Override
    public void close() {
        server.stop(0);
        thread.shutdownNow();
    }
}
