package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Raw TPM commands over swtpm's data channel on a Unix-domain socket ({@code swtpm socket --server
 * type=unixio,path=…}): the whole command handed to one {@code write}, and a deadline per command that bounds the
 * connect, the write and every read (a non-blocking channel and a selector, because a blocking {@link SocketChannel}
 * has no read timeout). Never opens swtpm's control channel: swtpm reads TSS.Java's platform signals as "shut down",
 * and the control channel can save and restore the whole TPM state.
 *
 * <p>Who may connect is decided by the file system: the socket's directory should be owner-only. Not thread-safe: the
 * client serializes.
 */
final class SwtpmUnixSocketTransport implements TpmTransport {
    private static final Logger LOG = LoggerFactory.getLogger(SwtpmUnixSocketTransport.class);

    private final Path socketPath;
    private final long timeoutNanos;
    private SocketChannel channel;
    private Selector selector;

    SwtpmUnixSocketTransport(Path socketPath, Duration timeout) {
        this.socketPath = socketPath;
        this.timeoutNanos = timeout.toNanos();
    }

    @Override
    public byte[] transmit(byte[] command) throws TpmTransportException {
        long deadline = System.nanoTime() + timeoutNanos;
        try {
            ensureConnected(deadline);
            writeFully(ByteBuffer.wrap(command), deadline);
            ByteBuffer header = readFully(ByteBuffer.allocate(HEADER), deadline);
            int size = TpmTransport.frameSize(header.array(), where());
            ByteBuffer response = ByteBuffer.allocate(size);
            response.put(header.array());
            return readFully(response, deadline).array();
        } catch (DeadlineException e) {
            disconnect();
            throw new TpmTransportException("no answer from the TPM at " + where() + " within "
                    + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms (" + e.getMessage()
                    + "); is swtpm alive and not stopped, and is no other client holding it? The connection was"
                    + " closed.", e);
        } catch (AccessDeniedException e) {
            disconnect();
            throw new TpmTransportException("not allowed to connect to the swtpm socket " + socketPath + ": its "
                    + "directory is private to the user who started swtpm; run as that user", e);
        } catch (IOException e) {
            disconnect();
            throw new TpmTransportException("TPM connection to " + where() + " failed: " + e.getMessage()
                    + "; is swtpm running there? (tpmphone swtpm start prints its URI)", e);
        } catch (TpmTransportException e) {
            disconnect();
            throw e;
        }
    }

    private void ensureConnected(long deadline) throws IOException {
        if (channel != null) {
            return;
        }
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        Selector sel = null;
        try {
            ch.configureBlocking(false);
            sel = Selector.open();
            if (!ch.connect(UnixDomainSocketAddress.of(socketPath))) {
                ch.register(sel, SelectionKey.OP_CONNECT);
                while (!ch.finishConnect()) {
                    await(sel, deadline, "connecting");
                }
            }
        } catch (IOException | RuntimeException e) {
            ch.close();
            if (sel != null) {
                sel.close();
            }
            if (e instanceof java.net.SocketException && String.valueOf(e.getMessage()).contains("Permission denied")) {
                throw new AccessDeniedException(socketPath.toString(), null, e.getMessage());
            }
            throw e;
        }
        channel = ch;
        selector = sel;
        LOG.debug("connected to swtpm socket {}", socketPath);
    }

    private void writeFully(ByteBuffer buffer, long deadline) throws IOException {
        // One write for the whole frame; only a full socket buffer (never for a TPM command) makes a second one.
        channel.write(buffer);
        while (buffer.hasRemaining()) {
            interest(SelectionKey.OP_WRITE);
            await(selector, deadline, "writing the command");
            channel.write(buffer);
        }
    }

    private ByteBuffer readFully(ByteBuffer buffer, long deadline) throws IOException {
        while (buffer.hasRemaining()) {
            int n = channel.read(buffer);
            if (n < 0) {
                throw new EOFException("connection closed by the TPM after " + buffer.position()
                        + " bytes of the response part being read");
            }
            if (n == 0) {
                interest(SelectionKey.OP_READ);
                await(selector, deadline, "waiting for the response");
            }
        }
        return buffer;
    }

    private void interest(int ops) throws IOException {
        SelectionKey key = channel.keyFor(selector);
        if (key == null) {
            channel.register(selector, ops);
        } else {
            key.interestOps(ops);
        }
    }

    private static void await(Selector sel, long deadline, String what) throws IOException {
        long remainingMillis = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        if (remainingMillis <= 0) {
            throw new DeadlineException(what);
        }
        sel.select(remainingMillis);
        sel.selectedKeys().clear();
        if (Thread.currentThread().isInterrupted()) {
            throw new java.io.InterruptedIOException("interrupted while " + what);
        }
    }

    private String where() {
        return "swtpm socket " + socketPath;
    }

    @Override
    public void disconnect() {
        SocketChannel ch = channel;
        Selector sel = selector;
        channel = null;
        selector = null;
        try {
            if (sel != null) {
                sel.close();
            }
            if (ch != null) {
                ch.close();
            }
        } catch (IOException e) {
            LOG.debug("closing TPM socket {}: {}", socketPath, e.toString());
        }
    }

    @Override
    public void close() {
        disconnect();
    }

    /** The per-command deadline passed. */
    private static final class DeadlineException extends IOException {
        private static final long serialVersionUID = 1L;

        DeadlineException(String what) {
            super("deadline passed while " + what);
        }
    }
}
