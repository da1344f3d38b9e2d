package io.tpmphone.softphone.media;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Objects;
import org.jitsi.impl.neomedia.pulseaudio.PA;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One call's connection to a PulseAudio server (its native protocol, through libjitsi's JNI binding of libpulse): a
 * record stream from the microphone and a playback stream to the speaker, both 16-bit mono at the codec's rate
 * (the server resamples), both with {@code media.role=phone}. Made when the call's audio starts and closed when it
 * ends, so the process holds no connection to the sound server between calls (the agent grants the socket only for a
 * call). Every wait has a deadline. Thread-safe: libpulse objects are touched only with the main loop's lock held.
 */
final class SoundServerLink implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SoundServerLink.class);
    /** libpulse's PA_CONTEXT_NOAUTOSPAWN: never start a sound server of our own. */
    private static final int NO_AUTOSPAWN = 1;
    /** How much captured audio is kept when the codec falls behind: 200 ms; older samples are dropped. */
    private static final int MAX_BUFFERED_MS = 200;

    private final long mainloop;
    private final long context;
    private final Object stateChanged = new Object();
    /** libjitsi keeps only weak references to callbacks: these fields keep them alive. */
    private final Runnable contextCallback;
    private final Object lock = new Object();
    private long record;
    private long playback;
    private PA.stream_request_cb_t readCallback;
    private Runnable streamCallback;
    private final ArrayDeque<byte[]> captured = new ArrayDeque<>();
    private int capturedBytes;
    private int maxCapturedBytes;
    private byte[] partial = new byte[0];
    private int partialOffset;
    private boolean closed;
    private boolean freed;

    private SoundServerLink(long mainloop, long context, Runnable contextCallback) {
        this.mainloop = mainloop;
        this.context = context;
        this.contextCallback = contextCallback;
    }

    /**
     * Connects to {@code server} (a libpulse server string, e.g. {@code unix:/path/native}) within {@code timeout}.
     * Fails with the server's state when it refuses or is absent.
     */
    static SoundServerLink connect(String server, Duration timeout) throws IOException {
        Objects.requireNonNull(server, "server");
        NativeLibraries.ensureLoaded();
        long loop = PA.threaded_mainloop_new();
        if (loop == 0) {
            throw new IOException("libpulse: cannot make a main loop");
        }
        if (PA.threaded_mainloop_start(loop) < 0) {
            PA.threaded_mainloop_free(loop);
            throw new IOException("libpulse: cannot start a main loop");
        }
        long props = PA.proplist_new();
        PA.proplist_sets(props, PA.PROP_APPLICATION_NAME, "tpmphone");
        PA.proplist_sets(props, PA.PROP_MEDIA_ROLE, "phone");
        long ctx = PA.context_new_with_proplist(PA.threaded_mainloop_get_api(loop), "tpmphone", props);
        PA.proplist_free(props);
        if (ctx == 0) {
            PA.threaded_mainloop_stop(loop);
            PA.threaded_mainloop_free(loop);
            throw new IOException("libpulse: cannot make a context");
        }
        Object changed = new Object();
        Runnable callback = () -> {
            synchronized (changed) {
                changed.notifyAll();
            }
        };
        SoundServerLink link = new SoundServerLink(loop, ctx, callback);
        PA.threaded_mainloop_lock(loop);
        int rc;
        try {
            PA.context_set_state_callback(ctx, link.contextCallback);
            rc = PA.context_connect(ctx, server, NO_AUTOSPAWN, 0);
        } finally {
            PA.threaded_mainloop_unlock(loop);
        }
        if (rc < 0) {
            link.close();
            throw new IOException("cannot connect to the sound server " + server);
        }
        int state = link.await(() -> PA.context_get_state(ctx), PA.CONTEXT_READY, changed, timeout);
        if (state != PA.CONTEXT_READY) {
            link.close();
            throw new IOException("the sound server " + server + " did not accept us within " + timeout.toMillis()
                    + " ms (connection state " + contextState(state) + "): is it running, and is its socket"
                    + " granted to this process?");
        }
        return link;
    }

    private static String contextState(int state) {
        return switch (state) {
            case PA.CONTEXT_FAILED -> "failed";
            case PA.CONTEXT_TERMINATED -> "terminated";
            case PA.CONTEXT_CONNECTING -> "connecting";
            case PA.CONTEXT_AUTHORIZING -> "authorizing";
            case PA.CONTEXT_SETTING_NAME -> "setting name";
            default -> String.valueOf(state);
        };
    }

    /** Waits until {@code state} reads {@code wanted} or a failed/terminated state, or the timeout; returns it. */
    private int await(java.util.function.IntSupplier state, int wanted, Object changed, Duration timeout)
            throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            int s;
            PA.threaded_mainloop_lock(mainloop);
            try {
                s = state.getAsInt();
            } finally {
                PA.threaded_mainloop_unlock(mainloop);
            }
            // context and stream states share these numbers for "failed"/"terminated" only for contexts; streams pass
            // their own through wanted
            if (s == wanted || s == PA.CONTEXT_FAILED || s == PA.CONTEXT_TERMINATED) {
                return s;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return s;
            }
            synchronized (changed) {
                try {
                    // a state callback wakes us; the bounded wait covers one that fired before we waited
                    changed.wait(Math.max(1, Math.min(50, left / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while waiting for the sound server", e);
                }
            }
        }
    }

    /**
     * Opens the microphone ({@code device}, null for the server's default) at {@code rate} Hz, mono, and the speaker
     * likewise; fails within {@code timeout} naming the device the server refused.
     */
    void open(String microphone, String speaker, int rate, Duration timeout) throws IOException {
        int frameBytes = rate / 50 * 2;
        synchronized (lock) {
            maxCapturedBytes = rate * 2 * MAX_BUFFERED_MS / 1000;
        }
        Object changed = new Object();
        streamCallback = () -> {
            synchronized (changed) {
                changed.notifyAll();
            }
        };
        readCallback = (s, n) -> drain(s);
        long rec;
        long play;
        PA.threaded_mainloop_lock(mainloop);
        try {
            rec = newStream(rate, "tpmphone microphone");
            play = newStream(rate, "tpmphone speaker");
            record = rec;
            playback = play;
            PA.stream_set_state_callback(rec, streamCallback);
            PA.stream_set_state_callback(play, streamCallback);
            PA.stream_set_read_callback(rec, readCallback);
            long recAttr = PA.buffer_attr_new(-1, -1, -1, -1, frameBytes);
            long playAttr = PA.buffer_attr_new(-1, frameBytes * 3, -1, -1, -1);
            try {
                if (PA.stream_connect_record(rec, microphone, recAttr, PA.STREAM_ADJUST_LATENCY) < 0) {
                    throw new IOException("the sound server refused to record from "
                            + (microphone == null ? "its default source" : microphone));
                }
                if (PA.stream_connect_playback(play, speaker, playAttr, PA.STREAM_ADJUST_LATENCY, 0, 0) < 0) {
                    throw new IOException("the sound server refused to play to "
                            + (speaker == null ? "its default sink" : speaker));
                }
            } finally {
                PA.buffer_attr_free(recAttr);
                PA.buffer_attr_free(playAttr);
            }
        } finally {
            PA.threaded_mainloop_unlock(mainloop);
        }
        for (long s : new long[] {rec, play}) {
            int state = awaitStream(s, changed, timeout);
            if (state != PA.STREAM_READY) {
                throw new IOException("the sound server did not open " + (s == rec ? "the microphone "
                        + (microphone == null ? "(default)" : microphone) : "the speaker "
                        + (speaker == null ? "(default)" : speaker)) + " within " + timeout.toMillis()
                        + " ms (stream state " + state + "): does the device exist?");
            }
        }
        LOG.debug("sound server streams open at {} Hz", rate);
    }

    private int awaitStream(long s, Object changed, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            int state;
            PA.threaded_mainloop_lock(mainloop);
            try {
                state = PA.stream_get_state(s);
            } finally {
                PA.threaded_mainloop_unlock(mainloop);
            }
            if (state == PA.STREAM_READY || state == PA.STREAM_FAILED || state == PA.STREAM_TERMINATED
                    || System.nanoTime() > deadline) {
                return state;
            }
            synchronized (changed) {
                try {
                    changed.wait(50);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while waiting for the sound server", e);
                }
            }
        }
    }

    /** Opens only the speaker ({@code speaker}, null for the server's default) at {@code rate} Hz, mono. */
    void openSpeaker(String speaker, int rate, Duration timeout) throws IOException {
        int frameBytes = rate / 50 * 2;
        Object changed = new Object();
        streamCallback = () -> {
            synchronized (changed) {
                changed.notifyAll();
            }
        };
        long play;
        PA.threaded_mainloop_lock(mainloop);
        try {
            play = newStream(rate, "tpmphone ringing");
            playback = play;
            PA.stream_set_state_callback(play, streamCallback);
            long playAttr = PA.buffer_attr_new(-1, frameBytes * 5, -1, -1, -1);
            try {
                if (PA.stream_connect_playback(play, speaker, playAttr, PA.STREAM_ADJUST_LATENCY, 0, 0) < 0) {
                    throw new IOException("the sound server refused to play to "
                            + (speaker == null ? "its default sink" : speaker));
                }
            } finally {
                PA.buffer_attr_free(playAttr);
            }
        } finally {
            PA.threaded_mainloop_unlock(mainloop);
        }
        int state = awaitStream(play, changed, timeout);
        if (state != PA.STREAM_READY) {
            throw new IOException("the sound server did not open the speaker " + (speaker == null ? "(default)"
                    : speaker) + " within " + timeout.toMillis() + " ms (stream state " + state + ")");
        }
    }

    private long newStream(int rate, String name) throws IOException {
        long spec = PA.sample_spec_new(PA.SAMPLE_S16LE, rate, 1);
        long props = PA.proplist_new();
        try {
            PA.proplist_sets(props, PA.PROP_MEDIA_NAME, name);
            PA.proplist_sets(props, PA.PROP_MEDIA_ROLE, "phone");
            long s = PA.stream_new_with_proplist(context, name, spec, 0, props);
            if (s == 0) {
                throw new IOException("libpulse: cannot make the stream " + name);
            }
            return s;
        } finally {
            PA.proplist_free(props);
            PA.sample_spec_free(spec);
        }
    }

    /** On libpulse's thread, with its lock held: moves what the microphone recorded into our bounded queue. */
    private void drain(long s) {
        int readable;
        while ((readable = PA.stream_readable_size(s)) > 0) {
            byte[] data = new byte[readable];
            int n = PA.stream_peek(s, data, 0);
            PA.stream_drop(s);
            if (n <= 0) {
                continue; // a hole in the recording, or nothing after all
            }
            byte[] chunk = n == data.length ? data : java.util.Arrays.copyOf(data, n);
            synchronized (lock) {
                captured.addLast(chunk);
                capturedBytes += n;
                while (capturedBytes > maxCapturedBytes && captured.size() > 1) {
                    capturedBytes -= captured.removeFirst().length;
                }
            }
        }
    }

    /** Fills {@code frame} (16-bit little-endian PCM) with what the microphone recorded; silence where it has not. */
    void read(byte[] frame) {
        int filled = 0;
        synchronized (lock) {
            while (filled < frame.length) {
                if (partialOffset >= partial.length) {
                    byte[] next = captured.pollFirst();
                    if (next == null) {
                        break;
                    }
                    capturedBytes -= next.length;
                    partial = next;
                    partialOffset = 0;
                }
                int n = Math.min(frame.length - filled, partial.length - partialOffset);
                System.arraycopy(partial, partialOffset, frame, filled, n);
                filled += n;
                partialOffset += n;
            }
        }
        java.util.Arrays.fill(frame, filled, frame.length, (byte) 0);
    }

    /** Plays {@code length} bytes of 16-bit little-endian PCM; what the speaker's buffer has no room for is dropped. */
    void play(byte[] data, int offset, int length) {
        PA.threaded_mainloop_lock(mainloop);
        try {
            if (closed || playback == 0 || PA.stream_get_state(playback) != PA.STREAM_READY) {
                return;
            }
            int room = PA.stream_writable_size(playback);
            int n = Math.min(room, length) & ~1;
            if (n > 0) {
                PA.stream_write(playback, data, offset, n, null, 0, PA.SEEK_RELATIVE);
            }
        } finally {
            PA.threaded_mainloop_unlock(mainloop);
        }
    }

    /**
     * Cuts the connection to the sound server: both streams and the context are disconnected (the server stops
     * recording for this process at once), under the main loop's lock, so a {@link #play} racing it writes nothing.
     * Safe while FMJ still holds this link ({@link #read} then gives silence, {@link #play} drops); the main loop itself
     * is stopped and freed only by {@link #close()}. Idempotent.
     */
    void disconnect() {
        PA.threaded_mainloop_lock(mainloop);
        try {
            if (closed) {
                return;
            }
            closed = true;
            for (long s : new long[] {record, playback}) {
                if (s != 0) {
                    PA.stream_set_state_callback(s, null);
                    PA.stream_set_read_callback(s, null);
                    PA.stream_disconnect(s);
                    PA.stream_unref(s);
                }
            }
            record = 0;
            playback = 0;
            PA.context_disconnect(context);
        } finally {
            PA.threaded_mainloop_unlock(mainloop);
        }
        synchronized (lock) {
            captured.clear();
            capturedBytes = 0;
        }
    }

    /** {@link #disconnect()}, then frees the context and stops and frees the main loop. Once. */
    @Override
    public void close() {
        disconnect();
        PA.threaded_mainloop_lock(mainloop);
        try {
            if (freed) {
                return;
            }
            freed = true;
            PA.context_unref(context);
        } finally {
            PA.threaded_mainloop_unlock(mainloop);
        }
        PA.threaded_mainloop_stop(mainloop);
        PA.threaded_mainloop_free(mainloop);
    }
}
