package io.tpmphone.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.agent.ReleaseManifest;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The softphone release every benchmark host launches, and the policy that approves it: the JVM of this process
 * (launcher and libjvm), three real jars of this class path, a configuration file and the hardened command line,
 * isolated. The same shape as a production launch, so the event log and the policy are of realistic size.
 */
final class Release {
    static final int MEASUREMENT_PCR = 14;
    static final String MAIN_CLASS = "io.tpmphone.softphone.SoftphoneMain";

    private Release() {
    }

    /** The launch: three jars of the class path (they must be jar files: run from {@code target/lib}). */
    static LaunchSpec spec(Path workDirectory) throws IOException {
        List<Path> jars = new ArrayList<>();
        for (Class<?> c : List.of(io.tpmphone.attestation.MeasurementLog.class, ObjectMapper.class,
                org.slf4j.Logger.class)) {
            jars.add(jarOf(c));
        }
        Files.createDirectories(workDirectory);
        Path config = workDirectory.resolve("softphone.properties");
        Files.writeString(config, "sip.port=5061\nsip.transport=tls\nmedia.srtp=required\n", StandardCharsets.UTF_8);
        return new LaunchSpec(Path.of(System.getProperty("java.home")), jars, config, MAIN_CLASS, List.of("-Xmx256m"),
                List.of(), true);
    }

    /** The policy document (JSON) that approves {@code spec} and asks for the boot PCRs 0-7 and isolation. */
    static String policy(LaunchSpec spec) throws IOException {
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("version", 1);
        p.put("measurementPcr", MEASUREMENT_PCR);
        p.put("pcrBank", "sha256");
        p.put("bootPcrs", List.of(0, 1, 2, 3, 4, 5, 6, 7));
        p.put("releases", List.of(ReleaseManifest.of("softphone-bench", spec)));
        p.put("requireIsolation", true);
        p.put("nonceTtlSeconds", 30);
        p.put("resultTtlSeconds", 300);
        return new ObjectMapper().writeValueAsString(p);
    }

    private static Path jarOf(Class<?> c) throws IOException {
        Path location;
        try {
            location = Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IOException(e);
        }
        if (!Files.isRegularFile(location) || !location.getFileName().toString().endsWith(".jar")) {
            throw new IllegalStateException(c.getName() + " was loaded from " + location + ", not a jar: run the"
                    + " benchmarks from benchmarks/target/lib (see benchmarks/README.md)");
        }
        return location;
    }
}
