package io.tpmphone.softphone.media;

import java.io.IOException;
import javax.media.Buffer;
import javax.media.Format;
import javax.media.control.FormatControl;
import javax.media.format.AudioFormat;
import org.jitsi.impl.neomedia.jmfext.media.protocol.AbstractPushBufferCaptureDevice;
import org.jitsi.impl.neomedia.jmfext.media.protocol.AbstractPushBufferStream;

/**
 * A capture device without hardware: it plays 16-bit PCM at 8 kHz mono in a loop (a tone, or a WAV file's samples),
 * one 20 ms buffer every 20 ms on its own daemon thread — the JMF push capture device libjitsi's device layer
 * expects.
 */
final class PcmCaptureDevice extends AbstractPushBufferCaptureDevice {
    static final double SAMPLE_RATE = 8000;
    static final int FRAME_MS = 20;
    static final int SAMPLES_PER_FRAME = (int) (SAMPLE_RATE * FRAME_MS / 1000);
    private static final Format[] FORMATS = {new AudioFormat(AudioFormat.LINEAR, SAMPLE_RATE, 16, 1,
            AudioFormat.LITTLE_ENDIAN, AudioFormat.SIGNED, 16, Format.NOT_SPECIFIED, Format.byteArray)};

    private final short[] samples;

    PcmCaptureDevice(short[] samples) {
        if (samples.length == 0) {
            throw new IllegalArgumentException("nothing to play");
        }
        this.samples = samples.clone();
    }

    @Override
    protected Format[] getSupportedFormats(int streamIndex) {
        return FORMATS.clone();
    }

    @Override
    protected AbstractPushBufferStream<?> createStream(int streamIndex, FormatControl formatControl) {
        return new Stream(this, formatControl);
    }

    private static final class Stream extends AbstractPushBufferStream<PcmCaptureDevice> implements Runnable {
        private Thread thread;
        private volatile boolean running;
        private long position;

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
            int bytes = SAMPLES_PER_FRAME * 2;
            byte[] data = buffer.getData() instanceof byte[] b && b.length >= bytes ? b : new byte[bytes];
            short[] src = dataSource.samples;
            for (int i = 0; i < SAMPLES_PER_FRAME; i++) {
                short s = src[(int) ((position + i) % src.length)];
                data[2 * i] = (byte) s;
                data[2 * i + 1] = (byte) (s >> 8);
            }
            buffer.setData(data);
            buffer.setOffset(0);
            buffer.setLength(bytes);
            buffer.setFormat(getFormat());
            // FLAG_SYSTEM_TIME means "stamped with the capture instant", as libjitsi's own capture devices do. A stamp
            // counted from 0 per session lags by the time since FMJ started: for a session opened some 20-30 s after
            // that, FMJ passed 3-5 frames on and then nothing (the peer heard silence, RTCP went on).
            buffer.setTimeStamp(System.nanoTime());
            buffer.setFlags(Buffer.FLAG_SYSTEM_TIME | Buffer.FLAG_LIVE_DATA);
            position += SAMPLES_PER_FRAME;
        }
    }
}
