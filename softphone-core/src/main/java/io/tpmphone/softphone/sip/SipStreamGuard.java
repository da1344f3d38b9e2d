package io.tpmphone.softphone.sip;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * The bytes of a TCP or TLS connection on their way to JAIN-SIP's parser: every carriage return is passed on only
 * together with the line feed that follows it, and a carriage return followed by anything else ends the connection (an
 * {@link IOException}, on which the channel closes it).
 *
 * <p>Why: JAIN-SIP 1.3.0-91's {@code PipelinedMsgParser.readLine} keeps the carriage returns that start a line in a
 * two-byte buffer, and overflows it on a line that starts with two carriage returns and then a third or a line feed.
 * The {@code ArrayIndexOutOfBoundsException} ends the connection's parser thread with a stack trace on standard error
 * (found by {@code SipMessageFuzzTest#stream}). The channel itself appends {@code "\r\n"} at the end of the stream and
 * {@code "\r\n\r\n"} after a read error, so a peer needed to send only a line with one {@code "\r"} and then close (or
 * {@code "\r\r"} at any time). SIP ends every header line with CRLF, and so does SDP, the only body the phone reads: a
 * bare carriage return never occurs in a message the phone can use, and one at the very end of the stream is dropped.
 *
 * <p>Not thread-safe: one reader, the channel's thread.
 */
final class SipStreamGuard extends FilterInputStream {
    private final byte[] incoming = new byte[4096];
    /** Bytes checked and not yet returned: {@code pending[next..end)}. */
    private final byte[] pending = new byte[2 * 4096 + 2];
    private int next;
    private int end;
    /** A carriage return was read and waits for its line feed. */
    private boolean heldCarriageReturn;

    private SipStreamGuard(InputStream in) {
        super(in);
    }

    /** {@code in} guarded (once), or null for null. */
    static InputStream around(InputStream in) {
        return in == null || in instanceof SipStreamGuard ? in : new SipStreamGuard(in);
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (len == 0) {
            return 0;
        }
        while (next == end) {
            if (!fill()) {
                return -1;
            }
        }
        int n = Math.min(len, end - next);
        System.arraycopy(pending, next, b, off, n);
        next += n;
        return n;
    }

    /** Reads and checks more bytes; false at the end of the stream (a carriage return held then is dropped). */
    private boolean fill() throws IOException {
        int n = in.read(incoming, 0, incoming.length);
        if (n < 0) {
            heldCarriageReturn = false;
            return false;
        }
        next = 0;
        end = 0;
        for (int i = 0; i < n; i++) {
            byte c = incoming[i];
            if (heldCarriageReturn) {
                if (c != '\n') {
                    throw new IOException("a carriage return without its line feed, which SIP never sends and"
                            + " JAIN-SIP's parser cannot take: closing the connection");
                }
                pending[end++] = '\r';
                pending[end++] = '\n';
                heldCarriageReturn = false;
            } else if (c == '\r') {
                heldCarriageReturn = true;
            } else {
                pending[end++] = c;
            }
        }
        return true;
    }

    @Override
    public int available() throws IOException {
        return end - next;
    }

    @Override
    public long skip(long n) throws IOException {
        throw new IOException("the SIP stream is read, not skipped");
    }

    @Override
    public boolean markSupported() {
        return false;
    }
}
