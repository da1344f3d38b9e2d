package io.tpmphone.rig;

import io.tpmphone.agent.Agent;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.Broker;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.agent.ReleaseManifest;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.softphone.AgentBroker;
import io.tpmphone.softphone.BrokerHostIdentity;
import io.tpmphone.softphone.BrokerRefusedException;
import io.tpmphone.softphone.SoftphoneMain;
import io.tpmphone.softphone.SoftphoneRelease;
import io.tpmphone.softphone.SrtpKeyMaterial;
import io.tpmphone.softphone.sip.SipPhone;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tls.PassportVerifier;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.SecureRandom;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

/**
 * Two measured hosts on one machine, "alice" and "bob": each its own swtpm (with an EK certificate), agent and
 * measured softphone core; one attestation server (HTTPS, SQLite audit) trusting both EK CAs and approving the
 * softphone release that runs; and, per host, the softphone's view of its agent broker (identity, keys, audit
 * channel). What {@code tpmphone demo}, the end-to-end tests and the call benchmark start from. Closes everything it
 * started.
 *
 * <p>This module is product code in that the CLI ships it for the demo; it has neither JMH nor JUnit. Nothing of
 * what it composes is measured on real hosts: a production host's release comes from {@code tpmphone agent run}
 * (the CLI's own launch options), not from here.
 */
public final class TwoHostRig implements AutoCloseable {
    /** The admin token of the rig's server. */
    public static final String ADMIN_TOKEN = HexFormat.of().formatHex(randomBytes(24));
    /** Namespace isolation of the softphones needs root (unshare, setpriv); without it the policy cannot ask for it. */
    public static final boolean ISOLATE = "root".equals(System.getProperty("user.name"));
    /** The measurement PCR. */
    public static final int PCR = 14;
    /**
     * The system property that names the child users of a rig started without named ones: {@code alice-VALUE}'s and
     * {@code bob-VALUE}'s own ({@link LaunchSpec#childUserFor}) instead of alice's and bob's. The build sets it to the
     * module's name and fork number in every test JVM (the parent POM): the agent refuses a child user that still runs
     * processes, and {@code ./tpmphone test} runs two modules at once (and cli's tests in two JVMs), so the e2e tests'
     * shared rig and the call benchmark's rig would otherwise both want alice's user. Unset ({@code tpmphone demo}, {@code tpmphone bench}): alice's and bob's own.
     */
    public static final String USERS_PROPERTY = "tpmphone.rig.users";
    /** How long a launched softphone may take to serve (a JVM start, SIP, a quote through the broker). */
    private static final Duration SOFTPHONE_START = Duration.ofSeconds(60);
    /** Bounds the wait for both hosts' parallel start steps (each has its own, shorter deadlines inside). */
    private static final Duration START_TIMEOUT = Duration.ofMinutes(4);

    /**
     * One host as its softphone sees it: its agent and TPM, a broker session of its own for phones run in this JVM
     * ({@code broker}, {@code identity}, {@link #keys()}), and the measured softphone process the agent launched,
     * reachable over SIP at {@code childTlsPort} and driven through its control socket {@code childControl}.
     */
    public record Host(String name, Agent agent, TpmClient tpm, AgentBroker broker, BrokerHostIdentity identity,
                       int childTlsPort, Path childControl) {
        /** SRTP keys and replay checks from this host's sealed keystore, through its broker. */
        public SipPhone.Keys keys() {
            return SipPhone.Keys.fromBroker(broker);
        }

        /**
         * Asks this host's sealed keystore, through its broker, for an SRTP key of {@code suite} for {@code callId},
         * as its softphone would; a released key is destroyed at once. For showing that a host whose state is not
         * approved gets no key.
         *
         * @throws IOException if the broker cannot be reached (a refusal is an outcome, not an exception)
         */
        public KeyRequest requestSrtpKey(String suite, String callId) throws IOException {
            try (SrtpKeyMaterial key = broker.srtpKey(suite, callId)) {
                return new KeyRequest(true, Optional.empty(), key.toString());
            } catch (BrokerRefusedException e) {
                return new KeyRequest(false, Optional.of(e.reason()), String.valueOf(e.getMessage()));
            }
        }
    }

