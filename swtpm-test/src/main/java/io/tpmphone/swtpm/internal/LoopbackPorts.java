package io.tpmphone.swtpm.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Picks loopback (127.0.0.1) ports for servers that bind a port number they are given (swtpm, kamailio, baresip, a
 * softphone's SIP listener), from <em>outside</em> the kernel's ephemeral range.
 *
 * <p>A port picked by binding port 0 lies in the ephemeral range ({@code net.ipv4.ip_local_port_range}, 32768–60999 by
 * default), and the kernel hands the same range out as the local port of every outgoing connection: between the pick
 * and the server's bind, any HTTPS request or swtpm connection of the same test may take the number, and the server
 * fails with "address already in use" (CI at 3e94a71: a measured softphone of the rig exited with status 2 and its
 * host lost MEASURED). A port below the ephemeral range is never given to an outgoing connection or to a bind of port
 * 0, so only another explicit pick could collide — and a picked number stays reserved machine-wide
 * ({@link PortReservations}) for ten minutes or until its process ends, so no other pick, in this JVM or in another
 * one running at the same time (the modules {@code ./tpmphone test} runs side by side), returns it meanwhile.
 *
 * <p>Consecutive pairs because clients derive the control port from the data port: tpm2-tss's {@code swtpm} TCTI
 * connects to P+1 for its control channel, as does TSS.Java's {@code TpmDeviceTcp}.
 */
public final class LoopbackPorts {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final int MAX_TRIES = 200;
    /** The lowest port picked: above the registered services most machines run (PostgreSQL 5432, 8080, ...). */
    private static final int FLOOR = 10_000;
    private static final int[] RANGE = pickRange(Path.of("/proc/sys/net/ipv4/ip_local_port_range"));

    private LoopbackPorts() {
    }

    /** What a candidate port must also allow, besides a TCP listener on it. */
    public enum Also {
        /** Nothing else. */
        NOTHING,
        /** A UDP socket on the same port (a SIP endpoint listens on both). */
        UDP,
        /** A TCP listener on the next port (swtpm's control port; baresip's TLS listener). */
        NEXT_TCP,
        /** UDP on the same port and TCP on the next. */
        UDP_AND_NEXT_TCP
    }

    /** Returns a port P such that P and P+1 were both free for TCP a moment ago. */
    public static int pickConsecutivePair() {
        return pick(Also.NEXT_TCP);
    }

    /** Returns a TCP port, free a moment ago, with what {@code also} asks for. */
    public static int pick(Also also) {
        IOException last = null;
        for (int i = 0; i < MAX_TRIES; i++) {
            int port = candidate();
            int span = also == Also.NEXT_TCP || also == Also.UDP_AND_NEXT_TCP ? 2 : 1;
            if (!reserve(port, span)) {
                continue;
            }
            try {
                probe(port, also);
                return port;
            } catch (IOException taken) {
                last = taken;
            }
        }
        throw new UncheckedIOException("found no free loopback port (" + also + ") in " + MAX_TRIES + " tries in "
                + RANGE[0] + "-" + RANGE[1], last);
    }

    /** An even UDP port P whose P + 1 was free too, a moment ago: an RTP and RTCP pair (RFC 3550 §11). */
    public static int pickUdpPair() {
        IOException last = null;
        for (int i = 0; i < MAX_TRIES; i++) {
            int port = candidate() & ~1;
            if (!reserve(port, 2)) {
                continue;
            }
            try (DatagramSocket rtp = new DatagramSocket(new InetSocketAddress(LOOPBACK, port));
                 DatagramSocket rtcp = new DatagramSocket(new InetSocketAddress(LOOPBACK, port + 1))) {
                return rtcp.getLocalPort() - 1 == rtp.getLocalPort() ? port : -1;
            } catch (IOException taken) {
                last = taken;
            }
        }
        throw new UncheckedIOException("found no free RTP/RTCP port pair in " + MAX_TRIES + " tries in " + RANGE[0]
                + "-" + RANGE[1], last);
    }

    /** A UDP port free a moment ago. */
    public static int pickUdp() {
        IOException last = null;
        for (int i = 0; i < MAX_TRIES; i++) {
            int port = candidate();
            if (!reserve(port, 1)) {
                continue;
            }
            try (DatagramSocket s = new DatagramSocket(new InetSocketAddress(LOOPBACK, port))) {
                return s.getLocalPort();
            } catch (IOException taken) {
                last = taken;
            }
        }
        throw new UncheckedIOException("found no free UDP port in " + MAX_TRIES + " tries in " + RANGE[0] + "-"
                + RANGE[1], last);
    }

    /** The range ports are picked from, [low, high) (for tests and diagnostics). */
    public static int[] range() {
        return RANGE.clone();
    }

    /**
     * Numbers handed out (or probed) recently, reserved machine-wide ({@link PortReservations}): a later pick, by this
     * JVM or any other of the same user on the machine, never returns one of them while it is held, so two picks cannot collide between
     * a pick and its server's bind.
     */
    private static final PortReservations RESERVED = new PortReservations(PortReservations.MACHINE_WIDE);

    /** Reserves port .. port + span - 1 unless one of them is reserved already; true if it did. */
    static boolean reserve(int port, int span) {
        return RESERVED.reserve(port, span);
    }

    private static int candidate() {
        return ThreadLocalRandom.current().nextInt(RANGE[0], RANGE[1]);
    }

    private static void probe(int port, Also also) throws IOException {
        try (ServerSocket tcp = new ServerSocket(port, 1, LOOPBACK)) {
            if (tcp.getLocalPort() != port) {
                throw new IOException("bound " + tcp.getLocalPort() + ", not " + port);
            }
            if (also == Also.UDP || also == Also.UDP_AND_NEXT_TCP) {
                new DatagramSocket(new InetSocketAddress(LOOPBACK, port)).close();
            }
            if (also == Also.NEXT_TCP || also == Also.UDP_AND_NEXT_TCP) {
                new ServerSocket(port + 1, 1, LOOPBACK).close();
            }
        }
    }

    /**
     * [low, high) below the ephemeral range when there are enough ports there, else above it, else (a machine whose
     * ephemeral range covers nearly everything) the whole unprivileged range.
     */
    static int[] pickRange(Path ipLocalPortRange) {
        int ephemeralLow = 32_768;
        int ephemeralHigh = 60_999;
        try {
            String[] f = Files.readString(ipLocalPortRange, StandardCharsets.US_ASCII).trim().split("\\s+");
            if (f.length == 2) {
                ephemeralLow = Integer.parseInt(f[0]);
                ephemeralHigh = Integer.parseInt(f[1]);
            }
        } catch (IOException | NumberFormatException | SecurityException unreadable) {
            // not Linux, or no /proc: the kernel default range
        }
        if (ephemeralLow - FLOOR >= 4_096) {
            return new int[] {FLOOR, ephemeralLow - 1}; // -1: P+1 of a pair stays below the range too
        }
        if (65_534 - ephemeralHigh >= 4_096) {
            return new int[] {ephemeralHigh + 1, 65_534};
        }
        return new int[] {1_024, 65_534};
    }
}
