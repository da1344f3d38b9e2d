package io.tpmphone.benchmarks;

import ch.imvs.sdes4j.srtp.SrtpCryptoAttribute;
import ch.imvs.sdes4j.srtp.SrtpCryptoSuite;
import ch.imvs.sdes4j.srtp.SrtpKeyParam;
import java.util.Arrays;
import org.jitsi.impl.neomedia.transform.PacketTransformer;
import org.jitsi.impl.neomedia.transform.sdes.SDesTransformEngine;
import org.jitsi.service.neomedia.RawPacket;

/**
 * One direction of a call's SRTP as our media path builds it — libjitsi's {@link SDesTransformEngine} keyed with an
 * SDES inline key for AES_CM_128_HMAC_SHA1_80, as {@code AudioSession} keys it, whose RTP transformer runs jitsi-srtp
 * — with a sending engine that protects and a receiving engine that unprotects, and a ring of 172-byte RTP packets
 * (12-byte header, 160 bytes of PCMU: 20 ms at 8000 Hz) processed in place.
 *
 * <p>Both engines live as long as this object, as in a call. Every {@link #fillPlaintext()} writes the ring's packets
 * with the next packet indexes, so sequence numbers only ever increase (wrapping into the rollover counter) and
 * neither the sender's nor the receiver's replay check refuses a packet. The packet layout, key and SSRC are those of
 * {@code srtp_bench.c}, which measures Debian's libsrtp2 the same way. Not thread-safe: one benchmark thread.
 */
final class SrtpPacketPath implements AutoCloseable {
    static final String SUITE = "AES_CM_128_HMAC_SHA1_80";
    static final int HEADER_BYTES = 12;
    static final int PAYLOAD_BYTES = 160;
    static final int PACKET_BYTES = HEADER_BYTES + PAYLOAD_BYTES;
    static final int TAG_BYTES = 10;
    static final int SSRC = 0x74706d70; // "tpmp"
    /** The packet index of the reference packet that both implementations protect with a fresh context. */
    static final long REFERENCE_INDEX = 0x1234;

    private final SDesTransformEngine sendingEngine;
    private final SDesTransformEngine receivingEngine;
    private final PacketTransformer sender;
    private final PacketTransformer receiver;
    private final byte[][] buffers;
    private final RawPacket[] ring;
    private final RawPacket[] one = new RawPacket[1];
    private final byte[] expected = new byte[PACKET_BYTES];
    private long nextIndex = 1;
    private long firstIndex;

    SrtpPacketPath(int ringSize) {
        if (ringSize < 1) {
            throw new IllegalArgumentException("ring size must be at least 1, got " + ringSize);
        }
        // The sender protects with key K; the receiver unprotects with K. The other direction's key is unused.
        sendingEngine = new SDesTransformEngine(attribute(200), attribute(1));
        receivingEngine = new SDesTransformEngine(attribute(1), attribute(200));
        sender = sendingEngine.getRTPTransformer();
        receiver = receivingEngine.getRTPTransformer();
        buffers = new byte[ringSize][PACKET_BYTES + TAG_BYTES];
        ring = new RawPacket[ringSize];
    }

    /** The 30 bytes of master key (16) and salt (14) that {@code srtp_bench.c} also uses: byte i is i*7+start. */
    static byte[] keyAndSalt(int start) {
        byte[] keyAndSalt = new byte[30];
        for (int i = 0; i < keyAndSalt.length; i++) {
            keyAndSalt[i] = (byte) (i * 7 + start);
        }
        return keyAndSalt;
    }

    private static SrtpCryptoAttribute attribute(int keyStart) {
        byte[] keyAndSalt = keyAndSalt(keyStart);
        return new SrtpCryptoAttribute(1, new SrtpCryptoSuite(SUITE), new SrtpKeyParam[] {
                new SrtpKeyParam(SrtpKeyParam.KEYMETHOD_INLINE, keyAndSalt, 0, 0, 0)}, null);
    }

    /** The RTP packet with index n: V=2, PT=0 (PCMU), sequence number n mod 2^16, timestamp n*160, fixed SSRC. */
    static void writePacket(byte[] packet, long n) {
        int seq = (int) n & 0xffff;
        int timestamp = (int) (n * 160);
        packet[0] = (byte) 0x80;
        packet[1] = 0;
        packet[2] = (byte) (seq >>> 8);
        packet[3] = (byte) seq;
        packet[4] = (byte) (timestamp >>> 24);
        packet[5] = (byte) (timestamp >>> 16);
        packet[6] = (byte) (timestamp >>> 8);
        packet[7] = (byte) timestamp;
        packet[8] = (byte) (SSRC >>> 24);
        packet[9] = (byte) (SSRC >>> 16);
        packet[10] = (byte) (SSRC >>> 8);
        packet[11] = (byte) SSRC;
        for (int i = 0; i < PAYLOAD_BYTES; i++) {
            packet[HEADER_BYTES + i] = (byte) (n + 3L * i);
        }
    }