    /**
     * The outcome of {@link Host#requestSrtpKey}: released, or refused with the broker's reason code (such as
     * {@code NOT_APPROVED} or {@code POLICY_FAIL}); {@code message} says what happened and never holds key material.
     */
    public record KeyRequest(boolean released, Optional<String> refusal, String message) {
    }

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final AttestationServer server;
    private final AttestationClient client;
    private volatile Host alice;
    private volatile Host bob;
    private final PassportVerifier verifier;
    private final Map<String, LaunchSpec> releases = new LinkedHashMap<>();
    private final Map<String, Integer> childPorts = new LinkedHashMap<>();

    private final Path dir;
    private final Options options;

    /**
     * How a test wants the two softphones: extra (measured) configuration lines per host name, a sound server the
     * agents grant their isolated softphones during calls (with libjitsi's native libraries staged and measured), and
     * the ring-screen phrase each agent seals.
     */
    public record Options(Map<String, List<String>> extraConfiguration, Optional<String> soundServer,
                          Map<String, String> phrases) {
        /** Tone devices, answering by themselves, no sound server, no phrase. */
        public static final Options DEFAULT = new Options(Map.of(), Optional.empty(), Map.of());

        public Options {
            extraConfiguration = Map.copyOf(extraConfiguration);
            phrases = Map.copyOf(phrases);
        }
    }

    private TwoHostRig(Path dir, Options options, String aliceChildUser, String bobChildUser) throws Exception {
        this.dir = dir;
        this.options = options;
        try {
            List<Path> classPath = SoftphoneRelease.classPath(softphoneJar(dir));
            List<Path> natives = options.soundServer().isPresent()
                    ? io.tpmphone.softphone.media.NativeLibraries.extract(dir.resolve("native")) : List.of();
            List<String> jvmOptions = new ArrayList<>(List.of(SoftphoneRelease.LOGGING_OPTION));
            if (!natives.isEmpty()) {
                jvmOptions.add("-Djava.library.path=" + LaunchSpec.NATIVE_DIRECTORY);
            }
            for (String[] h : new String[][] {{"alice", "1000", aliceChildUser}, {"bob", "440", bobChildUser}}) {
                int port = freePort();
                childPorts.put(h[0], port);
                releases.put(h[0], new LaunchSpec(Path.of(System.getProperty("java.home")), classPath,
                        config(dir.resolve(h[0] + "-release"), h[0], port, h[1],
                                options.extraConfiguration().getOrDefault(h[0], List.of())),
                        SoftphoneMain.class.getName(), jvmOptions, List.of(), ISOLATE)
                        .withChildUser(h[2]) // each softphone its own user
                        .withNativeLibraries(natives)
                        .withSoundClient(options.soundServer().isPresent() && ISOLATE));
            }
            // The two hosts share nothing but the server: their TPMs are made at once, and so are their agents'
            // starts below (each mostly waits for its swtpm_setup, or for its softphone's JVM to come up).
            List<SwtpmProcess> tpms = both("start the two hosts' swtpm",
                    () -> keep(SwtpmProcess.builder().withEkCertificate(true).start()),
                    () -> keep(SwtpmProcess.builder().withEkCertificate(true).start()));
            SwtpmProcess tpmA = tpms.get(0);
            SwtpmProcess tpmB = tpms.get(1);
            AttestationServer.Builder b = AttestationServer.builder().stateDirectory(dir.resolve("server"))
                    .adminToken(ADMIN_TOKEN).policy(policy(releases)).clock(Clock.systemUTC());
            for (SwtpmProcess t : List.of(tpmA, tpmB)) {
                for (X509Certificate ca : caChain(t)) {
                    b.trustEkCa(ca);
                }
            }
            server = b.start();
            client = new AttestationClient(server.uri(), server.tlsCertificate(), Duration.ofSeconds(10));
            List<Host> hosts = both("start alice's and bob's agents and softphones", () -> host(dir, tpmA, "alice"),
                    () -> host(dir, tpmB, "bob"));
            alice = hosts.get(0);
            bob = hosts.get(1);
            X509Certificate deviceCa = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(
                    new ByteArrayInputStream(client.get("/v1/server", null).get("deviceCaCertificate").asText()
                            .getBytes(StandardCharsets.US_ASCII)));
            verifier = new PassportVerifier(server.resultVerificationKey(), List.of(deviceCa), Clock.systemUTC());
        } catch (Exception | Error e) {
            closeResources();
            throw e;
        }
    }

