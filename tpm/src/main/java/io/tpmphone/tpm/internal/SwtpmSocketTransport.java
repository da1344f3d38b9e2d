package io.tpmphone.tpm.internal;

import io.tpmphone.tpm.TpmTransportException;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Raw TPM commands over swtpm's TCP data port: one {@code write} per command, {@code TCP_NODELAY}, connect and read
 * timeouts. Never opens the control port: swtpm reads TSS.Java's platform signals there as "shut down".
 *
 * <p>TSS.Java's own {@code TpmDeviceTcp} writes each command in four small writes with Nagle's algorithm on, which
 * costs ~44 ms per command on loopback (delayed ACK); this transport takes well under a millisecond.
 */
final class SwtpmSocketTransport implements TpmTransport {
    private static final Logger LOG = LoggerFactory.getLogger(SwtpmSocketTransport.class);

    private final String host;
    private final int port;
    private final int timeoutMillis;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    SwtpmSocketTransport(String host, int port, Duration timeout) {
        this.host = host;
        this.port = port;
        this.timeoutMillis = (int) Math.min(Integer.MAX_VALUE, timeout.toMillis());
    }

    @Override
    public byte[] transmit(byte[] command) throws TpmTransportException {
        try {
            long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
            ensureConnected();
            out.write(command);
            out.flush();
            byte[] header = readFully(new byte[HEADER], 0, HEADER, deadline);
            int size = TpmTransport.frameSize(header, where());
            byte[] response = new byte[size];
            System.arraycopy(header, 0, response, 0, HEADER);
            return readFully(response, HEADER, size - HEADER, deadline);
        } catch (SocketTimeoutException e) {
            disconnect();
            throw new TpmTransportException("no answer from the TPM at " + where() + " within " + timeoutMillis
                    + " ms; is swtpm alive and not stopped? The connection was closed.", e);
        } catch (IOException e) {
            disconnect();
            throw new TpmTransportException("TPM connection to " + where() + " failed: " + e.getMessage()
                    + "; is swtpm running there? (tpmphone swtpm start)", e);
        } catch (TpmTransportException e) {
            disconnect();
            throw e;
        }
    }

    private void ensureConnected() throws IOException {
        if (socket != null) {
            return;
        }
        Socket s = new Socket();
        try {
            s.setTcpNoDelay(true);
            s.setSoTimeout(timeoutMillis);
            s.connect(new InetSocketAddress(host, port), timeoutMillis);
        } catch (IOException e) {
            s.close();
            throw e;
        }
        socket = s;
        in = s.getInputStream();
        out = s.getOutputStream();
        LOG.debug("connected to swtpm data port {}", where());
    }

    /** Reads exactly {@code length} bytes before {@code deadline} (a per-command bound, not per read). */
    private byte[] readFully(byte[] buffer, int offset, int length, long deadline) throws IOException {
        int done = 0;
        while (done < length) {
            long remainingMillis = (deadline - System.nanoTime()) / 1_000_000L;
            if (remainingMillis <= 0) {
                throw new SocketTimeoutException("command deadline passed");
            }
            socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, remainingMillis));
            int n = in.read(buffer, offset + done, length - done);
            if (n < 0) {
                throw new EOFException("connection closed by the TPM after " + (offset + done) + " response bytes");
            }
            done += n;
        }
        return buffer;
    }

    private String where() {
        return host + ":" + port;
    }

    @Override
    public void disconnect() {
        Socket s = socket;
        socket = null;
        in = null;
        out = null;
        if (s != null) {
            try {
                s.close();
            } catch (IOException e) {
                LOG.debug("closing TPM socket {}: {}", where(), e.toString());
            }
        }
    }

    @Override
    public void close() {
        disconnect();
    }
}
