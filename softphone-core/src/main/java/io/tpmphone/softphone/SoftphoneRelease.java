package io.tpmphone.softphone;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The class path of the measured softphone process: the softphone-core jar, then its runtime dependencies in the
 * order Maven resolved them (recorded at build time in {@code META-INF/tpmphone/runtime-classpath.txt}), each found
 * by file name on the class path of the JVM that launches it (the CLI's {@code lib/}, or a test's class path). The
 * agent stages and measures exactly these jars.
 */
public final class SoftphoneRelease {
    /**
     * The JVM option that gives the measured softphone its own logging configuration ({@code
     * tpmphone-softphone-logback.xml}, a resource of this module). It is part of the measured command line, so PCR 14
     * of every host and every approved release depend on these exact bytes: changing it is a new release that
     * operators must approve ({@code SoftphoneReleaseTest} pins it).
     */
    public static final String LOGGING_OPTION = "-Dlogback.configurationFile=tpmphone-softphone-logback.xml";

    private static final String RESOURCE = "/META-INF/tpmphone/runtime-classpath.txt";

    private SoftphoneRelease() {
    }

    /** The dependency jars' file names, in class-path order. */
    public static List<String> dependencyNames() throws IOException {
        try (InputStream in = SoftphoneRelease.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IOException(RESOURCE + " is missing from softphone-core: rebuild it with Maven");
            }
            List<String> names = new ArrayList<>();
            for (String entry : new String(in.readAllBytes(), StandardCharsets.UTF_8).trim().split(":")) {
                if (!entry.isBlank()) {
                    names.add(Path.of(entry.trim()).getFileName().toString());
                }
            }
            return names;
        }
    }

    /**
     * The full class path: {@code softphoneJar} (the softphone-core jar itself) followed by every dependency, found
     * on {@code java.class.path}.
     *
     * @throws IOException naming the jars that are not on this JVM's class path
     */
    public static List<Path> classPath(Path softphoneJar) throws IOException {
        Map<String, Path> available = new LinkedHashMap<>();
        for (String entry : System.getProperty("java.class.path", "").split(java.io.File.pathSeparator)) {
            if (entry.endsWith(".jar")) {
                Path p = Path.of(entry);
                available.putIfAbsent(p.getFileName().toString(), p);
            }
        }
        List<Path> out = new ArrayList<>();
        out.add(softphoneJar);
        List<String> missing = new ArrayList<>();
        for (String name : dependencyNames()) {
            Path p = available.get(name);
            if (p == null || !Files.isRegularFile(p)) {
                missing.add(name);
            } else {
                out.add(p);
            }
        }
        if (!missing.isEmpty()) {
            throw new IOException("the softphone's dependencies " + missing + " are not on this JVM's class path");
        }
        return out;
    }

    /** Where the softphone-core classes of this JVM come from (a jar, or a classes directory in a reactor build). */
    public static Path codeLocation() throws IOException {
        try {
            return Path.of(SoftphoneRelease.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IOException(e);
        }
    }
}
