package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.MeasuredCommandLine;
import io.tpmphone.attestation.MeasurementEvent;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class LaunchSpecTest {
    private static final Path HOME = Path.of(System.getProperty("java.home"));

    @Test
    void aConfigurationNamedLikeAJar_isRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LaunchSpec(HOME,
                List.of(Path.of("/a/app.jar")), Path.of("/b/app.jar"), "Main", List.of(), List.of(), true));
        assertTrue(e.getMessage().contains("app.jar") && e.getMessage().contains("overwrite"), e.getMessage());
    }

    @Test
    void aCommandLineLongerThanOneEvent_isRefusedWithTheLimit() {
        List<String> options = Collections.nCopies(300, "-Dsome.long.property=value");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LaunchSpec(HOME,
                List.of(Path.of("/a/app.jar")), Path.of("/b/app.properties"), "Main", options, List.of(), true));
        assertTrue(e.getMessage().contains(Integer.toString(MeasurementEvent.MAX_DATA_LENGTH)), e.getMessage());
    }

    @Test
    void aCommandLineJustWithinTheLimit_isAccepted_andMeasuredWithinIt() throws Exception {
        LaunchSpec spec = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), Path.of("/b/app.properties"), "Main",
                List.of("-Dx=" + "y".repeat(3000)), List.of(), true);
        int length = String.join("\0", MeasuredLauncher.commandLine(spec)).getBytes(
                java.nio.charset.StandardCharsets.UTF_8).length;
        assertTrue(length <= MeasurementEvent.MAX_DATA_LENGTH, "length " + length);
    }

    @Test
    void theMeasuredCommandLine_isTheVersion1Layout_withTheLaunchersRealPath() throws Exception {
        LaunchSpec spec = new LaunchSpec(HOME, List.of(Path.of("/a/softphone-core.jar"), Path.of("/c/b.jar")),
                Path.of("/b/app.properties"), "io.tpmphone.softphone.SoftphoneMain", List.of("-Xmx64m"),
                List.of("--headless"), true);
        String java = HOME.resolve("bin/java").toRealPath().toString();
        List<String> expected = List.of(java, "-XX:+DisableAttachMechanism", "-XX:-UsePerfData", "-Xmx64m", "-cp",
                "softphone-core.jar:b.jar", "io.tpmphone.softphone.SoftphoneMain", "--config", "app.properties",
                "--headless");
        assertEquals(expected, MeasuredLauncher.commandLine(spec));
        assertEquals(MeasuredCommandLine.of(expected), MeasuredLauncher.measuredCommandLine(spec));
    }

    @Test
    void theChildUser_defaultsToADedicatedUser_andIsNeverRootOrNobody() {
        LaunchSpec spec = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), Path.of("/b/app.properties"), "Main",
                List.of(), List.of(), true);
        assertEquals("tpmphone-softphone", spec.childUser());
        for (String shared : List.of("root", "0", "00", "nobody", "65534")) {
            assertThrows(IllegalArgumentException.class, () -> spec.withChildUser(shared), shared);
        }
        assertEquals("tpmphone-host1", LaunchSpec.childUserFor("Host1"));
        assertEquals("tpmphone-a-b-c", LaunchSpec.childUserFor("a b/c"));
        assertEquals(32, LaunchSpec.childUserFor("x".repeat(40)).length());
        assertThrows(IllegalArgumentException.class, () -> spec.withChildUser("a b; rm -rf /"));
    }
}
