package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tls.DtlsFingerprint;
import io.tpmphone.tls.DtlsSrtpAssociation;
import io.tpmphone.tls.DtlsSrtpEndpoint;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
    private static final class Callee extends ScriptedDtlsCallee {
        private String fingerprint;
        private Integer portShift;
        private java.util.function.BooleanSupplier holdUntil;
        /** With {@code reInviteFingerprint}: once the call stands, a re-INVITE (hold) naming that certificate. */
        volatile String reInviteFingerprint;
        volatile RawSip.Response reInviteAnswer;

        Callee(TestHosts hosts, TestHosts.CountingIdentity identity) throws Exception {
            super(hosts, identity);
        }

        /**
         * Accepts alice's connection and INVITE, answers in a reliable 183 with our real fingerprint, takes the PRACK,
         * runs the DTLS handshake and the evidence exchange as DTLS client, then answers 200 with the same SDP —
         * or with {@code fingerprint} in place of ours, or with the port plus {@code portShift} — and keeps the
         * association until {@code holdUntil} says the caller is done with the call.
         */
        CompletableFuture<Void> serveOneCall(String fingerprint, Integer portShift,
                                             java.util.function.BooleanSupplier holdUntil) {
            this.fingerprint = fingerprint;
            this.portShift = portShift;
            this.holdUntil = holdUntil;
            return serveOneCall();
        }

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

        @Override
        void serve() throws Exception {
            Offered offered = offer(null);
            try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(transport(offered), true, offered.dtls())) {
                // the association and both evidence exchanges are done: now the 2xx, same SDP or a swapped one
                String finalAnswer = sdp(media.getLocalPort() + (portShift == null ? 0 : portShift),
                        fingerprint == null ? offered.ourFingerprint() : fingerprint);
                sip.send(response(offered.invite().text(), "200 OK", "", finalAnswer));
                awaitAck();
                if (reInviteFingerprint != null) {
                    reInvite(offered.invite().text(), sdp(media.getLocalPort(), reInviteFingerprint));
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
    }
}
