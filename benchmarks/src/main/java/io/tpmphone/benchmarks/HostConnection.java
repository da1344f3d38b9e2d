package io.tpmphone.benchmarks;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.Objects;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * One software host's HTTPS connection, as an agent holds one: HTTP/1.1 over a single TLS socket, reused from cycle
 * to cycle while it has been idle less than {@code keepAlive} (the agents' {@code AttestationClient.KEEP_ALIVE}, 90 s,
 * shorter than the server's 120 s idle timeout), else closed and a new one opened (a TLS handshake). A failed or
 * timed-out request closes the connection, as the JDK client of an agent does; the host's next cycle reconnects.
 *
 * <p>Why not the JDK {@code HttpClient} shared by all hosts: its HTTP/1.1 pool opens a new connection for every
 * request that finds no idle one, without limit, so a fleet sharing one client has as many connections as requests
 * in flight, not one per host; when the server slows down, thousands of new connections (each a handshake on both
 * sides of the same cores) are opened at once. A client per host would cost a selector thread per host.
 *
 * <p>Blocking: the caller's thread waits for the answer (the fleet runs each cycle on a thread of its own; at most one
 * cycle per host is in flight). A request has a deadline for the connection, the handshake and the answer together.
 * Answers are bounded (status line and headers 8 KiB each line, 100 headers, body 1 MiB); anything else is an
 * {@link IOException} saying what was wrong. Not thread-safe: one host, one cycle at a time.
 */
final class HostConnection implements AutoCloseable {
    static final int MAX_LINE = 8 * 1024;
    static final int MAX_HEADERS = 100;
    static final int MAX_BODY = 1024 * 1024;

    /** An answer: status and body (UTF-8). */
    record Response(int status, String body) {
    }

    private final SSLSocketFactory tls;
    private final URI server;
    private final long keepAliveNanos;
    private SSLSocket socket;
    private InputStream in;
    private OutputStream out;
    private long lastUsed;
    private volatile long opened; // written by the one cycle in flight, read by the phase

    HostConnection(SSLSocketFactory tls, URI server, Duration keepAlive) {
        this.tls = Objects.requireNonNull(tls, "tls");
        this.server = Objects.requireNonNull(server, "server");
        this.keepAliveNanos = keepAlive.toNanos();
        if (!"https".equals(server.getScheme()) || server.getHost() == null || server.getPort() < 0) {
            throw new IllegalArgumentException("an https://HOST:PORT address is needed, got " + server);
        }
    }

    /** Connections this host opened so far (each a TLS handshake). */
    long opened() {
        return opened;
    }

