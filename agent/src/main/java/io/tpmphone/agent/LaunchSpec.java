package io.tpmphone.agent;

import io.tpmphone.attestation.MeasuredCommandLine;
import io.tpmphone.attestation.MeasurementEvent;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * What to launch: the JVM ({@code javaHome}), the class path (jars, in order), one configuration file, the main
 * class, JVM options and program arguments, and the user the child runs as. The agent stages copies of the jars and
 * the configuration in a private directory, measures the copies, and runs the child there with relative names, so
 * the measured command line is the same on every launch of the same release and a policy can approve it.
 *
 * <p>Validated on construction: the jars and the configuration have distinct file names (they are staged side by
 * side), and the command line fits in one measurement event ({@link MeasurementEvent#MAX_DATA_LENGTH} bytes).
 * Immutable.
 *
 * @param isolate   run in new PID/mount/IPC namespaces with the code read-only and, after that set-up, as
 *                  {@code childUser} without capabilities and with {@code no_new_privs} (needs root)
 * @param childUser the unprivileged user (name or numeric uid) the isolated child runs as; never root
 * @param nativeLibraries shared libraries the child loads (libjitsi's audio and Opus binding): staged in
 *                  {@value #NATIVE_DIRECTORY}/ beside the jars, measured like them (named
 *                  {@code native/FILE}), and found there through {@code -Djava.library.path=native}
 * @param soundClient the child is a PulseAudio client of the sound server its agent grants during calls: the
 *                  release approves the client configuration the launcher writes for it
 *                  ({@value MeasuredLauncher#PULSE_CLIENT_CONFIG}, measured as a configuration file), so a launch
 *                  with another one, or with one the release does not expect, is not MEASURED
 */
public record LaunchSpec(Path javaHome, List<Path> classPath, Path configFile, String mainClass,
                         List<String> jvmOptions, List<String> arguments, boolean isolate, String childUser,
                         List<Path> nativeLibraries, boolean soundClient) {
    /** The directory of the staged code tree that holds the native libraries (the child's library path). */
    public static final String NATIVE_DIRECTORY = "native";
    /**
     * The user an isolated child runs as unless the spec says otherwise: a dedicated system user, created by the
     * launcher when missing ({@link MeasuredLauncher#resolveChildUser}). Two softphones on one machine need two users
     * ({@link #childUserFor}).
     */
    public static final String DEFAULT_CHILD_USER = "tpmphone-softphone";
    /** The prefix of the dedicated users the launcher creates when they do not exist yet. */
    public static final String DEDICATED_USER_PREFIX = "tpmphone-";

    /** The JVM options every launch gets first: no attach mechanism, no perf-data file others could read. */
    public static final List<String> HARDENING_OPTIONS = MeasuredCommandLine.HARDENING_OPTIONS;

    private static final Pattern USER = Pattern.compile("[a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10}");

    public LaunchSpec {
        Objects.requireNonNull(javaHome, "javaHome");
        classPath = List.copyOf(classPath);
        Objects.requireNonNull(configFile, "configFile");
        Objects.requireNonNull(mainClass, "mainClass");
        jvmOptions = List.copyOf(jvmOptions);
        arguments = List.copyOf(arguments);
        Objects.requireNonNull(childUser, "childUser");
        nativeLibraries = List.copyOf(nativeLibraries);
        Set<String> libraries = new HashSet<>();
        for (Path lib : nativeLibraries) {
            String name = lib.getFileName().toString();
            if (!name.matches("lib[A-Za-z0-9_.+-]{1,100}\\.so") || !libraries.add(name)) {
                throw new IllegalArgumentException("native libraries must be lib*.so files with distinct names: "
                        + name);
            }
        }
        if (classPath.isEmpty()) {
            throw new IllegalArgumentException("the class path is empty");
        }
        Set<String> names = new HashSet<>();
        for (Path jar : classPath) {
            String name = jar.getFileName().toString();
            if (!name.endsWith(".jar") || !names.add(name)) {
                throw new IllegalArgumentException("class path entries must be jars with distinct file names: " + name);
            }
        }
        String configName = configFile.getFileName().toString();
        if (soundClient && configName.equals(MeasuredLauncher.PULSE_CLIENT_CONFIG)) {
            throw new IllegalArgumentException("the configuration file is named " + configName + ", the name of the"
                    + " PulseAudio client configuration the launcher stages beside it: rename it");
        }
        if (names.contains(configName)) {
            throw new IllegalArgumentException("the configuration file " + configName + " has the name of a jar on"
                    + " the class path; both are staged in one directory, so one would overwrite the other: rename"
                    + " the configuration file");
        }
        if (!USER.matcher(childUser).matches()) {
            throw new IllegalArgumentException("childUser must be a user name or a numeric uid, got '" + childUser
                    + "'");
        }
        if (childUser.equals("root") || childUser.matches("0+")) {
            throw new IllegalArgumentException("the child must not run as root: name an unprivileged user such as "
                    + DEFAULT_CHILD_USER);
        }
        if (childUser.equals("nobody") || childUser.equals("65534")) {
            throw new IllegalArgumentException("the child must not run as nobody, a user other services share (any"
                    + " of them could take over the softphone's broker session): name a user of its own such as "
                    + DEFAULT_CHILD_USER + ", which the agent creates");
        }
        // The measured command line must fit in one event; the launcher checks again with the launcher's real path.
        MeasuredCommandLine.forLaunch(javaHome.resolve("bin/java").toString(), jvmOptions, classPathNames(classPath),
                mainClass, configName, arguments);
    }

    /** A spec without native libraries. */
    public LaunchSpec(Path javaHome, List<Path> classPath, Path configFile, String mainClass, List<String> jvmOptions,
                      List<String> arguments, boolean isolate, String childUser) {
        this(javaHome, classPath, configFile, mainClass, jvmOptions, arguments, isolate, childUser, List.of(), false);
    }

    /** A spec whose isolated child runs as {@link #DEFAULT_CHILD_USER}. */
    public LaunchSpec(Path javaHome, List<Path> classPath, Path configFile, String mainClass, List<String> jvmOptions,
                      List<String> arguments, boolean isolate) {
        this(javaHome, classPath, configFile, mainClass, jvmOptions, arguments, isolate, DEFAULT_CHILD_USER);
    }

    /**
     * The dedicated user for the softphone of host {@code host}: {@code tpmphone-READABLE-HASH}, at most 32 characters
     * (Linux's limit), valid for {@code useradd} (lower-case letters, digits, '_' and '-', starting with a letter).
     * READABLE is the host name lower-cased, every other character as '-', cut at {@value #READABLE_HOST_CHARS}
     * characters: only for people reading {@code ps}. HASH is the first 60 bits of SHA-256 over the exact host name
     * (UTF-8), as 12 base32 characters (RFC 4648 alphabet, lower case), so hosts that read alike ({@code Host1} and
     * {@code host1}, {@code a b} and {@code a/b}, long names that differ only after the cut) get users of their own:
     * two hosts share a user only if their hashes collide (2<sup>-60</sup> for a pair).
     */
    public static String childUserFor(String host) {
        Objects.requireNonNull(host, "host");
        String readable = host.toLowerCase(java.util.Locale.ROOT).replaceAll("[^a-z0-9_-]", "-");
        if (readable.length() > READABLE_HOST_CHARS) {
            readable = readable.substring(0, READABLE_HOST_CHARS);
        }
        return DEDICATED_USER_PREFIX + readable + "-" + hostHash(host);
    }

    /** How much of the host name {@link #childUserFor} keeps: 32 - "tpmphone-" - "-" - 12 hash characters. */
    static final int READABLE_HOST_CHARS = 32 - 9 - 1 - 12;

    private static String hostHash(String host) {
        byte[] digest = io.tpmphone.attestation.HashAlgorithm.SHA256.digest(host.getBytes(StandardCharsets.UTF_8));
        long bits = java.nio.ByteBuffer.wrap(digest).getLong(); // the first 64 bits; 60 of them are used
        String alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        StringBuilder out = new StringBuilder(12);
        for (int i = 0; i < 12; i++) {
            out.append(alphabet.charAt((int) (bits >>> (59 - 5 * i)) & 31)); // bits 63..4, five at a time
        }
        return out.toString();
    }

    /** This spec with its isolated child running as {@code user}. */
    public LaunchSpec withChildUser(String user) {
        return new LaunchSpec(javaHome, classPath, configFile, mainClass, jvmOptions, arguments, isolate, user,
                nativeLibraries, soundClient);
    }

    /** This spec with {@code libraries} staged and measured for the child ({@link #nativeLibraries}). */
    public LaunchSpec withNativeLibraries(List<Path> libraries) {
        return new LaunchSpec(javaHome, classPath, configFile, mainClass, jvmOptions, arguments, isolate, childUser,
                libraries, soundClient);
    }

    /** This spec with its child a client of the granted sound server, or not ({@link #soundClient}). */
    public LaunchSpec withSoundClient(boolean client) {
        return new LaunchSpec(javaHome, classPath, configFile, mainClass, jvmOptions, arguments, isolate, childUser,
                nativeLibraries, client);
    }

    /** How a native library is named in the measurement log and a release: {@code native/FILE}. */
    public static String nativeName(Path library) {
        return NATIVE_DIRECTORY + "/" + library.getFileName();
    }

    /** The file names of {@code classPath}, in order: what the measured command line's {@code -cp} lists. */
    static List<String> classPathNames(List<Path> classPath) {
        List<String> names = new ArrayList<>();
        for (Path jar : classPath) {
            names.add(jar.getFileName().toString());
        }
        return names;
    }
}
