package io.tpmphone.softphone.sip;

import java.net.DatagramPacket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Over UDP the source address is anyone's, so a refusal must not carry more bytes to an address than came from it:
 * the phone would be an amplifier. The phone's own refusals check their request's size ({@code SipPhone}); JAIN-SIP
 * also answers some requests by itself before the phone sees them (a CSeq method that differs from the request's,
 * another SIP version, an unparsable request: a {@code 400} or {@code 505}, larger than a small request). This counts,
 * per source address, the bytes received from it, and lets a refusal (a response of 300 and above) go to that address
 * only while they cover it, spending them; whatever answers, the refusals an address gets never total more bytes than
 * it sent. At most {@value #ADDRESSES} addresses are remembered (the least recent forgotten: a forgotten address gets
 * no refusal until it sends again), each with at most {@value #MAX_CREDIT} bytes. Thread-safe.
 */
final class UdpRefusalBudget {
    static final int ADDRESSES = 4096;
    static final int MAX_CREDIT = 65_536;
    private final Map<InetAddress, Integer> credit = new LinkedHashMap<>(64, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<InetAddress, Integer> eldest) {
            return size() > ADDRESSES;
        }
    };
    /** The address:port of the latest {@value #ADDRESSES} sources a datagram came from, least recent first. */
    private final Map<InetSocketAddress, Boolean> heard = new LinkedHashMap<>(64, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<InetSocketAddress, Boolean> eldest) {
            return size() > ADDRESSES;
        }
    };
    private long withheld;

    /** A datagram of {@code bytes} arrived from {@code source}. */
    synchronized void received(InetSocketAddress source, int bytes) {
        heard.put(source, Boolean.TRUE);
        received(source.getAddress(), bytes);
    }

    /**
     * Whether a datagram came from {@code to} lately (it is one of the last {@value #ADDRESSES} sources): the only
     * addresses, besides those the phone chose, its listening socket answers (issue 12's third review, finding 1).
     */
    synchronized boolean heardFrom(InetSocketAddress to) {
        return heard.get(to) != null;
    }

    /** {@code bytes} arrived from {@code source}. */
    synchronized void received(InetAddress source, int bytes) {
        credit.merge(source, bytes, (a, b) -> Math.min(MAX_CREDIT, a + b));
    }

    /** Whether {@code packet} may be sent: anything but a refusal, or a refusal its destination's bytes cover. */
    synchronized boolean maySend(DatagramPacket packet) {
        if (!isRefusal(packet)) {
            return true;
        }
        int have = credit.getOrDefault(packet.getAddress(), 0);
        if (have < packet.getLength()) {
            withheld++;
            return false;
        }
        credit.put(packet.getAddress(), have - packet.getLength());
        return true;
    }

    /** Refusals not sent, since the start. */
    synchronized long withheld() {
        return withheld;
    }

    /** A SIP response with a status of 300 or more: {@code SIP/2.0 3xx}..{@code 6xx}. */
    private static boolean isRefusal(DatagramPacket p) {
        byte[] d = p.getData();
        int o = p.getOffset();
        byte[] prefix = "SIP/2.0 ".getBytes(StandardCharsets.US_ASCII);
        if (p.getLength() < prefix.length + 3) {
            return false;
        }
        for (int i = 0; i < prefix.length; i++) {
            if (d[o + i] != prefix[i]) {
                return false;
            }
        }
        byte first = d[o + prefix.length];
        return first >= '3' && first <= '9';
    }
}
