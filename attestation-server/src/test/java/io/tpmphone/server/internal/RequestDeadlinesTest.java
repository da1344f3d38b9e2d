package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Which connection {@link RequestDeadlines} cuts, at which stage, and which it leaves alone, on a real Jetty server
 * and real sockets. Time is the sweep's argument: each case sweeps at instants before and after its deadline, so
 * nothing waits for a deadline to pass (the deadline itself is 60 s, and the periodic sweep never reaches it here).
 * The TLS path (an SslConnection over the endpoint) is {@code ConnectionBoundsIT}'s.
 */
@Timeout(60)
class RequestDeadlinesTest {
    private static final Duration T = Duration.ofSeconds(60);
    private static final long IDLE_MILLIS = 30_000;

    private final List<RequestDeadlines.Stage> closes = new CopyOnWriteArrayList<>();
    private final CountDownLatch inHandler = new CountDownLatch(1);
    private final CountDownLatch bodyRead = new CountDownLatch(1);
    private final CountDownLatch release = new CountDownLatch(1);
    private final CountDownLatch readFailed = new CountDownLatch(1);
    private Server server;
    private ServerConnector connector;
    private RequestDeadlines deadlines;
    private Socket client;

    @BeforeEach
    void start() throws Exception {
        server = new Server();
        connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setIdleTimeout(IDLE_MILLIS);
        server.addConnector(connector);
        // /slow reads the body, then answers when released; /absent is taken by no handler (404).
        Handler handler = new Handler.Abstract() {
            @Override
            public boolean handle(Request request, Response response, Callback callback) throws Exception {
                String path = Request.getPathInContext(request);
                if (path.equals("/absent")) {
                    return false;
                }
                inHandler.countDown();
                if (request.getMethod().equals("POST")) {
                    try {
                        Content.Source.asByteBuffer(request);
                    } catch (IOException e) {
                        readFailed.countDown();
                        throw e;
                    }
                    bodyRead.countDown();
                    if (path.equals("/slow")) {
                        assertTrue(release.await(30, TimeUnit.SECONDS), "the test releases the slow handler");
                    }
                }
                response.setStatus(200);
                Content.Sink.write(response, true, "ok", callback);
                return true;
            }
        };
        deadlines = new RequestDeadlines(handler, connector, T, closes::add);
        server.setHandler(deadlines);
        server.start();
        client = new Socket();
        client.connect(new InetSocketAddress("127.0.0.1", connector.getLocalPort()), 10_000);
        client.setSoTimeout(30_000);
        io.tpmphone.swtpm.testing.Await.until("the server to accept the connection", java.time.Duration.ofSeconds(10),
                () -> connector.getConnectedEndPoints().size() == 1,
                () -> connector.getConnectedEndPoints().size() + " open");
    }

    @AfterEach
    void stop() throws Exception {
        release.countDown();
        client.close();
        server.stop();
    }

    /** A sweep {@code after} from now. */
    private int sweepAfter(Duration after) {
        return deadlines.sweep(System.nanoTime() + after.toNanos(), System.currentTimeMillis() + after.toMillis());
    }

    private RequestDeadlines.Stage missedAfter(org.eclipse.jetty.io.EndPoint endPoint, Duration after) {
        return deadlines.missed(endPoint, System.nanoTime() + after.toNanos(),
                System.currentTimeMillis() + after.toMillis());
    }

    private void send(String text) throws IOException {
        OutputStream out = client.getOutputStream();
        out.write(text.getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    private String answer() throws IOException {
        InputStream in = client.getInputStream();
        StringBuilder head = new StringBuilder();
        while (head.indexOf("\r\n\r\n") < 0) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("closed after: " + head);
            }
            head.append((char) b);
        }
        return head.substring(0, head.indexOf("\r\n"));
    }

    @Test
    void aConnectionWithoutARequest_isCutAfterTheDeadline_atTheFirstRequest() throws Exception {
        assertEquals(0, sweepAfter(T.minusSeconds(5)), "before the deadline nothing is cut");
        assertEquals(1, sweepAfter(T.plusSeconds(5)), "after the deadline the connection is cut");
        assertEquals(List.of(RequestDeadlines.Stage.FIRST_REQUEST), closes, "reported at its stage");
        assertEquals(-1, client.getInputStream().read(), "the client sees the connection closed");
    }

