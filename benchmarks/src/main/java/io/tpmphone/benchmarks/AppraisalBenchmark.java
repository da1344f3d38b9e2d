package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.agent.HostAttestation;
import io.tpmphone.attestation.Appraisal;
import io.tpmphone.attestation.AppraisalContext;
import io.tpmphone.attestation.Appraiser;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.VerifiedQuote;
import io.tpmphone.server.InProcessVerifier;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tpm.TpmQuote;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.Control;

/**
 * Appraisals per second in-process, with evidence from real swtpm processes (see benchmarks/README.md).
 *
 * <ul>
 *   <li>{@code core} / {@code coreSigned}: the verification core over pre-generated quotes — parse the enrolled AK,
 *       {@link QuoteVerifier#verify} (ECDSA P-256 signature, structure, nonce, PCR digest), parse and replay the event
 *       log and {@link Appraiser#appraise} it against the policy; {@code coreSigned} adds the ES256 result JWS. No
 *       nonce is consumed, so a small pool of quotes is reused.</li>
 *   <li>{@code pipeline} / {@code pipeline2Threads}: {@code Appraisals.appraise(body)}, i.e. everything
 *       {@code POST /v1/appraisals} does after Jetty: JSON parsing, nonce consumption, quote verification, TPM clock
 *       monotonicity, log appraisal, result JWS and the durable (fsynced, group-committed) hash-chained audit append.
 *       Each call needs a fresh server nonce and a TPM quote over it, and the server keeps one outstanding nonce
 *       per AK; so each thread has hosts of its own (own swtpm and AK; a host's quotes must also reach the server in
 *       TPM clock order) and before every (short) iteration makes one appraisal's evidence per host, untimed. The
 *       evidence serves the measured calls: see {@link #pipelineOnce} for the calls JMH makes around them. Running dry
 *       within a measured iteration fails the run.</li>
 * </ul>
 * Every appraisal must come out {@code MEASURED}, or the benchmark throws: a refusal is cheaper and would flatter the
 * figure.
 */
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class AppraisalBenchmark {
    private static final ObjectMapper JSON = new ObjectMapper();

    // ---- the verification core ------------------------------------------------------------------------------------

    /** A few quotes of one host, each over a random nonce. Read-only after set-up. */
    @State(Scope.Benchmark)
    public static class Quotes {
        private static final int COUNT = 16;
        private Path directory;
        AttestationPolicy policy;
        byte[] akPublic;
        String akId;
        byte[][] nonces;
        byte[][] pcrDigests;
        TpmQuote[] quotes;
        byte[] logBytes;
        MeasurementLog acceptedLog;
        /** Signs as the server does (ES256 with its result key); no appraisal runs through it here. */
        InProcessVerifier signer;
        final AtomicInteger cursor = new AtomicInteger();

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            directory = Files.createTempDirectory("tpmphone-bench-core-");
            var spec = Release.spec(directory);
            policy = AttestationPolicy.parse(Release.policy(spec));
            try (MeasuredHost host = MeasuredHost.start("core-host", directory, spec)) {
                signer = InProcessVerifier.open(directory.resolve("server"), host.ekCaChain(), Release.policy(spec));
                akPublic = host.akPublic().encoded();
                akId = HexFormat.of().formatHex(host.akPublic().name());
                logBytes = host.log().encode();
                acceptedLog = host.log();
                nonces = new byte[COUNT][];
                pcrDigests = new byte[COUNT][];
                quotes = new TpmQuote[COUNT];
                SecureRandom random = new SecureRandom();
                for (int i = 0; i < COUNT; i++) {
                    nonces[i] = new byte[32];
                    random.nextBytes(nonces[i]);
                    quotes[i] = host.quote(policy.requiredPcrSelection(), nonces[i]);
                    pcrDigests[i] = TpmsAttest.parse(quotes[i].attest()).quoteInfo().orElseThrow().pcrDigest();
                }
            }
            for (int i = 0; i < COUNT; i++) {
                appraise(this, i); // throws unless MEASURED
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            try {
                if (signer != null) {
                    signer.close();
                }
            } finally {
                SwtpmProcess.deleteDirectory(directory);
            }
        }

        int next() {
            return cursor.getAndIncrement() & (COUNT - 1);
        }
    }

    private static Appraisal appraise(Quotes q, int i) throws Exception {
        TpmtPublic ak = TpmtPublic.parse(q.akPublic);
        PcrValues pcrs = q.quotes[i].pcrValues();
        VerifiedQuote verified = QuoteVerifier.verify(q.quotes[i].attest(), q.quotes[i].signature(), ak, q.nonces[i],
                pcrs);
        MeasurementLog log = MeasurementLog.parse(q.logBytes);
        // As the server does once a host has been appraised before: the log may only grow within a boot.
        Appraisal a = Appraiser.appraise(q.policy, log, verified.pcrValues(),
                AppraisalContext.builder().quoteVerified(true).previouslyAcceptedLog(q.acceptedLog).build());
        if (a.level() != IntegrityLevel.MEASURED) {
            throw new IllegalStateException("expected MEASURED, got " + a.level() + ": " + a.reasons());
        }
        return a;
    }

    @Benchmark
    public Appraisal core(Quotes q) throws Exception {
        return appraise(q, q.next());
    }

    /** {@link #core} on both cores of the machine. */
    @Benchmark
    @Threads(2)
    public Appraisal core2Threads(Quotes q) throws Exception {
        return appraise(q, q.next());
    }

    /** {@link #coreSigned} on both cores of the machine. */
    @Benchmark
    @Threads(2)
    public String coreSigned2Threads(Quotes q) throws Exception {
        return coreSigned(q);
    }

    @Benchmark
    public String coreSigned(Quotes q) throws Exception {
        int i = q.next();
        Appraisal a = appraise(q, i);
        // The server's result (Appraisals.appraise), in its one encoding, signed ES256.
        Instant now = Instant.now();
        return q.signer.sign(AttestationResult.builder(a).host("core-host").issuedAt(now)
                .expiresAt(now.plus(q.policy.resultTtl())).nonce(q.nonces[i]).akId(q.akId)
                .pcrDigest(q.pcrDigests[i]).build());
    }

    // ---- the full verifier pipeline -------------------------------------------------------------------------------

    /**
     * The server keeps one outstanding nonce per AK (NonceService: each signed nonce request replaces the AK's
     * last), so one host can have one appraisal prepared ahead.
     */
    static final int EVIDENCE_PER_HOST = 1;
    /**
     * Hosts (swtpm processes) per benchmark thread: a pool holds {@code HOSTS_PER_THREAD} appraisals. It must last a
     * measured window, which is the iteration time (10 ms) plus however late JMH's timer thread gets the CPU to end
     * it: on the shared 2-core machine at load 13-20 a single thread once appraised 32 within one window (about
     * 40 ms at 800/s). 64 last 10 ms at 6,400/s, or 64 ms at 1,000/s.
     */
    static final int HOSTS_PER_THREAD = Integer.getInteger("tpmphone.bench.hostsPerThread", 64);

    /** The in-process verifier and {@link #HOSTS_PER_THREAD} enrolled hosts per benchmark thread. */
    @State(Scope.Benchmark)
    public static class Verifier {
        private Path directory;
        InProcessVerifier verifier;
        List<MeasuredHost> hosts = new ArrayList<>();
        final List<String> akIds = new ArrayList<>();
        PcrSelection selection;
        final AtomicInteger nextThread = new AtomicInteger();

        @Setup(Level.Trial)
        public void setUp(BenchmarkParams params) throws Exception {
            // On disk (not tmpfs), so the audit log's fsyncs are real.
            directory = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")),
                    "tpmphone-bench-pipeline-");
            var spec = Release.spec(directory);
            String policy = Release.policy(spec);
            hosts = MeasuredHost.startAll(params.getThreads() * HOSTS_PER_THREAD, directory, spec);
            verifier = InProcessVerifier.open(directory.resolve("server"), hosts.get(0).ekCaChain(), policy);
            for (MeasuredHost h : hosts) {
                akIds.add(verifier.enroll(h.name(), h.ekPublic().encoded(), h.ekCertificate(), h.akPublic().encoded(),
                        h::activate));
            }
            selection = verifier.policy().requiredPcrSelection();
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            try {
                verifier.close();
            } finally {
                hosts.forEach(MeasuredHost::close);
                SwtpmProcess.deleteDirectory(directory);
            }
        }
    }

    /**
     * One thread's hosts and its pool of fresh evidence (request bodies), refilled before each iteration: one per host
     * (the server keeps one outstanding nonce per AK), so each host's quotes are appraised in the order its TPM made
     * them.
     */
    @State(Scope.Thread)
    public static class Evidence {
        private int firstHost;
        String[] bodies = new String[0];
        int next;

        @Setup(Level.Trial)
        public void claimHosts(Verifier v) {
            firstHost = v.nextThread.getAndIncrement() * HOSTS_PER_THREAD;
        }

        @Setup(Level.Iteration)
        public void refill(Verifier v) throws Exception {
            bodies = new String[HOSTS_PER_THREAD * EVIDENCE_PER_HOST];
            int n = 0;
            for (int h = firstHost; h < firstHost + HOSTS_PER_THREAD; h++) {
                MeasuredHost host = v.hosts.get(h);
                String akId = v.akIds.get(h);
                MeasurementLog log = host.log();
                for (int i = 0; i < EVIDENCE_PER_HOST; i++) {
                    byte[] nonce = v.verifier.issueNonce(akId);
                    TpmQuote quote = host.quote(v.selection, nonce);
                    bodies[n++] = JSON.writeValueAsString(HostAttestation.appraisalRequest(akId, nonce, quote, log));
                }
            }
            next = 0;
        }

        boolean hasNext() {
            return next < bodies.length;
        }

        String take() {
            if (next == bodies.length) {
                throw new IllegalStateException("the evidence pool of " + bodies.length + " appraisals ran dry within"
                        + " one measured iteration: shorten the iterations (e.g. -r 5ms) or add hosts"
                        + " (-jvmArgsAppend -Dtpmphone.bench.hostsPerThread=" + 2 * HOSTS_PER_THREAD + ")");
            }
            return bodies[next++];
        }
    }

    /**
     * One appraisal of fresh evidence, if JMH is measuring. With several threads JMH synchronizes iterations: a thread
     * that finished its iteration set-up calls the benchmark, unmeasured, until every other thread has finished its
     * own (32 nonces and swtpm quotes each took up to 220 ms on the shared 2-core machine), and again after
     * its measured window until the others leave theirs. Spending evidence on those calls emptied a pool sized for
     * the measured window ("ran dry"), by an amount that depended on how long the slowest thread's set-up took. So
     * before the measured window ({@link Control#startMeasurement} still false) a call spends nothing and yields;
     * after it ({@link Control#stopMeasurement}) a call appraises while evidence is left, keeping the server loaded
     * while the other threads finish their last measured call, as JMH intends, and otherwise yields. Neither kind is
     * counted. Within the window every call appraises, and a pool that runs dry there fails the run.
     *
     * @return the outcome, or null for a call outside the measured window that appraised nothing
     */
    private static InProcessVerifier.Outcome pipelineOnce(Verifier v, Evidence e, Control control) throws Exception {
        if (!control.startMeasurement || (control.stopMeasurement && !e.hasNext())) {
            Thread.yield(); // on 2 cores, leave the CPU to the set-up (or the last measured call) of the other thread
            return null;
        }
        InProcessVerifier.Outcome outcome = v.verifier.appraise(e.take());
        if (outcome.level() != IntegrityLevel.MEASURED) {
            throw new IllegalStateException("expected MEASURED, got " + outcome.level() + " at "
                    + outcome.failedCheck().orElse("-") + ": " + outcome.reasons());
        }
        return outcome;
    }

    @Benchmark
    @Threads(1)
    @Warmup(iterations = 40, time = 10, timeUnit = TimeUnit.MILLISECONDS)
    @Measurement(iterations = 50, time = 10, timeUnit = TimeUnit.MILLISECONDS)
    public InProcessVerifier.Outcome pipeline(Verifier v, Evidence e, Control control) throws Exception {
        return pipelineOnce(v, e, control);
    }

    @Benchmark
    @Threads(2)
    @Warmup(iterations = 40, time = 10, timeUnit = TimeUnit.MILLISECONDS)
    @Measurement(iterations = 50, time = 10, timeUnit = TimeUnit.MILLISECONDS)
    public InProcessVerifier.Outcome pipeline2Threads(Verifier v, Evidence e, Control control) throws Exception {
        return pipelineOnce(v, e, control);
    }
}
