package io.tpmphone.softphone.media;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** 16-bit PCM mono 8 kHz WAV files, and a tone generator and frequency analysis for audio checks. */
public final class Wav {
    public static final int SAMPLE_RATE = 8000;

    private Wav() {
    }

    /** A WAV file (RIFF, PCM, 8 kHz, 16-bit, mono) of {@code samples}. */
    public static byte[] encode(short[] samples) {
        int data = samples.length * 2;
        ByteBuffer b = ByteBuffer.allocate(44 + data).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {'R', 'I', 'F', 'F'}).putInt(36 + data).put(new byte[] {'W', 'A', 'V', 'E'});
        b.put(new byte[] {'f', 'm', 't', ' '}).putInt(16).putShort((short) 1).putShort((short) 1)
                .putInt(SAMPLE_RATE).putInt(SAMPLE_RATE * 2).putShort((short) 2).putShort((short) 16);
        b.put(new byte[] {'d', 'a', 't', 'a'}).putInt(data);
        for (short s : samples) {
            b.putShort(s);
        }
        return b.array();
    }

    /** The samples of a WAV file that is PCM, 8 kHz, 16-bit, mono; anything else is refused with a reason. */
    public static short[] decode(byte[] wav) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(wav).order(ByteOrder.LITTLE_ENDIAN);
        try {
            if (b.getInt(0) != 0x46464952 || b.getInt(8) != 0x45564157) {
                throw new IOException("not a RIFF/WAVE file");
            }
            int at = 12;
            short[] out = null;
            boolean fmtOk = false;
            while (at + 8 <= wav.length) {
                int id = b.getInt(at);
                int size = b.getInt(at + 4);
                if (size < 0 || at + 8L + size > wav.length) {
                    throw new IOException("a WAV chunk runs past the end of the file");
                }
                if (id == 0x20746d66) {
                    fmtOk = b.getShort(at + 8) == 1 && b.getShort(at + 10) == 1 && b.getInt(at + 12) == SAMPLE_RATE
                            && b.getShort(at + 22) == 16;
                } else if (id == 0x61746164) {
                    out = new short[size / 2];
                    b.position(at + 8);
                    b.slice().order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().get(out);
                }
                at += 8 + size + (size & 1);
            }
            if (!fmtOk) {
                throw new IOException("the WAV file is not PCM, 8 kHz, 16-bit, mono");
            }
            if (out == null || out.length == 0) {
                throw new IOException("the WAV file has no samples");
            }
            return out;
        } catch (IndexOutOfBoundsException | java.nio.BufferUnderflowException e) {
            throw new IOException("the WAV file is truncated", e);
        }
    }

    /** {@code seconds} of a sine tone at {@code frequency} Hz, amplitude {@code amplitude} (0..1). */
    public static short[] tone(double frequency, double amplitude, double seconds) {
        short[] s = new short[(int) Math.round(seconds * SAMPLE_RATE)];
        double w = 2 * Math.PI * frequency / SAMPLE_RATE;
        for (int i = 0; i < s.length; i++) {
            s[i] = (short) Math.round(amplitude * 32767 * Math.sin(w * i));
        }
        return s;
    }

    /** The frequency (10 Hz steps, 50..3950 Hz) with the most energy in the last {@code n} samples (Goertzel). */
    public static double dominantFrequency(short[] samples, int n) {
        int len = Math.min(n, samples.length);
        double best = 0;
        double bestPower = -1;
        for (int f = 50; f < 4000; f += 10) {
            double w = 2 * Math.PI * f / SAMPLE_RATE;
            double coeff = 2 * Math.cos(w);
            double s1 = 0;
            double s2 = 0;
            for (int i = samples.length - len; i < samples.length; i++) {
                double s0 = samples[i] / 32768.0 + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
            if (power > bestPower) {
                bestPower = power;
                best = f;
            }
        }
        return best;
    }
}
