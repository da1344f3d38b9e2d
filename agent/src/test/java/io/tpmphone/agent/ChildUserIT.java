package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The attack of a process that shares the softphone's user: with the child running as {@code nobody}, any other
 * {@code nobody} process could copy the child's authenticated broker socket with {@code pidfd_getfd} and have the TPM
 * sign, quote and release keys for it. The child now runs as a user of its own, the launcher refuses a user that
 * other processes run as, and the JVM is not dumpable (real gid apart from its effective gid), so even a process of
 * its own uid that appears later cannot take its descriptors.
 */
@WithSwtpm(ekCertificate = true, perMethod = true)
class ChildUserIT {
    /**
     * Tries {@code pidfd_getfd} (x86-64 syscalls 434, 438) on fds 3..63 of pid ARGV[0]; prints how many it copied and
     * the last error. perl is part of every Debian system (perl-base is essential).
     */
    private static final String STEAL = "my $p = syscall(434, $ARGV[0] + 0, 0); if ($p < 0) { print \"stolen=0"
            + " err=pidfd_open: $!\\n\"; exit 0; } my ($n, $e) = (0, ''); for my $fd (3..63) { my $r = syscall(438,"
            + " $p, $fd, 0); if ($r >= 0) { $n++ } else { $e = \"$!\" } } print \"stolen=$n err=$e\\n\";";

    private static String stealAs(String uid, String gid, long pid) throws Exception {
        Process p = new ProcessBuilder("setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups", "perl", "-e",
                STEAL, Long.toString(pid)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the thief ended: " + out);
        return out;
    }

    private static String id(String option, String user) throws Exception {
        Process p = new ProcessBuilder("id", option, user).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0, "id " + option + " " + user + ": " + out);
        return out;
    }

