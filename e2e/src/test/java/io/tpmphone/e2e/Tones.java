package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.tpmphone.softphone.media.AudioSession;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import java.time.Duration;

/** The audio check of a call between alice (sending 1 kHz) and bob (sending 440 Hz). */
final class Tones {
    private Tones() {
    }

    /**
     * Waits until each side decoded {@code samples} of the other's audio, then asserts that bob hears alice's 1 kHz
     * tone and alice hears bob's 440 Hz tone; every failure shows what each side decoded and its RTP statistics.
     */
    static void eachHearsTheOther(AudioSession aliceAudio, AudioSession bobAudio, int samples) {
        Await.until("each side to decode " + samples + " samples of the other's audio", Duration.ofSeconds(20),
                () -> aliceAudio.received().samples().length >= samples
                        && bobAudio.received().samples().length >= samples,
                () -> "alice decoded " + aliceAudio.received().samples().length + " (" + aliceAudio.stats()
                        + "), bob " + bobAudio.received().samples().length + " (" + bobAudio.stats() + ")");
        assertEquals(1000.0, Wav.dominantFrequency(bobAudio.received().samples(), 4000), 20.0,
                () -> "bob hears alice's 1 kHz tone; he decoded " + bobAudio.received().samples().length
                        + " samples, " + bobAudio.stats());
        assertEquals(440.0, Wav.dominantFrequency(aliceAudio.received().samples(), 4000), 20.0,
                () -> "alice hears bob's 440 Hz tone; she decoded " + aliceAudio.received().samples().length
                        + " samples, " + aliceAudio.stats());
    }
}
