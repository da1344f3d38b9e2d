package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.ManualClock;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.AttestedTlsServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 12's second review, findings 1 and 2: JAIN-SIP 1.3.0-91 took each request's top Via as where its channel
 * sends, retried a failed send to the Via's host and port through its table of sockets by address, and answered CRLF
 * keep-alives by itself. An unauthenticated peer got the phone's answers written onto the phone's connection to its
 * registrar, and made a TLS-only phone connect out (TCP, and TLS with TPM signatures). Now a connection whose request
 * names another transport is closed, an answer goes only on the connection its request came over, and the phone
 * connects and sends only to destinations it chose.
 */
class AnswersStayOnTheirConnectionIT {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private final List<AutoCloseable> closing = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable c : closing) {
            try {
                c.close();
            } catch (Exception ignored) {
                // closing what is left
            }
        }
    }

    private static String request(String method, String callId, String viaTransport, String via) {
        return method + " sip:victim@127.0.0.1 SIP/2.0\r\n"
                + "Via: SIP/2.0/" + viaTransport + " " + via + ";branch=z9hG4bK" + callId + "\r\n"
                + "Max-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\n"
                + "From: <sip:probe@probe.test>;tag=p1\r\nCall-ID: " + callId + "\r\nCSeq: 1 " + method + "\r\n"
                + "Content-Length: 0\r\n\r\n";
    }

    private SipPhone victim(TestHosts.CountingIdentity id, TestHosts hosts, int tcpPort, int udpPort,
                            SipPhone.Keys keys, Clock clock) throws Exception {
        SipPhone victim = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(),
                        tcpPort, udpPort, Duration.ofSeconds(10)),
                AttestedTlsConfig.of(id, hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), keys, new SipPhone.Listener() { }, null, clock,
                SipPhone.Limits.DEFAULTS);
        closing.add(victim);
        return victim;
    }

    private Registration registered(SipPhone victim, RecordingRegistrar registrar) {
        Registration reg = victim.register(new Registration.Account("sip:victim@registrar.test",
                registrar.address(), "tcp", "victim", () -> "secret".toCharArray(), Duration.ofHours(1)));
        Await.event("the registration over TCP", WAIT, reg.firstOutcome(), reg::toString);
        assertEquals(Registration.State.REGISTERED, reg.state(), "the registration: " + reg.reason());
        return reg;
    }

    /** The review's attack, step by step: its first request, whose Via says UDP on a TCP connection, ends it. */
    @Test
    @Timeout(60)
    void aViaNamingAnotherTransport_closesTheConnection_andNothingReachesTheRegistrarsConnection() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone victim = victim(hosts.identity("victim"), hosts, TestHosts.freePort(), 0, TestHosts.keys(),
                new ManualClock());
        RecordingRegistrar registrar = new RecordingRegistrar();
        closing.add(registrar);
        registered(victim, registrar);
        int r = registrar.address().getPort();

        RawSip attacker = RawSip.tcp(LOOPBACK, victim.config().tcpPort());
        closing.add(attacker);
        attacker.send(request("OPTIONS", "poison", "UDP", "127.0.0.1:" + r));
        String end = Await.event("the phone to close the connection whose request's Via says UDP", WAIT,
                attacker.closedByPeer(), () -> "open: " + victim.connectionRemotes() + "; the attacker got "
                        + attacker.responses());
        assertTrue(attacker.responses().isEmpty(), "nothing is answered on that connection (" + end + "): "
                + attacker.responses());
        // The rest of the attack (a CRLF keep-alive, then a request whose Via names the registrar over TCP) has no
        // connection left to go on.
        try {
            attacker.send("\r\n\r\n");
            attacker.send(request("OPTIONS", "injected", "TCP", "127.0.0.1:" + r));
        } catch (IOException closedAlready) {
            // as it should be
        }
        assertEquals(List.of("REGISTER"), registrar.methodsReceived(), "what reached the registrar on the phone's"
                + " connection: " + registrar.received());
        assertTrue(victim.connectionRemotes().contains(registrar.address()), "the registrar's connection stays with"
                + " the phone: " + victim.connectionRemotes());
    }

    /**
     * An answer whose connection closed before it was written: JAIN-SIP 1.3.0-91 reconnected to the connection's
     * source port, then to its request's Via host and port, found the phone's registrar connection under that address,
     * wrote the answer there and took that socket into the peer's channel. The Via here names the registrar over TCP
     * (the same transport: the valve lets it pass); the phone's 200 is held in its key lookup until the peer's
     * connection is gone.
     */
    @Test
    @Timeout(60)
    void anAnswerForAClosedConnection_isDropped_notWrittenOnTheRegistrarsConnection() throws Exception {
        TestHosts hosts = new TestHosts();
        CompletableFuture<Thread> keyAsked = new CompletableFuture<>();
        CountDownLatch release = new CountDownLatch(1);
        SipPhone.Keys holding = new SipPhone.Keys() {
            @Override
            public SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                if (!keyAsked.isDone() && callId.startsWith("held")) {
                    keyAsked.complete(Thread.currentThread());
                    try {
                        release.await(30, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                return SrtpKeyMaterial.of(new byte[16], new byte[14]);
            }

            @Override
            public void checkOffered(byte[] key, byte[] salt, String callId) {
                // every offer is new here
            }
        };
        SipPhone victim = victim(hosts.identity("victim"), hosts, TestHosts.freePort(), 0, holding,
                new ManualClock());
        RecordingRegistrar registrar = new RecordingRegistrar();
        closing.add(registrar);
        registered(victim, registrar);
        int r = registrar.address().getPort();

        RawSip attacker = RawSip.tcp(LOOPBACK, victim.config().tcpPort());
        closing.add(attacker);
        attacker.send(RawSip.invite("held-1", "sip:mallory@mallory", "TCP", "127.0.0.1:" + r));
        Thread answering = Await.event("the phone to ask for its key for the 200", WAIT, keyAsked,
                () -> "the attacker got " + attacker.responses());
        InetSocketAddress source = new InetSocketAddress(LOOPBACK, attacker.localPort());
        attacker.reset();
        Await.until("the phone to see the attacker's connection closed", WAIT, () -> victim.connectionRemotes(),
                open -> !open.contains(source));
        release.countDown();
        answering.join(WAIT.toMillis());
        assertFalse(answering.isAlive(), "the thread that answered the INVITE is done: " + answering.getState());

        assertEquals(List.of("REGISTER"), registrar.methodsReceived(), "what reached the registrar on the phone's"
                + " connection: " + registrar.received());
        assertTrue(victim.connectionRemotes().contains(registrar.address()), "the registrar's connection stays with"
                + " the phone: " + victim.connectionRemotes());
    }

    /**
     * The review's attack 2: a TLS peer whose Via says UDP (then a keep-alive, then a Via naming its own listeners over
     * TCP or TLS) made the TLS-only phone connect out, each TLS connection with a TPM signature and quote. Now the
     * first request ends the connection; and a keep-alive on a connection whose Via names another port is answered
     * on that connection.
     */
    @Test
    @Timeout(90)
    void aPeer_cannotMakeATlsOnlyPhoneConnectOut() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity victimId = hosts.identity("victim");
        SipPhone victim = victim(victimId, hosts, 0, 0, TestHosts.keys(), Clock.systemUTC());
        AttestedTlsConfig evil = AttestedTlsConfig.of(hosts.identity("evil"), hosts.verifier(), Clock.systemUTC());
        InetAddress a = InetAddress.getByName("127.0.0.2");
        Listeners listeners = new Listeners(a, evil);
        closing.add(listeners);
        int signaturesBefore = victimId.signatures.get();
        int quotesBefore = victimId.quotes.get();
        for (int i = 0; i < 4; i++) {
            boolean tls = i % 2 == 1;
            int port = tls ? listeners.tls.getLocalPort() : listeners.plain.getLocalPort();
            RawSip c = RawSip.tls(a, victim.config().tlsPort(), evil);
            closing.add(c);
            c.send(request("OPTIONS", "p" + i, "UDP", "127.0.0.2:" + port));
            String end = Await.event("the phone to close TLS connection " + i + " (its Via says UDP)", WAIT,
                    c.closedByPeer(), () -> "the evil listeners saw " + listeners);
            assertTrue(c.responses().isEmpty(), "round " + i + " (" + end + "): " + c.responses());
        }
        // The same transport, a Via naming the listeners: keep-alives are answered on the connection itself.
        RawSip same = RawSip.tls(a, victim.config().tlsPort(), evil);
        closing.add(same);
        same.send(request("OPTIONS", "same-1", "TLS", "127.0.0.2:" + listeners.tls.getLocalPort()));
        same.send("\r\n\r\n");
        same.send(request("OPTIONS", "same-2", "TLS", "127.0.0.2:" + listeners.plain.getLocalPort()));
        same.send("\r\n\r\n");
        same.send(RawSip.options("same-3", "TLS", same.via()));
        RawSip.Response last = Await.until("the answer to the last OPTIONS on the same connection", WAIT,
                () -> same.finals().get("same-3"), x -> x != null);
        assertEquals(200, last.status(), last.text());
        assertEquals(3, same.finals().size(), "every OPTIONS is answered on its connection: " + same.finals());

        assertEquals(0, listeners.plainAccepted.get() + listeners.tlsAccepted.get(), "connections the phone made to"
                + " the addresses in the Vias: " + listeners);
        // the phone signed (and quoted) once per connection it accepted, as a server: five
        assertEquals(5, victimId.signatures.get() - signaturesBefore, "TPM signatures for 5 accepted connections");
        assertTrue(victimId.quotes.get() - quotesBefore <= 5, "TPM quotes: " + (victimId.quotes.get()
                - quotesBefore));
        assertEquals(0, victim.held().tlsConnections(), "TLS connections the phone opened: " + victim.held());
    }

    /**
     * The review's attack 4: a datagram whose Via names TCP or TLS. Its answer goes back as a datagram to its source
     * (the Via is taken as UDP); the host and port in the Via get no connection.
     */
    @Test
    @Timeout(60)
    void aUdpRequestNamingTcpOrTls_isAnsweredByDatagram_andItsViaGetsNoConnection() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity victimId = hosts.identity("victim");
        SipPhone victim = victim(victimId, hosts, TestHosts.freePort(), TestHosts.freePort(), TestHosts.keys(),
                Clock.systemUTC());
        AttestedTlsConfig evil = AttestedTlsConfig.of(hosts.identity("evil"), hosts.verifier(), Clock.systemUTC());
        InetAddress a = InetAddress.getByName("127.0.0.2");
        Listeners listeners = new Listeners(a, evil);
        closing.add(listeners);
        int signaturesBefore = victimId.signatures.get();
        // A datagram socket on each listener's port number (UDP and TCP ports are apart): the Via names it, without
        // rport, so where the answer goes shows which transport the phone took.
        try (DatagramSocket toPlain = new DatagramSocket(new InetSocketAddress(a, listeners.plain.getLocalPort()));
             DatagramSocket toTls = new DatagramSocket(new InetSocketAddress(a, listeners.tls.getLocalPort()))) {
            for (int i = 0; i < 6; i++) {
                boolean tls = i % 2 == 1;
                DatagramSocket udp = tls ? toTls : toPlain;
                udp.setSoTimeout((int) WAIT.toMillis());
                String callId = "u" + i;
                byte[] m = request("OPTIONS", callId, tls ? "TLS" : "TCP", "127.0.0.2:" + udp.getLocalPort())
                        .getBytes(StandardCharsets.US_ASCII);
                udp.send(new DatagramPacket(m, m.length, new InetSocketAddress(LOOPBACK, victim.config().udpPort())));
                byte[] buf = new byte[65_536];
                DatagramPacket p = new DatagramPacket(buf, buf.length);
                try {
                    udp.receive(p);
                } catch (SocketTimeoutException e) {
                    throw new AssertionError("no datagram answer to an OPTIONS over UDP whose Via says "
                            + (tls ? "TLS" : "TCP") + " within " + WAIT.toSeconds() + " s; the listeners saw "
                            + listeners);
                }
                String answer = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
                assertTrue(answer.startsWith("SIP/2.0 200 ") && answer.contains("Call-ID: " + callId),
                        "the answer to " + callId + ": " + answer);
            }
        }
        assertEquals(0, listeners.plainAccepted.get() + listeners.tlsAccepted.get(), "connections the phone made to"
                + " the addresses in the Vias: " + listeners);
        assertEquals(signaturesBefore, victimId.signatures.get(), "TPM signatures by the phone");
    }

    /**
     * Issue 12's third review, finding 1: JAIN-SIP keeps a {@code received} the peer wrote when the Via's host is the
     * packet's source and there is no {@code rport}, and answers there (and in a transaction, to a {@code maddr}): a
     * datagram from 127.0.0.1 had the phone's 200 sent to 127.0.0.2. Now the Via is made to name the source, and the
     * listening socket sends only to destinations the phone chose or to sources it heard from lately.
     */
    @Test
    @Timeout(60)
    void aUdpRequestsReceivedOrMaddr_cannotAimTheAnswerAtAThirdParty() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone victim = victim(hosts.identity("victim"), hosts, TestHosts.freePort(), TestHosts.freePort(),
                TestHosts.keys(), Clock.systemUTC());
        InetAddress third = InetAddress.getByName("127.0.0.2");
        try (DatagramSocket attacker = new DatagramSocket(0, LOOPBACK);
             DatagramSocket victimOfIt = new DatagramSocket(new InetSocketAddress(third, 0))) {
            attacker.setSoTimeout((int) WAIT.toMillis());
            String[] params = {";received=127.0.0.2", ";maddr=127.0.0.2", ";received=127.0.0.2;maddr=127.0.0.2"};
            for (int i = 0; i < params.length; i++) {
                String callId = "aim-" + i;
                // the Via names the third party's port at the attacker's own address, as the review's repro
                String m = "OPTIONS sip:victim@127.0.0.1 SIP/2.0\r\n"
                        + "Via: SIP/2.0/UDP 127.0.0.1:" + victimOfIt.getLocalPort() + ";branch=z9hG4bKaim" + i
                        + params[i] + "\r\nMax-Forwards: 70\r\nTo: <sip:victim@127.0.0.1>\r\n"
                        + "From: <sip:probe@probe.test>;tag=p1\r\nCall-ID: " + callId + "\r\nCSeq: 1 OPTIONS\r\n"
                        + "Content-Length: 0\r\n\r\n";
                byte[] b = m.getBytes(StandardCharsets.US_ASCII);
                attacker.send(new DatagramPacket(b, b.length, new InetSocketAddress(LOOPBACK,
                        victim.config().udpPort())));
                byte[] buf = new byte[65_536];
                DatagramPacket p = new DatagramPacket(buf, buf.length);
                try {
                    attacker.receive(p);
                } catch (SocketTimeoutException e) {
                    victimOfIt.setSoTimeout(1_000);
                    String stray;
                    try {
                        victimOfIt.receive(p);
                        stray = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
                    } catch (SocketTimeoutException none) {
                        stray = "nothing";
                    }
                    throw new AssertionError("no answer at the source of " + callId + " (Via" + params[i] + ") within "
                            + WAIT.toSeconds() + " s; 127.0.0.2:" + victimOfIt.getLocalPort() + " got: " + stray);
                }
                String answer = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
                assertTrue(answer.startsWith("SIP/2.0 200 ") && answer.contains("Call-ID: " + callId),
                        "the answer to " + callId + " at its source: " + answer);
            }
            // the answers went to the source; had any gone to the third party it would be there by now (one send each)
            victimOfIt.setSoTimeout(500);
            byte[] buf = new byte[65_536];
            DatagramPacket p = new DatagramPacket(buf, buf.length);
            String stray = null;
            try {
                victimOfIt.receive(p);
                stray = new String(buf, 0, p.getLength(), StandardCharsets.ISO_8859_1);
            } catch (SocketTimeoutException none) {
                // as it should be
            }
            assertEquals(null, stray, "a datagram reached the third party named in received/maddr");
        }
    }

    /**
     * Issue 12's third review, finding 2: JAIN-SIP's dialog layer answers a CANCEL without an INVITE transaction, a
     * NOTIFY without a subscription and a PRACK without a dialog with a stateless 481 routed by the Via: over TCP it
     * keeps a peer-written {@code received} when the Via's host is the peer's IP, and puts the source port in
     * {@code rport}. A peer at 127.0.0.2 connecting from the registrar's port number, its Via saying
     * {@code received=127.0.0.1}, had the 481s written on the phone's connection to its registrar (127.0.0.1:port).
     */
    @Test
    @Timeout(60)
    void statelessAnswersOfTheDialogLayer_goOnTheirOwnConnection_notTheRegistrars() throws Exception {
        TestHosts hosts = new TestHosts();
        SipPhone victim = victim(hosts.identity("victim"), hosts, TestHosts.freePort(), 0, TestHosts.keys(),
                new ManualClock());
        RecordingRegistrar registrar = new RecordingRegistrar();
        closing.add(registrar);
        registered(victim, registrar);
        int r = registrar.address().getPort();
        int openBefore = victim.held().connectionsOpen();

        InetAddress a = InetAddress.getByName("127.0.0.2");
        RawSip attacker = RawSip.tcp(new InetSocketAddress(a, r), victim.config().tcpPort());
        closing.add(attacker);
        String via = "127.0.0.2:" + r + ";received=127.0.0.1";
        String[] methods = {"CANCEL", "NOTIFY", "PRACK"};
        for (String method : methods) {
            // no rport: JAIN-SIP then keeps the received the peer wrote (its Via host is the peer's IP)
            String m = RawSip.request(method, "stray-" + method, "TCP", via).replace(";rport", "");
            String extra = switch (method) {
                case "NOTIFY" -> "Event: presence\r\nSubscription-State: active\r\n";
                case "PRACK" -> "RAck: 1 1 INVITE\r\n";
                default -> "";
            };
            attacker.send(m.replace("Content-Length: 0\r\n", extra + "Content-Length: 0\r\n"));
        }
        attacker.send(RawSip.options("stray-last", "TCP", attacker.via()));
        Await.until("the answer to the last OPTIONS on the attacker's connection", WAIT,
                () -> attacker.finals().get("stray-last"), x -> x != null);
        assertEquals(List.of("REGISTER"), registrar.methodsReceived(), "what reached the registrar on the phone's"
                + " connection: " + registrar.received());
        assertEquals(openBefore + 1, victim.held().connectionsOpen(), "connections: the registrar's and the"
                + " attacker's, no new one: " + victim.connectionRemotes());
        for (String method : methods) {
            RawSip.Response got = attacker.finals().get("stray-" + method);
            assertTrue(got == null || got.status() == 481, "the answer to the stray " + method + " on its own"
                    + " connection: " + got);
        }
    }

    /** A plain and a TLS listener on an attacker's address, counting the connections they get. */
    private static final class Listeners implements AutoCloseable {
        final ServerSocket plain;
        final ServerSocket tls;
        final AtomicInteger plainAccepted = new AtomicInteger();
        final AtomicInteger tlsAccepted = new AtomicInteger();
        private final List<Socket> held = new CopyOnWriteArrayList<>();

        Listeners(InetAddress a, AttestedTlsConfig config) throws IOException {
            plain = new ServerSocket(0, 50, a);
            tls = new ServerSocket(0, 50, a);
            daemon(() -> accept(plain, plainAccepted, null));
            daemon(() -> accept(tls, tlsAccepted, config));
        }

        private void accept(ServerSocket server, AtomicInteger count, AttestedTlsConfig config) {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    count.incrementAndGet();
                    held.add(s);
                    if (config != null) {
                        daemon(() -> {
                            try {
                                AttestedSslSocket ss = new AttestedSslSocket(s, false, () -> new AttestedTlsServer(
                                        new JcaTlsCryptoProvider().create(new SecureRandom()), config));
                                ss.startHandshake();
                            } catch (IOException e) {
                                // counted already
                            }
                        });
                    }
                } catch (IOException e) {
                    return;
                }
            }
        }

        @Override
        public void close() throws IOException {
            plain.close();
            tls.close();
            for (Socket s : held) {
                s.close();
            }
        }

        @Override
        public String toString() {
            return plainAccepted + " plain and " + tlsAccepted + " TLS connections";
        }
    }

    private static void daemon(Runnable r) {
        Thread t = new Thread(r, "evil-listener");
        t.setDaemon(true);
        t.start();
    }

    /** A registrar over TCP that grants every REGISTER and records everything it gets on the phone's connection. */
    private static final class RecordingRegistrar implements AutoCloseable {
        private static final Pattern HEADER = Pattern.compile("(?mi)^(Via|From|To|Call-ID|CSeq|Contact) *:.*$");
        private static final Pattern FIRST = Pattern.compile("(?m)^(?:SIP/2\\.0 \\d{3}|[A-Z]+) ");
        private final ServerSocket server = new ServerSocket(0, 5, LOOPBACK);
        private final StringBuffer all = new StringBuffer();
        private final List<String> methods = new CopyOnWriteArrayList<>();
        private volatile Socket socket;

        RecordingRegistrar() throws IOException {
            Thread t = new Thread(this::serve, "recording-registrar");
            t.setDaemon(true);
            t.start();
        }

        InetSocketAddress address() {
            return new InetSocketAddress(LOOPBACK, server.getLocalPort());
        }

        String received() {
            return all.toString();
        }

        /** The first word of every message received (a method, or SIP/2.0 for a response), in order. */
        List<String> methodsReceived() {
            return List.copyOf(methods).stream().distinct().toList();
        }

        private void serve() {
            try (Socket s = server.accept()) {
                socket = s;
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                StringBuilder pending = new StringBuilder();
                byte[] buf = new byte[8192];
                for (int n = in.read(buf); n >= 0; n = in.read(buf)) {
                    String got = new String(buf, 0, n, StandardCharsets.ISO_8859_1);
                    all.append(got);
                    pending.append(got);
                    while (pending.length() > 0 && (pending.charAt(0) == '\r' || pending.charAt(0) == '\n')) {
                        pending.deleteCharAt(0);
                    }
                    for (int end = pending.indexOf("\r\n\r\n"); end >= 0; end = pending.indexOf("\r\n\r\n")) {
                        String message = pending.substring(0, end + 4);
                        pending.delete(0, end + 4);
                        Matcher first = FIRST.matcher(message);
                        methods.add(first.lookingAt() ? first.group().trim().split(" ")[0] : message.lines()
                                .findFirst().orElse(""));
                        if (message.startsWith("REGISTER ")) {
                            out.write(ok(message).getBytes(StandardCharsets.ISO_8859_1));
                            out.flush();
                        }
                    }
                }
            } catch (IOException e) {
                // the test closed it
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
            Socket s = socket;
            if (s != null) {
                s.close();
            }
        }
    }
}
