package io.tpmphone.swtpm.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

class LoopbackPortsTest {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    @Test
    void portsComeFromBelowTheEphemeralRange_whenItLeavesRoomThere(@TempDir Path dir) throws IOException {
        assertArrayEquals(new int[] {10_000, 32_767}, LoopbackPorts.pickRange(write(dir, "32768\t60999\n")));
        assertArrayEquals(new int[] {10_000, 49_151}, LoopbackPorts.pickRange(write(dir, "49152 65535")));
    }

    @Test
    void portsComeFromAboveIt_whenItStartsLow_andFromEverywhere_whenItCoversAll(@TempDir Path dir)
            throws IOException {
        assertArrayEquals(new int[] {40_001, 65_534}, LoopbackPorts.pickRange(write(dir, "1024 40000")));
        assertArrayEquals(new int[] {1_024, 65_534}, LoopbackPorts.pickRange(write(dir, "2000 64000")));
    }

    @Test
    void anUnreadableOrGarbledRangeIsTakenForTheKernelDefault(@TempDir Path dir) throws IOException {
        assertArrayEquals(new int[] {10_000, 32_767}, LoopbackPorts.pickRange(dir.resolve("absent")));
        assertArrayEquals(new int[] {10_000, 32_767}, LoopbackPorts.pickRange(write(dir, "lots of ports")));
    }

    @Test
    void everyPickIsOutsideThisMachinesEphemeralRange_andBindableAsAsked() throws IOException {
        int[] range = LoopbackPorts.range();
        for (int i = 0; i < 50; i++) {
            int pair = LoopbackPorts.pick(LoopbackPorts.Also.UDP_AND_NEXT_TCP);
            assertTrue(pair >= range[0] && pair + 1 <= range[1], "port " + pair + " in " + Arrays.toString(range));
            try (ServerSocket tcp = new ServerSocket(pair, 1, LOOPBACK);
                 ServerSocket next = new ServerSocket(pair + 1, 1, LOOPBACK);
                 DatagramSocket udp = new DatagramSocket(new InetSocketAddress(LOOPBACK, pair))) {
                assertTrue(tcp.isBound() && next.isBound() && udp.isBound(), "bound " + pair);
            }
            int rtp = LoopbackPorts.pickUdpPair();
            assertTrue(rtp % 2 == 0 && rtp >= range[0] && rtp + 1 <= range[1], "RTP pair " + rtp);
        }
    }

    private static Path write(Path dir, String content) throws IOException {
        return Files.writeString(dir.resolve("range-" + content.hashCode()), content);
    }

    /**
     * Two hosts of a rig pick their ports at once: no two picks of one JVM may share a number, even before anything
     * binds them (CI: bob's SIP listener found alice's freshly picked number in use).
     */
    @Test
    @Timeout(60)
    void picksOfOneJvm_neverShareANumber_evenFromThreadsAtOnce() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<List<Integer>>> picks = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                picks.add(pool.submit(() -> {
                    List<Integer> mine = new ArrayList<>();
                    for (int i = 0; i < 150; i++) {
                        int pair = LoopbackPorts.pickConsecutivePair();
                        mine.add(pair);
                        mine.add(pair + 1);
                        mine.add(LoopbackPorts.pick(LoopbackPorts.Also.UDP));
                    }
                    return mine;
                }));
            }
            Set<Integer> seen = new HashSet<>();
            for (Future<List<Integer>> f : picks) {
                for (int port : f.get(50, TimeUnit.SECONDS)) {
                    assertTrue(seen.add(port), "port " + port + " was handed out twice among " + seen.size()
                            + " numbers picked by 4 threads at once");
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
