package io.tpmphone.agent;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * What to launch: the JVM ({@code javaHome}), the class path (jars, in order), one configuration file, the main
 * class, JVM options and program arguments. The agent stages copies of the jars and the configuration in a private
 * directory, measures the copies, and runs the child there with relative names, so the measured command line is the
 * same on every launch of the same release and a policy can approve it.
 *
 * @param isolate run in new PID/mount/IPC namespaces with the code read-only (needs root or user namespaces)
 */
public record LaunchSpec(Path javaHome, List<Path> classPath, Path configFile, String mainClass,
                         List<String> jvmOptions, List<String> arguments, boolean isolate) {
    public LaunchSpec {
        Objects.requireNonNull(javaHome, "javaHome");
        classPath = List.copyOf(classPath);
        Objects.requireNonNull(configFile, "configFile");
        Objects.requireNonNull(mainClass, "mainClass");
        jvmOptions = List.copyOf(jvmOptions);
        arguments = List.copyOf(arguments);
        if (classPath.isEmpty()) {
            throw new IllegalArgumentException("the class path is empty");
        }
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Path jar : classPath) {
            String name = jar.getFileName().toString();
            if (!name.endsWith(".jar") || !names.add(name)) {
                throw new IllegalArgumentException("class path entries must be jars with distinct file names: " + name);
            }
        }
    }

    /** The JVM options every launch gets first: no attach mechanism, no perf-data file others could read. */
    public static final List<String> HARDENING_OPTIONS = List.of("-XX:+DisableAttachMechanism", "-XX:-UsePerfData");
}
