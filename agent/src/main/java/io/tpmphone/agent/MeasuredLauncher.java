package io.tpmphone.agent;

import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.tpm.TpmException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Measured launch of the softphone core. Before the child runs, in this order, each one event and one
 * {@code PCR_Extend}: the Java launcher and {@code libjvm.so} (JVM), every jar of the class path (CLASSPATH_JAR),
 * the configuration (CONFIGURATION), the exact argument vector (COMMAND_LINE), the isolation applied (ISOLATION),
 * then LAUNCH. When the child exits: TERMINATED, so that nothing later can present the launch-time PCR value.
 *
 * <p>The child gets an empty environment (no {@code JAVA_TOOL_OPTIONS} and the like), the hardening options of
 * {@link LaunchSpec#HARDENING_OPTIONS} and, when isolated, new PID, mount and IPC namespaces with its code directory
 * re-mounted read-only ({@code unshare --pid --fork --mount --ipc --mount-proc --kill-child}).
 */
public final class MeasuredLauncher {
    private static final Logger LOG = LoggerFactory.getLogger(MeasuredLauncher.class);
    /** The wrapper that isolates the child; measured as the ISOLATION event's data. */
    static final String ISOLATION = "unshare --pid --fork --mount --ipc --mount-proc --kill-child; code dir ro-bind";

    private final MeasurementLogStore store;
    private final Path stagingRoot;

    public MeasuredLauncher(MeasurementLogStore store, Path stagingRoot) {
        this.store = store;
        this.stagingRoot = stagingRoot;
    }

    /** A running, measured child. */
    public record Launched(Process process, Path codeDirectory, List<MeasurementEvent> events,
                           CompletableFuture<MeasurementEvent> terminated) {
    }

    /**
     * The argument vector the child runs with (what COMMAND_LINE measures): the real path of the Java launcher, the
     * hardening options, the spec's JVM options, {@code -cp} with the jar file names, the main class, {@code --config}
     * with the configuration file name, then the arguments.
     */
    public static List<String> commandLine(LaunchSpec spec) throws IOException {
        List<String> argv = new ArrayList<>();
        argv.add(javaLauncher(spec).toString());
        argv.addAll(LaunchSpec.HARDENING_OPTIONS);
        argv.addAll(spec.jvmOptions());
        argv.add("-cp");
        List<String> names = new ArrayList<>();
        for (Path jar : spec.classPath()) {
            names.add(jar.getFileName().toString());
        }
        argv.add(String.join(":", names));
        argv.add(spec.mainClass());
        argv.add("--config");
        argv.add(spec.configFile().getFileName().toString());
        argv.addAll(spec.arguments());
        return argv;
    }

    /** The files of the JVM that are measured: the launcher and libjvm, by real path. */
    public static List<Path> jvmFiles(LaunchSpec spec) throws IOException {
        Path home = spec.javaHome().toRealPath();
        List<Path> files = new ArrayList<>();
        files.add(javaLauncher(spec));
        Path libjvm = home.resolve("lib/server/libjvm.so");
        if (Files.exists(libjvm)) {
            files.add(libjvm.toRealPath());
        }
        return files;
    }

    private static Path javaLauncher(LaunchSpec spec) throws IOException {
        return spec.javaHome().resolve("bin/java").toRealPath();
    }

    /**
     * Stages, measures and starts the child. {@code environment} is all the child gets (e.g. the broker socket).
     */
    public synchronized Launched launch(LaunchSpec spec, Map<String, String> environment)
            throws IOException, TpmException {
        Path code = stage(spec);
        List<MeasurementEvent> events = new ArrayList<>();
        for (Path jvm : jvmFiles(spec)) {
            events.add(store.measureFile(EventType.JVM, jvm, jvm.toString()));
        }
        for (Path jar : spec.classPath()) {
            String name = jar.getFileName().toString();
            events.add(store.measureFile(EventType.CLASSPATH_JAR, code.resolve(name), name));
        }
        String configName = spec.configFile().getFileName().toString();
        events.add(store.measureFile(EventType.CONFIGURATION, code.resolve(configName), configName));
        List<String> argv = commandLine(spec);
        String joined = String.join("\0", argv);
        events.add(store.measure(EventType.COMMAND_LINE,
                HashAlgorithm.SHA256.digest(joined.getBytes(StandardCharsets.UTF_8)), joined));
        if (spec.isolate()) {
            events.add(store.measure(EventType.ISOLATION,
                    HashAlgorithm.SHA256.digest(ISOLATION.getBytes(StandardCharsets.UTF_8)), ISOLATION));
        }
        List<String> command = new ArrayList<>();
        if (spec.isolate()) {
            command.addAll(List.of("unshare", "--pid", "--fork", "--mount", "--ipc", "--mount-proc", "--kill-child",
                    "--", "/bin/sh", "-c", "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\""
                            + " && cd \"$1\" && shift && exec \"$@\"", "launch", code.toString()));
        }
        command.addAll(argv);
        ProcessBuilder pb = new ProcessBuilder(command).directory(code.toFile())
                .redirectOutput(ProcessBuilder.Redirect.appendTo(stagingRoot.resolve("child.log").toFile()))
                .redirectErrorStream(true);
        pb.environment().clear();
        pb.environment().put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        pb.environment().putAll(environment);
        Process process = pb.start();
        events.add(store.measure(EventType.LAUNCH,
                HashAlgorithm.SHA256.digest(Long.toString(process.pid()).getBytes(StandardCharsets.US_ASCII)),
                "pid " + process.pid()));
        LOG.info("launched {} (pid {}), {} measurements in PCR {}", spec.mainClass(), process.pid(), events.size(),
                store.pcr());
        CompletableFuture<MeasurementEvent> terminated = process.onExit().thenApply(p -> {
            try {
                String status = "exit " + p.exitValue();
                MeasurementEvent e = store.measure(EventType.TERMINATED,
                        HashAlgorithm.SHA256.digest(status.getBytes(StandardCharsets.US_ASCII)), status);
                LOG.info("softphone core {} ({}); PCR {} capped", spec.mainClass(), status, store.pcr());
                return e;
            } catch (IOException | TpmException ex) {
                throw new java.util.concurrent.CompletionException(ex);
            }
        });
        return new Launched(process, code, List.copyOf(events), terminated);
    }

    /** Copies the jars and the configuration into a fresh private directory; the copies are what is measured. */
    private Path stage(LaunchSpec spec) throws IOException {
        Files.createDirectories(stagingRoot);
        Path code = Files.createTempDirectory(stagingRoot, "code-");
        try {
            Files.setPosixFilePermissions(code, PosixFilePermissions.fromString("rwx------"));
        } catch (UnsupportedOperationException e) {
            LOG.warn("cannot restrict {} to its owner on this file system", code);
        }
        Map<String, Path> files = new LinkedHashMap<>();
        for (Path jar : spec.classPath()) {
            files.put(jar.getFileName().toString(), jar);
        }
        files.put(spec.configFile().getFileName().toString(), spec.configFile());
        for (Map.Entry<String, Path> f : files.entrySet()) {
            Files.copy(f.getValue(), code.resolve(f.getKey()), StandardCopyOption.COPY_ATTRIBUTES);
        }
        return code;
    }
}
