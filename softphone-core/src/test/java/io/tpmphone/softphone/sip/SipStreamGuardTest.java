package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link SipStreamGuard}: SIP passes unchanged however the reads split it; a bare carriage return ends the stream. */
@Timeout(10)
class SipStreamGuardTest {
    /** A socket that returns the given reads, one per call. */
    private static InputStream reads(String... parts) {
        Deque<byte[]> queue = new ArrayDeque<>();
        for (String p : parts) {
            queue.add(p.getBytes(StandardCharsets.ISO_8859_1));
        }
        return new InputStream() {
            @Override
            public int read() {
                throw new UnsupportedOperationException();
            }

            @Override
            public int read(byte[] b, int off, int len) {
                byte[] next = queue.poll();
                if (next == null) {
                    return -1;
                }
                System.arraycopy(next, 0, b, off, next.length);
                return next.length;
            }
        };
    }

    private static String readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[4096];
        for (int n = in.read(buf, 0, buf.length); n >= 0; n = in.read(buf, 0, buf.length)) {
            assertTrue(n > 0, "a read of a non-empty buffer returns at least one byte");
            out.write(buf, 0, n);
        }
        return out.toString(StandardCharsets.ISO_8859_1);
    }

    @Test
    void crlfSplitAcrossReads_andKeepAlives_passUnchanged() throws Exception {
        String sip = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n\r\n\r\n";
        assertArrayEquals(sip.getBytes(StandardCharsets.ISO_8859_1), readAll(SipStreamGuard.around(reads(
                "OPTIONS sip:a@b SIP/2.0\r", "\nContent-Length: 0\r", "\n", "\r", "\n\r\n\r\n")))
                .getBytes(StandardCharsets.ISO_8859_1));
    }

    @Test
    void aCarriageReturnWithoutItsLineFeed_endsTheStream() {
        for (String[] stream : new String[][] {{"\r\r\r"}, {"\r\r\n"}, {"INVITE\r", "\rX"}, {"a\rb"}}) {
            IOException e = assertThrows(IOException.class, () -> readAll(SipStreamGuard.around(reads(stream))),
                    () -> "should end the stream: " + String.join("|", stream).replace("\r", "\\r"));
            assertTrue(e.getMessage().contains("carriage return"), e.getMessage());
        }
    }

    @Test
    void aCarriageReturnAtTheEnd_isDropped() throws Exception {
        // the channel appends CRLF at the end of the stream: "\r" + "\r\n" would overflow JAIN-SIP's line reader
        assertArrayEquals("abc\r\n".getBytes(StandardCharsets.ISO_8859_1),
                readAll(SipStreamGuard.around(reads("abc\r\n", "\r"))).getBytes(StandardCharsets.ISO_8859_1));
    }

    @Test
    void isAppliedOnce() {
        InputStream once = SipStreamGuard.around(reads());
        assertTrue(SipStreamGuard.around(once) == once);
    }
}
