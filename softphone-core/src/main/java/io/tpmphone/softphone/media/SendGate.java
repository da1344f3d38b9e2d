package io.tpmphone.softphone.media;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.jitsi.impl.neomedia.transform.PacketTransformer;
import org.jitsi.service.neomedia.RawPacket;

/**
 * The last point of a call's outgoing RTP path: libjitsi's SRTP transformer wrapped, so that while sending is off
 * (hold, {@code recvonly}, {@code inactive}) no RTP packet leaves, whatever libjitsi's capture, encoder and packetiser
 * threads still had in flight when the direction changed ({@code MediaStream.setDirection} stops the send stream but
 * does not drain it, so a packet captured just before can still be sent just after). Packets are withheld before
 * they are encrypted: a withheld packet uses no SRTP index. RTCP is not gated (RFC 3264 §5.1: it goes on while held).
 *
 * <p>{@link #sent()} counts the RTP packets that passed the gate encrypted, which is what left the phone; libjitsi's
 * own send statistics count earlier in its chain (its statistics engine comes before SRTP). Thread-safe.
 */
final class SendGate implements PacketTransformer {
    private final Supplier<PacketTransformer> srtp;
    private volatile boolean sending = true;
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong withheld = new AtomicLong();

    /** {@code srtp} gives the SRTP transformer of the moment (libjitsi may replace or clean it up). */
    SendGate(Supplier<PacketTransformer> srtp) {
        this.srtp = srtp;
    }

    /** Opens or closes the gate; once this returns {@code false}, no RTP packet passes until it is opened again. */
    void sending(boolean on) {
        sending = on;
    }

    boolean sending() {
        return sending;
    }

    /** RTP packets that passed the gate and were encrypted. */
    long sent() {
        return sent.get();
    }

    /** RTP packets withheld because sending was off. */
    long withheld() {
        return withheld.get();
    }

    @Override
    public RawPacket[] transform(RawPacket[] pkts) {
        if (pkts == null) {
            return null;
        }
        if (!sending) {
            return drop(pkts, withheld);
        }
        PacketTransformer t = srtp.get();
        if (t == null) {
            return drop(pkts, withheld); // no SRTP (cleaned up): nothing leaves in the clear
        }
        RawPacket[] out = t.transform(pkts);
        if (out != null) {
            for (RawPacket p : out) {
                if (p != null) {
                    sent.incrementAndGet();
                }
            }
        }
        return out;
    }

    @Override
    public RawPacket[] reverseTransform(RawPacket[] pkts) {
        PacketTransformer t = srtp.get();
        return t == null ? drop(pkts, null) : t.reverseTransform(pkts); // nothing unauthenticated gets in either
    }

    private static RawPacket[] drop(RawPacket[] pkts, AtomicLong count) {
        if (pkts == null) {
            return null;
        }
        for (int i = 0; i < pkts.length; i++) {
            if (pkts[i] != null) {
                pkts[i] = null;
                if (count != null) {
                    count.incrementAndGet();
                }
            }
        }
        return pkts;
    }

    @Override
    public void close() {
        PacketTransformer t = srtp.get();
        if (t != null) {
            t.close();
        }
    }
}