    /** Starts both hosts (a few seconds: two TPMs, enrollment, measured launches, appraisals, certificates). */
    public static TwoHostRig start(Path directory) throws Exception {
        return start(directory, Options.DEFAULT);
    }

    /** As {@link #start(Path)}, with the softphones {@code options} describe. */
    public static TwoHostRig start(Path directory, Options options) throws Exception {
        Files.createDirectories(directory);
        return new TwoHostRig(directory, options, defaultChildUser("alice"), defaultChildUser("bob"));
    }

    /** The user {@code host}'s softphone runs as in a rig started without named child users: {@link #USERS_PROPERTY}. */
    public static String defaultChildUser(String host) {
        String suffix = System.getProperty(USERS_PROPERTY, "");
        return LaunchSpec.childUserFor(suffix.isEmpty() ? host : host + "-" + suffix);
    }

    /**
     * Starts both hosts with their softphones running as the given child users instead of alice's and bob's own.
     * The agent creates and reuses a dedicated user, and refuses one that still runs processes: two rigs on one
     * machine at once (a long soak next to the end-to-end tests) need users of their own.
     *
     * @param aliceChildUser the user alice's softphone runs as (a name {@link LaunchSpec} accepts)
     * @param bobChildUser   bob's, a different one
     */
    public static TwoHostRig start(Path directory, String aliceChildUser, String bobChildUser) throws Exception {
        return start(directory, Options.DEFAULT, aliceChildUser, bobChildUser);
    }

    /** As {@link #start(Path, String, String)}, with the softphones {@code options} describe. */
    public static TwoHostRig start(Path directory, Options options, String aliceChildUser, String bobChildUser)
            throws Exception {
        java.util.Objects.requireNonNull(options, "options");
        java.util.Objects.requireNonNull(aliceChildUser, "aliceChildUser");
        java.util.Objects.requireNonNull(bobChildUser, "bobChildUser");
        if (aliceChildUser.equals(bobChildUser)) {
            throw new IllegalArgumentException("the two softphones need two child users, got " + aliceChildUser
                    + " twice");
        }
        Files.createDirectories(directory);
        return new TwoHostRig(directory, options, aliceChildUser, bobChildUser);
    }

    public Host alice() {
        return alice;
    }

    public Host bob() {
        return bob;
    }

    public AttestationServer server() {
        return server;
    }

    /** The server's state directory (audit.db, keys/). */
    public Path serverDirectory() {
        return dir.resolve("server");
    }

    /** An HTTPS client of the server, pinned to its certificate; admin calls take {@link #ADMIN_TOKEN}. */
    public AttestationClient client() {
        return client;
    }

    /** What the measured softphone process of {@code host} logged so far (for failure messages). */
    public String childLog(String host) {
        try {
            return Files.readString(dir.resolve(host).resolve("launch").resolve("child.log"));
        } catch (IOException e) {
            return "(no child log: " + e + ")";
        }
    }

    /** The passport verifier both softphones use: the server's result key and device CA. */
    public PassportVerifier verifier() {
        return verifier;
    }

    /** The measured softphone release of {@code host} ("alice" or "bob") the policy approves. */
    public LaunchSpec release(String host) {
        return releases.get(host);
    }

