package io.tpmphone.softphone.media;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jitsi.service.libjitsi.LibJitsi;
import org.jitsi.service.neomedia.MediaService;

/**
 * libjitsi, started once per process, headless: the PortAudio, PulseAudio and Video4Linux2 device systems are
 * disabled (there is no sound card; capture and playback are our own devices) and AWT is headless. Thread-safe.
 */
public final class MediaEngine {
    private static final String HOME_LOCATION = "net.java.sip.communicator.SC_HOME_DIR_LOCATION";
    private static MediaService service;

    private MediaEngine() {
    }

    private static void deleteTree(Path root) {
        try (java.util.stream.Stream<Path> s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        } catch (IOException | UncheckedIOException e) {
            // best effort at exit: a leftover temporary directory harms nothing
        }
    }

    /** The media service, starting libjitsi on first use. */
    public static synchronized MediaService service() {
        if (service == null) {
            for (String system : List.of("PortAudioSystem", "PulseAudioSystem", "Video4Linux2System")) {
                System.setProperty("org.jitsi.impl.neomedia.device." + system + ".disabled", "true");
            }
            System.setProperty("java.awt.headless", "true");
            // libjitsi keeps a configuration store under the user's home; the measured softphone runs as an
            // unprivileged user without one, and wants no persistent media state anyway: a private directory per
            // process, unless the embedding application chose one.
            if (System.getProperty(HOME_LOCATION) == null) {
                try {
                    Path home = Files.createTempDirectory("tpmphone-media");
                    // deleteOnExit cannot remove a non-empty directory: the whole tree goes when the JVM exits
                    Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(home), "libjitsi-home-cleanup"));
                    System.setProperty(HOME_LOCATION, home.toString());
                    System.setProperty("net.java.sip.communicator.SC_HOME_DIR_NAME", "libjitsi");
                    System.setProperty("net.java.sip.communicator.SC_CACHE_DIR_LOCATION", home.toString());
                    System.setProperty("net.java.sip.communicator.SC_LOG_DIR_LOCATION", home.toString());
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot create libjitsi's private directory", e);
                }
            }
            LibJitsi.start();
            service = LibJitsi.getMediaService();
        }
        return service;
    }
}
