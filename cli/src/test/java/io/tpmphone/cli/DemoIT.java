package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.swtpm.testing.Await;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code tpmphone demo} as a user runs it, each run its own process: it passes twice in a row on the same machine
 * (the call through its kamailio proxy included, with what each side and the proxy saw) and leaves nothing behind
 * (no process whose command line names its temporary directory, no files there), and when
 * interrupted with Ctrl-C (SIGINT) in the middle it stops everything it started.
 */
class DemoIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Where the demo's temporary files go: world-traversable, since its softphones run as their own users. */
    private Path tmp;
    private java.nio.file.attribute.FileTime started;

    @BeforeEach
    void tmp() throws IOException {
        started = java.nio.file.attribute.FileTime.from(Instant.now().minusSeconds(1));
        tmp = Files.createTempDirectory(Path.of("/tmp"), "demo-it-");
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwx--x--x"));
    }

    @AfterEach
    void clean() throws IOException {
        try (Stream<Path> s = Files.walk(tmp)) {
            for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        }
    }

    private ProcessBuilder demo(Path log, String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Djava.io.tmpdir=" + tmp,
                // the module's own child users, as the rigs of this JVM (TwoHostRig.USERS_PROPERTY)
                "-D" + TwoHostRig.USERS_PROPERTY + "=" + System.getProperty(TwoHostRig.USERS_PROPERTY, ""),
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "demo"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectError(log.toFile());
    }

    @Test
    @Timeout(value = 7, unit = TimeUnit.MINUTES) // two runs of up to 3 minutes each, above the 5-minute default
    void passesTwiceInARow_andLeavesNothingBehind() throws Exception {
        for (int run = 1; run <= 2; run++) {
            Path log = Files.createTempFile("demo-" + run + "-", ".log");
            Instant t0 = Instant.now();
            Process p = demo(log, "--json").start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int runNumber = run;
            assertTrue(p.waitFor(180, TimeUnit.SECONDS), () -> "run " + runNumber + " finished within 3 minutes; "
                    + "stderr so far: " + tail(read(log)) + "\nstdout: " + out);
            String story = Files.readString(log);
            assertEquals(0, p.exitValue(), "run " + run + ":\n" + story + out);
            JsonNode summary = JSON.readTree(out);
            assertTrue(summary.path("ok").asBoolean(), () -> "the demo's summary says ok: " + summary + "\n"
                    + tail(story));
            assertEquals(6, summary.path("steps").size(), () -> "six steps: " + summary);
            summary.path("steps").forEach(s -> assertTrue(s.path("ok").asBoolean(), () -> "step ok: " + s));
            assertTrue(story.contains("bob: FAILED") && story.contains("refused by our call policy: peer level"
                    + " FAILED") && story.contains("refused NOT_APPROVED") && story.contains("intact"),
                    () -> "the story tells bob FAILED, the refused call, NOT_APPROVED keys and an intact audit log: "
                            + story);
            // the proxy step: both registered at kamailio, each far end MEASURED end to end over an UNATTESTED
            // hop, tones both ways, and the SDP kamailio relayed held fingerprints and no key
            String proxyStep = summary.path("steps").get(2).path("facts").toString();
            assertTrue(summary.path("steps").get(2).path("name").asText().contains("through a SIP proxy")
                    && proxyStep.contains("alice REGISTERED, bob REGISTERED")
                    && proxyStep.contains("alice sees bob:  ESTABLISHED, far end MEASURED bob end to end over DTLS,"
                    + " first hop (the proxy) UNATTESTED")
                    && proxyStep.contains("bob sees alice:  ESTABLISHED, far end MEASURED alice end to end over DTLS,"
                    + " first hop (the proxy) UNATTESTED")
                    && proxyStep.matches(".*bob hears (99[0-9]|100[0-9]) Hz, alice hears (43[0-9]|44[0-9]) Hz.*")
                    && proxyStep.contains("UDP/TLS/RTP/SAVP with a=fingerprint and a=setup, no a=crypto, no key"),
                    () -> "the proxy step's facts: " + proxyStep);
            // what its capture on loopback showed: the SIP to and from kamailio only as TLS, and both media ports
            // DTLS first, then SRTP (decoded as the call's G.711 codec, no tone in any 160 ms)
            assertTrue(proxyStep.matches(".*on the wire \\(tshark on loopback\\): SIP to and from the proxy, [1-9]\\d*"
                    + " TCP segments with \\d+ bytes, nothing in clear \\(TLS\\).*"),
                    () -> "the capture saw the SIP to the proxy, none of it in clear: " + proxyStep);
            assertTrue(proxyStep.matches("(?s).*the proxy's UDP port \\d+: nothing in clear \\(\\d+ datagrams\\)"
                    + ".*"),
                    () -> "nothing in clear on the proxy's UDP port either: " + proxyStep);
            java.util.regex.Matcher media = java.util.regex.Pattern.compile("media to port \\d+: ([1-9]\\d*) DTLS"
                    + " datagrams, ([1-9]\\d*) RTP/SRTP packets \\(payload type [08]\\); decoded as PCM[UA] they carry"
                    + " at most (\\d+\\.\\d) % of either tone in any 160 ms: SRTP, not RTP").matcher(proxyStep);
            List<String> shown = media.results().map(java.util.regex.MatchResult::group).toList();
            assertEquals(2, shown.size(), () -> "both media ports shown DTLS then SRTP: " + proxyStep);
            assertTrue(Duration.between(t0, Instant.now()).toSeconds() < 180, () -> "the demo took "
                    + Duration.between(t0, Instant.now()).toSeconds() + " s");
            assertNothingLeft();
            Files.deleteIfExists(log);
        }
    }

    @Test
    void ctrlC_inTheMiddle_stopsEverythingItStarted() throws Exception {
        Path log = Files.createTempFile("demo-int-", ".log");
        // Without --json the story goes to stdout: both streams into the log
        Process p = demo(log).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        // Wait until the hosts run (swtpm, server, agents, isolated softphones) and the call begins.
        String story = Await.until("the demo to tell '2. Alice calls bob' (or to exit)", Duration.ofSeconds(120),
                () -> Files.readString(log), told -> told.contains("2. Alice calls bob") || !p.isAlive());
        assertTrue(p.isAlive(), "the demo was still running when interrupted: " + story);
        List<ProcessHandle> started = p.descendants().toList();
        assertTrue(started.size() >= 4, () -> "swtpm ×2 and two softphones run: " + started.size() + " "
                + started.stream().map(h -> h.pid() + " " + h.info().commandLine().orElse("?")).toList());
        new ProcessBuilder("kill", "-INT", Long.toString(p.pid())).start().waitFor(10, TimeUnit.SECONDS);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), () -> "the demo stopped after Ctrl-C; its output: "
                + tail(read(log)));
        for (ProcessHandle h : started) {
            try {
                h.onExit().get(10, TimeUnit.SECONDS); // its exit is the event; still alive after 10 s fails below
            } catch (java.util.concurrent.TimeoutException stillAlive) {
                // asserted next, with its command line
            }
            assertTrue(!h.isAlive(), "left running after Ctrl-C: " + h.pid() + " " + h.info().commandLine()
                    .orElse("?"));
        }
        assertNothingLeft();
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            return e.toString();
        }
    }

    /** The last 8000 characters of a demo's output, for assertion messages. */
    private static String tail(String s) {
        return s.length() <= 8000 ? s : "…" + s.substring(s.length() - 8000);
    }

    /** No process names our temporary directory, and nothing of the demo's is left in it. */
    private void assertNothingLeft() throws Exception {
        List<String> alive = Await.until("no process to name " + tmp, Duration.ofSeconds(10),
                () -> ProcessHandle.allProcesses().filter(h -> h.info().commandLine().map(c -> c.contains(tmp
                        .toString())).orElse(false)).map(h -> h.pid() + " " + h.info().commandLine().orElse(""))
                        .toList(), List::isEmpty);
        assertTrue(alive.isEmpty(), "processes left behind: " + alive);
        try (Stream<Path> left = Files.list(tmp)) {
            List<String> names = left.map(f -> f.getFileName().toString()).filter(n -> n.startsWith("tpmphone"))
                    .toList();
            assertTrue(names.isEmpty(), "files left in the temporary directory: " + names);
        }
        // libjitsi's private home must not outlive a softphone. The demo's isolated softphones have a private /tmp
        // (it goes with their mount namespace), so none of theirs may appear in the system's /tmp at all. They run as
        // their own users, which tells their directories from those of other processes on this machine.
        java.util.Set<String> demoUsers = java.util.Set.of(TwoHostRig.defaultChildUser("alice"),
                TwoHostRig.defaultChildUser("bob"));
        try (Stream<Path> left = Files.list(Path.of("/tmp"))) {
            List<String> media = left.filter(f -> f.getFileName().toString().startsWith("tpmphone-media"))
                    .filter(f -> {
                        try {
                            return demoUsers.contains(Files.getOwner(f).getName())
                                    || Files.getLastModifiedTime(f).compareTo(started) >= 0
                                    && Files.getOwner(f).getName().equals(System.getProperty("user.name"))
                                    && !TwoHostRig.ISOLATE;
                        } catch (IOException gone) {
                            return false;
                        }
                    }).map(Path::toString).toList();
            assertTrue(media.isEmpty(), "the softphones' media directories were left behind: " + media);
        }
    }
}
