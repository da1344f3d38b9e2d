package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.media.DtlsDatagramTransport;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.AttestedTlsServer;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpConfig;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * A callee of one DTLS-SRTP call whose every step a test writes by hand: attested TLS for the SIP (a real
 * {@link AttestedTlsServer} with the callee's identity), the INVITE answered in a reliable 183 carrying an SDP answer
 * the test chooses, the PRACK taken; what follows — the DTLS handshake as DTLS client, the final answer — is the
 * test's {@link #serve}. It lets a test play a far end (or a proxy in front of it) that a real phone never is.
 */
abstract class ScriptedDtlsCallee implements AutoCloseable {
    static final Duration WAIT = Duration.ofSeconds(20);
    private static final Pattern FINGERPRINT = Pattern.compile("a=fingerprint:([^\r\n]+)");
    private static final Pattern PORT = Pattern.compile("(?m)^m=audio (\\d+) ");

    final TestHosts hosts;
    final TestHosts.CountingIdentity identity;
    final ServerSocket server = new ServerSocket(0, 5, LOOPBACK);
    final DatagramSocket media = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0));
    volatile RawSip sip;

    /** What the call stands on once the 183 is acknowledged: alice's INVITE, her DTLS address and both certificates. */
    record Offered(RawSip.Request invite, InetSocketAddress aliceMedia, String ourFingerprint, DtlsSrtpConfig dtls) {
    }

    ScriptedDtlsCallee(TestHosts hosts, TestHosts.CountingIdentity identity) throws Exception {
        this.hosts = hosts;
        this.identity = identity;
    }

    InetSocketAddress address() {
        return new InetSocketAddress(LOOPBACK, server.getLocalPort());
    }

    /** Runs {@link #serve} on a thread of its own; the future ends with it. */
    CompletableFuture<Void> serveOneCall() {
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                serve();
                done.complete(null);
            } catch (Throwable e) {
                done.completeExceptionally(e);
            }
        }, "test-callee");
        t.setDaemon(true);
        t.start();
        return done;
    }

    /** The callee's part of the call, from alice's connection on (usually {@link #offer} first). */
    abstract void serve() throws Exception;

    /**
     * Accepts alice's connection and INVITE, answers in a reliable 183 whose SDP names {@code fingerprint} (null: the
     * callee's own certificate) and takes the PRACK.
     */
    Offered offer(String fingerprint) throws Exception {
        AttestedTlsConfig tls = AttestedTlsConfig.of(identity, hosts.verifier(), Clock.systemUTC());
        Socket s = server.accept();
        AttestedSslSocket ss = new AttestedSslSocket(s, false, () -> new AttestedTlsServer(
                new JcaTlsCryptoProvider().create(new SecureRandom()), tls));
        ss.startHandshake();
        sip = RawSip.accepted(ss);
        RawSip.Request invite = Await.until("alice's INVITE", WAIT, () -> sip.requests().stream()
                .filter(r -> r.method().equals("INVITE")).findFirst().orElse(null), r -> r != null);
        Matcher theirFp = FINGERPRINT.matcher(invite.text());
        Matcher theirPort = PORT.matcher(invite.text());
        assertTrue(theirFp.find() && theirPort.find(), invite::text);
        String ours = DtlsFingerprint.sha256(identity.certificateChain().get(0).getEncoded()).toSdp();
        String answer = sdp(media.getLocalPort(), fingerprint == null ? ours : fingerprint);
        sip.send(response(invite.text(), "183 Session Progress", "Require: 100rel\r\nRSeq: 1\r\n", answer));
        RawSip.Request prack = Await.until("alice's PRACK", WAIT, () -> sip.requests().stream()
                .filter(r -> r.method().equals("PRACK")).findFirst().orElse(null), r -> r != null);
        sip.send(response(prack.text(), "200 OK", "", null));
        return new Offered(invite, new InetSocketAddress(LOOPBACK, Integer.parseInt(theirPort.group(1))), ours,
                DtlsSrtpConfig.of(tls, DtlsFingerprint.parse(theirFp.group(1).trim())));
    }

    /** The DTLS transport to alice's media address, on the callee's media socket. */
    DtlsDatagramTransport transport(Offered offered) {
        return new DtlsDatagramTransport(media, offered.aliceMedia());
    }

    /** Waits for alice's ACK of the final answer. */
    void awaitAck() {
        Await.until("alice's ACK", WAIT, () -> sip.requests().stream().anyMatch(r -> r.method().equals("ACK")),
                b -> b);
    }

    static String sdp(int port, String fingerprint) {
        return "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio " + port + " UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=fingerprint:" + fingerprint
                + "\r\na=setup:active\r\na=rtcp-mux\r\na=sendrecv\r\n";
    }

    /** A response to {@code request}: its Via, From, Call-ID and CSeq, its To with our tag, {@code extra} headers. */
    String response(String request, String status, String extra, String body) {
        String headers = request.lines().filter(l -> l.matches("(?i)^(Via|From|Call-ID|CSeq):.*"))
                .collect(Collectors.joining("\r\n"));
        Matcher to = Pattern.compile("(?mi)^To:([^\r\n]*)").matcher(request);
        assertTrue(to.find(), request);
        String toValue = to.group(1).contains(";tag=") ? to.group(1) : to.group(1) + ";tag=bob1";
        return "SIP/2.0 " + status + "\r\n" + headers + "\r\nTo:" + toValue + "\r\n"
                + "Contact: <sips:bob@127.0.0.1:" + server.getLocalPort() + ";transport=tls>\r\n" + extra
                + (body == null ? "Content-Length: 0\r\n\r\n" : "Content-Type: application/sdp\r\nContent-Length: "
                + body.length() + "\r\n\r\n" + body);
    }

    @Override
    public void close() throws Exception {
        RawSip s = sip;
        if (s != null) {
            s.close();
        }
        server.close();
        media.close();
    }
}
