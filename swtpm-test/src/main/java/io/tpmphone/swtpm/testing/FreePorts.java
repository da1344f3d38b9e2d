package io.tpmphone.swtpm.testing;

import io.tpmphone.swtpm.internal.LoopbackPorts;

/**
 * Loopback (127.0.0.1) ports that were free a moment ago, for servers that bind a port number they are given.
 *
 * <p>Every method here binds the port, reads its number and releases it, so the port is free only "a moment ago".
 * The ports come from below the kernel's ephemeral range ({@link LoopbackPorts}), so no outgoing connection and no bind
 * of port 0 can take one in that moment; only another explicit pick can, out of ~20,000. Callers whose server can bind
 * port 0 and report the port should still do that instead.
 */
public final class FreePorts {
    private FreePorts() {
    }

    /** A TCP port on 127.0.0.1 nobody listened on a moment ago; also a port to expect "connection refused" from. */
    public static int tcp() {
        return LoopbackPorts.pick(LoopbackPorts.Also.NOTHING);
    }

    /** A UDP port on 127.0.0.1 nobody had bound a moment ago. */
    public static int udp() {
        return LoopbackPorts.pickUdp();
    }

    /** A port number free for both TCP and UDP on 127.0.0.1 a moment ago (a SIP endpoint listens on both). */
    public static int tcpAndUdp() {
        return LoopbackPorts.pick(LoopbackPorts.Also.UDP);
    }

    /**
     * A port P free for TCP and UDP, whose P + 1 was free for TCP, a moment ago: for a SIP user agent that puts its TLS
     * listener on the next port (baresip does).
     */
    public static int tcpAndUdpWithNextTcp() {
        return LoopbackPorts.pick(LoopbackPorts.Also.UDP_AND_NEXT_TCP);
    }

    /** An even UDP port P whose P + 1 was free too, a moment ago: an RTP and RTCP pair (RFC 3550 §11). */
    public static int rtpPair() {
        return LoopbackPorts.pickUdpPair();
    }

    /** A port P such that TCP ports P and P + 1 were free a moment ago (swtpm's data and control ports). */
    public static int consecutiveTcpPair() {
        return LoopbackPorts.pickConsecutivePair();
    }
}
