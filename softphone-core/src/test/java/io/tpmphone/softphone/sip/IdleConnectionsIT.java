package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.ManualClock;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 12's review of the SIP bounds, finding 2: a peer could open TCP and TLS connections to the phone, complete the
 * handshake and leave them idle for ever (each costs JAIN-SIP a thread), and open as many as it liked. Idle
 * connections are closed after the idle timeout (on a {@link ManualClock} here), except those that carry a call in
 * progress or a registration, and connections beyond the per-source and overall caps are reset at once.
 */
class IdleConnectionsIT {
    private static final Duration IDLE = Duration.ofMinutes(5);
    private final ManualClock clock = new ManualClock();
    private final List<AutoCloseable> closing = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable c : closing) {
            c.close();
        }
    }

    private SipPhone victim(TestHosts hosts, int perSource, int total) throws Exception {
        SipPhone victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(),
                        TestHosts.freePort(), 0, Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { }, null, clock,
                SipPhone.Limits.DEFAULTS.withConnections(IDLE, perSource, total));
        closing.add(victim);
        return victim;
    }

    @Test
    @Timeout(120)
    void idleConnections_areClosedAfterTheTimeout_butOnesCarryingACallOrARegistrationStay() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone victim = victim(hosts, 16, 256);
        FakeRegistrar registrar = new FakeRegistrar();
        closing.add(registrar);
        Registration reg = victim.register(new Registration.Account("sip:victim@registrar.test",
                registrar.address(), "tcp", "victim", () -> "secret".toCharArray(), Duration.ofHours(1)));
        Await.event("the registration over TCP", Duration.ofSeconds(10), reg.firstOutcome(), () -> reg.toString());
        assertEquals(Registration.State.REGISTERED, reg.state(), "the registration: " + reg.reason());

        // Two connections that say nothing after connecting: plain TCP, and TLS with a completed handshake.
        RawSip idleTcp = RawSip.tcp(InetAddress.getByName("127.0.0.2"), victim.config().tcpPort());
        closing.add(idleTcp);
        RawSip idleTls = RawSip.tls(InetAddress.getByName("127.0.0.3"), victim.config().tlsPort(),
                AttestedTlsConfig.of(hosts.identity("idler"), hosts.verifier(), Clock.systemUTC()));
        closing.add(idleTls);
        // A call in progress over a connection of its own.
        SipPhone caller = SipPhone.start(new SipPhone.Config("caller", "caller", LOOPBACK, TestHosts.freePort(), 0,
                        0, Duration.ofSeconds(10)),
                AttestedTlsConfig.of(hosts.identity("caller"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
        closing.add(caller);
        Call call = caller.await(caller.call("sips:victim@victim", new InetSocketAddress(LOOPBACK,
                victim.config().tlsPort())));
        assertEquals(Call.State.ESTABLISHED, call.state(), "the call: " + call.reason());
        Call incoming = Await.until("the victim's side of the call to be established", Duration.ofSeconds(10),
                () -> victim.callById(call.callId()).orElse(null),
                c -> c != null && c.state() == Call.State.ESTABLISHED);
        InetSocketAddress callHop = incoming.hop().orElseThrow();
        InetSocketAddress registrarHop = registrar.address();
        Await.until("the phone to track the four connections", Duration.ofSeconds(10), victim::connectionRemotes,
                r -> r.size() == 4 && r.contains(callHop) && r.contains(registrarHop));
        // The TLS client's handshake ends when it has sent its Finished; the phone may read that later, which counts
        // as something arriving. One answered OPTIONS shows the phone is past it before the clock moves (it was
        // moved first in one CI run, and the connection was rightly not idle yet).
        idleTls.send(RawSip.options("idle-tls-options", "TLS", idleTls.via()));
        RawSip.Response pong = Await.until("an answer to the OPTIONS on the TLS connection", Duration.ofSeconds(10),
                () -> idleTls.finals().get("idle-tls-options"), x -> x != null);
        assertEquals(200, pong.status(), "the answer on the TLS connection: " + pong.text());

        // Nothing arrives for longer than the idle timeout.
        clock.advance(IDLE.plusMinutes(1));
        String tcpEnd = Await.event("the idle TCP connection to be closed by the phone", Duration.ofSeconds(10),
                idleTcp.closedByPeer(), () -> "open: " + victim.connectionRemotes() + "; " + victim.held());
        String tlsEnd = Await.event("the idle TLS connection to be closed by the phone", Duration.ofSeconds(10),
                idleTls.closedByPeer(), () -> "open: " + victim.connectionRemotes() + "; " + victim.held());
        // The sweep that closed them looked at every connection: the call's and the registration's are still there.
        List<InetSocketAddress> open = victim.connectionRemotes();
        assertEquals(2L, victim.held().connectionsClosedIdle(), "connections closed as idle (the"
                + " TCP one ended with " + tcpEnd + ", the TLS one with " + tlsEnd + "); open now: " + open);
        assertTrue(open.contains(callHop) && open.contains(registrarHop), "the call's connection " + callHop
                + " and the registrar's " + registrarHop + " stay open; open: " + open);

        // The call's connection still carries it: the caller hangs up over it.
        caller.hangUp(call);
        Await.until("the victim to hear the hang-up", Duration.ofSeconds(10), () -> incoming.state(),
                s -> s == Call.State.ENDED);
        assertEquals("the peer hung up", incoming.reason(), "how the victim's call ended");

        // With the call over, its connection is just idle; the registration's still stays.
        clock.advance(IDLE.plusMinutes(1));
        Await.until("the call's connection, idle now, to be closed", Duration.ofSeconds(10),
                victim::connectionRemotes, r -> !r.contains(callHop));
        assertTrue(victim.connectionRemotes().contains(registrarHop), "the registration's connection stays: "
                + victim.connectionRemotes());
        assertEquals(3L, victim.held().connectionsClosedIdle(), "closed as idle: " + victim.held());
    }

    @Test
    @Timeout(60)
    void connectionsBeyondTheCaps_areResetAtOnce_andAClosedOneMakesRoom() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone victim = victim(hosts, 3, 5);
        InetAddress busy = InetAddress.getByName("127.0.0.4");
        List<RawSip> within = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            within.add(answering(busy, victim, "within-" + i));
        }
        // a fourth from the same source: reset inside accept, before JAIN-SIP sees it
        resetAtOnce(busy, victim, "the fourth connection from " + busy);

        // other sources, up to the overall cap of 5
        answering(InetAddress.getByName("127.0.0.5"), victim, "other-1");
        answering(InetAddress.getByName("127.0.0.5"), victim, "other-2");
        resetAtOnce(InetAddress.getByName("127.0.0.6"), victim, "a sixth connection overall");

        // the peer closes one of its three: a new one from the same source is taken
        within.get(0).close();
        Await.until("the phone to forget the closed connection", Duration.ofSeconds(10),
                () -> victim.held().connectionsOpen(), n -> n == 4);
        answering(busy, victim, "after-close");
    }

    /**
     * Connects from {@code from} and expects the phone to reset the connection at once: while the client still
     * connects (then {@code connect} fails), or right after (then the reader sees the reset), with nothing answered.
     */
    private void resetAtOnce(InetAddress from, SipPhone victim, String what) throws Exception {
        RawSip c;
        try {
            c = RawSip.tcp(from, victim.config().tcpPort());
        } catch (java.net.SocketException resetWhileConnecting) {
            return;
        }
        closing.add(c);
        try {
            c.send(RawSip.options("beyond-" + System.nanoTime(), "TCP", c.via()));
        } catch (IOException resetAlready) {
            // the reader sees the reset too
        }
        String end = Await.event(what + " to be reset", Duration.ofSeconds(10), c.closedByPeer(),
                () -> victim.held().toString());
        assertTrue(c.responses().isEmpty(), what + ": nothing is answered on it (" + end + "): " + c.responses());
    }

    /** A TCP connection from {@code from} on which an OPTIONS is answered with 200. */
    private RawSip answering(InetAddress from, SipPhone victim, String callId) throws Exception {
        RawSip c = RawSip.tcp(from, victim.config().tcpPort());
        closing.add(c);
        c.send(RawSip.options(callId, "TCP", c.via()));
        RawSip.Response r = Await.until("an answer to the OPTIONS on " + c, Duration.ofSeconds(10),
                () -> c.finals().get(callId), x -> x != null);
        assertEquals(200, r.status(), "the answer on " + c + ": " + r.text());
        return c;
    }

    /** A registrar over TCP that grants every REGISTER an hour, on the connection it came over. */
    private static final class FakeRegistrar implements AutoCloseable {
        private static final Pattern HEADER = Pattern.compile("(?mi)^(Via|From|To|Call-ID|CSeq|Contact) *:.*$");
        private final ServerSocket server = new ServerSocket(0, 5, LOOPBACK);
        private final CompletableFuture<Socket> connection = new CompletableFuture<>();

        FakeRegistrar() throws IOException {
            Thread t = new Thread(this::serve, "fake-registrar");
            t.setDaemon(true);
            t.start();
        }

        InetSocketAddress address() {
            return new InetSocketAddress(LOOPBACK, server.getLocalPort());
        }

        private void serve() {
            try (Socket s = server.accept()) {
                connection.complete(s);
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                StringBuilder pending = new StringBuilder();
                byte[] buf = new byte[8192];
                for (int n = in.read(buf); n >= 0; n = in.read(buf)) {
                    pending.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                    for (int end = pending.indexOf("\r\n\r\n"); end >= 0; end = pending.indexOf("\r\n\r\n")) {
                        String request = pending.substring(0, end + 4);
                        pending.delete(0, end + 4);
                        if (request.startsWith("REGISTER ")) {
                            out.write(ok(request).getBytes(StandardCharsets.ISO_8859_1));
                            out.flush();
                        }
                    }
                }
            } catch (IOException e) {
                connection.completeExceptionally(e);
            }
        }

        private static String ok(String request) {
            StringBuilder r = new StringBuilder("SIP/2.0 200 OK\r\n");
            Matcher m = HEADER.matcher(request);
            while (m.find()) {
                String name = m.group(1).toLowerCase(java.util.Locale.ROOT);
                r.append(m.group()).append(name.equals("to") ? ";tag=registrar" : name.equals("contact")
                        ? ";expires=3600" : "").append("\r\n");
            }
            return r.append("Content-Length: 0\r\n\r\n").toString();
        }

        @Override
        public void close() throws IOException {
            server.close();
            Socket s = connection.getNow(null);
            if (s != null) {
                s.close();
            }
        }
    }
}
