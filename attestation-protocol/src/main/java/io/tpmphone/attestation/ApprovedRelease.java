package io.tpmphone.attestation;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * One approved softphone release in an {@link AttestationPolicy}: reference SHA-256 digests (lower-case hex) of its
 * JVM files by path, its class-path jars by file name and its configuration files by name, and the exact command
 * line. Immutable and thread-safe. Instances come from {@link AttestationPolicy#parse(String)}, which validates them.
 */
public final class ApprovedRelease {
    private final String name;
    private final Map<String, String> jvm;
    private final Map<String, String> jars;
    private final Map<String, String> configuration;
    private final List<String> commandLine;
    private final MeasuredCommandLine measuredCommandLine;

    ApprovedRelease(String name, Map<String, String> jvm, Map<String, String> jars,
            Map<String, String> configuration, List<String> commandLine) {
        this.name = Objects.requireNonNull(name, "name");
        this.jvm = Collections.unmodifiableMap(new TreeMap<>(jvm));
        this.jars = Collections.unmodifiableMap(new TreeMap<>(jars));
        this.configuration = Collections.unmodifiableMap(new TreeMap<>(configuration));
        this.commandLine = List.copyOf(commandLine);
        this.measuredCommandLine = MeasuredCommandLine.of(this.commandLine);
    }

    public String name() {
        return name;
    }

    /** JVM file path to approved digest (sorted, unmodifiable). */
    public Map<String, String> jvm() {
        return jvm;
    }

    /** Jar file name (as on the class path) to approved digest (sorted, unmodifiable). */
    public Map<String, String> jars() {
        return jars;
    }

    /** Configuration file name to approved digest (sorted, unmodifiable). */
    public Map<String, String> configuration() {
        return configuration;
    }

    /** The exact approved argument vector (unmodifiable). */
    public List<String> commandLine() {
        return commandLine;
    }

    /** {@link #commandLine()} as the agent measures it. */
    public MeasuredCommandLine measuredCommandLine() {
        return measuredCommandLine;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ApprovedRelease r && name.equals(r.name) && jvm.equals(r.jvm) && jars.equals(r.jars)
                && configuration.equals(r.configuration) && commandLine.equals(r.commandLine);
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, jvm, jars, configuration, commandLine);
    }

    @Override
    public String toString() {
        return "ApprovedRelease[" + name + ", " + jars.size() + " jar(s)]";
    }
}
