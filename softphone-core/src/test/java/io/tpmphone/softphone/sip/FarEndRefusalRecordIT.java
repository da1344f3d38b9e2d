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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 14 review: what a caller records when a DTLS-SRTP call it placed ends without an association and the far end
 * then refuses it in SIP. Only the call's DTLS thread records, once: a failure verified here (a fingerprint mismatch)
 * is recorded at once under its own code and no far end or proxy text replaces it; a caller whose own TPM will not
 * sign records that, and the callee's later 488 is not a second decision blaming the callee. The callee is the test:
 * real attested TLS for the SIP, a real DTLS handshake on real UDP, and the final answer it chooses.
 */
@Timeout(120)
class FarEndRefusalRecordIT {
    private static final Duration WAIT = Duration.ofSeconds(20);

    /** A far end that names another certificate, then claims (with terminal escapes) that its own TPM refused. */
    @Test
    void aFingerprintMismatch_isRecordedAtOnce_andTheFarEndsLaterWordsDoNotReplaceIt() throws Exception {
        TestHosts hosts = new TestHosts();
        TestHosts.CountingIdentity mallory = hosts.identity("mallory");
        Decisions decided = new Decisions(null);
        try (Callee callee = new Callee(hosts, hosts.identity("bob"));
             SipPhone alice = alice(hosts, hosts.identity("alice"), decided)) {
            CompletableFuture<Void> served = callee.serveOneCall(DtlsFingerprint.sha256(
                    mallory.certificateChain().get(0).getEncoded()).toSdp(), "500 Server Internal Error\r\n"
                    + "Warning: 399 bob \"this phone could not set up DTLS-SRTP: this host's TPM did not sign; far end"
                    + " level HARDENED \u001b[2J\u001b]0;pwned\u0007\"", () -> { });
            Call call = alice.call("sips:bob@bob", callee.address());
            await(served, callee, call);
            Await.until("alice to end the call", WAIT, call::state,
                    s -> s == Call.State.ENDED || s == Call.State.REFUSED);
            String seen = call + " " + call.farEnd().map(p -> p.display()).orElse("no far end") + "; decided "
                    + decided.all;
            assertEquals(1, decided.endToEnd().size(), () -> "one end-to-end decision: " + seen);
            CallPolicy.Decision d = decided.endToEnd().get(0);
            assertEquals(CallPolicy.Action.REJECT, d.action(), seen);
            assertEquals(io.tpmphone.attestation.IntegrityLevel.FAILED, d.peerLevel(), seen);
            assertTrue(d.reason().contains("FINGERPRINT_MISMATCH") && !d.reason().contains("TPM did not sign"),
                    () -> "the record names alice's own finding, not what the far end said after it: " + seen);
            assertTrue(call.farEnd().orElseThrow().display().contains("FINGERPRINT_MISMATCH"), seen);
            assertFalse(call.reason().contains("\u001b") || call.reason().contains("\u0007"),
                    () -> "peer text is escaped: " + seen);
        }
    }

    /**
     * Alice's TIK stops signing after her SIP TLS connection (a host tampered with meanwhile): she records her own
     * refusal; the genuine callee's 488 that follows while her record is being written (the broker's round trip,
     * held here until the 488 refused the call) is no second decision, and her user is told her TPM refused first.
     */
    @Test
    void aTamperedCaller_recordsItsOwnRefusalOnce_andTheCalleesLater488IsNoSecondDecision() throws Exception {
        TestHosts hosts = new TestHosts();
        java.util.concurrent.atomic.AtomicBoolean tampered = new java.util.concurrent.atomic.AtomicBoolean();
        TestHosts.CountingIdentity real = hosts.identity("alice");
        io.tpmphone.tls.HostIdentity aliceIdentity = new io.tpmphone.tls.HostIdentity() {
            @Override
            public java.util.List<java.security.cert.X509Certificate> certificateChain() throws java.io.IOException {
                return real.certificateChain();
            }

            @Override
            public byte[] sign(byte[] d) throws java.io.IOException {
                if (tampered.get()) {
                    throw new java.io.IOException("NOT_APPROVED the keystore has no fresh approval of this state");
                }
                return real.sign(d);
            }

            @Override
            public io.tpmphone.tls.Evidence evidence(byte[] binder) throws java.io.IOException {
                return real.evidence(binder);
            }
        };
        // the local decision's listener (the audit broker's round trip) returns only once the 488 refused the call
        Decisions decided = new Decisions(c -> Await.until("the callee's 488 to refuse the call", WAIT, c::state,
                s -> s == Call.State.REFUSED));
        try (Callee callee = new Callee(hosts, hosts.identity("bob"));
             SipPhone alice = alice(hosts, aliceIdentity, decided)) {
            CompletableFuture<Void> served = callee.serveOneCall(null, "488 Not Acceptable Here\r\nWarning: 399 bob"
                    + " \"DTLS-SRTP with the caller failed: HANDSHAKE_FAILED\"", () -> tampered.set(true));
            Call call = alice.call("sips:bob@bob", callee.address());
            await(served, callee, call);
            Await.until("alice to end the call", WAIT, call::state,
                    s -> s == Call.State.ENDED || s == Call.State.REFUSED);
            String seen = call + "; callee's handshake: " + callee.handshake + "; decided " + decided.all;
            assertEquals(1, decided.endToEnd().size(), () -> "one end-to-end decision: " + seen);
            CallPolicy.Decision d = decided.endToEnd().get(0);
            assertEquals(CallPolicy.Action.REJECT, d.action(), seen);
            assertEquals(io.tpmphone.attestation.IntegrityLevel.UNATTESTED, d.peerLevel(), seen);
            assertTrue(d.reason().startsWith("refused by this phone: LOCAL_SIGNATURE"), () -> "alice's own refusal: "
                    + seen);
            assertTrue(call.reason().startsWith("this phone could not set up DTLS-SRTP: LOCAL_SIGNATURE")
                    && call.reason().contains("488"), () -> "alice's user is told her TPM refused, then the 488: "
                    + seen);
        }
    }

