package io.tpmphone.rig;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The wire check can tell clear PCMU audio from SRTP ciphertext. */
class CaptureTest {
    /** G.711 μ-law encoding of a 16-bit sample. */
    private static byte ulaw(short pcm) {
        int sign = pcm < 0 ? 0x80 : 0;
        int magnitude = Math.min(Math.abs((int) pcm), 32_635) + 0x84;
        int exponent = 7;
        for (int mask = 0x4000; (magnitude & mask) == 0 && exponent > 0; mask >>= 1) {
            exponent--;
        }
        int mantissa = (magnitude >> (exponent + 3)) & 0x0f;
        return (byte) ~(sign | (exponent << 4) | mantissa);
    }

    @Test
    void aClearPcmuToneIsFound_andRandomBytesAreNot() {
        List<byte[]> clear = new ArrayList<>();
        List<byte[]> noise = new ArrayList<>();
        Random random = new Random(7);
        int n = 0;
        for (int packet = 0; packet < 100; packet++) {
            byte[] p = new byte[160];
            for (int i = 0; i < p.length; i++, n++) {
                p[i] = ulaw((short) (16_000 * Math.sin(2 * Math.PI * 1000 * n / 8000.0)));
            }
            clear.add(p);
            byte[] r = new byte[160];
            random.nextBytes(r);
            noise.add(r);
        }
        double clearShare = Capture.toneShareIfPcmu(clear, 1000);
        double noiseShare = Capture.toneShareIfPcmu(noise, 1000);
        assertTrue(clearShare > 0.9, "clear tone share " + clearShare);
        assertTrue(noiseShare < 0.01, "ciphertext-like share " + noiseShare);
    }

    /** G.711 A-law encoding of a 16-bit sample (the ITU reference's linear2alaw). */
    private static byte alaw(short pcm) {
        int v = pcm >> 3;
        int mask = 0xd5;
        if (v < 0) {
            mask = 0x55;
            v = -v - 1;
        }
        int[] segmentEnd = {0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff};
        int segment = 0;
        while (segment < 8 && v > segmentEnd[segment]) {
            segment++;
        }
        if (segment == 8) {
            return (byte) (0x7f ^ mask);
        }
        int a = segment << 4 | (segment < 2 ? v >> 1 : v >> segment) & 0x0f;
        return (byte) (a ^ mask);
    }

    /** The demo's wire check judges a PCMA call as well: a clear A-law tone is found, random bytes are not. */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void aMediaPortsToneShare_decodesItsG711Codec_andJudgesNoOther() {
        List<byte[]> clear = new ArrayList<>();
        List<byte[]> noise = new ArrayList<>();
        Random random = new Random(11);
        int n = 0;
        for (int packet = 0; packet < 100; packet++) {
            byte[] p = new byte[160];
            for (int i = 0; i < p.length; i++, n++) {
                p[i] = alaw((short) (16_000 * Math.sin(2 * Math.PI * 440 * n / 8000.0)));
            }
            clear.add(p);
            byte[] r = new byte[160];
            random.nextBytes(r);
            noise.add(r);
        }
        double clearShare = new Capture.Media(3, clear, 8).toneShare(1000, 440).orElseThrow();
        double noiseShare = new Capture.Media(3, noise, 8).toneShare(1000, 440).orElseThrow();
        assertTrue(clearShare > 0.9, "clear A-law tone share " + clearShare);
        assertTrue(noiseShare < 0.05, "ciphertext-like share " + noiseShare);
        assertTrue(new Capture.Media(3, clear, 111).toneShare(440).isEmpty(), "Opus (dynamic 111) is not judged");
    }
}