    @Test
    @org.junit.jupiter.api.Timeout(120)
    void aProcessOfAnotherUserOrOfItsOwn_cannotCopyTheChildsBrokerSocket(SwtpmProcess swtpm, @TempDir Path dir)
            throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        CompletableFuture<Void> quoted = new CompletableFuture<>();
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
             Broker broker = Broker.start(dir.resolve("broker"), binder -> {
                 quoted.complete(null);
                 return "akId=00 pcrs=sha256:14";
             })) {
            MeasuredLauncher.Launched child = new MeasuredLauncher(store, dir.resolve("launch")).launch(spec, broker);
            try {
                quoted.get(30, TimeUnit.SECONDS); // the child is in its broker session now
                ProcessHandle jvm = child.process().toHandle().descendants().filter(h -> h.info().command()
                        .map(c -> c.endsWith("/java")).orElse(false)).findFirst().orElseThrow(() ->
                        new AssertionError("no JVM under the launch wrapper: " + child.process().toHandle()
                                .descendants().map(h -> h.info().commandLine().orElse("?")).toList()));
                String childUser = spec.childUser();
                String uid = id("-u", childUser);
                List<String> procStatus = Files.readAllLines(Path.of("/proc/" + jvm.pid() + "/status"));
                assertEquals(uid, procStatus.stream()
                        .filter(l -> l.startsWith("Uid:")).findFirst().orElseThrow().split("\\s+")[1],
                        () -> "the child runs as its own user " + childUser + "; its ids: " + procStatus.stream()
                                .filter(l -> l.startsWith("Uid:") || l.startsWith("Gid:")).toList());

                List<String> mounts = Files.readAllLines(Path.of("/proc/" + jvm.pid() + "/mountinfo"));
                assertTrue(mounts.stream().map(l -> l.split(" ")).anyMatch(f -> f[4].equals("/tmp")
                        && List.of(f).contains("tmpfs")), "the child has a private /tmp: " + mounts);

                // The thief as nobody, the user the child used to share with other services: refused.
                String asNobody = stealAs(id("-u", "nobody"), id("-g", "nobody"), jvm.pid());
                assertTrue(asNobody.startsWith("stolen=0 ") && asNobody.contains("Operation not permitted"),
                        "a nobody process copies none of the child's sockets: " + asNobody);
                // The thief as the child's own uid and group (a process of that user that appears after the launch):
                // refused too, since the JVM is not dumpable.
                String gid = id("-g", childUser);
                String asChild = stealAs(uid, gid, jvm.pid());
                assertTrue(asChild.startsWith("stolen=0 ") && asChild.contains("Operation not permitted"),
                        "a process of the child's own user copies none of its sockets: " + asChild);
                List<String> ids = procStatus.stream().filter(l -> l.startsWith("Gid:")).toList();
                String[] gids = ids.get(0).split("\\s+"); // Gid: real effective saved filesystem
                assertTrue(!gids[1].equals(gid) && gids[2].equals(gid),
                        () -> "the JVM's real gid is not its effective gid " + gid + ": " + ids);
                Object environOwner = Files.getAttribute(Path.of("/proc/" + jvm.pid() + "/environ"), "unix:uid");
                assertEquals(0, environOwner, () -> "/proc/" + jvm.pid() + "/environ of a non-dumpable process is"
                        + " root's; it is uid " + environOwner + "'s");
                // The same method as the same user against a dumpable process of that user works: so the refusal
                // above is the launch, not the method.
                Process dumpable = new ProcessBuilder("setpriv", "--reuid=" + uid, "--regid=" + gid,
                        "--clear-groups", "/bin/sh", "-c", "exec cat 3</dev/null").start(); // until stdin closes
                try {
                    // setpriv changes its ids before it execs (the kernel makes a process that changed its ids
                    // non-dumpable until its next exec): steal only from the cat, which holds fd 3 and is dumpable
                    Await.until("the control process to have exec'd cat", java.time.Duration.ofSeconds(10),
                            () -> Files.readString(Path.of("/proc/" + dumpable.pid() + "/comm")).trim(),
                            "cat"::equals);
                    String control = stealAs(uid, gid, dumpable.pid());
                    assertTrue(control.matches("stolen=[1-9][0-9]* .*"),
                            "the method works against a dumpable process of the same user: " + control);
                } finally {
                    dumpable.getOutputStream().close();
                    assertTrue(dumpable.waitFor(10, TimeUnit.SECONDS), "the dumpable cat ended with its stdin");
                }
            } finally {
                child.stop(java.time.Duration.ofSeconds(5));
            }
        }
    }

    /**
     * Stopping the child waits for every process in its namespace, not only for the wrapper the agent started: when
     * the child must be killed, the kernel ends the namespace's processes (the JVM) after the wrapper, asynchronously,
     * and a relaunch right after a stop found the child user still busy ("has running processes"). A child that
     * ignores its stdin, so that each stop has to kill it; three stop-and-relaunch rounds, each checked the instant
     * stop returns.
     */
    @Test
    @org.junit.jupiter.api.Timeout(180)
    void afterAStopThatKills_noProcessOfTheChildUserRemains_andARelaunchIsAccepted(SwtpmProcess swtpm,
                                                                                  @TempDir Path dir) throws Exception {
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")),
                List.of(Fixture.jarOf(dir, IdleProbe.class)), Fixture.config(dir, "a=1\n"), IdleProbe.class.getName(),
                List.of(), List.of(), true);
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR)) {
            MeasuredLauncher launcher = new MeasuredLauncher(store, dir.resolve("launch"));
            int uid = Integer.parseInt(id("-u", spec.childUser()));
            Path childLog = dir.resolve("launch/child.log");
            for (int round = 1; round <= 3; round++) {
                int r = round;
                MeasuredLauncher.Launched child = launcher.launch(spec, java.util.Map.of()); // refused if any are left
                Await.until("round " + r + ": the child to run", java.time.Duration.ofSeconds(30),
                        () -> Files.readString(childLog), l -> l.split("probe ready", -1).length > r);
                child.stop(java.time.Duration.ofSeconds(1));
                List<Long> left = MeasuredLauncher.processesOf(uid);
                assertTrue(left.isEmpty(), () -> "round " + r + ": when stop returned, the child user "
                        + spec.childUser() + " still ran " + left.stream().map(pid -> pid + " " + ProcessHandle
                        .of(pid).flatMap(h -> h.info().commandLine()).orElse("(gone)")).toList());
            }
        }
    }

    @Test
    @org.junit.jupiter.api.Timeout(120)
    void aChildUserWithRunningProcesses_isRefused(SwtpmProcess swtpm, @TempDir Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of())
                .withChildUser("tpmphone-shared-test");
        MeasuredLauncher.ChildUser user = MeasuredLauncher.resolveChildUser(spec); // created if missing
        Process squatter = new ProcessBuilder("setpriv", "--reuid=" + user.uid(), "--regid=" + user.gid(),
                "--clear-groups", "cat").start(); // runs until its stdin closes
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             MeasurementLogStore store = MeasurementLogStore.open(dir.resolve("log"), tpm, Fixture.PCR);
             Broker broker = Broker.start(dir.resolve("broker"), binder -> "akId=00 pcrs=sha256:14")) {
            IOException refused = assertThrows(IOException.class,
                    () -> new MeasuredLauncher(store, dir.resolve("launch")).launch(spec, broker));
            assertTrue(refused.getMessage().contains("has running processes") && refused.getMessage().contains(
                    Long.toString(squatter.pid())), "the launch names the other process: " + refused.getMessage());
            assertTrue(store.log().events().stream().allMatch(e -> e.type() == io.tpmphone.attestation.EventType
                    .BASELINE), "nothing was measured for a launch that was refused: " + store.log().events());
        } finally {
            squatter.getOutputStream().close();
            assertTrue(squatter.waitFor(10, TimeUnit.SECONDS), () -> "the squatter ended with its stdin; pid "
                    + squatter.pid() + " is " + (squatter.isAlive() ? "still running" : "done"));
        }
    }
}
