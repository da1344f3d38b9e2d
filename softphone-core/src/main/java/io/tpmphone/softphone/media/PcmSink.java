package io.tpmphone.softphone.media;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.media.Buffer;
import javax.media.Format;
import javax.media.Renderer;
import javax.media.format.AudioFormat;

/**
 * The speaker's tap: a JMF renderer that keeps the decoded PCM of what the peer sent (libjitsi decodes to 16-bit mono,
 * 8 kHz for PCMU/PCMA and 48 kHz for Opus, and hands it here), as 8 kHz samples, can write it as a WAV file, and
 * finds its dominant frequency; with a sound server it also plays what arrives there. Thread-safe.
 */
public final class PcmSink implements Renderer {
    /** Where decoded audio is played besides being kept: 16-bit little-endian PCM at the sink's rate. */
    interface Speaker {
        void play(byte[] data, int offset, int length);
    }

    /** At most 10 minutes are kept. */
    private static final int MAX_BYTES = 8000 * 2 * 600;

    private final Format[] formats;
    /** Input samples per kept (8 kHz) sample. */
    private final int decimation;
    private final Speaker speaker;
    private final ByteArrayOutputStream pcm = new ByteArrayOutputStream();
    private volatile AudioFormat inputFormat;

    /** An 8 kHz sink that keeps what arrives, plays nothing. */
    public PcmSink() {
        this(8000, null);
    }

    PcmSink(int rate, Speaker speaker) {
        if (rate % 8000 != 0) {
            throw new IllegalArgumentException("the sink's rate must be a multiple of 8 kHz, got " + rate);
        }
        this.formats = new Format[] {
            new AudioFormat(AudioFormat.LINEAR, rate, 16, 1, AudioFormat.LITTLE_ENDIAN, AudioFormat.SIGNED),
            new AudioFormat(AudioFormat.LINEAR, rate, 16, 1, AudioFormat.BIG_ENDIAN, AudioFormat.SIGNED),
        };
        this.decimation = rate / 8000;
        this.speaker = speaker;
    }

    @Override
    public Format[] getSupportedInputFormats() {
        return formats.clone();
    }

    @Override
    public Format setInputFormat(Format format) {
        for (Format f : formats) {
            if (f.matches(format)) {
                inputFormat = (AudioFormat) format;
                return format;
            }
        }
        return null;
    }

    @Override
    public int process(Buffer buffer) {
        if (buffer.isDiscard() || buffer.getLength() <= 0 || !(buffer.getData() instanceof byte[] data)) {
            return BUFFER_PROCESSED_OK;
        }
        boolean big = inputFormat != null && inputFormat.getEndian() == AudioFormat.BIG_ENDIAN;
        int off = buffer.getOffset();
        int len = Math.min(buffer.getLength(), data.length - off) & ~1;
        byte[] little = new byte[len];
        for (int i = 0; i < len; i += 2) {
            little[i] = big ? data[off + i + 1] : data[off + i];
            little[i + 1] = big ? data[off + i] : data[off + i + 1];
        }
        if (speaker != null) {
            speaker.play(little, 0, len);
        }
        synchronized (pcm) {
            if (pcm.size() + len / decimation > MAX_BYTES) {
                return BUFFER_PROCESSED_OK;
            }
            // keep 8 kHz: the mean of each run of `decimation` samples (a box filter before decimating)
            for (int i = 0; i + 2 * decimation <= len; i += 2 * decimation) {
                int sum = 0;
                for (int k = 0; k < decimation; k++) {
                    sum += (short) ((little[i + 2 * k] & 0xff) | (little[i + 2 * k + 1] << 8));
                }
                short s = (short) (sum / decimation);
                pcm.write((byte) s);
                pcm.write((byte) (s >> 8));
            }
        }
        return BUFFER_PROCESSED_OK;
    }

    /** The decoded samples so far. */
    public short[] samples() {
        byte[] b;
        synchronized (pcm) {
            b = pcm.toByteArray();
        }
        short[] s = new short[b.length / 2];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().get(s);
        return s;
    }

    /** Writes what was received as a WAV file (PCM, 8 kHz, 16-bit, mono). */
    public void writeWav(Path file) throws IOException {
        Files.write(file, Wav.encode(samples()));
    }

    @Override
    public void start() {
        // rendering is passive
    }

    @Override
    public void stop() {
        // rendering is passive
    }

    @Override
    public String getName() {
        return "tpmphone PCM sink";
    }

    @Override
    public void open() {
        // nothing to open
    }

    @Override
    public void close() {
        // nothing to release
    }

    @Override
    public void reset() {
        // keeps what it has
    }

    @Override
    public Object[] getControls() {
        return new Object[0];
    }

    @Override
    public Object getControl(String controlType) {
        return null;
    }
}
