package io.tpmphone.softphone.sip;

import io.tpmphone.swtpm.testing.Await;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A standard SIP phone's end of UDP, for tests: one socket on loopback that is both its Via and its Contact (so the
 * phone's requests in a dialog, a BYE, come back to it), with a reader thread that keeps every message it gets.
 */
final class UdpPeer implements AutoCloseable {
    private static final Pattern STATUS = Pattern.compile("^SIP/2\\.0 (\\d{3}) ");
    private static final Pattern METHOD = Pattern.compile("^([A-Z]+) \\S+ SIP/2\\.0\r\n");
    private static final Pattern CALL_ID = Pattern.compile("(?mi)^(?:Call-ID|i) *: *(\\S+)");
    private static final Pattern CSEQ = Pattern.compile("(?mi)^CSeq *: *\\d+ ([A-Z]+)");

    /** A message as it came: a response's status (0 for a request), a request's method or the CSeq method. */
    record Message(int status, String method, String callId, String text) {
    }

    private final DatagramSocket socket;
    private final List<Message> messages = new CopyOnWriteArrayList<>();

    UdpPeer() throws SocketException {
        socket = new DatagramSocket(0, TestHosts.LOOPBACK);
        Thread reader = new Thread(this::read, "udp-peer-" + socket.getLocalPort());
        reader.setDaemon(true);
        reader.start();
    }

    /** Our address as a Via and a Contact name it, {@code 127.0.0.1:40000}. */
    String via() {
        return socket.getLocalAddress().getHostAddress() + ":" + socket.getLocalPort();
    }

    void send(InetSocketAddress to, String message) throws IOException {
        byte[] b = message.getBytes(StandardCharsets.US_ASCII);
        socket.send(new DatagramPacket(b, b.length, to));
    }

    /** The first response with {@code status} to {@code method} of {@code callId}, within {@code wait}. */
    Message response(String callId, int status, String method, Duration wait) {
        return Await.until(status + " to " + method + " of " + callId, wait, () -> messages.stream()
                .filter(m -> m.status() == status && m.method().equals(method) && m.callId().equals(callId))
                .findFirst(), Optional::isPresent).orElseThrow();
    }

    /** The first request of {@code method} in {@code callId} the phone sent us, within {@code wait}. */
    Message request(String callId, String method, Duration wait) {
        return Await.until("a " + method + " of " + callId + " from the phone", wait, () -> messages.stream()
                .filter(m -> m.status() == 0 && m.method().equals(method) && m.callId().equals(callId))
                .findFirst(), Optional::isPresent).orElseThrow();
    }

    /** Whether the phone has sent us a request of {@code method} in {@code callId}. */
    boolean has(String callId, String method) {
        return messages.stream().anyMatch(m -> m.status() == 0 && m.method().equals(method)
                && m.callId().equals(callId));
    }

    /** How many requests of {@code method} in {@code callId} the phone has sent us (retransmissions counted). */
    long count(String callId, String method) {
        return messages.stream().filter(m -> m.status() == 0 && m.method().equals(method)
                && m.callId().equals(callId)).count();
    }

    /** The statuses of the final responses (200 and up) to {@code method} of {@code callId} so far, in order. */
    List<Integer> finals(String callId, String method) {
        return messages.stream().filter(m -> m.status() >= 200 && m.method().equals(method)
                && m.callId().equals(callId)).map(Message::status).toList();
    }

    /** Every message so far, in order. */
    List<Message> all() {
        return List.copyOf(messages);
    }

    /** Every message so far, one line each, for assertion messages. */
    List<String> firstLines() {
        return messages.stream().map(m -> m.text().lines().findFirst().orElse("")).toList();
    }

    private void read() {
        byte[] buf = new byte[65_536];
        while (!socket.isClosed()) {
            DatagramPacket p = new DatagramPacket(buf, buf.length);
            try {
                socket.receive(p);
            } catch (IOException e) {
                return;
            }
            String text = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
            Matcher st = STATUS.matcher(text);
            Matcher method = METHOD.matcher(text);
            Matcher id = CALL_ID.matcher(text);
            Matcher cseq = CSEQ.matcher(text);
            String callId = id.find() ? id.group(1) : "";
            if (st.find()) {
                messages.add(new Message(Integer.parseInt(st.group(1)), cseq.find() ? cseq.group(1) : "", callId,
                        text));
            } else if (method.find()) {
                messages.add(new Message(0, method.group(1), callId, text));
            }
        }
    }

    @Override
    public void close() {
        socket.close();
    }
}
