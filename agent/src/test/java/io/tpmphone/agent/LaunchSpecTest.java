package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.MeasurementEvent;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

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
    void theChildUser_defaultsToNobody_andIsNeverRoot() {
        LaunchSpec spec = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), Path.of("/b/app.properties"), "Main",
                List.of(), List.of(), true);
        assertEquals("nobody", spec.childUser());
        for (String root : List.of("root", "0", "00")) {
            assertThrows(IllegalArgumentException.class, () -> spec.withChildUser(root), root);
        }
        assertThrows(IllegalArgumentException.class, () -> spec.withChildUser("a b; rm -rf /"));
    }
}
