package io.tpmphone.agent;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The policy entry that approves one softphone release: what {@link MeasuredLauncher} measures for a
 * {@link LaunchSpec} — the JVM as {@code java.home}'s real path with its tree digest
 * ({@link MeasuredLauncher#treeDigest}), jars (native libraries as {@code native/FILE}) and configuration by file name
 * with their SHA-256 (with {@link LaunchSpec#soundClient()} also the PulseAudio client configuration the launcher
 * writes, {@value MeasuredLauncher#PULSE_CLIENT_CONFIG}), and the exact command
 * line. {@code tpmphone policy approve} prints it; operators add it to the policy's {@code releases}.
 */
public final class ReleaseManifest {
    private ReleaseManifest() {
    }

    public static Map<String, Object> of(String name, LaunchSpec spec) throws IOException {
        Map<String, Object> release = new LinkedHashMap<>();
        release.put("name", name);
        MeasuredLauncher.JvmDigest jvm = MeasuredLauncher.jvmDigest(spec);
        release.put("jvm", Map.of(jvm.javaHome(), jvm.digestHex()));
        Map<String, String> jars = new LinkedHashMap<>();
        for (Path jar : spec.classPath()) {
            jars.put(jar.getFileName().toString(), hex(jar));
        }
        for (Path lib : spec.nativeLibraries()) {
            jars.put(LaunchSpec.nativeName(lib), hex(lib));
        }
        release.put("jars", jars);
        Map<String, String> configuration = new LinkedHashMap<>();
        configuration.put(spec.configFile().getFileName().toString(), hex(spec.configFile()));
        if (spec.soundClient()) {
            // the PulseAudio client configuration the launcher writes for the child: measured like the other one
            configuration.put(MeasuredLauncher.PULSE_CLIENT_CONFIG, HexFormat.of().formatHex(
                    io.tpmphone.attestation.HashAlgorithm.SHA256.digest(MeasuredLauncher.pulseClientConfig())));
        }
        release.put("configuration", configuration);
        List<String> argv = MeasuredLauncher.commandLine(spec);
        release.put("commandLine", argv);
        return release;
    }

    private static String hex(Path file) throws IOException {
        return HexFormat.of().formatHex(MeasurementLogStore.sha256(file));
    }
}
