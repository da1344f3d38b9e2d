package io.tpmphone.benchmarks;

import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.SipPhone;
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

/**
 * Call set-up time, INVITE → 200 OK → ACK, between the rig's two measured softphones on loopback, each call on a new
 * TLS 1.3 connection: attested (attestation_request, both quotes over the binder via the broker, TIK-signed
 * CertificateVerify on both sides, passport verification) against the same TLS 1.3 without attestation (TIK-signed
 * CertificateVerify still; no quotes, no passports), in alternating rounds in one run. Returns figures; prints nothing.
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
