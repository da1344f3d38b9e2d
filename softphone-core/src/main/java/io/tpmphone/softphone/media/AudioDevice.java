package io.tpmphone.softphone.media;

import java.util.Objects;
import java.util.Optional;

/**
 * Where a call's audio comes from and goes to: a {@link Tone} (PCM played in a loop, what arrives kept in memory —
 * for tests and the demo) or the host's {@link SoundServer} (PulseAudio's native protocol: a microphone and a speaker).
 * Immutable.
 */
public sealed interface AudioDevice permits AudioDevice.Tone, AudioDevice.SoundServer {
    /**
     * How a call gets to reach the sound server: the measured softphone asks its agent for a socket before the call's
     * audio starts and gives it back when the call ends, so it has none between calls.
     */
    interface Access {
        /** Needs nothing: the server's socket is always there. */
        Access ALWAYS = new Access() {
            @Override
            public void acquire(String callId) {
            }

            @Override
            public void release(String callId) {
            }
        };

        /** Before the call's audio connects; fails if the socket cannot be granted. */
        void acquire(String callId) throws java.io.IOException;

        /** After the call's audio disconnected; never fails (a failure is logged). */
        void release(String callId);
    }

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
    record SoundServer(String server, Optional<String> microphone, Optional<String> speaker, Access access)
            implements AudioDevice {
        /** A sound server that is always there (the user's own, named by its address). */
        public SoundServer(String server, Optional<String> microphone, Optional<String> speaker) {
            this(server, microphone, speaker, Access.ALWAYS);
        }

        public SoundServer {
            Objects.requireNonNull(access, "access");
            Objects.requireNonNull(server, "server");
            Objects.requireNonNull(microphone, "microphone");
            Objects.requireNonNull(speaker, "speaker");
            if (server.isBlank()) {
                throw new IllegalArgumentException("the sound server's address is empty");
            }
        }
    }
}