    /**
     * The callee answers in a reliable 183 and then never takes part in DTLS; its (or a proxy's) 403 with a hostile
     * Warning ends the call while alice waits for the handshake: one end-to-end record, the far end not appraised
     * (UNATTESTED, not FAILED: a refusal in SIP is no evidence of a level), naming the refusal escaped.
     */
    @Test
    void aRefusalBeforeAnyAssociation_isRecordedOnce_asNotAppraised() throws Exception {
        TestHosts hosts = new TestHosts();
        Decisions decided = new Decisions(null);
        try (SilentCallee callee = new SilentCallee(hosts, hosts.identity("bob"), "403 Forbidden\r\nWarning: 399"
                + " bob \"far end level HARDENED \u001b[2J\u001b]0;pwned\u0007\"");
             SipPhone alice = alice(hosts, hosts.identity("alice"), decided)) {
            CompletableFuture<Void> served = callee.serveOneCall();
            Call call = alice.call("sips:bob@bob", callee.address());
            await(served, callee, call);
            Await.until("alice to end the call", WAIT, call::state,
                    s -> s == Call.State.ENDED || s == Call.State.REFUSED);
            Await.until("alice's end-to-end record", WAIT, () -> decided.endToEnd().size(), n -> n > 0);
            String seen = call + " " + call.farEnd().map(p -> p.display()).orElse("no far end") + "; decided "
                    + decided.all;
            assertEquals(1, decided.endToEnd().size(), () -> "one end-to-end decision: " + seen);
            CallPolicy.Decision d = decided.endToEnd().get(0);
            assertEquals(CallPolicy.Action.REJECT, d.action(), seen);
            assertEquals(io.tpmphone.attestation.IntegrityLevel.UNATTESTED, d.peerLevel(), seen);
            assertTrue(d.reason().contains("403") && !d.reason().contains("\u001b") && !d.reason().contains("\u0007")
                    && d.reason().contains("\\x1b"), () -> "the record names the refusal, escaped: " + seen);
        }
    }

    /** As above, but alice hangs up while she waits for the handshake: one record, that the call ended first. */
    @Test
    void aCallEndedBeforeAnyAssociation_isRecordedOnce_asEndedBeforeTheDecision() throws Exception {
        TestHosts hosts = new TestHosts();
        Decisions decided = new Decisions(null);
        try (SilentCallee callee = new SilentCallee(hosts, hosts.identity("bob"), null);
             SipPhone alice = alice(hosts, hosts.identity("alice"), decided)) {
            CompletableFuture<Void> served = callee.serveOneCall();
            Call call = alice.call("sips:bob@bob", callee.address());
            await(served, callee, call);
            alice.hangUp(call);
            Await.until("alice to end the call", WAIT, call::state,
                    s -> s == Call.State.ENDED || s == Call.State.REFUSED);
            Await.until("alice's end-to-end record", WAIT, () -> decided.endToEnd().size(), n -> n > 0);
            String seen = call + "; decided " + decided.all;
            assertEquals(1, decided.endToEnd().size(), () -> "one end-to-end decision: " + seen);
            CallPolicy.Decision d = decided.endToEnd().get(0);
            assertEquals(CallPolicy.Action.REJECT, d.action(), seen);
            assertEquals(io.tpmphone.attestation.IntegrityLevel.UNATTESTED, d.peerLevel(), seen);
            assertTrue(d.reason().startsWith("the call ended before this side decided on the far end"),
                    () -> "the record says the call ended first: " + seen);
        }
    }

