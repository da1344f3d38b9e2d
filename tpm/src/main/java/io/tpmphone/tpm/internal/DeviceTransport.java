package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Linux TPM character device ({@code /dev/tpmrm0}, the kernel's resource manager, or {@code /dev/tpm0}): one
 * write per command, one read returns the whole response. The read runs on a private I/O thread so that the command
 * timeout holds even if the driver blocks; on timeout the channel is closed, which ends the blocked read.
 */
final class DeviceTransport implements TpmTransport {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceTransport.class);

    private final Path path;
    private final Duration timeout;
    private final ExecutorService io;
    private FileChannel channel;

    DeviceTransport(Path path, Duration timeout) {
        this.path = path;
        this.timeout = timeout;
        this.io = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "tpm-device-io " + path);
            t.setDaemon(true);
            return t;
        });
    }

    @Override
    public byte[] transmit(byte[] command) throws TpmTransportException {
        Future<byte[]> result;
        try {
            FileChannel ch = ensureOpen();
            result = io.submit(() -> roundTrip(ch, command));
        } catch (IOException e) {
            throw new TpmTransportException("cannot open TPM device " + path + ": " + reason(e)
                    + "; check that it exists and that this user may read and write it (group tss)", e);
        }
        try {
            return result.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            result.cancel(true);
            // The kernel driver may be stuck in an uninterruptible write, and FileChannel.close() waits for the
            // blocked thread: close on another thread so that this caller returns within its timeout.
            FileChannel stuck = channel;
            channel = null;
            if (stuck != null) {
                Thread closer = new Thread(() -> closeQuietly(stuck), "tpm-device-close " + path);
                closer.setDaemon(true);
                closer.start();
            }
            throw new TpmTransportException("no answer from TPM device " + path + " within " + timeout.toMillis()
                    + " ms; the device was closed", e);
        } catch (ExecutionException e) {
            disconnect();
            Throwable cause = e.getCause();
            if (cause instanceof TpmTransportException) {
                throw (TpmTransportException) cause;
            }
            throw new TpmTransportException("TPM device " + path + " failed: " + cause, cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            disconnect();
            throw new TpmTransportException("interrupted while waiting for TPM device " + path, e);
        }
    }

    private static byte[] roundTrip(FileChannel ch, byte[] command) throws IOException, TpmTransportException {
        ByteBuffer out = ByteBuffer.wrap(command);
        while (out.hasRemaining()) {
            ch.write(out);
        }
        // The kernel TPM driver returns the whole response in one read; other character devices (a pty bridged to
        // a TPM, a vTPM proxy) may deliver it in pieces, so read until the frame the header announces is complete.
        ByteBuffer in = ByteBuffer.allocate(MAX_FRAME);
        int size = -1;
        while (size < 0 || in.position() < size) {
            if (ch.read(in) < 0) {
                throw new TpmTransportException("TPM device closed after " + in.position() + " response bytes");
            }
            if (size < 0 && in.position() >= HEADER) {
                size = TpmTransport.frameSize(in.array(), "device");
            }
        }
        if (in.position() != size) {
            throw new TpmTransportException("TPM response frame says " + size + " bytes but " + in.position()
                    + " arrived");
        }
        return Arrays.copyOf(in.array(), size);
    }

    /** NIO's messages for these are just the path, which the caller's message already names. */
    private static String reason(IOException e) {
        if (e instanceof NoSuchFileException) {
            return "no such file";
        }
        if (e instanceof AccessDeniedException) {
            return "permission denied";
        }
        return e.getMessage();
    }

    private FileChannel ensureOpen() throws IOException {
        if (channel == null) {
            channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            LOG.debug("opened TPM device {}", path);
        }
        return channel;
    }

    @Override
    public void disconnect() {
        FileChannel ch = channel;
        channel = null;
        if (ch != null) {
            closeQuietly(ch);
        }
    }

    private void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException e) {
            LOG.debug("closing TPM device {}: {}", path, e.toString());
        }
    }

    @Override
    public void close() {
        disconnect();
        io.shutdownNow();
    }
}