    private Host host(Path dir, SwtpmProcess swtpm, String name) throws Exception {
        TpmClient tpm = keep(TpmClient.open(TpmUri.parse(swtpm.tpmUri())));
        String token = client.post("/v1/enrollment-tokens", Map.of("host", name), ADMIN_TOKEN)
                .get("enrollmentToken").asText();
        Agent agent = keep(new Agent(tpm, client, dir.resolve(name), name, PCR, releases.get(name), Duration.ofMinutes(2),
                Clock.systemUTC()).withEnrollmentToken(token));
        options.soundServer().ifPresent(agent::withSoundServer);
        if (options.phrases().containsKey(name)) {
            agent.withPhrase(options.phrases().get(name));
        }
        Agent.Status s = agent.start();
        if (!s.is(IntegrityLevel.MEASURED)) {
            throw new IllegalStateException(name + " is " + s.levelName() + ", not MEASURED: " + s.reasons());
        }
        // MEASURED covers the launch, not the start: a softphone that then fails (its SIP port taken, say) exits, and
        // its host drops to IDENTIFIED in the middle of a test that never used that softphone. Fail here, saying why.
        Agent.Softphone phone = agent.awaitSoftphone(SOFTPHONE_START);
        if (phone.state() != Agent.SoftphoneState.READY) {
            throw new IllegalStateException(name + "'s measured softphone is " + phone.state() + " after "
                    + SOFTPHONE_START.toSeconds() + " s (" + phone.detail() + "); its log:\n" + childLog(name));
        }
        return withBroker(name, agent, tpm, 1);
    }

    private Host withBroker(String name, Agent agent, TpmClient tpm, int generation) throws Exception {
        Broker broker = keep(Broker.start(dir.resolve(name + "-broker-" + generation), agent.childService()));
        AgentBroker c = keep(AgentBroker.connect(broker.socketPath(), broker.token()));
        return new Host(name, agent, tpm, c, new BrokerHostIdentity(c), childPorts.get(name),
                Agent.controlSocket(dir.resolve(name)));
    }

    /**
     * Tampers with {@code name}'s softphone the way an attacker with write access to its installation would: the same
     * classes plus one extra entry in softphone-core.jar (a working build that is not the approved one). The host's
     * agent is restarted on it: it stops the running softphone (measuring TERMINATED), measures and launches the
     * tampered one and attests — FAILED, so the server approves no key release. Returns the agent's status.
     */
    public Agent.Status tamperAndRelaunch(String name) throws Exception {
        Host old = name.equals("alice") ? alice : bob;
        LaunchSpec approved = releases.get(name);
        Path original = approved.classPath().get(0);
        Path tampered = Files.createDirectories(dir.resolve(name + "-tampered")).resolve(original.getFileName());
        try (java.util.zip.ZipInputStream in = new java.util.zip.ZipInputStream(Files.newInputStream(original));
             java.util.zip.ZipOutputStream out = new java.util.zip.ZipOutputStream(Files.newOutputStream(tampered))) {
            for (java.util.zip.ZipEntry e; (e = in.getNextEntry()) != null; ) {
                out.putNextEntry(new java.util.zip.ZipEntry(e.getName()));
                in.transferTo(out);
                out.closeEntry();
            }
            out.putNextEntry(new java.util.zip.ZipEntry("implant.properties"));
            out.write("exfiltrate=srtp-keys\n".getBytes(StandardCharsets.US_ASCII));
            out.closeEntry();
        }
        List<Path> classPath = new ArrayList<>(approved.classPath());
        classPath.set(0, tampered);
        LaunchSpec spec = new LaunchSpec(approved.javaHome(), classPath, approved.configFile(), approved.mainClass(),
                approved.jvmOptions(), approved.arguments(), approved.isolate(), approved.childUser())
                .withNativeLibraries(approved.nativeLibraries()).withSoundClient(approved.soundClient());
        old.broker().close();
        old.agent().close();
        resources.remove(old.broker());
        resources.remove(old.agent());
        Agent agent = keep(new Agent(old.tpm(), client, dir.resolve(name), name, PCR, spec, Duration.ofMinutes(2),
                Clock.systemUTC()));
        options.soundServer().ifPresent(agent::withSoundServer); // as before: only the jar differs
        Agent.Status s = agent.start();
        Host h = withBroker(name, agent, old.tpm(), 2);
        if (name.equals("alice")) {
            alice = h;
        } else {
            bob = h;
        }
        return s;
    }

