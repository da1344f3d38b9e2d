package io.tpmphone.benchmarks;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.rig.Kamailio;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.softphone.sip.AuditedDecisions;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.Registration;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.FreePorts;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Call set-up time, INVITE → 200 OK → ACK, between the rig's two measured softphones on loopback, each call on a new
 * TLS 1.3 connection: attested (attestation_request, both quotes over the binder via the broker, TIK-signed
 * CertificateVerify on both sides, passport verification) against the same TLS 1.3 without attestation (TIK-signed
 * CertificateVerify still; no quotes, no passports), in alternating rounds in one run; and {@link #viaProxy}: the same
 * two hosts through a SIP proxy, DTLS-SRTP with and without the evidence end to end. Returns figures; prints nothing.
 */
public final class CallSetupBenchmark {
    /** Latency of one kind of call set-up over all rounds, in milliseconds. */
    public record Figure(String kind, int calls, double p50Millis, double p95Millis, double minMillis,
                         double maxMillis) {
    }

    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    private CallSetupBenchmark() {
    }

    public static List<Figure> run(Path directory, int rounds, int callsPerRound, int warmup) throws Exception {
        try (TwoHostRig rig = TwoHostRig.start(directory)) {
            Clock clock = Clock.systemUTC();
            CallPolicy policy = CallPolicy.parse("default MEASURED reject");
            CallPolicy anyone = CallPolicy.parse("default FAILED accept");
            AttestedTlsConfig bobTls = AttestedTlsConfig.of(rig.bob().identity(), rig.verifier(), clock);
            AttestedTlsConfig aliceTls = AttestedTlsConfig.of(rig.alice().identity(), rig.verifier(), clock);
            List<Long> attested = new ArrayList<>();
            List<Long> plain = new ArrayList<>();
            try (SipPhone bob = SipPhone.start(config("bob", freePort()), bobTls, policy, rig.bob().keys(),
                    new SipPhone.Listener() { }, clock);
                 SipPhone bobPlain = SipPhone.start(config("bob", freePort()), bobTls.withoutAttestation(), anyone,
                         rig.bob().keys(), new SipPhone.Listener() { }, clock)) {
                for (int i = 0; i < warmup; i++) {
                    once(aliceTls, policy, rig, bob);
                    once(aliceTls.withoutAttestation(), anyone, rig, bobPlain);
                }
                for (int r = 0; r < rounds; r++) {
                    for (int i = 0; i < callsPerRound; i++) {
                        attested.add(once(aliceTls, policy, rig, bob));
                    }
                    for (int i = 0; i < callsPerRound; i++) {
                        plain.add(once(aliceTls.withoutAttestation(), anyone, rig, bobPlain));
                    }
                }
            }
            return List.of(figure("attested TLS 1.3", attested), figure("plain TLS 1.3", plain));
        }
    }

    /** The SIP domain of the benchmark's proxy. */
    static final String PROXY_DOMAIN = "bench.test";

    /**
     * Call set-up through a real kamailio (TLS, SHA-256 digest), INVITE → 183 (reliable, with the answer) → PRACK →
     * 200 → ACK, DTLS-SRTP on the media path with each side's DTLS handshake signed by its TIK through its agent's
     * broker: with the evidence end to end (both quotes over the association's binder, both appraisals, the far end
     * MEASURED) against the same path without the evidence exchange, in alternating rounds in one run. The baseline
     * phones are the same phones configured with {@link AttestedTlsConfig#withoutAttestation()}: they announce no
     * attestation in their DTLS hellos, so neither side quotes or appraises and each sees the other
     * {@code UNATTESTED} end to end, which their policy accepts. That configuration already exists for ordinary peers;
     * the measured softphone never runs with it (it builds its configuration with attestation), so the baseline needs
     * no new switch in the product. Both kinds are registered phones in this JVM that keep their TLS connection to the
     * proxy (as deployed phones do), record every decision through their agent's broker for the audit log, as the
     * measured softphone does, and open audio for each call. A call counts from placing it until it is established (the
     * ACK sent); each callee's side of the call has ended before the next call starts.
     */
    public static List<Figure> viaProxy(Path directory, int rounds, int callsPerRound, int warmup) throws Exception {
        Map<String, String> passwords = new java.util.LinkedHashMap<>();
        for (String u : List.of("alice", "bob", "alice-plain", "bob-plain")) {
            byte[] b = new byte[12];
            new java.security.SecureRandom().nextBytes(b);
            passwords.put(u, java.util.HexFormat.of().formatHex(b));
        }
        try (TwoHostRig rig = TwoHostRig.start(directory.resolve("hosts"));
             Kamailio proxy = Kamailio.start(directory.resolve("kamailio"), PROXY_DOMAIN, "SHA-256", passwords)) {
            Clock clock = Clock.systemUTC();
            CallPolicy measuredEndToEnd = CallPolicy.parse("default MEASURED reject\nany sip:*@" + PROXY_DOMAIN
                    + " UNATTESTED reject end-to-end MEASURED\n");
            CallPolicy unattestedEndToEnd = CallPolicy.parse("default MEASURED reject\nany sip:*@" + PROXY_DOMAIN
                    + " UNATTESTED reject end-to-end UNATTESTED\n");
            AttestedTlsConfig aliceTls = AttestedTlsConfig.of(rig.alice().identity(), rig.verifier(), clock);
            AttestedTlsConfig bobTls = AttestedTlsConfig.of(rig.bob().identity(), rig.verifier(), clock);
            List<Long> evidence = new ArrayList<>();
            List<Long> none = new ArrayList<>();
            try (SipPhone alice = proxyPhone(rig.alice(), "alice", aliceTls, measuredEndToEnd, 1000);
                 SipPhone bob = proxyPhone(rig.bob(), "bob", bobTls, measuredEndToEnd, 440);
                 SipPhone alicePlain = proxyPhone(rig.alice(), "alice-plain", aliceTls.withoutAttestation(),
                         unattestedEndToEnd, 1000);
                 SipPhone bobPlain = proxyPhone(rig.bob(), "bob-plain", bobTls.withoutAttestation(),
                         unattestedEndToEnd, 440)) {
                Registration ra = register(alice, proxy, "alice", passwords);
                register(bob, proxy, "bob", passwords);
                Registration rp = register(alicePlain, proxy, "alice-plain", passwords);
                register(bobPlain, proxy, "bob-plain", passwords);
                for (int i = 0; i < warmup; i++) {
                    throughProxy(alice, ra, bob, "bob", IntegrityLevel.MEASURED, proxy);
                    throughProxy(alicePlain, rp, bobPlain, "bob-plain", IntegrityLevel.UNATTESTED, proxy);
                }
                for (int r = 0; r < rounds; r++) {
                    for (int i = 0; i < callsPerRound; i++) {
                        evidence.add(throughProxy(alice, ra, bob, "bob", IntegrityLevel.MEASURED, proxy));
                    }
                    for (int i = 0; i < callsPerRound; i++) {
                        none.add(throughProxy(alicePlain, rp, bobPlain, "bob-plain", IntegrityLevel.UNATTESTED,
                                proxy));
                    }
                }
            }
            return List.of(figure("evidence end to end", evidence), figure("no evidence", none));
        }
    }

    private static SipPhone proxyPhone(TwoHostRig.Host host, String user, AttestedTlsConfig tls, CallPolicy policy,
                                       double toneHz) throws Exception {
        short[] tone = Wav.tone(toneHz, 0.5, 1);
        return SipPhone.start(new SipPhone.Config(user, host.name(), LOOPBACK, FreePorts.tcp(), 0, 0,
                        Duration.ofSeconds(15)), tls, policy, host.keys(),
                new AuditedDecisions(host.broker(), new SipPhone.Listener() { }),
                callId -> AudioSession.open(LOOPBACK, tone), Clock.systemUTC());
    }

    private static Registration register(SipPhone phone, Kamailio proxy, String user, Map<String, String> passwords)
            throws Exception {
        char[] password = passwords.get(user).toCharArray();
        Registration r = phone.register(new Registration.Account("sip:" + user + "@" + PROXY_DOMAIN, proxy.tls(),
                "tls", user, password::clone, Duration.ofMinutes(10))).firstOutcome().get(15, TimeUnit.SECONDS);
        if (r.state() != Registration.State.REGISTERED) {
            throw new IllegalStateException(user + " could not register at kamailio: " + r.reason() + "\n"
                    + proxy.logTail(40));
        }
        return r;
    }

    /**
     * One call from {@code caller} to {@code callee} through the proxy until it is established; checks it is a
     * DTLS-SRTP call whose far end is {@code expected} end to end, hangs up and waits for the callee's side to end.
     * Returns its set-up time in ns.
     */
    private static long throughProxy(SipPhone caller, Registration via, SipPhone callee, String calleeUser,
                                     IntegrityLevel expected, Kamailio proxy) throws Exception {
        long start = System.nanoTime();
        Call call = caller.await(caller.call("sip:" + calleeUser + "@" + PROXY_DOMAIN, via));
        long took = System.nanoTime() - start;
        if (call.state() != Call.State.ESTABLISHED || !call.endToEnd()
                || call.farEnd().map(f -> f.level() != expected).orElse(true)) {
            throw new IllegalStateException("a benchmark call through the proxy is not an established DTLS-SRTP call"
                    + " with the far end " + expected + " end to end: " + call.state() + " " + call.reason() + " "
                    + call.display() + "\n" + proxy.logTail(40));
        }
        caller.hangUp(call);
        Call atCallee = callee.callById(call.callId()).orElseThrow(() -> new IllegalStateException("the callee has"
                + " no call " + call.callId()));
        Await.until("the callee's side of the call to end", Duration.ofSeconds(10), atCallee::state,
                st -> st == Call.State.ENDED || st == Call.State.REFUSED);
        return took;
    }

    /** One call from a fresh caller (so a new TLS connection) until it is established; its set-up time in ns. */
    private static long once(AttestedTlsConfig tls, CallPolicy policy, TwoHostRig rig, SipPhone callee)
            throws Exception {
        try (SipPhone alice = SipPhone.start(config("alice", freePort()), tls, policy, rig.alice().keys(),
                new SipPhone.Listener() { }, Clock.systemUTC())) {
            long start = System.nanoTime();
            Call call = alice.await(alice.call("sips:bob@bob", new InetSocketAddress(LOOPBACK,
                    callee.config().tlsPort())));
            long took = System.nanoTime() - start;
            if (call.state() != Call.State.ESTABLISHED) {
                throw new IllegalStateException("a benchmark call failed: " + call.reason());
            }
            alice.hangUp(call);
            return took;
        }
    }

    private static SipPhone.Config config(String name, int tlsPort) {
        return new SipPhone.Config(name, name, LOOPBACK, tlsPort, 0, 0, Duration.ofSeconds(15));
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, LOOPBACK)) {
            return s.getLocalPort();
        }
    }

    private static Figure figure(String kind, List<Long> nanos) {
        long[] all = nanos.stream().mapToLong(Long::longValue).sorted().toArray();
        int n = all.length;
        return new Figure(kind, n, all[(n - 1) / 2] / 1e6, all[(int) Math.ceil(n * 0.95) - 1] / 1e6, all[0] / 1e6,
                all[n - 1] / 1e6);
    }
}
