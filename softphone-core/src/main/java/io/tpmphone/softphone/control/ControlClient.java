package io.tpmphone.softphone.control;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.TimeUnit;

/** A user interface's side of a running softphone's {@link ControlServer}. Not thread-safe. */
public final class ControlClient implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final SocketChannel channel;
    private final BufferedReader in;
    private final OutputStream out;

    private ControlClient(SocketChannel channel) {
        this.channel = channel;
        this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
        this.out = Channels.newOutputStream(channel);
    }

    /** Connects to the softphone's control socket, waiting up to {@code wait} for it to appear (it is starting). */
    public static ControlClient connect(Path socket, Duration wait) throws IOException, InterruptedException {
        Instant deadline = Instant.now().plus(wait);
        while (true) {
            SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
                return new ControlClient(ch);
            } catch (IOException e) {
                ch.close();
                if (Instant.now().isAfter(deadline)) {
                    throw new IOException("the softphone's control socket " + socket + " did not answer within "
                            + wait.toSeconds() + " s: " + e.getMessage(), e);
                }
                TimeUnit.MILLISECONDS.sleep(100);
            }
        }
    }

    /** Sends one request and returns the reply; a reply with {@code "ok":false} throws with its error. */
    public JsonNode request(ObjectNode request) throws IOException {
        out.write((JSON.writeValueAsString(request) + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        String line = in.readLine();
        if (line == null) {
            throw new IOException("the softphone closed its control channel");
        }
        JsonNode reply = JSON.readTree(line);
        if (!reply.path("ok").asBoolean(false)) {
            throw new IOException(reply.path("error").asText("the softphone refused the request"));
        }
        return reply;
    }

    public static ObjectNode op(String op) {
        return JSON.createObjectNode().put("op", op);
    }

    /** Places a call; returns its id at once. */
    public String call(String target, String next) throws IOException {
        return request(op("call").put("target", target).put("next", next)).get("callId").asText();
    }

    /**
     * Registers the phone as {@code aor} at the registrar {@code registrar} (HOST:PORT, TLS) with these digest
     * credentials; returns the registrar's answer ({@code state}: REGISTERED, FAILED; {@code reason}).
     */
    public JsonNode register(String aor, String registrar, String user, String password, java.time.Duration expires)
            throws IOException {
        return request(op("register").put("aor", aor).put("registrar", registrar).put("user", user)
                .put("password", password).put("expiresSeconds", expires.toSeconds()));
    }

    /** Removes the registration as {@code aor}. */
    public JsonNode unregister(String aor) throws IOException {
        return request(op("unregister").put("aor", aor));
    }

    /** Places a call to {@code target} through the registrar of the registration as {@code aor}; returns its id. */
    public String callVia(String target, String aor) throws IOException {
        return request(op("call").put("target", target).put("via", aor)).get("callId").asText();
    }

    /** The call once it is established, refused or ended (or as it is after {@code timeout}). */
    public JsonNode await(String callId, Duration timeout) throws IOException {
        return request(op("await").put("callId", callId).put("timeoutMs", timeout.toMillis())).get("call");
    }

    public JsonNode calls() throws IOException {
        return request(op("calls")).get("calls");
    }

    public JsonNode audio(String callId) throws IOException {
        return request(op("audio").put("callId", callId));
    }

    /**
     * The call's audio statistics once at least {@code seconds} of the peer's audio arrived, or as they are after
     * {@code timeout} (the receive path takes about a second to start).
     */
    public JsonNode awaitAudio(String callId, double seconds, Duration timeout) throws IOException,
            InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        JsonNode a = audio(callId);
        while (a.path("secondsReceived").asDouble() < seconds && Instant.now().isBefore(deadline)) {
            TimeUnit.MILLISECONDS.sleep(100);
            a = audio(callId);
        }
        return a;
    }

    public void hangUp(String callId) throws IOException {
        request(op("hangup").put("callId", callId));
    }

    /**
     * The softphone's heap after a full collection ({@code heapUsedAfterGcBytes}), its JVM's thread count and its
     * calls in memory: what a soak samples. Runs a garbage collection in the softphone.
     */
    public JsonNode health() throws IOException {
        return request(op("health"));
    }

    /** {@link #health()} plus {@code histogram}: the heap's top classes by bytes (the JVM's class histogram). */
    public JsonNode healthWithHistogram() throws IOException {
        return request(op("health").put("histogram", true));
    }

    /** Answers a ringing call (a phone with a ring screen). */
    public void answer(String callId) throws IOException {
        request(op("answer").put("callId", callId));
    }

    /** Declines a ringing call: the caller gets 603. */
    public void decline(String callId) throws IOException {
        request(op("decline").put("callId", callId));
    }

    /**
     * Turns this connection into the phone's ring screen ({@code width} x {@code height}; {@code ansi} for a
     * terminal): afterwards {@link #frames()} carries what the softphone draws and {@link #keys()} what the person
     * types. Nothing else may be sent on this client.
     */
    public void screen(int width, int height, boolean ansi) throws IOException {
        request(op("screen").put("width", width).put("height", height).put("ansi", ansi));
    }

    /** After {@link #screen}: the frames the softphone draws, as text to copy to the terminal unchanged. */
    public java.io.Reader frames() {
        return in;
    }

    /**
     * After {@link #screen}: where the person's keys go, as bytes ({@code ESC [ 8 ; ROWS ; COLS t}: a new size). It
     * writes to the channel itself, so keys go out while {@link #frames()} is blocked in a read.
     */
    public OutputStream keys() {
        return ControlServer.ChannelWriter.of(channel);
    }

    /**
     * {@link #health()} plus {@code stacks}: every thread's name, state, the lock it waits on and its top frames (code
     * locations only), for finding where a stalled call's media waits.
     */
    public JsonNode healthWithStacks() throws IOException {
        return request(op("health").put("stacks", true));
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
