package io.tpmphone.softphone.media;

import java.util.List;
import org.jitsi.service.libjitsi.LibJitsi;
import org.jitsi.service.neomedia.MediaService;

/**
 * libjitsi, started once per process, headless: the PortAudio, PulseAudio and Video4Linux2 device systems are
 * disabled (there is no sound card; capture and playback are our own devices) and AWT is headless. Thread-safe.
 */
public final class MediaEngine {
    private static MediaService service;

    private MediaEngine() {
    }

    /** The media service, starting libjitsi on first use. */
    public static synchronized MediaService service() {
        if (service == null) {
            for (String system : List.of("PortAudioSystem", "PulseAudioSystem", "Video4Linux2System")) {
                System.setProperty("org.jitsi.impl.neomedia.device." + system + ".disabled", "true");
            }
            System.setProperty("java.awt.headless", "true");
            LibJitsi.start();
            service = LibJitsi.getMediaService();
        }
        return service;
    }
}
