package io.tpmphone.softphone.logging;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.SoftphoneRelease;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The measured softphone's logging configuration ({@code tpmphone-softphone-logback.xml}) in a JVM started the way the
 * agent starts the softphone: with an empty environment (no {@code LANG}, so the JVM's default charset is US-ASCII)
 * and stderr going to a file.
 */
class SoftphoneLoggingTest {
    private static final String STATS_LOGGER = "org.jitsi.impl.neomedia.MediaStreamStatsImpl";
    private static final String OTHER_JITSI_LOGGER = "org.jitsi.impl.neomedia.MediaStreamImpl";

    @TempDir
    Path dir;

    private record Run(String stdout, byte[] stderr) {
    }

    private Run run() throws IOException, InterruptedException {
        Path out = dir.resolve("stdout");
        Path err = dir.resolve("child.log");
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"),
                SoftphoneRelease.LOGGING_OPTION, LoggingProbe.class.getName(), STATS_LOGGER, OTHER_JITSI_LOGGER)
                .redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().clear();
        Process p = pb.start();
        p.getOutputStream().close();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("the probe JVM did not end within 60 s; its stderr: "
                    + Files.readString(err, StandardCharsets.ISO_8859_1));
        }
        String stdout = Files.readString(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), stdout + Files.readString(err, StandardCharsets.ISO_8859_1));
        return new Run(stdout, Files.readAllBytes(err));
    }

    @Test
    void withAnEmptyEnvironment_theLogIsUtf8() throws Exception {
        Run r = run();
        assertTrue(r.stdout().contains("defaultCharset=US-ASCII"), "the probe's JVM has the agent's ASCII default, "
                + "or this test proves nothing: " + r.stdout());
        String log = new String(r.stderr(), StandardCharsets.UTF_8);
        assertTrue(log.contains("decision — peer level FAILED → REJECT"), "the log is UTF-8: " + log);
        assertFalse(log.contains("?"), log);
    }

    @Test
    void libjitsisInvalidRttWarnings_areSilenced_andItsOtherWarningsAreNot() throws Exception {
        Run r = run();
        List<String> lines = r.stdout().lines().toList();
        assertTrue(lines.contains("julWarning " + STATS_LOGGER + "=false"),
                "MediaStreamStatsImpl's JUL warnings (invalid_rtt every 5 s) are off: " + r.stdout());
        assertTrue(lines.contains("julWarning " + OTHER_JITSI_LOGGER + "=true"),
                "other libjitsi warnings still reach the log: " + r.stdout());
    }
}
