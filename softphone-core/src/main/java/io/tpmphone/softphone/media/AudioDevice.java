package io.tpmphone.softphone.media;

import java.util.Objects;
import java.util.Optional;

/**
 * Where a call's audio comes from and goes to: a {@link Tone} (PCM played in a loop, what arrives kept in memory —
 * for tests and the demo) or the host's {@link SoundServer} (PulseAudio's native protocol: a microphone and a speaker).
 * Immutable.
 */
public sealed interface AudioDevice permits AudioDevice.Tone, AudioDevice.SoundServer {
    /** 16-bit PCM at 8 kHz mono, played in a loop; what the peer sends is kept in a {@link PcmSink}. */
    record Tone(short[] samples) implements AudioDevice {
        public Tone {
            if (samples.length == 0) {
                throw new IllegalArgumentException("a tone device needs at least one sample");
            }
            samples = samples.clone();
        }

        @Override
        public short[] samples() {
            return samples.clone();
        }
    }

    /**
     * The sound server at {@code server} (a PulseAudio server address such as {@code unix:/run/…/native}), recording
     * from {@code microphone} and playing to {@code speaker} (source and sink names; empty: the server's default).
     * One connection per call, opened when its audio starts and closed when it ends. Streams carry
     * {@code media.role=phone}, so a server that has {@code module-filter-heuristics} applies its echo canceller.
     */
    record SoundServer(String server, Optional<String> microphone, Optional<String> speaker) implements AudioDevice {
        public SoundServer {
            Objects.requireNonNull(server, "server");
            Objects.requireNonNull(microphone, "microphone");
            Objects.requireNonNull(speaker, "speaker");
            if (server.isBlank()) {
                throw new IllegalArgumentException("the sound server's address is empty");
            }
        }
    }
}
