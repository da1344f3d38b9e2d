package io.tpmphone.softphone.media;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The native libraries real audio needs from libjitsi's jar: libpulse's binding ({@code libjnpulseaudio.so}) and the
 * Opus codec ({@code libjnopus.so}). libjitsi's own loader extracts them to a temporary file at first use, which fails
 * on Java 17 in the measured child ({@code UnsatisfiedLinkError: Directory separator should not appear in library
 * name}) and would run code nobody measured. The agent instead {@link #extract extracts} them into the measured code
 * tree, where they are measured like the jars, and names that directory in {@code -Djava.library.path}; the process
 * then loads them from there ({@link #ensureLoaded}), and libjitsi's loader finds them loaded. Thread-safe.
 */
public final class NativeLibraries {
    /** The libraries, by the name {@link System#loadLibrary} takes. */
    public static final List<String> NAMES = List.of("jnpulseaudio", "jnopus");
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(NativeLibraries.class);
    private static boolean loaded;

    private NativeLibraries() {
    }

    /** libjitsi's directory in its jar for this machine (linux-x86-64, linux-aarch64, ...). */
    static String platformDirectory() {
        String arch = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
        String a = switch (arch) {
            case "amd64", "x86_64" -> "x86-64";
            case "aarch64", "arm64" -> "aarch64";
            case "ppc64le" -> "ppc64le";
            case "x86", "i386", "i686" -> "x86";
            default -> arch;
        };
        return "linux-" + a;
    }

    /**
     * Writes the libraries for this machine into {@code directory} (created if needed; files mode 0644) and returns
     * their paths, in {@link #NAMES} order.
     *
     * @throws IOException if libjitsi's jar has none for this machine, naming the platform
     */
    public static List<Path> extract(Path directory) throws IOException {
        Files.createDirectories(directory);
        List<Path> out = new ArrayList<>();
        for (String name : NAMES) {
            String file = System.mapLibraryName(name);
            String resource = platformDirectory() + "/" + file;
            try (InputStream in = org.jitsi.service.libjitsi.LibJitsi.class.getClassLoader()
                    .getResourceAsStream(resource)) {
                if (in == null) {
                    throw new IOException("libjitsi has no " + resource + " for this machine (" + platformDirectory()
                            + "): real audio is not available here; use the tone device (media.audio=tone)");
                }
                Path target = directory.resolve(file);
                Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
                try {
                    Files.setPosixFilePermissions(target,
                            java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
                } catch (UnsupportedOperationException e) {
                    // not a POSIX file system: the default permissions stay
                }
                out.add(target);
            }
        }
        return out;
    }

    /**
     * Loads the libraries from {@code java.library.path} (the measured code tree) once. In a process started without
     * them there (a test, an embedding application), libjitsi's own loader extracts them when they are first used;
     * on Java 17 that needs {@code --add-opens java.base/java.lang=ALL-UNNAMED}.
     */
    public static synchronized void ensureLoaded() {
        if (loaded) {
            return;
        }
        try {
            for (String name : NAMES) {
                System.loadLibrary(name);
            }
        } catch (UnsatisfiedLinkError notOnPath) {
            LOG.debug("libjitsi's native libraries are not on java.library.path ({}): libjitsi extracts them",
                    notOnPath.getMessage());
        }
        loaded = true;
    }
}
