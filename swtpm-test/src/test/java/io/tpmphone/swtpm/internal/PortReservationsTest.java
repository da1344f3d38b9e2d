package io.tpmphone.swtpm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reservations reach other processes: what one JVM holds, another cannot reserve until the first lets go or ends —
 * the modules of {@code ./tpmphone test} run side by side in JVMs of their own.
 */
class PortReservationsTest {

    /** A second JVM on the lock file: its answer per port, and the process (holding what it got until stdin ends). */
    private record Child(Process process, Map<Integer, Boolean> answers, String output) {
    }

    private static Child child(Path lockFile, int... ports) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), PortReservationsChild.class.getName(),
                lockFile.toString()));
        for (int p : ports) {
            cmd.add(String.valueOf(p));
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        Map<Integer, Boolean> answers = new LinkedHashMap<>();
        StringBuilder said = new StringBuilder();
        // the child prints "holding" last; a child that dies ends the output, and with it this loop
        for (String l = out.readLine(); l != null && !l.equals("holding"); l = out.readLine()) {
            said.append(l).append('\n');
            String[] f = l.split(" ");
            if (f.length == 2 && f[0].matches("[0-9]+")) {
                answers.put(Integer.parseInt(f[0]), Boolean.parseBoolean(f[1]));
            }
        }
        assertTrue(said.indexOf("machineWide true") >= 0, "the child opened " + lockFile + ": " + said);
        return new Child(p, answers, said.toString());
    }

    private static void end(Child c) throws Exception {
        c.process().getOutputStream().close();
        assertTrue(c.process().waitFor(30, TimeUnit.SECONDS), "the child ends when its stdin does: " + c.output());
    }

    @Test
    void aReservedNumberIsNotReservedAgain_norInsideAPair(@TempDir Path dir) {
        PortReservations r = new PortReservations(dir.resolve("ports.lock"));
        assertTrue(r.machineWide(), "the lock file in " + dir + " opened");
        assertTrue(r.reserve(9_001, 2), "a fresh pair 9001-9002 is reserved");
        assertFalse(r.reserve(9_002, 1), "9002 inside the pair is refused");
        assertFalse(r.reserve(9_000, 2), "a pair 9000-9001 overlapping it is refused");
        assertTrue(r.reserve(9_003, 1), "9003 next to it is free");
    }

    @Test
    @Timeout(60)
    void whatOneProcessHolds_anotherCannotReserve_untilTheHolderEnds(@TempDir Path dir) throws Exception {
        Path lockFile = dir.resolve("ports.lock");
        PortReservations mine = new PortReservations(lockFile);
        assertTrue(mine.reserve(20_001, 2), "this JVM reserves the pair 20001-20002");

        Child other = child(lockFile, 20_001, 20_002, 20_003);
        try {
            assertEquals(Map.of(20_001, false, 20_002, false, 20_003, true), other.answers(),
                    "another JVM gets neither number of our pair, and 20003 which nobody held: " + other.output());
            assertFalse(mine.reserve(20_003, 1), "while the other JVM lives, its 20003 is not ours to reserve");
        } finally {
            end(other);
        }
        assertTrue(mine.reserve(20_003, 1), "once the other JVM ended (no release of its own), 20003 is free again");
    }

    @Test
    void aPartlyHeldSpan_takesNothing(@TempDir Path dir) throws Exception {
        Path lockFile = dir.resolve("ports.lock");
        Child other = child(lockFile, 30_002);
        try {
            assertEquals(Map.of(30_002, true), other.answers(), "the other JVM holds 30002: " + other.output());
            PortReservations mine = new PortReservations(lockFile);
            assertFalse(mine.reserve(30_001, 2), "the pair 30001-30002 is refused: 30002 is held elsewhere");
            assertTrue(mine.reserve(30_000, 2), "30001 was let go with the refused pair, so 30000-30001 is free");
        } finally {
            end(other);
        }
    }

    @Test
    void loopbackPortsPicks_areHeldMachineWide() throws Exception {
        int pair = LoopbackPorts.pickConsecutivePair();
        int udp = LoopbackPorts.pickUdp();
        Child other = child(PortReservations.MACHINE_WIDE, pair, pair + 1, udp);
        try {
            assertEquals(Map.of(pair, false, pair + 1, false, udp, false), other.answers(),
                    "another JVM on the machine-wide file cannot reserve what this JVM's LoopbackPorts picked: "
                            + other.output());
        } finally {
            end(other);
        }
    }

    @Test
    void anUnopenableLockFile_leavesTheReservationToThisJvm(@TempDir Path dir) throws Exception {
        Path notAFile = Files.createDirectory(dir.resolve("a-directory"));
        PortReservations r = new PortReservations(notAFile);
        assertFalse(r.machineWide(), "a directory is no lock file");
        assertTrue(r.reserve(9_001, 1), "9001 is reserved within this JVM");
        assertFalse(r.reserve(9_001, 1), "and not twice");
    }
}
