package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.softphone.media.Wav;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.SoundServer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A person at bob's phone, through {@code tpmphone phone} in a real terminal (tmux): two measured softphones on real
 * audio (a headless PulseAudio, null-sink speakers, microphones fed with tones, each softphone granted its socket only
 * during calls). alice calls; bob's screen — drawn by bob's measured softphone — shows alice's MEASURED level and
 * bob's sealed phrase; {@code a} answers and each side hears the other's tone through the sound server; a second call
 * is declined with {@code d} and alice sees 603. The panes are written to {@code target/ring-screen/} (the
 * screenshots in docs/softphone.md). Fails, not skips, without PulseAudio or tmux.
 */
class RingScreenTmuxIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final String PHRASE = "purple elephant 42";

    private static String tmux(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("tmux"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS), "tmux " + String.join(" ", args) + " did not finish");
        assertEquals(0, p.exitValue(), "tmux " + String.join(" ", args) + " failed: " + out);
        return out;
    }

    private static String pane(String session) throws Exception {
        return tmux("capture-pane", "-p", "-t", session);
    }

    @Test
    @Timeout(300)
    void bobAnswersWithA_hearsAlice_andDeclinesTheNextCallWithD(@TempDir Path dir) throws Exception {
        assertTrue(Files.isExecutable(Path.of("/usr/bin/tmux")), "tmux is missing: install it (./tpmphone test does)");
        Path shots = Files.createDirectories(Path.of("target", "ring-screen"));
        String session = "tpmphone-ring-" + ProcessHandle.current().pid();
        try (SoundServer sound = SoundServer.start(dir.resolve("pulse"))) {
            sound.speaker("alice_speaker");
            sound.speaker("bob_speaker");
            sound.microphone("alice_mic", Wav.tone(1000, 0.5, 1));
            sound.microphone("bob_mic", Wav.tone(440, 0.5, 1));
            TwoHostRig.Options options = new TwoHostRig.Options(Map.of(
                    "alice", List.of("media.audio=pulseaudio", "media.microphone=alice_mic",
                            "media.speaker=alice_speaker", "phone.answer=auto"),
                    "bob", List.of("media.audio=pulseaudio", "media.microphone=bob_mic",
                            "media.speaker=bob_speaker", "phone.answer=ring", "sip.setup.timeout.seconds=60")),
                    Optional.of(sound.address()), Map.of("bob", PHRASE));
            try (TwoHostRig hosts = TwoHostRig.start(dir.resolve("rig"), options)) {
                Path aliceControl = hosts.alice().childControl();
                Path bobControl = hosts.bob().childControl();
                String bobNext = "127.0.0.1:" + hosts.bob().childTlsPort();
                try (ControlClient alice = ControlClient.connect(aliceControl, Duration.ofSeconds(60));
                     ControlClient bob = ControlClient.connect(bobControl, Duration.ofSeconds(60))) {
                    bob.calls(); // bob's softphone answers its control socket
                    assertFalse(Files.exists(dir.resolve("rig/bob/launch/sound/native")),
                            "no sound server socket for bob's softphone before any call");
                    // a script, not the command itself: tmux's messages are too short for a whole class path
                    Path phone = dir.resolve("phone.sh");
                    Files.writeString(phone, "#!/bin/sh\nexec '" + Path.of(System.getProperty("java.home"), "bin",
                            "java") + "' -cp '" + System.getProperty("java.class.path") + "' " + Main.class.getName()
                            + " phone --control '" + bobControl + "'\n");
                    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "34", "/bin/sh " + phone);
                    Await.until("bob's screen to come up", WAIT, () -> pane(session),
                            p -> p.contains("No call.") && p.contains("«" + PHRASE + "»"));
                    Files.writeString(shots.resolve("idle.txt"), pane(session));

                    // alice calls: bob's screen rings with alice's level and bob's phrase
                    String first = alice.call("sips:bob@bob", bobNext);
                    String ringing = Await.until("bob's screen to ring", WAIT, () -> pane(session),
                            p -> p.contains("INCOMING CALL"));
                    Files.writeString(shots.resolve("ringing.txt"), ringing);
                    assertTrue(ringing.contains("From:        sips:alice@alice"), "the caller: " + ringing);
                    assertTrue(ringing.contains("[ MEASURED ]") && ringing.contains("attested host alice"),
                            "alice's level and attested host: " + ringing);
                    assertTrue(ringing.contains("«" + PHRASE + "»"), "bob's sealed phrase: " + ringing);
                    assertTrue(ringing.contains("Policy:      ACCEPT"), "the policy's action: " + ringing);
                    assertTrue(ringing.contains("Opus"), "Opus negotiated: " + ringing);
                    tmux("send-keys", "-t", session, "a");
                    JsonNode up = alice.await(first, Duration.ofSeconds(20));
                    assertEquals("ESTABLISHED", up.path("state").asText(), "alice's call after bob pressed a: " + up);
                    String inCall = Await.until("bob's screen to show the call", WAIT, () -> pane(session),
                            p -> p.contains("IN CALL"));
                    Files.writeString(shots.resolve("in-call.txt"), inCall);
                    Await.until("media both ways", WAIT, () -> alice.audio(first).path("packetsReceived").asLong(),
                            n -> n > 100);
                    short[] atBob = sound.record("bob_speaker", 1.0);
                    short[] atAlice = sound.record("alice_speaker", 1.0);
                    assertEquals(1000, Wav.dominantFrequency(atBob, atBob.length), 20,
                            "bob's speaker plays alice's 1000 Hz tone");
                    assertEquals(440, Wav.dominantFrequency(atAlice, atAlice.length), 20,
                            "alice's speaker plays bob's 440 Hz tone");
                    alice.hangUp(first);
                    Await.until("bob's softphone to give its sound server socket back", WAIT,
                            () -> !Files.exists(dir.resolve("rig/bob/launch/sound/native")),
                            () -> "still there: " + dir.resolve("rig/bob/launch/sound/native"));

                    // a second call, declined with d: alice sees 603
                    String second = alice.call("sips:bob@bob", bobNext);
                    Await.until("bob's screen to ring again", WAIT, () -> pane(session),
                            p -> p.contains("INCOMING CALL"));
                    tmux("send-keys", "-t", session, "d");
                    JsonNode declined = alice.await(second, Duration.ofSeconds(20));
                    assertEquals("REFUSED", declined.path("state").asText(), "alice's second call: " + declined);
                    assertTrue(declined.path("reason").asText().contains("603"),
                            "alice sees 603: " + declined.path("reason").asText());
                    Files.writeString(shots.resolve("declined.txt"), Await.until("bob's screen to list the declined"
                            + " call", WAIT, () -> pane(session), p -> p.contains("603 declined")));
                } finally {
                    new ProcessBuilder("tmux", "kill-session", "-t", session).start().waitFor(10, TimeUnit.SECONDS);
                }
            }
        }
    }
}
