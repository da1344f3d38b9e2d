package io.tpmphone.swtpm.testing;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Unix-domain socket between a TPM client and swtpm's data channel that passes raw TPM command frames through and
 * can stop at one: a test arms it with a command code and an action (kill the client, kill swtpm), and when the next
 * command with that code arrives, the tap runs the action and drops the command and the connection instead of
 * forwarding it. So a test kills a process exactly in the middle of an operation (with a policy session and the
 * sealed object loaded, right before {@code TPM2_Unseal}; right before {@code TPM2_Quote}) without sleeping or adding
 * hooks to product code. Each client connection gets its own connection to swtpm's socket, so a restarted swtpm on
 * the same socket is reached by the next client connection.
 *
 * <p>Frames are TPM 2.0 command and response frames (Part 1 §18: tag, size, code); at most 64 KiB each. One client
 * at a time, as swtpm serves them. Thread-safe.
 */
public final class TpmCommandTap implements AutoCloseable {
    /** {@code TPM_CC_Unseal} (Part 2 §6.5.2). */
    public static final int TPM_CC_UNSEAL = 0x0000015E;
    /** {@code TPM_CC_Quote}. */
    public static final int TPM_CC_QUOTE = 0x00000158;
    /** {@code TPM_CC_PCR_Extend}. */
    public static final int TPM_CC_PCR_EXTEND = 0x00000182;
    /** {@code TPM_CC_Sign}. */
    public static final int TPM_CC_SIGN = 0x0000015D;

    private static final Logger LOG = LoggerFactory.getLogger(TpmCommandTap.class);
    private static final int HEADER = 10;
    private static final int MAX_FRAME = 64 * 1024;

    private final Path tpmSocket;
    private final Path socket;
    private final ServerSocketChannel server;
    private final Thread acceptor;
    private final AtomicReference<Trap> trap = new AtomicReference<>();
    private final List<Integer> seen = new ArrayList<>();
    private volatile boolean closed;

    private record Trap(int commandCode, Runnable action, CompletableFuture<Integer> fired) {
    }

    private TpmCommandTap(Path tpmSocket, Path socket, ServerSocketChannel server) {
        this.tpmSocket = tpmSocket;
        this.socket = socket;
        this.server = server;
        this.acceptor = new Thread(this::accept, "tpm-command-tap");
        this.acceptor.setDaemon(true);
    }

    /**
     * Listens on {@code socket} (which must not exist; its directory should be private to the test) and passes
     * frames on to swtpm's data socket {@code tpmSocket}.
     */
    public static TpmCommandTap start(Path tpmSocket, Path socket) throws IOException {
        Objects.requireNonNull(tpmSocket, "tpmSocket");
        Objects.requireNonNull(socket, "socket");
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        TpmCommandTap tap = new TpmCommandTap(tpmSocket, socket, server);
        tap.acceptor.start();
        return tap;
    }

    /** The URI a {@code TpmClient} opens to go through the tap ({@code swtpm:socket=PATH}). */
    public String tpmUri() {
        return "swtpm:socket=" + socket;
    }

    /**
     * Arms the tap: the next command with {@code commandCode} is not forwarded; {@code action} runs (on the tap's
     * thread, before the client's connection is closed), then the connection closes. Replaces an armed trap.
     *
     * @return completes with the command code once the trap fired and the action returned (exceptionally if the
     *         action threw)
     */
    public CompletableFuture<Integer> stopAt(int commandCode, Runnable action) {
        Objects.requireNonNull(action, "action");
        Trap t = new Trap(commandCode, action, new CompletableFuture<>());
        trap.set(t);
        return t.fired();
    }

    /** Command codes passed through or stopped so far, in order. */
    public List<Integer> commandsSeen() {
        synchronized (seen) {
            return List.copyOf(seen);
        }
    }

    private void accept() {
        while (!closed) {
            try (SocketChannel client = server.accept()) {
                serve(client);
            } catch (IOException e) {
                if (!closed) {
                    LOG.debug("tap connection ended: {}", e.toString());
                }
            }
        }
    }

    private void serve(SocketChannel client) throws IOException {
        try (SocketChannel tpm = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            tpm.connect(UnixDomainSocketAddress.of(tpmSocket));
            while (true) {
                ByteBuffer command = readFrame(client);
                if (command == null) {
                    return;
                }
                int code = command.getInt(6);
                synchronized (seen) {
                    seen.add(code);
                }
                Trap t = trap.get();
                if (t != null && t.commandCode() == code && trap.compareAndSet(t, null)) {
                    try {
                        t.action().run();
                        t.fired().complete(code);
                    } catch (RuntimeException | Error e) {
                        t.fired().completeExceptionally(e);
                    }
                    return; // dropped: the client's connection closes
                }
                command.rewind();
                writeFully(tpm, command);
                ByteBuffer response = readFrame(tpm);
                if (response == null) {
                    return;
                }
                response.rewind();
                writeFully(client, response);
            }
        }
    }

    /** One frame, or null at end of stream before a frame starts. */
    private static ByteBuffer readFrame(SocketChannel ch) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(HEADER);
        while (header.hasRemaining()) {
            if (ch.read(header) < 0) {
                if (header.position() == 0) {
                    return null;
                }
                throw new IOException("stream ended inside a TPM frame header");
            }
        }
        int size = header.getInt(2);
        if (size < HEADER || size > MAX_FRAME) {
            throw new IOException("TPM frame size " + size + " out of range");
        }
        ByteBuffer frame = ByteBuffer.allocate(size);
        frame.put(header.array());
        while (frame.hasRemaining()) {
            if (ch.read(frame) < 0) {
                throw new IOException("stream ended inside a TPM frame");
            }
        }
        frame.flip();
        return frame;
    }

    private static void writeFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            LOG.debug("closing the tap: {}", e.toString());
        }
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            LOG.debug("removing the tap's socket: {}", e.toString());
        }
    }
}
