package io.tpmphone.agent;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's private API for its one child: a Unix domain socket in a directory only the agent's user can enter,
 * and a one-time token handed to the child on its stdin. The first connection that presents the token becomes the
 * child's session; the listening socket is then closed, so no other process can ever connect. A wrong token ends
 * that connection.
 *
 * <p>Protocol (UTF-8 lines): {@code HELLO <token>} → {@code OK}; {@code QUOTE <binder hex>} →
 * {@code OK akId=<hex> attest=<b64> signature=<b64> pcrs=<selection> values=<hex,...> log=<b64>}; anything else or any
 * failure → {@code ERR <reason>}. Requests are at most 4 KiB.
 */
public final class Broker implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Broker.class);
    private static final int MAX_LINE = 4096;

    /** What the broker does for the child. */
    @FunctionalInterface
    public interface Service {
        /** Quote over the measured state with {@code binder} as qualifying data; the reply line after "OK ". */
        String quote(byte[] binder) throws Exception;
    }

    private final Path socket;
    private final byte[] token;
    private final ServerSocketChannel server;
    private final Service service;
    private final Thread thread;
    private final AtomicBoolean claimed = new AtomicBoolean();
    private volatile SocketChannel session;

    private Broker(Path socket, byte[] token, ServerSocketChannel server, Service service) {
        this.socket = socket;
        this.token = token;
        this.server = server;
        this.service = service;
        this.thread = new Thread(this::serve, "agent-broker");
        this.thread.setDaemon(true);
    }

    /** Creates the socket in {@code directory} (made owner-only) and starts serving. */
    public static Broker start(Path directory, Service service) throws IOException {
        Files.createDirectories(directory);
        try {
            Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString("rwx------"));
        } catch (UnsupportedOperationException e) {
            throw new IOException("the broker needs a POSIX file system for an owner-only socket directory", e);
        }
        Path socket = directory.resolve("broker.sock");
        Files.deleteIfExists(socket);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        byte[] token = new byte[32];
        new SecureRandom().nextBytes(token);
        Broker broker = new Broker(socket, token, server, service);
        broker.thread.start();
        return broker;
    }

    public Path socketPath() {
        return socket;
    }

    /** The one-time token, hex; give it to the child on its stdin, never in its environment or argv. */
    public String token() {
        return HexFormat.of().formatHex(token);
    }

    private void serve() {
        while (server.isOpen() && !claimed.get()) {
            SocketChannel client;
            try {
                client = server.accept();
            } catch (IOException e) {
                return;
            }
            try {
                BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(client),
                        StandardCharsets.UTF_8));
                OutputStream out = Channels.newOutputStream(client);
                String hello = readLine(in);
                byte[] presented = hello != null && hello.startsWith("HELLO ")
                        ? HexFormat.of().parseHex(hello.substring(6).trim()) : new byte[0];
                if (!MessageDigest.isEqual(presented, token) || !claimed.compareAndSet(false, true)) {
                    LOG.warn("broker: refused a connection without the child's token");
                    write(out, "ERR not the measured child");
                    client.close();
                    continue;
                }
                server.close();
                Files.deleteIfExists(socket);
                session = client;
                write(out, "OK");
                LOG.info("broker: the measured child connected");
                serveSession(in, out);
            } catch (IOException | IllegalArgumentException e) {
                LOG.debug("broker connection ended: {}", e.toString());
            } finally {
                try {
                    client.close();
                } catch (IOException ignored) {
                    // closing a socket that is already gone
                }
            }
        }
    }

    private void serveSession(BufferedReader in, OutputStream out) throws IOException {
        for (String line; (line = readLine(in)) != null; ) {
            if (line.startsWith("QUOTE ")) {
                byte[] binder;
                try {
                    binder = HexFormat.of().parseHex(line.substring(6).trim());
                } catch (IllegalArgumentException e) {
                    write(out, "ERR binder is not hex");
                    continue;
                }
                if (binder.length < 16 || binder.length > 64) {
                    write(out, "ERR binder must be 16..64 bytes");
                    continue;
                }
                try {
                    write(out, "OK " + service.quote(binder));
                } catch (Exception e) {
                    LOG.warn("broker: quote failed: {}", e.toString());
                    write(out, "ERR quote failed: " + e.getClass().getSimpleName());
                }
            } else {
                write(out, "ERR unknown request");
            }
        }
    }

    private static String readLine(BufferedReader in) throws IOException {
        StringBuilder s = new StringBuilder();
        for (int c; (c = in.read()) >= 0; ) {
            if (c == '\n') {
                return s.toString();
            }
            if (s.length() >= MAX_LINE) {
                throw new IOException("broker request longer than " + MAX_LINE + " characters");
            }
            s.append((char) c);
        }
        return s.length() == 0 ? null : s.toString();
    }

    private static void write(OutputStream out, String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** Whether the child has connected. */
    public boolean childConnected() {
        return claimed.get();
    }

    @Override
    public void close() throws IOException {
        server.close();
        SocketChannel s = session;
        if (s != null) {
            s.close();
        }
        Files.deleteIfExists(socket);
    }
}
