package io.tpmphone.agent;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.softphone.BrokerProbe;
import io.tpmphone.swtpm.SwtpmProcess;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

/**
 * Shared set-up of the end-to-end tests: a policy for the real child, a server that trusts the swtpm's EK CA. Public in
 * the agent's test-jar, for other modules' end-to-end tests.
 */
public final class Fixture {
    public static final String ADMIN_TOKEN = "admin-token-for-tests-0123456789";
    public static final int PCR = 14;

    private Fixture() {
    }

    /** The softphone-core classes as a jar (a classes directory in IDE runs is packed into one). */
    public static Path softphoneJar(Path dir) throws IOException {
        Path location;
        try {
            location = Path.of(BrokerProbe.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IOException(e);
        }
        Path jar = dir.resolve("softphone-core.jar");
        if (Files.isRegularFile(location)) {
            Files.copy(location, jar, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            return jar;
        }
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
             Stream<Path> files = Files.walk(location)) {
            for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
                out.putNextEntry(new JarEntry(location.relativize(f).toString().replace('\\', '/')));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
        return jar;
    }

    /**
     * A jar named {@code NAME.jar} in {@code dir} holding the single class {@code main} (from the test classes), to
     * launch as a stand-in child; {@code main} must need no other class of ours (no nested classes).
     */
    public static Path jarOf(Path dir, Class<?> main) throws IOException {
        String entry = main.getName().replace('.', '/') + ".class";
        Path jar = dir.resolve(main.getSimpleName() + ".jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
             InputStream in = main.getClassLoader().getResourceAsStream(entry)) {
            if (in == null) {
                throw new IOException("no " + entry + " on the class path");
            }
            out.putNextEntry(new JarEntry(entry));
            in.transferTo(out);
            out.closeEntry();
        }
        return jar;
    }

    public static LaunchSpec spec(Path jar, Path config, List<String> jvmOptions) {
        return new LaunchSpec(Path.of(System.getProperty("java.home")), List.of(jar), config,
                BrokerProbe.class.getName(), jvmOptions, List.of(), true);
    }

    public static String policy(int version, LaunchSpec approved) throws IOException {
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("version", version);
        p.put("measurementPcr", PCR);
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of(0, 1, 2, 3, 4, 5, 6, 7));
        p.put("releases", List.of(ReleaseManifest.of("softphone-test", approved)));
        p.put("requireIsolation", true);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", 300);
        return new ObjectMapper().writeValueAsString(p);
    }

    public static List<X509Certificate> caChain(SwtpmProcess swtpm) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> chain = new ArrayList<>();
        for (Path p : List.of(swtpm.caCertificate(), swtpm.rootCertificate())) {
            try (InputStream in = Files.newInputStream(p)) {
                chain.add((X509Certificate) cf.generateCertificate(in));
            }
        }
        return chain;
    }

    public static AttestationServer server(Path state, SwtpmProcess swtpm, String policy, Clock clock) throws Exception {
        AttestationServer.Builder b = AttestationServer.builder().stateDirectory(state).adminToken(ADMIN_TOKEN)
                .policy(policy).clock(clock)
                // Every refusal its own record: these tests look at the record of each attack they make.
                .refusalWindow(Duration.ZERO);
        for (X509Certificate c : caChain(swtpm)) {
            b.trustEkCa(c);
        }
        return b.start();
    }

    public static AttestationClient client(AttestationServer server) throws Exception {
        return new AttestationClient(server.uri(), server.tlsCertificate(), Duration.ofSeconds(10));
    }

    /** An operator's enrollment token for a new host name. */
    public static String enrollmentToken(AttestationClient client, String host) throws Exception {
        return client.post("/v1/enrollment-tokens", Map.of("host", host), ADMIN_TOKEN).get("enrollmentToken").asText();
    }

    public static Path config(Path dir, String content) throws IOException {
        Path c = dir.resolve("softphone.properties");
        Files.writeString(c, content, StandardCharsets.UTF_8);
        return c;
    }
}
