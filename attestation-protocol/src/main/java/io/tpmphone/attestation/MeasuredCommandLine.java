package io.tpmphone.attestation;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The measured command line of a softphone launch, version {@value #VERSION}: the exact argument vector the agent
 * runs the child with, as the {@link EventType#COMMAND_LINE} event records it and a policy release approves it
 * (docs/attestation.md §1). Every approved release names these bytes: a change to the layout or the encoding makes
 * every approved release fail at {@code configuration}, which is why {@code MeasuredCommandLineTest} pins them to
 * known answers.
 *
 * <p>Version 1:
 * <pre>
 * argv    = [ java launcher (real path), -XX:+DisableAttachMechanism, -XX:-UsePerfData, JVM options...,
 *             -cp, jar file names joined with ':', main class, --config, configuration file name, arguments... ]
 * data    = UTF-8 of argv joined with NUL (0x00), at most 4096 bytes, no NUL inside an argument
 * digest  = SHA-256(data)                         (the event's content digest)
 * </pre>
 * The version is the event type: a different layout or encoding gets a new event type, which a verifier of this
 * version refuses as unknown instead of misreading it. Immutable and thread-safe.
 */
public final class MeasuredCommandLine {
    /** The version of this contract; recorded as {@link #EVENT_TYPE}. */
    public static final int VERSION = 1;
    /** The event that records a version-1 command line. */
    public static final EventType EVENT_TYPE = EventType.COMMAND_LINE;
    /** The JVM options every launch gets first: no attach mechanism, no perf-data file others could read. */
    public static final List<String> HARDENING_OPTIONS = List.of("-XX:+DisableAttachMechanism", "-XX:-UsePerfData");
    /** The longest encoding: what one measurement event can hold. */
    public static final int MAX_LENGTH = MeasurementEvent.MAX_DATA_LENGTH;

    private static final byte SEPARATOR = 0;

    private final List<String> argv;
    private final byte[] encoded;

    private MeasuredCommandLine(List<String> argv, byte[] encoded) {
        this.argv = argv;
        this.encoded = encoded;
    }

    /**
     * The command line of a softphone launch (the layout above).
     *
     * @param javaLauncher   the real path of the {@code java} launcher
     * @param jvmOptions     options after {@link #HARDENING_OPTIONS}
     * @param classPathNames jar file names in class-path order: not empty, none empty or containing ':'
     * @param mainClass      the main class
     * @param configName     the configuration file's name
     * @param arguments      program arguments after {@code --config NAME}
     * @throws IllegalArgumentException naming the rule broken (see {@link #of(List)})
     */
    public static MeasuredCommandLine forLaunch(String javaLauncher, List<String> jvmOptions,
                                                List<String> classPathNames, String mainClass, String configName,
                                                List<String> arguments) {
        Objects.requireNonNull(javaLauncher, "javaLauncher");
        Objects.requireNonNull(mainClass, "mainClass");
        Objects.requireNonNull(configName, "configName");
        if (classPathNames.isEmpty()) {
            throw new IllegalArgumentException("the class path is empty");
        }
        for (String name : classPathNames) {
            if (name.isEmpty() || name.indexOf(':') >= 0) {
                throw new IllegalArgumentException("a class-path jar name is not empty and has no ':' (the"
                        + " separator), got '" + UntrustedText.forTerminal(name, 200) + "'");
            }
        }
        List<String> argv = new ArrayList<>();
        argv.add(javaLauncher);
        argv.addAll(HARDENING_OPTIONS);
        argv.addAll(jvmOptions);
        argv.add("-cp");
        argv.add(String.join(":", classPathNames));
        argv.add(mainClass);
        argv.add("--config");
        argv.add(configName);
        argv.addAll(arguments);
        return of(argv);
    }

    /**
     * An exact argument vector (e.g. a policy's approved one).
     *
     * @throws IllegalArgumentException if it is empty, an argument holds NUL, or the encoding is longer than
     *                                  {@link #MAX_LENGTH} bytes
     */
    public static MeasuredCommandLine of(List<String> argv) {
        List<String> copy = List.copyOf(argv);
        if (copy.isEmpty()) {
            throw new IllegalArgumentException("the command line is empty; give the exact argv");
        }
        for (int i = 0; i < copy.size(); i++) {
            if (copy.get(i).indexOf('\0') >= 0) {
                throw new IllegalArgumentException("command line argument " + i + " contains NUL");
            }
        }
        byte[] encoded = String.join("\0", copy).getBytes(StandardCharsets.UTF_8);
        if (encoded.length > MAX_LENGTH) {
            throw new IllegalArgumentException("the command line is " + encoded.length + " bytes; a measured"
                    + " command line holds at most " + MAX_LENGTH + " (UTF-8, arguments separated by NUL): use fewer"
                    + " or shorter JVM options, arguments or jar names");
        }
        return new MeasuredCommandLine(copy, encoded);
    }

    /**
     * Reads the data of a {@link EventType#COMMAND_LINE} event: at most {@link #MAX_LENGTH} bytes of well-formed
     * UTF-8, arguments separated by NUL.
     *
     * @throws MalformedStructureException if it is too long or not well-formed UTF-8
     */
    public static MeasuredCommandLine decode(byte[] data) throws MalformedStructureException {
        Objects.requireNonNull(data, "data");
        if (data.length > MAX_LENGTH) {
            throw new MalformedStructureException("MeasuredCommandLine", "data", MalformedStructureException.NO_OFFSET,
                    data.length + " bytes; at most " + MAX_LENGTH);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(data)).toString();
        } catch (CharacterCodingException e) {
            throw new MalformedStructureException("MeasuredCommandLine", "data", MalformedStructureException.NO_OFFSET,
                    "not well-formed UTF-8", e);
        }
        return new MeasuredCommandLine(List.of(text.split("\0", -1)), data.clone());
    }

    /** The argument vector (unmodifiable). */
    public List<String> argv() {
        return argv;
    }

    /** The measured bytes: UTF-8 of the arguments joined with NUL (a copy). */
    public byte[] encoded() {
        return encoded.clone();
    }

    /** The event's content digest: SHA-256 of {@link #encoded()}. */
    public byte[] digest() {
        return MeasurementEvent.HASH.digest(encoded);
    }

    /** Whether {@code data} is exactly this command line's encoding. */
    public boolean matches(byte[] data) {
        return Arrays.equals(encoded, Objects.requireNonNull(data, "data"));
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MeasuredCommandLine c && Arrays.equals(encoded, c.encoded);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encoded);
    }

    @Override
    public String toString() {
        return "MeasuredCommandLine[" + argv.size() + " arguments, " + encoded.length + " bytes]";
    }
}
