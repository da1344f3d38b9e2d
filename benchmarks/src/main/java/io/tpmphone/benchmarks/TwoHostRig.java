package io.tpmphone.benchmarks;

import io.tpmphone.agent.Agent;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.Broker;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.agent.ReleaseManifest;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.softphone.BrokerHostIdentity;
import io.tpmphone.softphone.SoftphoneMain;
import io.tpmphone.softphone.internal.BrokerClient;
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
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

/**
 * Two measured hosts on one machine, "alice" and "bob": each its own swtpm (with an EK certificate), agent and
 * measured softphone core; one attestation server (HTTPS, SQLite audit) trusting both EK CAs and approving the
 * softphone release that runs; and, per host, the softphone's view of its agent broker (identity, keys, audit
 * channel). For benchmarks, end-to-end tests and the demo. Closes everything it started.
 */
public final class TwoHostRig implements AutoCloseable {
    /** The admin token of the rig's server. */
    public static final String ADMIN_TOKEN = HexFormat.of().formatHex(randomBytes(24));
    /** The measurement PCR. */
    public static final int PCR = 14;

    /** One host as its softphone sees it. */
    public record Host(String name, Agent agent, TpmClient tpm, BrokerClient broker, BrokerHostIdentity identity) {
        /** SRTP keys and replay checks from this host's sealed keystore, through its broker. */
        public SipPhone.Keys keys() {
            return new SipPhone.Keys() {
                @Override
                public BrokerClient.SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
                    synchronized (broker) {
                        return broker.srtpKey(suite, callId);
                    }
                }

                @Override
                public void checkOffered(byte[] key, byte[] salt, String callId) throws IOException {
                    synchronized (broker) {
                        broker.checkOffered(key, salt, callId);
                    }
                }
            };
        }
    }

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final AttestationServer server;
    private final AttestationClient client;
    private final Host alice;
    private final Host bob;
    private final PassportVerifier verifier;
    private final LaunchSpec release;

    private TwoHostRig(Path dir) throws Exception {
        try {
            release = new LaunchSpec(Path.of(System.getProperty("java.home")), List.of(softphoneJar(dir)),
                    config(dir), SoftphoneMain.class.getName(), List.of(), List.of(), true);
            SwtpmProcess tpmA = keep(SwtpmProcess.builder().withEkCertificate(true).start());
            SwtpmProcess tpmB = keep(SwtpmProcess.builder().withEkCertificate(true).start());
            AttestationServer.Builder b = AttestationServer.builder().stateDirectory(dir.resolve("server"))
                    .adminToken(ADMIN_TOKEN).policy(policy(release)).clock(Clock.systemUTC());
            for (SwtpmProcess t : List.of(tpmA, tpmB)) {
                for (X509Certificate ca : caChain(t)) {
                    b.trustEkCa(ca);
                }
            }
            server = b.start();
            client = new AttestationClient(server.uri(), server.tlsCertificate(), Duration.ofSeconds(10));
            alice = host(dir, tpmA, "alice");
            bob = host(dir, tpmB, "bob");
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
        Files.createDirectories(directory);
        return new TwoHostRig(directory);
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

    /** An HTTPS client of the server, pinned to its certificate; admin calls take {@link #ADMIN_TOKEN}. */
    public AttestationClient client() {
        return client;
    }

    /** The passport verifier both softphones use: the server's result key and device CA. */
    public PassportVerifier verifier() {
        return verifier;
    }

    /** The measured softphone release the policy approves. */
    public LaunchSpec release() {
        return release;
    }

    private Host host(Path dir, SwtpmProcess swtpm, String name) throws Exception {
        TpmClient tpm = keep(TpmClient.open(TpmUri.parse(swtpm.tpmUri())));
        String token = client.post("/v1/enrollment-tokens", Map.of("host", name), ADMIN_TOKEN)
                .get("enrollmentToken").asText();
        Agent agent = keep(new Agent(tpm, client, dir.resolve(name), name, PCR, release, Duration.ofMinutes(2),
                Clock.systemUTC()).withEnrollmentToken(token));
        Agent.Status s = agent.start();
        if (!s.level().equals("MEASURED")) {
            throw new IllegalStateException(name + " is " + s.level() + ", not MEASURED: " + s.reasons());
        }
        Broker broker = keep(Broker.start(dir.resolve(name + "-broker"), agent.childService()));
        BrokerClient c = keep(BrokerClient.connect(broker.socketPath(), broker.token()));
        return new Host(name, agent, tpm, c, new BrokerHostIdentity(c));
    }

    private static String policy(LaunchSpec release) throws IOException {
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("version", 1);
        p.put("measurementPcr", PCR);
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of(0, 1, 2, 3, 4, 5, 6, 7));
        p.put("releases", List.of(ReleaseManifest.of("softphone", release)));
        p.put("requireIsolation", true);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", 300);
        return new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(p);
    }

    private static Path config(Path dir) throws IOException {
        Path c = dir.resolve("softphone.properties");
        Files.writeString(c, "sip.transport=tls\n", StandardCharsets.UTF_8);
        return c;
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
        resources.add(0, resource);
        return resource;
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
