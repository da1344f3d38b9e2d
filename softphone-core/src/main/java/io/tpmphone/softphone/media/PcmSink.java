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
 * The headless speaker: a JMF renderer that keeps the decoded PCM of what the peer sent (libjitsi decodes PCMU/PCMA to
 * 16-bit 8 kHz mono and hands it here), can write it as a WAV file, and finds its dominant frequency. Thread-safe.
 */
public final class PcmSink implements Renderer {
    private static final Format[] FORMATS = {
        new AudioFormat(AudioFormat.LINEAR, 8000, 16, 1, AudioFormat.LITTLE_ENDIAN, AudioFormat.SIGNED),
        new AudioFormat(AudioFormat.LINEAR, 8000, 16, 1, AudioFormat.BIG_ENDIAN, AudioFormat.SIGNED),
    };
    /** At most 10 minutes are kept. */
    private static final int MAX_BYTES = 8000 * 2 * 600;

    private final ByteArrayOutputStream pcm = new ByteArrayOutputStream();
    private volatile AudioFormat inputFormat;

    @Override
    public Format[] getSupportedInputFormats() {
        return FORMATS.clone();
    }

    @Override
    public Format setInputFormat(Format format) {
        for (Format f : FORMATS) {
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
        int len = buffer.getLength() & ~1;
        synchronized (pcm) {
            if (pcm.size() + len > MAX_BYTES) {
                return BUFFER_PROCESSED_OK;
            }
            for (int i = off; i < off + len; i += 2) {
                pcm.write(big ? data[i + 1] : data[i]);
                pcm.write(big ? data[i] : data[i + 1]);
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
