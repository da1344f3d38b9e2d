package io.tpmphone.swtpm.internal;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Sends one raw TPM 2.0 command (TCG TPM 2.0 Part 3, command/response header: tag, size, code) to swtpm's data
 * channel (a TCP port or a Unix-domain socket) and reads the response. Used only for lifecycle commands such as
 * {@code TPM2_Shutdown} and the readiness probe.
 */
public final class TpmWire {
    /** TPM_ST_NO_SESSIONS. */
    public static final short TAG_NO_SESSIONS = (short) 0x8001;
    /** TPM_CC_Shutdown. */
    public static final int CC_SHUTDOWN = 0x00000145;
    /** TPM_CC_GetRandom. */
    public static final int CC_GET_RANDOM = 0x0000017B;
    /** TPM_SU_CLEAR. */
    public static final short SU_CLEAR = 0x0000;
    private static final int HEADER_SIZE = 10;
    private static final int MAX_RESPONSE_SIZE = 64 * 1024;

    private TpmWire() {
    }

    /** The 12-byte {@code TPM2_Shutdown(TPM_SU_CLEAR)} command. */
    public static byte[] shutdownClearCommand() {
        return ByteBuffer.allocate(12).putShort(TAG_NO_SESSIONS).putInt(12).putInt(CC_SHUTDOWN).putShort(SU_CLEAR)
                .array();
    }

    /** The 12-byte {@code TPM2_GetRandom(bytesRequested)} command. */
    public static byte[] getRandomCommand(int bytesRequested) {
        return ByteBuffer.allocate(12).putShort(TAG_NO_SESSIONS).putInt(12).putInt(CC_GET_RANDOM)
                .putShort((short) bytesRequested).array();
    }

    /**
     * Sends {@code command} and returns the response code; connect and read each time out after {@code timeout}.
     */
    public static int execute(String host, int port, byte[] command, Duration timeout) throws IOException {
        int timeoutMillis = (int) Math.max(1, timeout.toMillis());
        try (Socket socket = new Socket()) {
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port), timeoutMillis);
            socket.setSoTimeout(timeoutMillis);
            OutputStream out = socket.getOutputStream();
            out.write(command);
            out.flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            byte[] header = new byte[HEADER_SIZE];
            in.readFully(header);
            ByteBuffer buffer = ByteBuffer.wrap(header);
            buffer.getShort();
            int size = buffer.getInt();
            int responseCode = buffer.getInt();
            if (size < HEADER_SIZE || size > MAX_RESPONSE_SIZE) {
                throw new IOException("malformed TPM response: size field " + size);
            }
            in.readFully(new byte[size - HEADER_SIZE]);
            return responseCode;
        }
    }

    /**
     * Sends {@code command} over swtpm's Unix-domain data socket and returns the response code; the whole exchange
     * (connect, write, read) ends within {@code timeout} or throws {@link SocketTimeoutException}.
     */
    public static int execute(Path socket, byte[] command, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + Math.max(1, timeout.toNanos());
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
             Selector selector = Selector.open()) {
            channel.configureBlocking(false);
            SelectionKey key = channel.register(selector, 0);
            if (!channel.connect(UnixDomainSocketAddress.of(socket))) {
                key.interestOps(SelectionKey.OP_CONNECT);
                while (!channel.finishConnect()) {
                    await(selector, deadline);
                }
            }
            ByteBuffer out = ByteBuffer.wrap(command);
            channel.write(out);
            while (out.hasRemaining()) {
                key.interestOps(SelectionKey.OP_WRITE);
                await(selector, deadline);
                channel.write(out);
            }
            ByteBuffer header = ByteBuffer.allocate(HEADER_SIZE);
            read(channel, selector, key, header, deadline);
            header.flip();
            header.getShort();
            int size = header.getInt();
            int responseCode = header.getInt();
            if (size < HEADER_SIZE || size > MAX_RESPONSE_SIZE) {
                throw new IOException("malformed TPM response: size field " + size);
            }
            read(channel, selector, key, ByteBuffer.allocate(size - HEADER_SIZE), deadline);
            return responseCode;
        }
    }

    private static void read(SocketChannel channel, Selector selector, SelectionKey key, ByteBuffer buffer,
            long deadline) throws IOException {
        while (buffer.hasRemaining()) {
            int n = channel.read(buffer);
            if (n < 0) {
                throw new java.io.EOFException("swtpm closed the connection mid-response");
            }
            if (n == 0) {
                key.interestOps(SelectionKey.OP_READ);
                await(selector, deadline);
            }
        }
    }

    private static void await(Selector selector, long deadline) throws IOException {
        long remainingMillis = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        if (remainingMillis <= 0) {
            throw new SocketTimeoutException("no answer from swtpm in time");
        }
        selector.select(remainingMillis);
        selector.selectedKeys().clear();
    }
}
