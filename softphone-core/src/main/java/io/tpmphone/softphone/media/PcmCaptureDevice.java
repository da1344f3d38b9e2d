package io.tpmphone.softphone.media;

import java.io.IOException;
import javax.media.Buffer;
import javax.media.Format;
import javax.media.control.FormatControl;
import javax.media.format.AudioFormat;
import org.jitsi.impl.neomedia.jmfext.media.protocol.AbstractPushBufferCaptureDevice;
import org.jitsi.impl.neomedia.jmfext.media.protocol.AbstractPushBufferStream;

/**
 * A capture device in software: 16-bit PCM mono at the codec's rate (8 kHz, or 48 kHz for Opus) from a
 * {@link FrameSource} — a tone or a WAV file's samples in a loop, or the sound server's microphone — one 20 ms buffer
 * every 20 ms on its own daemon thread: the JMF push capture device libjitsi's device layer expects.
 */
final class PcmCaptureDevice extends AbstractPushBufferCaptureDevice {
    static final int FRAME_MS = 20;

    /** Where captured audio comes from: fills a frame of 16-bit little-endian PCM (never blocks for long). */
    interface FrameSource {
        void fill(byte[] frame);
    }

    /** Plays {@code samples} (8 kHz) in a loop at {@code rate} Hz, linearly interpolated. */
    static FrameSource tone(short[] samples, int rate) {
        if (samples.length == 0) {
            throw new IllegalArgumentException("nothing to play");
        }
        short[] src = samples.clone();
        double step = 8000.0 / rate;
        return new FrameSource() {
            private double position;

            @Override
            public void fill(byte[] frame) {
                for (int i = 0; i + 1 < frame.length; i += 2) {
                    int at = (int) position;
                    double f = position - at;
                    double v = src[at % src.length] * (1 - f) + src[(at + 1) % src.length] * f;
                    short s = (short) Math.round(v);
                    frame[i] = (byte) s;
                    frame[i + 1] = (byte) (s >> 8);
                    position += step;
                    if (position >= src.length) {
                        position -= src.length;
                    }
                }
            }
        };
    }

    private final FrameSource source;
    private final Format[] formats;
    private final int frameBytes;

    PcmCaptureDevice(FrameSource source, int rate) {
        this.source = source;
        this.formats = new Format[] {new AudioFormat(AudioFormat.LINEAR, rate, 16, 1, AudioFormat.LITTLE_ENDIAN,
                AudioFormat.SIGNED, 16, Format.NOT_SPECIFIED, Format.byteArray)};
        this.frameBytes = rate * FRAME_MS / 1000 * 2;
    }

    @Override
    protected Format[] getSupportedFormats(int streamIndex) {
        return formats.clone();
    }

    @Override
    protected AbstractPushBufferStream<?> createStream(int streamIndex, FormatControl formatControl) {
        return new Stream(this, formatControl);
    }

    private static final class Stream extends AbstractPushBufferStream<PcmCaptureDevice> implements Runnable {
        private Thread thread;
        private volatile boolean running;

        Stream(PcmCaptureDevice device, FormatControl formatControl) {
            super(device, formatControl);
        }

        @Override
        public synchronized void start() throws IOException {
            super.start();
            if (thread == null) {
                running = true;
                thread = new Thread(this, "pcm-capture");
                thread.setDaemon(true);
                thread.start();
            }
        }

        @Override
        public synchronized void stop() throws IOException {
            running = false;
            if (thread != null) {
                thread.interrupt();
                thread = null;
            }
            super.stop();
        }

        @Override
        public void run() {
            long next = System.nanoTime();
            while (running) {
                next += FRAME_MS * 1_000_000L;
                var handler = transferHandler;
                if (handler != null) {
                    handler.transferData(this);
                }
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
        public void read(Buffer buffer) {
            int bytes = dataSource.frameBytes;
            byte[] data = buffer.getData() instanceof byte[] b && b.length == bytes ? b : new byte[bytes];
            dataSource.source.fill(data);
            buffer.setData(data);
            buffer.setOffset(0);
            buffer.setLength(bytes);
            buffer.setFormat(getFormat());
            // FLAG_SYSTEM_TIME means "stamped with the capture instant", as libjitsi's own capture devices do. A stamp
            // counted from 0 per session lags by the time since FMJ started: for a session opened some 20-30 s after
            // that, FMJ passed 3-5 frames on and then nothing (the peer heard silence, RTCP went on).
            buffer.setTimeStamp(System.nanoTime());
            buffer.setFlags(Buffer.FLAG_SYSTEM_TIME | Buffer.FLAG_LIVE_DATA);
        }
    }
}