    /** POSTs {@code json} to {@code path}; the whole exchange, a connection included, within {@code timeout}. */
    Response post(String path, String json, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        boolean done = false;
        try {
            long now = System.nanoTime();
            if (socket != null && now - lastUsed > keepAliveNanos) {
                close(); // idle too long: the agent's client drops it before the server would
            }
            if (socket == null) {
                try {
                    connect(deadline);
                } catch (SocketTimeoutException e) {
                    throw new SocketTimeoutException("connect and TLS handshake timed out (" + timeout.toMillis()
                            + " ms for the request)");
                }
            }
            byte[] body = json.getBytes(StandardCharsets.UTF_8);
            String head = "POST " + path + " HTTP/1.1\r\nHost: " + server.getHost() + ":" + server.getPort()
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n";
            socket.setSoTimeout(remainingMillis(deadline));
            out.write(head.getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            Response r = read(deadline);
            lastUsed = System.nanoTime();
            done = true;
            return r;
        } catch (SocketTimeoutException e) {
            if (e.getMessage() != null && e.getMessage().startsWith("connect and TLS")) {
                throw e;
            }
            throw new SocketTimeoutException("request timed out (" + timeout.toMillis() + " ms)");
        } finally {
            if (!done) {
                close(); // a connection in an unknown state is not reused
            }
        }
    }

    private void connect(long deadline) throws IOException {
        SSLSocket s = (SSLSocket) tls.createSocket();
        try {
            SSLParameters p = s.getSSLParameters();
            p.setEndpointIdentificationAlgorithm("HTTPS");
            s.setSSLParameters(p);
            s.setTcpNoDelay(true);
            s.connect(new InetSocketAddress(server.getHost(), server.getPort()), remainingMillis(deadline));
            s.setSoTimeout(remainingMillis(deadline));
            s.startHandshake();
            opened++;
            socket = s;
            in = new BufferedInputStream(s.getInputStream(), 8192);
            out = s.getOutputStream();
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    private Response read(long deadline) throws IOException {
        String status = line(deadline);
        if (status == null) {
            throw new IOException("the server closed the connection before answering");
        }
        String[] parts = status.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
            throw new IOException("not an HTTP/1.x status line (" + status.length() + " characters)");
        }
        int code;
        try {
            code = Integer.parseInt(parts[1]);
        } catch (NumberFormatException e) {
            throw new IOException("not an HTTP status code (" + parts[1].length() + " characters)");
        }
        long length = -1;
        boolean chunked = false;
        boolean closeAfter = parts[0].equals("HTTP/1.0");
        for (int n = 0; ; n++) {
            if (n > MAX_HEADERS) {
                throw new IOException("more than " + MAX_HEADERS + " header lines");
            }
            String h = line(deadline);
            if (h == null) {
                throw new IOException("the connection ended inside the answer's headers");
            }
            if (h.isEmpty()) {
                break;
            }
            int colon = h.indexOf(':');
            if (colon <= 0) {
                throw new IOException("a header line without a name");
            }
            String name = h.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            String value = h.substring(colon + 1).trim();
            switch (name) {
                case "content-length" -> {
                    try {
                        length = Long.parseLong(value);
                    } catch (NumberFormatException e) {
                        throw new IOException("an unreadable Content-Length");
                    }
                    if (length < 0 || length > MAX_BODY) {
                        throw new IOException("a body of " + length + " bytes (at most " + MAX_BODY + ")");
                    }
                }
                case "transfer-encoding" -> chunked = value.toLowerCase(Locale.ROOT).contains("chunked");
                case "connection" -> closeAfter |= value.toLowerCase(Locale.ROOT).contains("close");
                default -> {
                }
            }
        }
        byte[] body;
        if (chunked) {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            while (true) {
                String size = line(deadline);
                if (size == null) {
                    throw new IOException("the connection ended inside a chunked body");
                }
                int semi = size.indexOf(';');
                long n;
                try {
                    n = Long.parseLong((semi < 0 ? size : size.substring(0, semi)).trim(), 16);
                } catch (NumberFormatException e) {
                    throw new IOException("an unreadable chunk size");
                }
                if (n < 0 || b.size() + n > MAX_BODY) {
                    throw new IOException("a chunked body over " + MAX_BODY + " bytes");
                }
                if (n == 0) {
                    String trailer;
                    do { // trailers, up to the empty line
                        trailer = line(deadline);
                    } while (trailer != null && !trailer.isEmpty());
                    break;
                }
                b.write(exactly((int) n, deadline));
                if (!"".equals(line(deadline))) {
                    throw new IOException("a chunk without its line end");
                }
            }
            body = b.toByteArray();
        } else if (length >= 0) {
            body = exactly((int) length, deadline);
        } else if (code == 204 || code == 304 || code / 100 == 1) {
            body = new byte[0];
        } else {
            throw new IOException("an answer with neither Content-Length nor chunked encoding");
        }
        if (closeAfter) {
            close();
        }
        return new Response(code, new String(body, StandardCharsets.UTF_8));
    }

    /** A line without its CRLF; null at the end of the stream before any byte. */
    private String line(long deadline) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream(64);
        socket.setSoTimeout(remainingMillis(deadline));
        while (true) {
            int c = in.read();
            if (c < 0) {
                if (b.size() == 0) {
                    return null;
                }
                throw new IOException("the connection ended inside a line");
            }
            if (c == '\n') {
                byte[] l = b.toByteArray();
                int end = l.length > 0 && l[l.length - 1] == '\r' ? l.length - 1 : l.length;
                return new String(l, 0, end, StandardCharsets.ISO_8859_1);
            }
            if (b.size() >= MAX_LINE) {
                throw new IOException("a line over " + MAX_LINE + " bytes");
            }
            b.write(c);
        }
    }

    private byte[] exactly(int n, long deadline) throws IOException {
        byte[] b = new byte[n];
        int off = 0;
        while (off < n) {
            socket.setSoTimeout(remainingMillis(deadline));
            int r = in.read(b, off, n - off);
            if (r < 0) {
                throw new IOException("the connection ended after " + off + " of " + n + " body bytes");
            }
            off += r;
        }
        return b;
    }

    private static int remainingMillis(long deadline) throws SocketTimeoutException {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
            throw new SocketTimeoutException("deadline passed");
        }
        return (int) Math.min(Integer.MAX_VALUE, left);
    }

    @Override
    public void close() {
        if (socket != null) {
            try {
                // The JDK's SSLSocket.close drains unread input for up to the socket's read timeout (a request's
                // whole deadline here) unless that is 0, then 1 ms: without this a timed-out cycle's close waited up
                // to another 30 s, and the phase's end closing 10,000 connections waited for hours.
                socket.setSoTimeout(0);
                socket.close();
            } catch (IOException e) {
                // closing: nothing to do
            }
            socket = null;
            in = null;
            out = null;
        }
    }
}
