package io.tpmphone.softphone.media;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.imvs.sdes4j.srtp.SrtpCryptoAttribute;
import io.tpmphone.softphone.SdesCrypto;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.jitsi.service.neomedia.RawPacket;
import org.junit.jupiter.api.Test;

/**
 * The SRTP engine of our SDES control is keyed with the keys agreed in SDP: a packet it protects opens only with the
 * sender's key. (sdes4j keeps the caller's key array uncopied; wiping it before libjitsi had built the engine once keyed
 * every call with zeros, which a libjitsi peer decrypted happily and a third-party phone could not.)
 */
class SuppliedKeySDesControlTest {
    private static final SdesCrypto.Suite SUITE = SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80;

    private static SdesCrypto key(int fill) {
        byte[] k = new byte[16];
        byte[] s = new byte[14];
        Arrays.fill(k, (byte) fill);
        Arrays.fill(s, (byte) (fill + 1));
        return SdesCrypto.of(1, SUITE, k, s);
    }

    private static RawPacket rtp(byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(12 + payload.length);
        b.put((byte) 0x80).put((byte) 0).putShort((short) 4711).putInt(160 * 7).putInt(0x1234_5678).put(payload);
        return new RawPacket(b.array(), 0, b.capacity());
    }

    /** An RTP packet with sequence number {@code seq} (SRTP refuses to protect one sequence number twice). */
    private static RawPacket rtp(byte[] payload, int seq) {
        RawPacket p = rtp(payload);
        p.setSequenceNumber(seq);
        return p;
    }

    private static RawPacket copy(RawPacket p) {
        return new RawPacket(Arrays.copyOfRange(p.getBuffer(), p.getOffset(), p.getOffset() + p.getLength()), 0,
                p.getLength());
    }

    private static RawPacket protect(SuppliedKeySDesControl c, RawPacket p) {
        return c.getTransformEngine().getRTPTransformer().transform(new RawPacket[] {p})[0];
    }

    private static RawPacket open(SuppliedKeySDesControl c, RawPacket p) {
        return c.getTransformEngine().getRTPTransformer().reverseTransform(new RawPacket[] {p})[0];
    }

    @Test
    void aPacketProtectedWithOurKey_opensWithOurKey_andNotWithAnother() {
        MediaEngine.service();
        byte[] payload = new byte[160];
        Arrays.fill(payload, (byte) 0x55);
        SuppliedKeySDesControl alice = new SuppliedKeySDesControl(AudioSession.attribute(key(2)),
                AudioSession.attribute(key(1)));
        RawPacket sent = protect(alice, rtp(payload));
        assertTrue(sent.getLength() == 12 + 160 + 10, "an 80-bit tag is appended: " + sent.getLength());
        assertFalse(Arrays.equals(payload, Arrays.copyOfRange(sent.getBuffer(), sent.getOffset() + 12,
                sent.getOffset() + 172)), "the payload is encrypted");

        SuppliedKeySDesControl bob = new SuppliedKeySDesControl(AudioSession.attribute(key(1)),
                AudioSession.attribute(key(2)));
        RawPacket opened = open(bob, copy(sent));
        assertNotNull(opened, "the receiver keyed with the sender's key opens it");
        assertArrayEquals(payload, Arrays.copyOfRange(opened.getBuffer(), opened.getOffset() + 12,
                opened.getOffset() + opened.getLength()));

        SuppliedKeySDesControl eve = new SuppliedKeySDesControl(AudioSession.attribute(key(3)),
                AudioSession.attribute(key(4)));
        assertNull(open(eve, copy(sent)), "another key fails the authentication tag");
    }

    @Test
    void theAttributesKeyBytes_areWipedOnceTheEngineIsBuilt_andNoSecondEngineIsMadeFromThem() {
        MediaEngine.service();
        SrtpCryptoAttribute in = AudioSession.attribute(key(5));
        SrtpCryptoAttribute out = AudioSession.attribute(key(6));
        SuppliedKeySDesControl c = new SuppliedKeySDesControl(in, out);
        assertArrayEquals(new byte[30], in.getKeyParams()[0].getKey());
        assertArrayEquals(new byte[30], out.getKeyParams()[0].getKey());
        assertNotNull(c.getTransformEngine());
        assertThrows(IllegalStateException.class, c::createTransformEngine);
    }

    /**
     * The gate at the end of the send path: once sending is off no RTP packet leaves (nor is encrypted), whatever
     * libjitsi's send threads still hand it; once on again, packets are protected and counted as sent; an engine
     * libjitsi cleaned up lets nothing out in the clear. (A held call's phone once sent a packet its send pipeline
     * still had after the direction change: DtlsHoldIT under load.)
     */
    @Test
    void theSendGate_withholdsEveryRtpPacketWhileSendingIsOff_andCountsWhatLeft() {
        MediaEngine.service();
        SuppliedKeySDesControl c = new SuppliedKeySDesControl(AudioSession.attribute(key(7)),
                AudioSession.attribute(key(8)));
        SendGate gate = c.gate();
        byte[] payload = new byte[160];
        assertNotNull(protect(c, rtp(payload, 1)), "sending: the packet leaves");
        gate.sending(false);
        RawPacket[] held = c.getTransformEngine().getRTPTransformer().transform(new RawPacket[] {rtp(payload, 2),
                rtp(payload, 3), null});
        assertArrayEquals(new RawPacket[3], held, "sending off: nothing leaves");
        assertEquals(1, gate.sent(), "one left");
        assertEquals(2, gate.withheld(), "two withheld");
        gate.sending(true);
        RawPacket again = protect(c, rtp(payload, 4));
        assertNotNull(again, "sending again");
        assertEquals(12 + 160 + 10, again.getLength(), "protected: " + again.getLength());
        assertEquals(2, gate.sent());
        c.getTransformEngine().cleanup();
        assertNull(protect(c, rtp(payload, 5)), "no SRTP any more: nothing leaves in the clear");
        assertEquals(2, gate.sent());
        assertEquals(3, gate.withheld());
    }
}