    /** Writes the ring's next plaintext packets (the next packet indexes). Untimed preparation. */
    void fillPlaintext() {
        firstIndex = nextIndex;
        for (int i = 0; i < ring.length; i++) {
            writePacket(buffers[i], nextIndex++);
            ring[i] = new RawPacket(buffers[i], 0, PACKET_BYTES);
        }
    }

    /** Protects every packet of the ring in place, one packet per call as the media path does; returns the count. */
    int protectRing() {
        RawPacket[] one = this.one;
        for (RawPacket packet : ring) {
            one[0] = packet;
            if (sender.transform(one)[0] == null) {
                throw new IllegalStateException("SRTP protect refused packet " + packet.getSequenceNumber());
            }
        }
        return ring.length;
    }

    /** Verifies and decrypts every packet of the ring in place, one packet per call; returns the count. */
    int unprotectRing() {
        RawPacket[] one = this.one;
        for (RawPacket packet : ring) {
            one[0] = packet;
            if (receiver.reverseTransform(one)[0] == null) {
                throw new IllegalStateException("SRTP unprotect refused packet " + packet.getSequenceNumber()
                        + " (authentication or replay check failed)");
            }
        }
        return ring.length;
    }

    /** Throws unless every packet of the ring is protected: 10 bytes longer and its payload no longer in clear. */
    void checkProtected() {
        for (int i = 0; i < ring.length; i++) {
            writePacket(expected, firstIndex + i);
            RawPacket p = ring[i];
            byte[] packet = Arrays.copyOfRange(p.getBuffer(), p.getOffset(), p.getOffset() + p.getLength());
            if (packet.length != PACKET_BYTES + TAG_BYTES
                    || !Arrays.equals(packet, 0, HEADER_BYTES, expected, 0, HEADER_BYTES)
                    || Arrays.equals(packet, HEADER_BYTES, PACKET_BYTES, expected, HEADER_BYTES, PACKET_BYTES)) {
                throw new IllegalStateException("packet index " + (firstIndex + i) + " is not SRTP-protected: "
                        + packet.length + " bytes, expected " + (PACKET_BYTES + TAG_BYTES));
            }
        }
    }

    /** Throws unless every packet of the ring is again exactly the plaintext it was filled with. */
    void checkPlaintext() {
        for (int i = 0; i < ring.length; i++) {
            writePacket(expected, firstIndex + i);
            RawPacket p = ring[i];
            if (!Arrays.equals(p.getBuffer(), p.getOffset(), p.getOffset() + p.getLength(), expected, 0,
                    PACKET_BYTES)) {
                throw new IllegalStateException("unprotect did not give back the plaintext of packet index "
                        + (firstIndex + i) + " (" + p.getLength() + " bytes)");
            }
        }
    }

    /**
     * Protects the ring's next packets, flips one bit of the first packet's tag and returns whether the receiver
     * refuses it (the other packets are left unprocessed; later indexes are still fresh for the receiver).
     */
    boolean refusesTamperedTag() {
        fillPlaintext();
        protectRing();
        RawPacket first = ring[0];
        first.getBuffer()[first.getOffset() + first.getLength() - 1] ^= 1;
        one[0] = first;
        return receiver.reverseTransform(one)[0] == null;
    }

    /**
     * The packet with index {@link #REFERENCE_INDEX} protected by a fresh sending context: for the same key, SSRC and
     * packet, an RFC 3711 implementation gives exactly these bytes, so comparing them with libsrtp2's shows that both
     * benchmarks run the same transform.
     */
    static byte[] protectReference() {
        SrtpPacketPath path = new SrtpPacketPath(1);
        try {
            byte[] buffer = new byte[PACKET_BYTES + TAG_BYTES];
            writePacket(buffer, REFERENCE_INDEX);
            path.one[0] = new RawPacket(buffer, 0, PACKET_BYTES);
            RawPacket out = path.sender.transform(path.one)[0];
            if (out == null) {
                throw new IllegalStateException("SRTP protect refused the reference packet");
            }
            return Arrays.copyOfRange(out.getBuffer(), out.getOffset(), out.getOffset() + out.getLength());
        } finally {
            path.close();
        }
    }

    @Override
    public void close() {
        sendingEngine.cleanup();
        receivingEngine.cleanup();
    }
}