    @Test
    void aHandlerSlowerThanTheDeadline_onceTheBodyIsIn_isNotCut() throws Exception {
        send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        assertTrue(bodyRead.await(10, TimeUnit.SECONDS), "the handler read the body");
        assertEquals(0, sweepAfter(T.multipliedBy(10)), "the server's own time never counts: " + closes);
        release.countDown();
        assertEquals("HTTP/1.1 200 OK", answer(), "the slow handler's answer arrives");
        assertTrue(closes.isEmpty(), "nothing cut: " + closes);
    }

    @Test
    void aBodyNotSentInTime_isCutAtTheBody_andFreesTheHandlersThread() throws Exception {
        send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhe");
        assertTrue(inHandler.await(10, TimeUnit.SECONDS), "the handler started reading the body");
        assertEquals(0, sweepAfter(T.minusSeconds(5)), "before the deadline the body may still come");
        assertEquals(1, sweepAfter(T.plusSeconds(5)), "after it, the connection is cut");
        assertEquals(List.of(RequestDeadlines.Stage.BODY), closes, "reported at its stage");
        assertTrue(readFailed.await(10, TimeUnit.SECONDS), "the handler's blocked read failed: its thread is free");
    }

    @Test
    void anIdleConnectionAfterARequest_isLeftToTheIdleTimeout_thenDroppedAsIdle() throws Exception {
        EndPointAndIdle e = wholeRequestThenIdle();
        assertEquals(null, missedAfter(e.endPoint(), e.idle().plus(T).minusSeconds(5)),
                "within the idle timeout plus the deadline");
        assertEquals(0, sweepAfter(e.idle().plus(T).minusSeconds(5)), "within the idle timeout plus the deadline");
        assertEquals(1, sweepAfter(e.idle().plus(T).plusSeconds(5)), "past both");
        assertEquals(List.of(RequestDeadlines.Stage.IDLE), closes, "it sent nothing: idle, not a slow request");
    }

    @Test
    void bytesAfterARequest_thatMakeNoNextOne_areCutAsASlowNextRequest() throws Exception {
        EndPointAndIdle e = wholeRequestThenIdle();
        send("GET /fast HTTP/1.1\r\nX-Slow: ");
        Duration past = e.idle().plus(T).plusSeconds(5);
        io.tpmphone.swtpm.testing.Await.until("the server to receive the bytes", java.time.Duration.ofSeconds(10),
                () -> missedAfter(e.endPoint(), past) == RequestDeadlines.Stage.NEXT_REQUEST,
                () -> "missed after the idle timeout plus the deadline: " + missedAfter(e.endPoint(), past));
        assertEquals(null, missedAfter(e.endPoint(), e.idle().plus(T).minusSeconds(5)),
                "within the idle timeout plus the deadline the next request may still come");
        assertEquals(1, sweepAfter(past), "past both");
        assertEquals(List.of(RequestDeadlines.Stage.NEXT_REQUEST), closes, "reported as a slow next request");
    }

    private record EndPointAndIdle(org.eclipse.jetty.io.EndPoint endPoint, Duration idle) {
    }

    /** A whole GET answered; returns once the server has ended the request (and the connection is idle). */
    private EndPointAndIdle wholeRequestThenIdle() throws Exception {
        send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
        assertEquals("HTTP/1.1 200 OK", answer(), "a whole request");
        client.getInputStream().readNBytes(2); // its body, "ok"
        Duration idle = Duration.ofMillis(IDLE_MILLIS);
        // The answer can reach the client before the server's thread has finished the request: until then the
        // request is in progress, and no deadline applies.
        org.eclipse.jetty.io.EndPoint endPoint = connector.getConnectedEndPoints().iterator().next();
        io.tpmphone.swtpm.testing.Await.until("the request to end on the server", java.time.Duration.ofSeconds(10),
                () -> missedAfter(endPoint, idle.plus(T).plusSeconds(5)) != null,
                () -> "no deadline applies yet: the request is still in progress on the server");
        return new EndPointAndIdle(endPoint, idle);
    }

    @Test
    void aRequestNoHandlerTakes_endsItsProgress_soTheConnectionIsNotExemptForever() throws Exception {
        send("GET /absent HTTP/1.1\r\nHost: x\r\n\r\n");
        assertEquals("HTTP/1.1 404 Not Found", answer(), "Jetty answers what no handler took");
        Duration idle = Duration.ofMillis(IDLE_MILLIS);
        assertEquals(1, sweepAfter(idle.plus(T).plusSeconds(5)), "it counts as ended, not in progress: " + closes);
        assertEquals(List.of(RequestDeadlines.Stage.IDLE), closes, "reported at its stage");
    }
}