    /** A callee that answers in a reliable 183, takes the PRACK and never starts DTLS; then {@code finalAnswer}. */
    private static final class SilentCallee extends ScriptedDtlsCallee {
        private final String finalAnswer;

        SilentCallee(TestHosts hosts, TestHosts.CountingIdentity identity, String finalAnswer) throws Exception {
            super(hosts, identity);
            this.finalAnswer = finalAnswer;
        }

        @Override
        void serve() throws Exception {
            Offered offered = offer(null);
            if (finalAnswer != null) {
                sip.send(response(offered.invite().text(), finalAnswer, "", null));
                awaitAck();
            }
        }
    }

    /** Alice's decisions; {@code onLocal} runs inside the listener for her own (local) refusal. */
    private static final class Decisions implements SipPhone.Listener {
        final java.util.List<CallPolicy.Decision> all = new java.util.concurrent.CopyOnWriteArrayList<>();
        private final java.util.function.Consumer<Call> onLocal;

        Decisions(java.util.function.Consumer<Call> onLocal) {
            this.onLocal = onLocal;
        }

        @Override
        public void decided(Call c, CallPolicy.Decision d) {
            all.add(d);
            if (onLocal != null && d.reason().startsWith("refused by this phone")) {
                onLocal.accept(c);
            }
        }

        java.util.List<CallPolicy.Decision> endToEnd() {
            return all.stream().filter(CallPolicy.Decision::endToEnd).toList();
        }
    }

    /** Waits for the callee's part, failing with what each side saw. */
    private static void await(CompletableFuture<Void> served, ScriptedDtlsCallee callee, Call call) throws Exception {
        try {
            served.get(40, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
            RawSip sip = callee.sip;
            throw new AssertionError("the callee's part did not finish (" + e + "); alice's call: " + call.display()
                    + " " + call.state() + " " + call.reason() + "; the callee got: " + (sip == null ? "no connection"
                    : sip.requests().stream().map(RawSip.Request::method).toList()), e);
        }
    }

    private static SipPhone alice(TestHosts hosts, io.tpmphone.tls.HostIdentity identity, SipPhone.Listener listener)
            throws Exception {
        AttestedTlsConfig tls = AttestedTlsConfig.of(identity, hosts.verifier(), Clock.systemUTC());
        return SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, TestHosts.freePort(), 0, 0,
                        Duration.ofSeconds(15), SipPhone.MediaMode.DTLS_SRTP),
                tls, CallPolicy.parse("default FAILED accept"), TestHosts.keys(), listener,
                callId -> AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1)), Clock.systemUTC());
    }

    /** A callee of one call: attested TLS for the SIP, a reliable 183, a DTLS handshake that fails, a final refusal. */
    private static final class Callee extends ScriptedDtlsCallee {
        private String fingerprint;
        private String finalAnswer;
        private Runnable afterPrack;
        /** How the callee's own DTLS handshake ended. */
        volatile io.tpmphone.tls.DtlsSrtpException handshake;

        Callee(TestHosts hosts, TestHosts.CountingIdentity identity) throws Exception {
            super(hosts, identity);
        }

        /**
         * Accepts alice's connection and INVITE, answers in a reliable 183 naming {@code fingerprint} (null: our own
         * certificate), takes the PRACK, runs {@code afterPrack}, then the DTLS handshake as DTLS client; once it
         * failed, answers the INVITE with {@code finalAnswer} (status line and headers) and waits for alice's ACK.
         */
        CompletableFuture<Void> serveOneCall(String fingerprint, String finalAnswer, Runnable afterPrack) {
            this.fingerprint = fingerprint;
            this.finalAnswer = finalAnswer;
            this.afterPrack = afterPrack;
            return serveOneCall();
        }

        @Override
        void serve() throws Exception {
            Offered offered = offer(fingerprint);
            afterPrack.run();
            try (DtlsSrtpAssociation a = new DtlsSrtpEndpoint().establish(transport(offered), true, offered.dtls())) {
                throw new AssertionError("the callee's DTLS handshake with alice came about: " + a);
            } catch (io.tpmphone.tls.DtlsSrtpException expected) {
                handshake = expected;
            }
            // at once: its SIP answer comes while alice could still be waiting for it
            sip.send(response(offered.invite().text(), finalAnswer, "", null));
            awaitAck();
        }
    }
}
