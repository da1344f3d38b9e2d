package io.tpmphone.rig;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
    @org.junit.jupiter.api.Timeout(10)
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

    /** An RTP packet of payload type 0 carrying {@code payload} (a 12-byte header, version 2). */
    private static byte[] rtp(int sequence, byte[] payload) {
        byte[] d = new byte[12 + payload.length];
        d[0] = (byte) 0x80;
        d[1] = 0;
        d[2] = (byte) (sequence >> 8);
        d[3] = (byte) sequence;
        System.arraycopy(payload, 0, d, 12, payload.length);
        return d;
    }

    /** A DTLS record's first bytes (content type 22, handshake; version DTLS 1.2). */
    private static byte[] dtls() {
        return new byte[] {22, (byte) 0xfe, (byte) 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    }

    /** {@code seconds} of clear PCMU 1 kHz tone, then {@code noiseSeconds} of random payload, as RTP packets. */
    private static List<byte[]> toneThenNoise(double seconds, double noiseSeconds, Random random) {
        List<byte[]> out = new ArrayList<>();
        int n = 0;
        int sequence = 0;
        for (int packet = 0; packet < Math.round(seconds * 50); packet++) {
            byte[] p = new byte[160];
            for (int i = 0; i < p.length; i++, n++) {
                p[i] = ulaw((short) (16_000 * Math.sin(2 * Math.PI * 1000 * n / 8000.0)));
            }
            out.add(rtp(sequence++, p));
        }
        for (int packet = 0; packet < Math.round(noiseSeconds * 50); packet++) {
            byte[] r = new byte[160];
            random.nextBytes(r);
            out.add(rtp(sequence++, r));
        }
        return out;
    }

    /**
     * The review's probe: clear RTP of the tone, then 1.5 s of ciphertext-like bytes. Judging only the last second
     * missed it; every 160 ms of the capture is judged now, so even the shortest of these is found.
     */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void clearRtpFollowedBySrtp_isFoundWhereverItIs() {
        Random random = new Random(5);
        for (double seconds : new double[] {0.2, 0.6, 1, 2}) {
            List<byte[]> datagrams = new ArrayList<>();
            datagrams.add(dtls());
            datagrams.addAll(toneThenNoise(seconds, 1.5, random));
            Capture.Media m = Capture.Media.of(datagrams);
            double share = m.toneShare(1000, 440).orElseThrow();
            assertTrue(share > 0.5, seconds + " s of clear tone, then 1.5 s of noise: the clear part is found;"
                    + " share " + share + " (" + m + ")");
        }
        Capture.Media srtp = Capture.Media.of(concat(List.of(dtls(), dtls()), toneThenNoise(0, 30, random)));
        double share = srtp.toneShare(1000, 440).orElseThrow();
        assertTrue(share < 0.10, "30 s of ciphertext-like payloads: no 160 ms of it looks like a tone; share " + share
                + " (" + srtp + ")");
        assertEquals(0, srtp.rtpBeforeDtls(), "DTLS came first: " + srtp);
        assertEquals(2, srtp.dtls(), "both DTLS records counted: " + srtp);
        assertEquals(1500, srtp.rtpPayloads().size(), "every RTP packet kept: " + srtp);
    }

    /** SRTP before any DTLS (keys that did not come from the handshake) is counted, and the demo fails on it. */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void mediaBeforeTheDtlsHandshake_isCounted() {
        Random random = new Random(9);
        List<byte[]> noise = toneThenNoise(0, 1, random);
        Capture.Media m = Capture.Media.of(concat(noise.subList(0, 10), concat(List.of(dtls()),
                noise.subList(10, noise.size()))));
        assertEquals(10, m.rtpBeforeDtls(), "ten packets came before the DTLS record: " + m);
        assertTrue(m.toString().contains("10 of them BEFORE any DTLS"), "said in words: " + m);
        Capture.Media none = Capture.Media.of(noise);
        assertEquals(50, none.rtpBeforeDtls(), "no DTLS at all: every packet came before it: " + none);
        assertEquals(0, none.dtls(), "no DTLS counted: " + none);
    }

    /** RTCP multiplexed on the port (payload types 64..95 in RTP's place) and other bytes are not media. */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void rtcpAndOtherBytes_areLeftOut() {
        byte[] rtcp = rtp(0, new byte[20]);
        rtcp[1] = (byte) 200;
        Capture.Media m = Capture.Media.of(List.of(dtls(), rtcp, new byte[0], new byte[] {1, 2, 3}));
        assertEquals(0, m.rtpPayloads().size(), "nothing kept as RTP: " + m);
        assertEquals(1, m.dtls(), "one DTLS record: " + m);
    }

    /** A DTLS record of content type {@code type} (20 ChangeCipherSpec, 21 alert, 22 handshake, 23 data). */
    private static byte[] dtls(int type) {
        byte[] d = dtls();
        d[0] = (byte) type;
        return d;
    }

    /** {@code n} SRTP-like packets: random 160-byte G.711 ciphertext plus SRTP's 10-byte auth tag (170 bytes). */
    private static List<byte[]> srtp(int from, int n, Random random) {
        List<byte[]> out = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            byte[] p = new byte[170];
            random.nextBytes(p);
            out.add(rtp(from + k, p));
        }
        return out;
    }

    private static byte[] tonePacket(int sequence, int from) {
        byte[] p = new byte[160];
        for (int i = 0; i < p.length; i++) {
            p[i] = ulaw((short) (16_000 * Math.sin(2 * Math.PI * 1000 * (from + i) / 8000.0)));
        }
        return rtp(sequence, p);
    }

    /** A DTLS-SRTP call as the wire shows it: handshake, evidence inside DTLS, SRTP with its tag, a closing alert. */
    private static List<byte[]> dtlsSrtpCall(Random random) {
        List<byte[]> d = new ArrayList<>(List.of(dtls(22), dtls(22), dtls(20), dtls(22), dtls(23), dtls(23)));
        d.addAll(srtp(0, 500, random));
        d.add(dtls(21));
        return d;
    }

    /** The demo's check passes real DTLS-SRTP: tagged packets after the handshake, evidence and alerts around it. */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void dtlsSrtp_isShownToBeSrtp() {
        Capture.Media m = Capture.Media.of(dtlsSrtpCall(new Random(3)));
        assertEquals(0, m.bareG711Frames(), "170-byte payloads are not bare G.711: " + m);
        assertEquals(0, m.rtpDuringHandshake(), "no packet during the handshake: " + m);
        assertTrue(m.shownToBeSrtp(1000, 440), "DTLS-SRTP passes: " + m + ", share " + m.toneShare(1000, 440));
    }

    /**
     * The re-review's table: clear RTP the tone share cannot tell from ciphertext — 500 packets of PCMU silence, or
     * a leak of 1 or 2 packets of tone before the SRTP — is a bare 160-byte G.711 frame, and fails the check.
     */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void clearSilence_andShortClearLeaks_areNotSrtp() {
        Random random = new Random(7);
        List<byte[]> silence = new ArrayList<>(List.of(dtls(22), dtls(20), dtls(22)));
        for (int k = 0; k < 500; k++) {
            byte[] p = new byte[160];
            java.util.Arrays.fill(p, (byte) 0xff);
            silence.add(rtp(k, p));
        }
        Capture.Media s = Capture.Media.of(silence);
        assertTrue(s.toneShare(1000, 440).orElseThrow() < 0.10, "silence carries no tone (why a share alone passed"
                + " it): " + s.toneShare(1000, 440));
        assertEquals(500, s.bareG711Frames(), "every clear silence packet is a bare frame: " + s);
        assertTrue(!s.shownToBeSrtp(1000, 440), "clear silence is not SRTP: " + s);
        assertTrue(s.toString().contains("500 of bare G.711 frame size"), "said in words: " + s);
        for (int leaked : new int[] {1, 2}) {
            List<byte[]> d = new ArrayList<>(List.of(dtls(22), dtls(20), dtls(22)));
            for (int j = 0; j < leaked; j++) {
                d.add(tonePacket(j, j * 160));
            }
            d.addAll(srtp(leaked, 500, random));
            Capture.Media m = Capture.Media.of(d);
            assertEquals(leaked, m.bareG711Frames(), leaked + " clear packets counted: " + m);
            assertTrue(!m.shownToBeSrtp(1000, 440), leaked + " clear packets then SRTP is not SRTP: " + m
                    + ", share " + m.toneShare(1000, 440));
        }
        // PCMA as well; an SRTP_32 tag (4 bytes: 164) is not a bare frame
        List<byte[]> alawSilence = new ArrayList<>(List.of(dtls(22)));
        for (int k = 0; k < 30; k++) {
            byte[] p = rtp(k, new byte[k % 2 == 0 ? 160 : 164]);
            p[1] = 8;
            alawSilence.add(p);
        }
        assertEquals(15, Capture.Media.of(alawSilence).bareG711Frames(), "PCMA's 160-byte packets are bare, 164 not:"
                + " " + Capture.Media.of(alawSilence));
    }

    /** RTP interleaved with the handshake (before its last record) came before the keys existed: not SRTP. */
    @Test
    @org.junit.jupiter.api.Timeout(10)
    void rtpDuringTheDtlsHandshake_isNotSrtp() {
        Random random = new Random(13);
        List<byte[]> d = new ArrayList<>(List.of(dtls(22)));
        d.addAll(srtp(0, 5, random));
        d.add(dtls(22));
        d.add(dtls(20));
        d.addAll(srtp(5, 3, random));
        d.add(dtls(22));
        d.add(dtls(23)); // evidence inside the association: not the handshake
        d.addAll(srtp(8, 500, random));
        d.add(dtls(21)); // a closing alert: not the handshake either
        Capture.Media m = Capture.Media.of(d);
        assertEquals(0, m.rtpBeforeDtls(), "DTLS came first: " + m);
        assertEquals(8, m.rtpDuringHandshake(), "5 + 3 packets came before the handshake's last record: " + m);
        assertTrue(!m.shownToBeSrtp(1000, 440), "not SRTP: " + m);
        assertTrue(m.toString().contains("8 DURING the DTLS handshake"), "said in words: " + m);
    }

    private static List<byte[]> concat(List<byte[]> a, List<byte[]> b) {
        List<byte[]> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }
}
