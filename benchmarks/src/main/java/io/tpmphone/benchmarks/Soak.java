package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.softphone.sip.Call;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tls.AttestedTlsConfig;
import io.tpmphone.tpm.TpmClient;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A soak: {@link TwoHostRig}'s two measured softphones call each other, one call after another (alternating caller,
 * each call established on both sides, carrying audio for a second, hung up and seen ENDED by the callee), while a
 * third phone in this JVM that offers no evidence sends INVITEs to both in the background (each must be refused).
 * A first call warms both media stacks before the clock starts. Every {@code sampleEvery}, between two calls (the
 * sampler waits for the call in progress to end: a call's media threads and sockets are not a leak), it samples heap after a full GC, threads and open file descriptors of this JVM (the
 * attestation server and both agents run in it) and of both softphone processes (each with what runs under it in its
 * namespace), and the transient objects and sessions each TPM holds; at the end {@link Flatness} judges every curve.
 * Returns a {@link Report}; prints nothing ({@code tpmphone soak} prints it).
 *
 * <p>Each softphone runs as the child user the options name, so a soak does not collide with the end-to-end tests'
 * users (alice's and bob's) on the same machine. Not thread-safe; one run at a time per pair of child users.
 */
public final class Soak {
    private static final Logger LOG = LoggerFactory.getLogger(Soak.class);
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);
    /** The first call loads the media stack in both softphones (native libraries, JIT): it may take longer. */
    private static final Duration FIRST_CALL_TIMEOUT = Duration.ofSeconds(90);
    private static final double MIB = 1024.0 * 1024.0;
    /** Failure reasons kept for the report. */
    private static final int KEPT_FAILURES = 5;

    /** The curves sampled, in CSV column order. */
    public static final List<Series> SERIES = List.of(
            new Series("host.heap", "MiB", new Flatness.Tolerance(8, 0.10)),
            new Series("host.threads", "threads", new Flatness.Tolerance(4, 0.05)),
            new Series("host.fds", "fds", new Flatness.Tolerance(8, 0.05)),
            new Series("alice.heap", "MiB", new Flatness.Tolerance(8, 0.10)),
            new Series("alice.threads", "threads", new Flatness.Tolerance(4, 0.05)),
            new Series("alice.fds", "fds", new Flatness.Tolerance(8, 0.05)),
            new Series("bob.heap", "MiB", new Flatness.Tolerance(8, 0.10)),
            new Series("bob.threads", "threads", new Flatness.Tolerance(4, 0.05)),
            new Series("bob.fds", "fds", new Flatness.Tolerance(8, 0.05)),
            new Series("alice.tpm-handles", "handles", new Flatness.Tolerance(0.5, 0)),
            new Series("bob.tpm-handles", "handles", new Flatness.Tolerance(0.5, 0)));

    private Soak() {
    }

    /** One curve: its name, unit and the growth it may show over the second half. */
    public record Series(String name, String unit, Flatness.Tolerance tolerance) {
    }

    /**
     * What to run.
     *
     * @param duration       how long the calls run (sampling covers the same time)
     * @param sampleEvery    the sampling period; {@code duration} must give at least 4 samples
     * @param noiseEvery     one background INVITE per period
     * @param directory      where the hosts' state goes (deleted afterwards)
     * @param aliceChildUser the user alice's softphone runs as
     * @param bobChildUser   bob's
     * @param callHistory    each softphone's bound on the ended calls it keeps for its user
     *                       ({@code sip.calls.history}); 0 for the product's default (100). That history fills up
     *                       as calls end, and until it is full the heap grows by design: a soak short enough that
     *                       the default history is still filling in its second half (about 70 s of calls and noise,
     *                       at a call a second) takes a smaller one, so that its second half measures growth
     *                       beyond every bound, as an hour-long run does
     */
    public record Options(Duration duration, Duration sampleEvery, Duration noiseEvery, Path directory,
                          String aliceChildUser, String bobChildUser, int callHistory) {
        /** Options with the softphones' default call history. */
        public Options(Duration duration, Duration sampleEvery, Duration noiseEvery, Path directory,
                       String aliceChildUser, String bobChildUser) {
            this(duration, sampleEvery, noiseEvery, directory, aliceChildUser, bobChildUser, 0);
        }

        public Options {
            if (callHistory < 0 || callHistory > io.tpmphone.softphone.PhoneConfig.MAX_CALL_HISTORY) {
                throw new IllegalArgumentException("callHistory must be 0 (the default) or 1.."
                        + io.tpmphone.softphone.PhoneConfig.MAX_CALL_HISTORY + ", got " + callHistory);
            }
            Objects.requireNonNull(duration, "duration");
            Objects.requireNonNull(sampleEvery, "sampleEvery");
            Objects.requireNonNull(noiseEvery, "noiseEvery");
            Objects.requireNonNull(directory, "directory");
            Objects.requireNonNull(aliceChildUser, "aliceChildUser");
            Objects.requireNonNull(bobChildUser, "bobChildUser");
            if (sampleEvery.toMillis() < 100 || noiseEvery.toMillis() < 10) {
                throw new IllegalArgumentException("sample at most every 100 ms and send noise at most every 10 ms");
            }
            if (duration.dividedBy(sampleEvery) < 4) {
                throw new IllegalArgumentException("a soak of " + duration + " sampled every " + sampleEvery
                        + " gives fewer than 4 samples: sample more often or run longer");
            }
        }
    }

    /** One sampling instant: seconds since the start and a value per {@link #SERIES} entry, in that order. */
    public record Sample(double seconds, List<Double> values) {
        public Sample {
            values = List.copyOf(values);
        }
    }

    /**
     * A run's outcome.
     *
     * @param seconds          how long the calls ran
     * @param samples          the curves
     * @param verdicts         one per series, in {@link #SERIES} order
     * @param callsEstablished calls that were established on both sides and ended on both
     * @param callsFailed      calls that did not
     * @param failures         the first few failures' descriptions (terminal-safe)
     * @param mediaStalls      established calls (counted in {@code callsEstablished}) in which less than a second of
     *                         the callee's audio reached the caller: set up and torn down fine, the media stalled
     * @param stalls           the first few stalls' descriptions (terminal-safe)
     * @param noiseSent        background INVITEs sent
     * @param noiseRefused     of them, refused (as they must be)
     * @param noiseAccepted    of them, established: a finding (a phone that offered no evidence was let in)
     * @param histograms       per softphone, the heap's top classes by bytes at the end (where a growing heap went)
     */
    public record Report(double seconds, List<Sample> samples, List<Flatness.Verdict> verdicts, long callsEstablished,
                         long callsFailed, List<String> failures, long mediaStalls, List<String> stalls,
                         long noiseSent, long noiseRefused, long noiseAccepted,
                         Map<String, List<String>> histograms) {
        public Report {
            samples = List.copyOf(samples);
            verdicts = List.copyOf(verdicts);
            failures = List.copyOf(failures);
            stalls = List.copyOf(stalls);
            histograms = Map.copyOf(histograms);
        }

        /** Every curve flat. */
        public boolean flat() {
            return verdicts.stream().allMatch(Flatness.Verdict::flat);
        }

        /** Flat, every call worked (audio included), some calls ran, and no background INVITE got in. */
        public boolean passed() {
            return flat() && callsFailed == 0 && mediaStalls == 0 && callsEstablished > 0 && noiseAccepted == 0;
        }
    }

    /**
     * Runs a soak.
     *
     * @throws Exception if the rig cannot start or a sample cannot be taken (a dead softphone, an unreachable TPM);
     *                   failed calls are counted in the report, not thrown
     */
    public static Report run(Options o) throws Exception {
        Objects.requireNonNull(o, "options");
        Path dir = Files.createTempDirectory(Files.createDirectories(o.directory()), "tpmphone-soak-");
        List<String> history = o.callHistory() == 0 ? List.of() : List.of("sip.calls.history=" + o.callHistory());
        TwoHostRig.Options phones = new TwoHostRig.Options(Map.of("alice", history, "bob", history), Optional.empty(),
                Map.of());
        try (TwoHostRig rig = TwoHostRig.start(dir.resolve("rig"), phones, o.aliceChildUser(), o.bobChildUser())) {
            return run(o, rig);
        } finally {
            io.tpmphone.swtpm.SwtpmProcess.deleteDirectory(dir);
        }
    }

    private static Report run(Options o, TwoHostRig rig) throws Exception {
        Duration connect = Duration.ofSeconds(60);
        Clock clock = Clock.systemUTC();
        AtomicBoolean running = new AtomicBoolean(true);
        AtomicLong established = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicLong stalls = new AtomicLong();
        List<String> stallNotes = Collections.synchronizedList(new ArrayList<>());
        AtomicLong noiseSent = new AtomicLong();
        AtomicLong noiseRefused = new AtomicLong();
        AtomicLong noiseAccepted = new AtomicLong();
        List<String> failures = Collections.synchronizedList(new ArrayList<>());
        ExecutorService workers = Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "soak-load");
            t.setDaemon(true);
            return t;
        });
        AttestedTlsConfig noTls = AttestedTlsConfig.of(rig.alice().identity(), rig.verifier(), clock)
                .withoutAttestation();
        List<Sample> samples = new ArrayList<>();
        // Held for each call; the sampler takes it, so every sample sees the phones between calls (a call's media
        // threads and sockets are not a leak; what stays after it ends is). The background INVITEs do not wait.
        java.util.concurrent.locks.ReentrantLock quiet = new java.util.concurrent.locks.ReentrantLock(true);
        try (ControlClient aliceCalls = ControlClient.connect(rig.alice().childControl(), connect);
             ControlClient bobCalls = ControlClient.connect(rig.bob().childControl(), connect);
             ControlClient aliceHealth = ControlClient.connect(rig.alice().childControl(), connect);
             ControlClient bobHealth = ControlClient.connect(rig.bob().childControl(), connect);
             SipPhone noise = SipPhone.start(new SipPhone.Config("mallory", "mallory", LOOPBACK, freePort(), 0, 0,
                     CALL_TIMEOUT), noTls, CallPolicy.parse("default FAILED accept"), rig.alice().keys(),
                     new SipPhone.Listener() { }, clock)) {
            warmUp(aliceCalls, bobCalls, rig.bob().childTlsPort(), failures);
            long start = System.nanoTime();
            long end = start + o.duration().toNanos();
            Future<?> calls = workers.submit(() -> {
                for (long n = 0; running.get() && System.nanoTime() < end; n++) {
                    boolean fromAlice = n % 2 == 0;
                    quiet.lockInterruptibly();
                    try {
                        Optional<String> stall = call(fromAlice ? aliceCalls : bobCalls,
                                fromAlice ? bobCalls : aliceCalls, fromAlice ? "sips:bob@bob" : "sips:alice@alice",
                                fromAlice ? rig.bob().childTlsPort() : rig.alice().childTlsPort(), CALL_TIMEOUT);
                        established.incrementAndGet();
                        if (stall.isPresent()) {
                            stalls.incrementAndGet();
                            String what = (fromAlice ? "alice -> bob " : "bob -> alice ") + UntrustedText.forTerminal(
                                    stall.get(), 800);
                            LOG.warn("soak media stall: {}", what);
                            for (String host : new String[] {"alice", "bob"}) {
                                String log = rig.childLog(host);
                                LOG.warn("media stall: the end of {}'s softphone log: {}", host,
                                        UntrustedText.forTerminal(log.substring(Math.max(0, log.length() - 6000)),
                                                6000));
                            }
                            if (stallNotes.size() < KEPT_FAILURES) {
                                stallNotes.add(what);
                            }
                        }
                    } catch (IOException | AssertionError | RuntimeException e) {
                        failed.incrementAndGet();
                        if (failures.size() < KEPT_FAILURES) {
                            failures.add("call " + n + ": " + UntrustedText.forTerminal(String.valueOf(e.getMessage()),
                                    300));
                        }
                        LOG.warn("soak call {} failed: {}", n, UntrustedText.forTerminal(String.valueOf(
                                e.getMessage()), 300));
                    } finally {
                        quiet.unlock();
                    }
                }
                return null;
            });
            Future<?> background = workers.submit(() -> {
                long period = o.noiseEvery().toNanos();
                for (long n = 0; running.get() && System.nanoTime() < end; n++) {
                    int port = n % 2 == 0 ? rig.bob().childTlsPort() : rig.alice().childTlsPort();
                    String target = n % 2 == 0 ? "sips:bob@bob" : "sips:alice@alice";
                    noiseSent.incrementAndGet();
                    Call c = noise.await(noise.call(target, new InetSocketAddress(LOOPBACK, port)));
                    if (c.state() == Call.State.ESTABLISHED) {
                        noiseAccepted.incrementAndGet();
                        LOG.error("a phone that offered no evidence got a call established with {}", target);
                        noise.hangUp(c);
                    } else {
                        noiseRefused.incrementAndGet();
                    }
                    pace(start, period, n + 1, end);
                }
                return null;
            });
            long period = o.sampleEvery().toNanos();
            for (long n = 0; ; n++) {
                long at = start + n * period;
                if (at > end) {
                    break;
                }
                pace(start, period, n, end);
                quiet.lockInterruptibly();
                try {
                    samples.add(sample((System.nanoTime() - start) / 1e9, rig, aliceHealth, bobHealth));
                } finally {
                    quiet.unlock();
                }
                LOG.info("soak {}: {} calls ({} failed), {} INVITEs of noise", Duration.ofNanos(System.nanoTime()
                        - start), established.get(), failed.get(), noiseSent.get());
                if (calls.isDone() && background.isDone()) {
                    break;
                }
            }
            running.set(false);
            calls.get(2 * CALL_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            background.get(2 * CALL_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            double seconds = (System.nanoTime() - start) / 1e9;
            Map<String, List<String>> histograms = new LinkedHashMap<>();
            for (Object[] h : new Object[][] {{"alice", aliceHealth}, {"bob", bobHealth}}) {
                List<String> top = new ArrayList<>();
                ((ControlClient) h[1]).healthWithHistogram().path("histogram").forEach(l -> top.add(
                        UntrustedText.forTerminal(l.asText(), 200)));
                histograms.put((String) h[0], top);
            }
            return new Report(seconds, samples, judge(samples), established.get(), failed.get(), failures,
                    stalls.get(), stallNotes, noiseSent.get(), noiseRefused.get(), noiseAccepted.get(), histograms);
        } finally {
            running.set(false);
            workers.shutdownNow();
        }
    }

    /**
     * The first call loads both media stacks; on a machine busy with other work it can miss SIP's 32 s INVITE timer.
     * Up to three attempts, each noted in {@code failures}; the third failure ends the soak.
     */
    private static void warmUp(ControlClient alice, ControlClient bob, int bobPort, List<String> failures)
            throws IOException {
        for (int attempt = 1; ; attempt++) {
            try {
                call(alice, bob, "sips:bob@bob", bobPort, FIRST_CALL_TIMEOUT);
                return; // its media may start late: the measured calls check it
            } catch (IOException | AssertionError | RuntimeException e) {
                String what = "warm-up call " + attempt + " (not counted): " + UntrustedText.forTerminal(
                        String.valueOf(e.getMessage()), 300);
                LOG.warn("soak {}", what);
                if (attempt == 3) {
                    throw new IOException("three warm-up calls failed; the last: " + what, e);
                }
                failures.add(what);
            }
        }
    }

    /** Waits until sample instant {@code n} (or the end, whichever is first): pacing, not synchronisation. */
    private static void pace(long start, long period, long n, long end) throws InterruptedException {
        long wait = Math.min(start + n * period, end) - System.nanoTime();
        if (wait > 0) {
            TimeUnit.NANOSECONDS.sleep(wait);
        }
    }

    /**
     * One call from {@code caller} to {@code callee}: established on both, up to a second of audio, hung up, ENDED on
     * both. Returns the caller's audio statistics if less than a second of the callee's audio arrived (a media stall;
     * the call is still hung up and ended), else empty.
     *
     * @throws IOException if the call was not established or did not end on both sides
     */
    private static Optional<String> call(ControlClient caller, ControlClient callee, String target, int port,
                                         Duration timeout) throws IOException {
        String id = caller.call(target, "127.0.0.1:" + port);
        JsonNode atCaller = caller.await(id, timeout);
        check(atCaller, "ESTABLISHED", "at the caller");
        check(callee.await(id, timeout), "ESTABLISHED", "at the callee");
        Optional<String> stall = Optional.empty();
        try {
            JsonNode audio = caller.awaitAudio(id, 1.0, timeout);
            if (audio.path("secondsReceived").asDouble() < 1.0) {
                // both ends' counts (did the callee stop sending, or the caller stop receiving?) and where each
                // phone's media threads wait, while the call is still up
                JsonNode atCallee = callee.audio(id);
                stall = Optional.of("call " + id + ": less than a second of the callee's audio reached the caller"
                        + " within " + timeout.toSeconds() + " s: caller " + audio + ", callee " + atCallee);
                logMediaStacks("caller", id, caller);
                logMediaStacks("callee", id, callee);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
        caller.hangUp(id);
        Await.until("call " + id + " to end at the callee", CALL_TIMEOUT, () -> callee.await(id,
                Duration.ofSeconds(1)), c -> c.path("state").asText().equals("ENDED"));
        Await.until("call " + id + " to end at the caller", CALL_TIMEOUT, () -> caller.await(id,
                Duration.ofSeconds(1)), c -> c.path("state").asText().equals("ENDED"));
        return stall;
    }

    /** Logs the stacks of {@code phone}'s media threads (libjitsi's, FMJ's and ours) during a stalled call. */
    private static void logMediaStacks(String role, String callId, ControlClient phone) throws IOException {
        for (JsonNode t : phone.healthWithStacks().path("stacks")) {
            String stack = t.asText();
            if (stack.contains("org.jitsi") || stack.contains("net.sf.fmj") || stack.contains("javax.media")
                    || stack.contains("io.tpmphone.softphone.media")) {
                LOG.warn("media stall of call {}, {}'s thread: {}", UntrustedText.forTerminal(callId, 100), role,
                        UntrustedText.forTerminal(stack, 6000));
            }
        }
    }

    private static void check(JsonNode call, String state, String where) throws IOException {
        if (call == null || !state.equals(call.path("state").asText())) {
            throw new IOException("a call was not " + state + " " + where + ": " + call);
        }
    }

    private static Sample sample(double seconds, TwoHostRig rig, ControlClient alice, ControlClient bob)
            throws Exception {
        System.gc();
        List<Double> v = new ArrayList<>();
        v.add(ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() / MIB);
        v.add((double) ManagementFactory.getThreadMXBean().getThreadCount());
        v.add((double) openFiles(ProcessHandle.current()));
        for (Object[] h : new Object[][] {{rig.alice(), alice}, {rig.bob(), bob}}) {
            TwoHostRig.Host host = (TwoHostRig.Host) h[0];
            JsonNode health = ((ControlClient) h[1]).health();
            ProcessHandle child = host.agent().child().map(Process::toHandle).orElseThrow(() ->
                    new IllegalStateException(host.name() + "'s softphone is not running"));
            v.add(health.path("heapUsedAfterGcBytes").asLong() / MIB);
            v.add((double) threads(child));
            v.add((double) openFiles(child));
        }
        v.add((double) tpmHandles(rig.alice().tpm()));
        v.add((double) tpmHandles(rig.bob().tpm()));
        return new Sample(seconds, v);
    }

    /** Transient objects and sessions the TPM holds (all of them are flushed after every operation). */
    static int tpmHandles(TpmClient tpm) throws Exception {
        return tpm.handles(TpmClient.HandleType.TRANSIENT).size()
                + tpm.handles(TpmClient.HandleType.LOADED_SESSION).size();
    }

    /** Open file descriptors of a process and everything under it (/proc; root reads other users'). */
    static long openFiles(ProcessHandle p) throws IOException {
        long n = 0;
        for (ProcessHandle h : tree(p)) {
            try (Stream<Path> fds = Files.list(Path.of("/proc", Long.toString(h.pid()), "fd"))) {
                n += fds.count();
            } catch (java.nio.file.NoSuchFileException e) {
                // it exited between listing and counting
            }
        }
        return n;
    }

    /** Threads of a process and everything under it ({@code Threads:} of /proc/PID/status). */
    static long threads(ProcessHandle p) throws IOException {
        long n = 0;
        for (ProcessHandle h : tree(p)) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc", Long.toString(h.pid()), "status"))) {
                    if (line.startsWith("Threads:")) {
                        n += Long.parseLong(line.substring("Threads:".length()).trim());
                    }
                }
            } catch (java.nio.file.NoSuchFileException e) {
                // it exited between listing and reading
            }
        }
        return n;
    }

    private static List<ProcessHandle> tree(ProcessHandle p) {
        List<ProcessHandle> all = new ArrayList<>();
        all.add(p);
        p.descendants().forEach(all::add);
        return all;
    }

    static List<Flatness.Verdict> judge(List<Sample> samples) {
        double[] t = samples.stream().mapToDouble(Sample::seconds).toArray();
        List<Flatness.Verdict> verdicts = new ArrayList<>();
        for (int i = 0; i < SERIES.size(); i++) {
            int column = i;
            double[] y = samples.stream().mapToDouble(s -> s.values().get(column)).toArray();
            Series s = SERIES.get(i);
            verdicts.add(Flatness.judge(s.name(), s.unit(), t, y, s.tolerance()));
        }
        return verdicts;
    }

    /** The curves as CSV: a header ({@code seconds} then the series with their units), one line per sample. */
    public static String csv(Report r) {
        StringBuilder out = new StringBuilder("seconds");
        for (Series s : SERIES) {
            out.append(',').append(s.name()).append(" (").append(s.unit()).append(')');
        }
        out.append('\n');
        for (Sample sample : r.samples()) {
            out.append(String.format(Locale.ROOT, "%.1f", sample.seconds()));
            for (double v : sample.values()) {
                out.append(',').append(String.format(Locale.ROOT, v == Math.rint(v) ? "%.0f" : "%.2f", v));
            }
            out.append('\n');
        }
        return out.toString();
    }

    /**
     * A small text plot per series: {@code height} rows of at most {@code width} columns (samples averaged into
     * columns), scaled from the series' minimum to its maximum, labelled with both. ASCII only.
     */
    public static String plot(Report r, int width, int height) {
        StringBuilder out = new StringBuilder();
        int n = r.samples().size();
        int columns = Math.min(width, n);
        for (int i = 0; i < SERIES.size(); i++) {
            double[] col = new double[columns];
            int[] count = new int[columns];
            for (int s = 0; s < n; s++) {
                int c = (int) ((long) s * columns / n);
                col[c] += r.samples().get(s).values().get(i);
                count[c]++;
            }
            double min = Double.MAX_VALUE;
            double max = -Double.MAX_VALUE;
            for (int c = 0; c < columns; c++) {
                col[c] /= count[c];
                min = Math.min(min, col[c]);
                max = Math.max(max, col[c]);
            }
            Series series = SERIES.get(i);
            out.append(String.format(Locale.ROOT, "%s (%s), %.0f s%n", series.name(), series.unit(), r.seconds()));
            for (int row = height - 1; row >= 0; row--) {
                String label = row == height - 1 ? number(max) : row == 0 ? number(min) : "";
                out.append(String.format(Locale.ROOT, "%10s |", label));
                for (int c = 0; c < columns; c++) {
                    int level = max == min ? 0 : (int) Math.round((col[c] - min) / (max - min) * (height - 1));
                    out.append(level == row ? '*' : level > row ? ':' : ' ');
                }
                out.append('\n');
            }
            out.append(String.format(Locale.ROOT, "%10s +%s%n", "", "-".repeat(columns)));
        }
        return out.toString();
    }

    private static String number(double v) {
        return String.format(Locale.ROOT, v == Math.rint(v) ? "%.0f" : "%.1f", v);
    }

    /** The verdicts as a table, one line per series. */
    public static String verdictTable(Report r) {
        StringBuilder out = new StringBuilder(String.format(Locale.ROOT, "%-18s %-8s %9s %9s %9s %9s %12s %10s %10s"
                + "  %s%n", "series", "unit", "first", "last", "min", "max", "slope/hour", "growth", "allowed",
                "verdict"));
        for (Flatness.Verdict v : r.verdicts()) {
            out.append(String.format(Locale.ROOT, "%-18s %-8s %9.1f %9.1f %9.1f %9.1f %12.2f %10.2f %10.2f  %s%n",
                    v.series(), v.unit(), v.first(), v.last(), v.min(), v.max(), v.slopePerHour(), v.growth(),
                    v.tolerance(), v.flat() ? "flat" : "GROWING"));
        }
        return out.toString();
    }

    /** The report as a JSON-ready map (for {@code --json}). */
    public static Map<String, Object> toJson(Report r) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("seconds", r.seconds());
        m.put("passed", r.passed());
        m.put("flat", r.flat());
        m.put("callsEstablished", r.callsEstablished());
        m.put("callsFailed", r.callsFailed());
        m.put("failures", r.failures());
        m.put("mediaStalls", r.mediaStalls());
        m.put("stalls", r.stalls());
        m.put("noiseSent", r.noiseSent());
        m.put("noiseRefused", r.noiseRefused());
        m.put("noiseAccepted", r.noiseAccepted());
        m.put("histograms", r.histograms());
        m.put("series", SERIES);
        m.put("verdicts", r.verdicts());
        m.put("samples", r.samples());
        return m;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, LOOPBACK)) {
            return s.getLocalPort();
        }
    }

    /** For callers that want an absent-safe view of a series' verdict. */
    static Optional<Flatness.Verdict> verdict(Report r, String series) {
        return r.verdicts().stream().filter(v -> v.series().equals(series)).findFirst();
    }
}
