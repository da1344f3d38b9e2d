package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.DtlsDatagramTransport;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedSslSocket;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.AttestedTlsServer;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpConfig;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * RFC 3262 §5 / RFC 3264: once the far end answered in a reliable 183 — and the DTLS association with its evidence
 * followed that answer — the 2xx carries the same SDP or none. A 2xx whose SDP names another certificate, setup role
 * or port (a proxy or an attacker swapping the media identity after the evidence passed) must end the call with a
 * reason and start no SRTP. The callee here is the test: real attested TLS for the SIP, a real DTLS-SRTP association
 * with evidence on real UDP, and then the 2xx it chooses.
 */
@Timeout(120)
class FinalAnswerSwapIT {
    private static final Duration WAIT = Duration.ofSeconds(20);

    @Test
    void a2xxThatSwapsTheFingerprintAfterThe183_endsTheCall_withoutSrtp() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity bob = hosts.identity("bob");
        TestHosts.CountingIdentity mallory = hosts.identity("mallory");
        try (Callee callee = new Callee(hosts, bob);
             SipPhone alice = alice(hosts)) {
            // the callee serves first: alice's INVITE waits for its TLS handshake
            AtomicReference<Call> placed = new AtomicReference<>();
            CompletableFuture<Void> served = callee.serveOneCall(DtlsFingerprint.sha256(
                    mallory.certificateChain().get(0).getEncoded()).toSdp(), null, () -> placed.get() != null
                    && placed.get().state() == Call.State.ENDED);
            Call call = alice.call("sips:bob@bob", callee.address());
            placed.set(call);
            await(served, callee, call);
            Await.until("alice to end the call", WAIT, call::state, s -> s == Call.State.ENDED);
            assertTrue(call.reason().contains("not the answer of the reliable 183")
                    && call.reason().contains("a=fingerprint"), () -> "alice says why: " + call.reason());
            Await.until("alice's BYE", WAIT, () -> callee.sip.requests().stream()
                    .anyMatch(r -> r.method().equals("BYE")), b -> b);
            DtlsMedia media = call.dtls().orElseThrow();
            assertFalse(media.started().get(10, TimeUnit.SECONDS), "no SRTP started: " + call.display());
        }
    }

    @Test
    void aChangedPort_endsTheCall_theSameSdpIsTheCall_andAReInviteNamingAnotherCertificateGets488() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity bob = hosts.identity("bob");
        try (Callee callee = new Callee(hosts, bob);
             SipPhone alice = alice(hosts)) {
            AtomicReference<Call> placed = new AtomicReference<>();
            CompletableFuture<Void> served = callee.serveOneCall(null, 1, () -> placed.get() != null
                    && placed.get().state() == Call.State.ENDED);
            Call swapped = alice.call("sips:bob@bob", callee.address());
            placed.set(swapped);
            await(served, callee, swapped);
            Await.until("alice to end the call", WAIT, swapped::state, s -> s == Call.State.ENDED);
            assertTrue(swapped.reason().contains("port"), () -> "alice names the port: " + swapped.reason());
        }
        try (Callee callee = new Callee(hosts, bob);
             SipPhone alice = alice(hosts)) {
            AtomicReference<Call> placed = new AtomicReference<>();
            CompletableFuture<Void> served = callee.serveOneCall(null, null, () -> placed.get() != null
                    && placed.get().state() != Call.State.SETTING_UP && placed.get().state() != Call.State.RINGING
                    && placed.get().dtls().orElseThrow().started().isDone());
            callee.reInviteFingerprint = DtlsFingerprint.sha256(hosts.identity("mallory").certificateChain().get(0)
                    .getEncoded()).toSdp();
            Call same = alice.call("sips:bob@bob", callee.address());
            placed.set(same);
            await(served, callee, same);
            // a re-INVITE that names another certificate would need a new association and new evidence: refused,
            // and the call goes on as it was
            RawSip.Response refused = callee.reInviteAnswer;
            assertEquals(488, refused.status(), refused::text);
            assertTrue(refused.text().contains("DTLS-SRTP association") && refused.text().contains("a=fingerprint"),
                    refused::text);
            assertEquals(Call.State.ESTABLISHED, same.state(), same::reason);
            assertEquals(Call.State.ESTABLISHED, same.state(), () -> "the same SDP in the 200 is fine: "
                    + same.reason());
            assertTrue(same.dtls().orElseThrow().started().get(10, TimeUnit.SECONDS), same::display);
        }
    }

    /** Waits for the callee's part, failing with what each side saw. */
    private static void await(CompletableFuture<Void> served, Callee callee, Call call) throws Exception {
        try {
            served.get(40, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
            RawSip sip = callee.sip;
            throw new AssertionError("the callee's part did not finish (" + e + "); alice's call: " + call.display()
                    + " " + call.state() + " " + call.reason() + "; the callee got: " + (sip == null ? "no connection"
                    : sip.requests().stream().map(RawSip.Request::method).toList()), e);
        }
    }

    private static SipPhone alice(TestHosts hosts) throws Exception {
        AttestedTlsConfig tls = AttestedTlsConfig.of(hosts.identity("alice"), hosts.verifier(), Clock.systemUTC());
        return SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, TestHosts.freePort(), 0, 0,
                        Duration.ofSeconds(15), SipPhone.MediaMode.DTLS_SRTP),
                tls, CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), Clock.systemUTC());
    }

    /** A callee of one call: attested TLS for the SIP, a DTLS-SRTP association with evidence, then its 2xx. */
    private static final class Callee implements AutoCloseable {
        private static final Pattern FINGERPRINT = Pattern.compile("a=fingerprint:([^\r\n]+)");
        private static final Pattern PORT = Pattern.compile("(?m)^m=audio (\\d+) ");
        private final TestHosts hosts;
        private final TestHosts.CountingIdentity identity;
        private final ServerSocket server = new ServerSocket(0, 5, LOOPBACK);
        private final DatagramSocket media = new DatagramSocket(new InetSocketAddress(LOOPBACK, 0));
        volatile RawSip sip;

        Callee(TestHosts hosts, TestHosts.CountingIdentity identity) throws Exception {
            this.hosts = hosts;
            this.identity = identity;
        }

        InetSocketAddress address() {
            return new InetSocketAddress(LOOPBACK, server.getLocalPort());
        }

        /**
         * Accepts alice's connection and INVITE, answers in a reliable 183 with our real fingerprint, takes the PRACK,
         * runs the DTLS handshake and the evidence exchange as DTLS client, then answers 200 with the same SDP —
         * or with {@code fingerprint} in place of ours, or with the port plus {@code portShift} — and keeps the
         * association until {@code holdUntil} says the caller is done with the call.
         */
        CompletableFuture<Void> serveOneCall(String fingerprint, Integer portShift,
                                             java.util.function.BooleanSupplier holdUntil) {
            CompletableFuture<Void> done = new CompletableFuture<>();
            Thread t = new Thread(() -> {
                try {
                    serve(fingerprint, portShift, holdUntil);
                    done.complete(null);
                } catch (Throwable e) {
                    done.completeExceptionally(e);
                }
            }, "test-callee");
            t.setDaemon(true);
            t.start();
            return done;
        }

        /** With {@code reInviteFingerprint}: once the call stands, a re-INVITE (hold) naming that certificate. */
        volatile String reInviteFingerprint;
        volatile RawSip.Response reInviteAnswer;

        private void reInvite(String invite, String body) throws Exception {
            Matcher contact = Pattern.compile("(?mi)^Contact: *<([^>]+)>").matcher(invite);
            Matcher from = Pattern.compile("(?mi)^From:([^\r\n]*)").matcher(invite);
            Matcher to = Pattern.compile("(?mi)^To:([^\r\n]*)").matcher(invite);
            Matcher callId = Pattern.compile("(?mi)^Call-ID: *([^\r\n]+)").matcher(invite);
            assertTrue(contact.find() && from.find() && to.find() && callId.find(), invite);
            sip.send("INVITE " + contact.group(1) + " SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:" + server.getLocalPort()
                    + ";branch=z9hG4bKreinvite1\r\nMax-Forwards: 70\r\nFrom:" + to.group(1) + ";tag=bob1\r\nTo:"
                    + from.group(1) + "\r\nCall-ID: " + callId.group(1).trim() + "\r\nCSeq: 1 INVITE\r\n"
                    + "Contact: <sips:bob@127.0.0.1:" + server.getLocalPort() + ";transport=tls>\r\n"
                    + "Content-Type: application/sdp\r\nContent-Length: " + body.length() + "\r\n\r\n"
                    + body.replace("a=sendrecv", "a=sendonly"));
            reInviteAnswer = Await.until("alice's answer to the re-INVITE", WAIT, () -> sip.finals()
                    .get(callId.group(1).trim()), r -> r != null);
        }

        private void serve(String fingerprint, Integer portShift, java.util.function.BooleanSupplier holdUntil)
                throws Exception {
            Clock clock = Clock.systemUTC();
            AttestedTlsConfig tls = AttestedTlsConfig.of(identity, hosts.verifier(), clock);
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
            String answer = sdp(media.getLocalPort(), ours);
            sip.send(response(invite.text(), "183 Session Progress", "Require: 100rel\r\nRSeq: 1\r\n", answer));
            RawSip.Request prack = Await.until("alice's PRACK", WAIT, () -> sip.requests().stream()
                    .filter(r -> r.method().equals("PRACK")).findFirst().orElse(null), r -> r != null);
            sip.send(response(prack.text(), "200 OK", "", null));
            DtlsSrtpConfig dtls = DtlsSrtpConfig.of(tls, DtlsFingerprint.parse(theirFp.group(1).trim()));
            try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(new DtlsDatagramTransport(media,
                    new InetSocketAddress(LOOPBACK, Integer.parseInt(theirPort.group(1)))), true, dtls)) {
                // the association and both evidence exchanges are done: now the 2xx, same SDP or a swapped one
                String finalAnswer = sdp(media.getLocalPort() + (portShift == null ? 0 : portShift),
                        fingerprint == null ? ours : fingerprint);
                sip.send(response(invite.text(), "200 OK", "", finalAnswer));
                Await.until("alice's ACK", WAIT, () -> sip.requests().stream()
                        .anyMatch(r -> r.method().equals("ACK")), b -> b);
                if (reInviteFingerprint != null) {
                    reInvite(invite.text(), sdp(media.getLocalPort(), reInviteFingerprint));
                }
                // the association stays up (close_notify answered) while alice decides what to do with the 2xx
                Await.until("alice to be done with the call", WAIT, () -> {
                    try {
                        a.serviceIncoming(50);
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                    return holdUntil.getAsBoolean();
                }, b -> b);
            }
        }

        private static String sdp(int port, String fingerprint) {
            return "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    + "m=audio " + port + " UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=fingerprint:" + fingerprint
                    + "\r\na=setup:active\r\na=rtcp-mux\r\na=sendrecv\r\n";
        }

        private String response(String request, String status, String extra, String body) {
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
}