    private static String policy(Map<String, LaunchSpec> releases) throws IOException {
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("version", 1);
        p.put("measurementPcr", PCR);
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of(0, 1, 2, 3, 4, 5, 6, 7));
        // One release per host: the same build, each with its own (measured) configuration.
        List<Object> approved = new ArrayList<>();
        for (Map.Entry<String, LaunchSpec> r : releases.entrySet()) {
            approved.add(ReleaseManifest.of("softphone-" + r.getKey(), r.getValue()));
        }
        p.put("releases", approved);
        p.put("requireIsolation", ISOLATE);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", 300);
        return new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(p);
    }

    /** The measured softphone's configuration for one host (it is measured: part of the approved release). */
    private static Path config(Path dir, String user, int tlsPort, String toneHz, List<String> extra)
            throws IOException {
        Files.createDirectories(dir);
        Path c = dir.resolve("softphone.properties");
        List<String> lines = new ArrayList<>(List.of("sip.user=" + user, "sip.host=" + user, "sip.address=127.0.0.1",
                "sip.tls.port=" + tlsPort, "policy.1=default MEASURED reject", "media.tone.hz=" + toneHz));
        lines.addAll(extra);
        lines.add("");
        Files.writeString(c, String.join("\n", lines), StandardCharsets.UTF_8);
        return c;
    }

    /** The softphone binds the port it is configured with: one from outside the ephemeral range (FreePorts). */
    private static int freePort() {
        return io.tpmphone.swtpm.testing.FreePorts.tcp();
    }

    /** The softphone core's code as one jar (a classes directory, in IDE and reactor runs, is packed into one). */
    public static Path softphoneJar(Path dir) throws IOException {
        Path location;
        try {
            location = Path.of(SoftphoneMain.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IOException(e);
        }
        Path jar = dir.resolve("softphone-core.jar");
        if (Files.isRegularFile(location)) {
            Files.copy(location, jar, StandardCopyOption.REPLACE_EXISTING);
            return jar;
        }
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
             Stream<Path> files = Files.walk(location)) {
            for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile).sorted()::iterator) {
                out.putNextEntry(new JarEntry(location.relativize(f).toString().replace('\\', '/')));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
        return jar;
    }

    private static List<X509Certificate> caChain(SwtpmProcess swtpm) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> chain = new ArrayList<>();
        for (Path p : List.of(swtpm.caCertificate(), swtpm.rootCertificate())) {
            try (InputStream in = Files.newInputStream(p)) {
                chain.add((X509Certificate) cf.generateCertificate(in));
            }
        }
        return chain;
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        new SecureRandom().nextBytes(b);
        return b;
    }

    private <T extends AutoCloseable> T keep(T resource) {
        synchronized (resources) { // the two hosts start at once
            resources.add(0, resource);
        }
        return resource;
    }

    /**
     * Runs {@code first} and {@code second} at once and returns their results in that order. Waits for both even when
     * one fails (what each started is kept and closed with the rig), then throws the first failure, the other one
     * suppressed; each step has deadlines of its own, and {@link #START_TIMEOUT} bounds the wait for both.
     */
    private static <T> List<T> both(String what, Callable<T> first, Callable<T> second) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "rig-start");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<T>> started = List.of(pool.submit(first), pool.submit(second));
            long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
            List<T> results = new ArrayList<>();
            Throwable failure = null;
            for (Future<T> f : started) {
                Throwable failed = null;
                try {
                    results.add(f.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS));
                } catch (ExecutionException e) {
                    failed = e.getCause() == null ? e : e.getCause();
                } catch (TimeoutException e) {
                    f.cancel(true);
                    failed = new IllegalStateException(what + ": not done within " + START_TIMEOUT.toSeconds()
                            + " s", e);
                }
                if (failed != null && failure == null) {
                    failure = failed;
                } else if (failed != null) {
                    failure.addSuppressed(failed);
                }
            }
            if (failure instanceof Error e) {
                throw e;
            } else if (failure instanceof Exception e) {
                throw e;
            } else if (failure != null) {
                throw new IllegalStateException(what + " failed", failure);
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    private void closeResources() {
        for (AutoCloseable r : resources) {
            try {
                r.close();
            } catch (Exception e) {
                // best effort while tearing down
            }
        }
        resources.clear();
    }

    @Override
    public void close() {
        closeResources();
        if (server != null) {
            server.close();
        }
    }
}
