package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The directories every user may write, seen from inside a launched isolated child ({@link SharedDirectoryProbe}):
 * {@code /tmp} was private, {@code /var/tmp}, {@code /dev/shm}, {@code /run/lock} and {@code /dev/mqueue} were the host's,
 * so the child saw
 * what other processes left there (a shared-memory segment, a lock file) and left files they could see. Needs root.
 */
@WithSwtpm
class PrivateSharedDirectoriesIT {

    @Test
    @Timeout(120)
    void theIsolatedChild_seesNoHostFile_inDirectoriesEveryoneMayWrite_andLeavesNoneThere(SwtpmProcess swtpm,
            @TempDir Path dir) throws Exception {
        String hostFile = "tpmphone-it-host-" + System.nanoTime();
        String childFile = "tpmphone-it-child-" + System.nanoTime();
        // systemd hosts have the host IPC namespace's message queues at /dev/mqueue (mode 1777); this machine may
        // not: mount them as systemd does, for the duration of the test.
        Path mqueue = Path.of("/dev/mqueue");
        boolean mountedMqueue = false;
        if (!Files.isDirectory(mqueue)) {
            Files.createDirectory(mqueue);
            mountedMqueue = true;
            Process mount = new ProcessBuilder("mount", "-t", "mqueue", "mqueue", mqueue.toString())
                    .redirectErrorStream(true).start();
            assertTrue(mount.waitFor(10, java.util.concurrent.TimeUnit.SECONDS) && mount.exitValue() == 0,
                    () -> "mounting an mqueue file system at /dev/mqueue (needs root): " + read(mount));
        }
        List<Path> onHost = new ArrayList<>();
        for (String d : SharedDirectoryProbe.DIRECTORIES) {
            if (Files.isDirectory(Path.of(d))) {
                onHost.add(Files.createFile(Path.of(d, hostFile))); // a message queue, under /dev/mqueue
            }
        }
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")),
                List.of(Fixture.jarOf(dir, SharedDirectoryProbe.class)), Fixture.config(dir, "a=1\n"),
                SharedDirectoryProbe.class.getName(), List.of(), List.of(hostFile, childFile), true);
        Path log = dir.resolve("launch/child.log");
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR)) {
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec,
                    Map.of());
            try {
                String report = Await.until("the child to report what it sees", Duration.ofSeconds(30),
                        () -> read(log), l -> l.contains("probe ready"));
                for (Path host : onHost) {
                    String d = host.getParent().toString();
                    String line = report.lines().filter(l -> l.startsWith("probe " + d + " ")).findFirst()
                            .orElse("(no line)");
                    assertTrue(line.contains("sees-host-file=false"),
                            () -> "the child does not see " + host + ", which the host made; it reported: " + line);
                    assertTrue(line.contains("wrote=true"),
                            () -> "the child has a " + d + " of its own that it can write; it reported: " + line);
                    Path left = Path.of(d, childFile);
                    assertTrue(!Files.exists(left, LinkOption.NOFOLLOW_LINKS),
                            () -> "the host does not see " + left + ", which the child wrote while it runs; the"
                                    + " child reported: " + line);
                }
                String isolation = store.log().events().stream().filter(e -> e.type()
                        == io.tpmphone.attestation.EventType.ISOLATION).findFirst().orElseThrow().dataAsString();
                assertTrue(isolation.contains("private /tmp, /var/tmp, /dev/shm, /run/lock (tmpfs), /dev/mqueue"),
                        () -> "the ISOLATION event names the private directories: " + isolation);
            } finally {
                child.process().getOutputStream().close();
                Await.event("the child to exit after its stdin closed", Duration.ofSeconds(15),
                        child.process().onExit(), () -> "still running; child.log: " + read(log));
            }
            for (Path host : onHost) {
                Path left = host.resolveSibling(childFile);
                assertTrue(!Files.exists(left, LinkOption.NOFOLLOW_LINKS),
                        () -> "the host does not see " + left + " after the child exited either");
            }
            assertEquals(0, child.process().exitValue(), () -> "the probe exited cleanly; child.log: " + read(log));
        } finally {
            for (Path host : onHost) {
                Files.deleteIfExists(host);
                Files.deleteIfExists(host.resolveSibling(childFile)); // left there by a child that shared it
            }
            if (mountedMqueue) {
                new ProcessBuilder("umount", mqueue.toString()).inheritIO().start().waitFor(10,
                        java.util.concurrent.TimeUnit.SECONDS);
                Files.deleteIfExists(mqueue);
            }
        }
    }

    private static String read(Process p) {
        try {
            return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    private static String read(Path log) {
        try {
            return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "(no " + log + ")";
        } catch (IOException e) {
            return "(cannot read " + log + ": " + e + ")";
        }
    }
}
