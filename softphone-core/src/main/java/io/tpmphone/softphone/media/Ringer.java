package io.tpmphone.softphone.media;

import java.io.IOException;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ringing sound on the sound server's speaker while a call rings on the screen: 425 Hz, one second on and four
 * off (the ETSI ringing cadence), from its own connection, which it closes — and whose socket it gives back — when
 * stopped. Thread-safe.
 */
public final class Ringer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Ringer.class);
    private static final int RATE = 8000;
    private static final int FRAME = RATE / 50;

    private final SoundServerLink link;
    private final AudioDevice.SoundServer device;
    private final String grant;
    private final Thread thread;
    private volatile boolean stopped;

    private Ringer(SoundServerLink link, AudioDevice.SoundServer device, String grant) {
        this.link = link;
        this.device = device;
        this.grant = grant;
        this.thread = new Thread(this::ring, "ringer");
        this.thread.setDaemon(true);
    }

    /**
     * Starts ringing on {@code device}'s speaker; {@code grant} names the sound server access it holds meanwhile (the
     * agent's socket stays only while something holds it).
     */
    public static Ringer start(AudioDevice.SoundServer device, String grant) throws IOException {
        Objects.requireNonNull(device, "device");
        device.access().acquire(grant);
        SoundServerLink link = null;
        try {
            link = SoundServerLink.connect(device.server(), AudioSession.SOUND_SERVER_TIMEOUT);
            link.openSpeaker(device.speaker().orElse(null), RATE, AudioSession.SOUND_SERVER_TIMEOUT);
        } catch (IOException | RuntimeException e) {
            if (link != null) {
                link.close();
            }
            device.access().release(grant);
            throw e;
        }
        Ringer r = new Ringer(link, device, grant);
        r.thread.start();
        return r;
    }

    private void ring() {
        short[] tone = Wav.tone(425, 0.4, 1);
        byte[] frame = new byte[FRAME * 2];
        long next = System.nanoTime();
        long position = 0;
        while (!stopped) {
            boolean on = (position / RATE) % 5 == 0; // 1 s on, 4 s off
            for (int i = 0; i < FRAME; i++) {
                short s = on ? tone[(int) ((position + i) % tone.length)] : 0;
                frame[2 * i] = (byte) s;
                frame[2 * i + 1] = (byte) (s >> 8);
            }
            link.play(frame, 0, frame.length);
            position += FRAME;
            next += 20_000_000L; // the speaker's pace: one 20 ms frame per 20 ms
            long wait = next - System.nanoTime();
            if (wait > 0) {
                try {
                    java.util.concurrent.TimeUnit.NANOSECONDS.sleep(wait);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    @Override
    public void close() {
        if (stopped) {
            return;
        }
        stopped = true;
        thread.interrupt();
        try {
            thread.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        link.close();
        device.access().release(grant);
        LOG.debug("stopped ringing");
    }
}
