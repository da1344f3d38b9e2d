package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.MeasuredCommandLine;
import io.tpmphone.attestation.MeasurementEvent;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
    void aSoundClientsConfiguration_cannotBeNamedLikeItsPulseAudioClientConfiguration() {
        LaunchSpec plain = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), Path.of("/b/pulse-client.conf"),
                "Main", List.of(), List.of(), true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> plain.withSoundClient(true));
        assertTrue(e.getMessage().contains(MeasuredLauncher.PULSE_CLIENT_CONFIG), e.getMessage());
    }

    @Test
    void aSoundGrantAndASoundClientThatDisagree_areRefusedAtTheStart_naming(
            @org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path cfg = java.nio.file.Files.writeString(dir.resolve("app.properties"), "a=1\n");
        LaunchSpec isolated = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), cfg, "Main", List.of(), List.of(),
                true);
        LaunchSpec shared = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), cfg, "Main", List.of(), List.of(),
                false);
        String toneWithGrant = Agent.soundClientMismatch(isolated, true);
        assertTrue(toneWithGrant != null && toneWithGrant.contains("--sound-server")
                && toneWithGrant.contains("media.audio"), String.valueOf(toneWithGrant));
        String clientWithoutGrant = Agent.soundClientMismatch(isolated.withSoundClient(true), false);
        assertTrue(clientWithoutGrant != null && clientWithoutGrant.contains("no sound server is granted"),
                String.valueOf(clientWithoutGrant));
        assertEquals(null, Agent.soundClientMismatch(isolated.withSoundClient(true), true));
        assertEquals(null, Agent.soundClientMismatch(isolated, false));
        assertEquals(null, Agent.soundClientMismatch(shared, true), "a child that is not isolated gets no grant");
    }

    @Test
    @SuppressWarnings("unchecked")
    void theReleaseOfASoundClient_approvesTheClientConfigurationTheLauncherWrites(
            @org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path jar = java.nio.file.Files.writeString(dir.resolve("app.jar"), "jar");
        Path cfg = java.nio.file.Files.writeString(dir.resolve("app.properties"), "a=1\n");
        LaunchSpec spec = new LaunchSpec(HOME, List.of(jar), cfg, "Main", List.of(), List.of(), true);
        String conf = java.util.HexFormat.of().formatHex(io.tpmphone.attestation.HashAlgorithm.SHA256.digest(
                MeasuredLauncher.pulseClientConfig()));
        assertEquals(List.of("app.properties", MeasuredLauncher.PULSE_CLIENT_CONFIG), List.copyOf(((Map<String,
                String>) ReleaseManifest.of("r", spec.withSoundClient(true)).get("configuration")).keySet()));
        assertEquals(conf, ((Map<String, String>) ReleaseManifest.of("r", spec.withSoundClient(true))
                .get("configuration")).get(MeasuredLauncher.PULSE_CLIENT_CONFIG));
        assertEquals(List.of("app.properties"), List.copyOf(((Map<String, String>) ReleaseManifest.of("r", spec)
                .get("configuration")).keySet()), "no client configuration for a child that is not a sound client");
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
        assertThrows(IllegalArgumentException.class, () -> spec.withChildUser("a b; rm -rf /"));
    }

    /**
     * Host names that the old derivation (lower case, other characters as '-', cut at 32) mapped to one user: two
     * softphones would have shared a uid, and so each other's broker sessions.
     */
    @Test
    @Timeout(10)
    void hostsThatReadAlike_getUsersOfTheirOwn() {
        List<List<String>> alike = List.of(
                List.of("Host1", "host1", "HOST1"),
                List.of("a b/c", "a-b-c", "a.b.c", "a:b@c", "a\u00e9b-c"),
                List.of("x".repeat(40), "x".repeat(41), "x".repeat(23)),
                List.of("alice.example.org-phone-1", "alice.example.org-phone-2"),
                List.of("", "-", "."));
        for (List<String> hosts : alike) {
            Map<String, String> users = new LinkedHashMap<>();
            for (String host : hosts) {
                users.put(host, LaunchSpec.childUserFor(host));
            }
            assertEquals(hosts.size(), new HashSet<>(users.values()).size(), () -> "each host its own user: " + users);
        }
    }

    @Test
    @Timeout(10)
    void theDedicatedUserName_isValidForUseradd_andStable() {
        // shadow's useradd and Debian's adduser (NAME_REGEX): a lower-case letter or '_' first, at most 32.
        java.util.regex.Pattern valid = java.util.regex.Pattern.compile("[a-z_][a-z0-9_-]{0,31}");
        for (String host : List.of("Host1", "a b/c", "x".repeat(200), "", "caf\u00e9.example", "1.2.3.4", "-rf",
                "bob;rm -rf /", "UPPER.lower.123")) {
            String user = LaunchSpec.childUserFor(host);
            assertTrue(valid.matcher(user).matches() && user.startsWith(LaunchSpec.DEDICATED_USER_PREFIX),
                    () -> "host '" + host + "' gives the user name '" + user + "' (" + user.length() + " characters)");
            LaunchSpec spec = new LaunchSpec(HOME, List.of(Path.of("/a/app.jar")), Path.of("/b/app.properties"),
                    "Main", List.of(), List.of(), true).withChildUser(user); // the spec accepts it
            assertEquals(user, spec.childUser(), "the spec's child user");
        }
        // The readable part, then 12 characters of the host's hash: the same host always gets the same user.
        String alice = LaunchSpec.childUserFor("alice");
        assertTrue(alice.matches("tpmphone-alice-[a-z2-7]{12}"), "alice's user: " + alice);
        assertEquals(alice, LaunchSpec.childUserFor("alice"), "stable");
        String long1 = LaunchSpec.childUserFor("x".repeat(40));
        assertEquals(32, long1.length(), "a long host's user is cut to 32: " + long1);
        assertTrue(long1.startsWith("tpmphone-" + "x".repeat(LaunchSpec.READABLE_HOST_CHARS) + "-"), long1);
    }
}
