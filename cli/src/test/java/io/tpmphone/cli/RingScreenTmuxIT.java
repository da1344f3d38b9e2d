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
 * is declined with {@code d} and alice sees 603; an ordinary phone over UDP rings showing "no attestation" and the
 * policy's action, and one the policy refuses never rings; at 40 columns a third call still shows the level and the phrase
 * whole; a caller whose attestation FAILED (evidence relayed from another handshake) never rings and gets 403;
 * {@code tpmphone phone} killed with SIGTERM, and ended with Ctrl-C, leaves the terminal as it found it. The panes
 * are written to {@code target/ring-screen/}, and docs/softphone.md's screenshots must be those panes
 * ({@link Screenshots}; {@code -Dscreenshots.update=true} rewrites them). Fails, not skips, without PulseAudio or tmux.
 */
class RingScreenTmuxIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final String PHRASE = "purple elephant 42";
    /**
     * Wide enough that the peer block's lines are whole (the freshness line is 101–103 columns); the CALLS list still
     * cuts a long refusal reason at the window's edge, as the screen does at any width.
     */
    private static final int COLUMNS = 104;

    /**
     * A tmux server of this JVM's own (its socket named {@code -L}, no configuration file read): the machine's default
     * server belongs to whoever started it first, with that client's environment and settings, and lives on after us.
     */
    private static final List<String> TMUX = List.of("tmux", "-L", "tpmphone-ring-" + ProcessHandle.current().pid(),
            "-f", "/dev/null");

    private static String tmux(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(TMUX);
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS), "tmux " + String.join(" ", args) + " did not finish");
        assertEquals(0, p.exitValue(), "tmux " + String.join(" ", args) + " failed: " + out);
        return out;
    }

    /** An INVITE over plain UDP from {@code sip:phone@HOST}, offering PCMU with a fresh SDES key. */
    private static void sendInvite(java.net.DatagramSocket udp, int port, String callId, String host)
            throws Exception {
        byte[] key = new byte[30];
        new java.security.SecureRandom().nextBytes(key);
        String sdp = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                + "m=audio " + io.tpmphone.swtpm.testing.FreePorts.rtpPair() + " RTP/SAVP 0\r\n"
                + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + java.util.Base64.getEncoder().encodeToString(key)
                + "\r\n";
        String via = "127.0.0.1:" + udp.getLocalPort();
        String invite = "INVITE sip:bob@127.0.0.1:" + port + " SIP/2.0\r\n"
                + "Via: SIP/2.0/UDP " + via + ";rport;branch=z9hG4bK" + Integer.toHexString(callId.hashCode()) + "\r\n"
                + "Max-Forwards: 70\r\nTo: <sip:bob@127.0.0.1>\r\nFrom: <sip:phone@" + host + ">;tag=phone1\r\n"
                + "Call-ID: " + callId + "\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@" + via + ";transport=udp>\r\n"
                + "Content-Type: application/sdp\r\nContent-Length: " + sdp.length() + "\r\n\r\n" + sdp;
        byte[] b = invite.getBytes(StandardCharsets.US_ASCII);
        udp.send(new java.net.DatagramPacket(b, b.length, java.net.InetAddress.getLoopbackAddress(), port));
    }

    /** Waits for the response {@code status} to {@code callId}'s INVITE; fails naming what arrived instead. */
    private static void awaitResponse(java.net.DatagramSocket udp, String callId, int status) throws Exception {
        List<String> seen = new ArrayList<>();
        long end = System.nanoTime() + WAIT.toNanos();
        byte[] buf = new byte[65536];
        while (System.nanoTime() < end) {
            java.net.DatagramPacket p = new java.net.DatagramPacket(buf, buf.length);
            try {
                udp.receive(p);
            } catch (java.net.SocketTimeoutException quiet) {
                continue;
            }
            String m = new String(p.getData(), 0, p.getLength(), StandardCharsets.UTF_8);
            String first = m.lines().findFirst().orElse("");
            seen.add(first);
            if (first.startsWith("SIP/2.0 " + status + " ") && m.contains("Call-ID: " + callId)) {
                return;
            }
        }
        throw new AssertionError("no " + status + " for " + callId + " within " + WAIT + "; got " + seen);
    }

    /**
     * A phone in this JVM with {@code host}'s identity (its TIK signs, through the host's broker) that presents, in
     * every TLS handshake, evidence {@code host}'s TPM made for another handshake's binder: the verifier finds the
     * quote's qualifying data wrong, FAILED. It accepts any callee. Records "remote ringing" in {@code saw}.
     */
    private static io.tpmphone.softphone.sip.SipPhone failedCaller(TwoHostRig.Host host, TwoHostRig hosts,
                                                                 List<String> saw) throws Exception {
        io.tpmphone.tls.HostIdentity genuine = host.identity();
        io.tpmphone.tls.HostIdentity relaying = new io.tpmphone.tls.HostIdentity() {
            @Override
            public List<java.security.cert.X509Certificate> certificateChain() throws java.io.IOException {
                return genuine.certificateChain();
            }

            @Override
            public byte[] sign(byte[] digest) throws java.io.IOException {
                return genuine.sign(digest);
            }

            @Override
            public io.tpmphone.tls.Evidence evidence(byte[] binder) throws java.io.IOException {
                byte[] another = binder.clone();
                another[0] ^= 1; // evidence made for another handshake, relayed into this one
                return genuine.evidence(another);
            }
        };
        io.tpmphone.softphone.sip.SipPhone.Listener listener = new io.tpmphone.softphone.sip.SipPhone.Listener() {
            @Override
            public void remoteRinging(io.tpmphone.softphone.sip.Call call) {
                saw.add("remote ringing");
            }
        };
        return io.tpmphone.softphone.sip.SipPhone.start(new io.tpmphone.softphone.sip.SipPhone.Config(host.name(),
                        host.name(), java.net.InetAddress.getLoopbackAddress(),
                        io.tpmphone.swtpm.testing.FreePorts.tcpAndUdp(), 0, 0, Duration.ofSeconds(15)),
                io.tpmphone.tls.AttestedTlsConfig.of(relaying, hosts.verifier(), java.time.Clock.systemUTC()),
                io.tpmphone.softphone.CallPolicy.parse("default FAILED accept"), host.keys(), listener,
                java.time.Clock.systemUTC());
    }

    private static String tail(String log) {
        return log.length() <= 4000 ? log : log.substring(log.length() - 4000);
    }

    private static String pane(String session) throws Exception {
        return tmux("capture-pane", "-p", "-t", session);
    }

    @Test
    @Timeout(300)
    void bobAnswersWithA_hearsAlice_andDeclinesTheNextCallWithD(@TempDir Path dir) throws Exception {
        assertTrue(Files.isExecutable(Path.of("/usr/bin/tmux")), "tmux is missing: install it (./tpmphone test does)");
        Path shots = Files.createDirectories(Path.of("target", "ring-screen"));
        Map<String, String> captured = new java.util.LinkedHashMap<>();
        java.util.function.BiConsumer<String, String> shot = (name, pane) -> {
            captured.put(name, pane);
            try {
                Files.writeString(shots.resolve(name), pane);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        };
        String session = "tpmphone-ring-" + ProcessHandle.current().pid();
        int bobUdp = io.tpmphone.swtpm.testing.FreePorts.udp();
        try (SoundServer sound = SoundServer.start(dir.resolve("pulse"))) {
            sound.speaker("alice_speaker");
            sound.speaker("bob_speaker");
            sound.microphone("alice_mic", Wav.tone(1000, 0.5, 1));
            sound.microphone("bob_mic", Wav.tone(440, 0.5, 1));
            TwoHostRig.Options options = new TwoHostRig.Options(Map.of(
                    "alice", List.of("media.audio=pulseaudio", "media.microphone=alice_mic",
                            "media.speaker=alice_speaker", "phone.answer=auto"),
                    "bob", List.of("media.audio=pulseaudio", "media.microphone=bob_mic",
                            "media.speaker=bob_speaker", "phone.answer=ring", "sip.setup.timeout.seconds=60",
                            // an ordinary phone over plain UDP: no attestation; accepted from phone.test only
                            "sip.udp.port=" + bobUdp, "policy.2=in sip:*@phone.test UNATTESTED accept")),
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
                    // run twice (ended by SIGTERM, then by Ctrl-C), the terminal's settings saved before and after
                    String phoneCommand = "'" + Path.of(System.getProperty("java.home"), "bin", "java") + "' -cp '"
                            + System.getProperty("java.class.path") + "' " + Main.class.getName() + " phone --control '"
                            + bobControl + "'";
                    // (the shell catches SIGINT so that it outlives Ctrl-C; its children get the default action)
                    Files.writeString(phone, "#!/bin/sh\ntrap 'echo interrupted' INT\n"
                            + "stty -g > '" + dir.resolve("tty-before") + "'\n"
                            + phoneCommand + "\necho \"phone 1 exited $?\"\n"
                            + "stty -g > '" + dir.resolve("tty-after-1") + "'\n"
                            + phoneCommand + "\necho \"phone 2 exited $?\"\n"
                            + "stty -g > '" + dir.resolve("tty-after-2") + "'\nexec cat\n");
                    tmux("new-session", "-d", "-s", session, "-x", String.valueOf(COLUMNS), "-y", "34",
                            "/bin/sh " + phone);
                    Await.until("bob's screen to come up", WAIT, () -> pane(session),
                            p -> p.contains("No call.") && p.contains("«" + PHRASE + "»"));
                    shot.accept("idle.txt", pane(session));

                    // alice calls: bob's screen rings with alice's level and bob's phrase
                    String first = alice.call("sips:bob@bob", bobNext);
                    String ringing;
                    try {
                        ringing = Await.until("bob's screen to ring", WAIT, () -> pane(session),
                                p -> p.contains("INCOMING CALL"));
                    } catch (AssertionError e) {
                        throw new AssertionError(e.getMessage() + "\nalice's calls: " + alice.calls()
                                + "\nbob's calls: " + bob.calls() + "\nbob's softphone log (end): "
                                + tail(hosts.childLog("bob")) + "\nalice's softphone log (end): "
                                + tail(hosts.childLog("alice")), e);
                    }
                    shot.accept("ringing.txt", ringing);
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
                    shot.accept("in-call.txt", inCall);
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
                    shot.accept("declined.txt", Await.until("bob's screen to list the declined"
                            + " call", WAIT, () -> pane(session), p -> p.contains("603 declined")));

                    // an ordinary phone without attestation (plain UDP) that the policy accepts: it rings, showing
                    // "no attestation" and the policy's action; d declines it
                    try (java.net.DatagramSocket udp = new java.net.DatagramSocket(0,
                            java.net.InetAddress.getLoopbackAddress())) {
                        udp.setSoTimeout(1000);
                        sendInvite(udp, bobUdp, "plain-1@phone.test", "phone.test");
                        awaitResponse(udp, "plain-1@phone.test", 180);
                        String plain = Await.until("bob's screen to ring for the caller without attestation", WAIT,
                                () -> pane(session), p -> p.contains("INCOMING CALL") && p.contains("phone.test"));
                        shot.accept("no-attestation.txt", plain);
                        assertTrue(plain.contains("Level:       [ UNATTESTED ]  no attestation"),
                                "no attestation, said so: " + plain);
                        assertTrue(plain.contains("Policy:      ACCEPT"), "the policy's action: " + plain);
                        assertTrue(plain.contains("«" + PHRASE + "»"), "bob's sealed phrase: " + plain);
                        tmux("send-keys", "-t", session, "d");
                        awaitResponse(udp, "plain-1@phone.test", 603);

                        // a caller the policy refuses (not from phone.test): it never rings
                        sendInvite(udp, bobUdp, "plain-2@other.test", "other.test");
                        awaitResponse(udp, "plain-2@other.test", 403);
                        String refused = Await.until("bob's screen to list the refused caller", WAIT,
                                () -> pane(session), p -> p.contains("\"sip:phone@other.test\""));
                        assertFalse(refused.contains("INCOMING CALL"), "a call the policy refuses never rings: "
                                + refused);
                        assertTrue(refused.contains("[ UNATTESTED ] REFUSED IN \"sip:phone@other.test\""),
                                "listed as refused, its level first: " + refused);
                    }

                    // a narrow window, 40 columns: the size is honoured and neither the level nor the phrase is cut
                    tmux("resize-window", "-t", session, "-x", "40", "-y", "34");
                    String third = alice.call("sips:bob@bob", bobNext);
                    String narrow = Await.until("bob's screen to ring, 40 columns wide", WAIT, () -> pane(session),
                            p -> p.contains("INCOMING CALL") && p.contains("─".repeat(38))
                                    && !p.contains("─".repeat(39)));
                    shot.accept("ringing-40-columns.txt", narrow);
                    for (String line : narrow.split("\n")) {
                        assertTrue(line.codePointCount(0, line.length()) <= 40, "the window's 40 columns are"
                                + " honoured: '" + line + "' in\n" + narrow);
                    }
                    assertTrue(narrow.contains("─".repeat(38)) && !narrow.contains("─".repeat(39)),
                            "the frame is drawn for 40 columns (a rule of 38), not wrapped from a wider one: "
                                    + narrow);
                    assertTrue(narrow.contains("   Level:       [ MEASURED ]"), "the level, whole: " + narrow);
                    assertTrue(narrow.contains("«" + PHRASE + "»"), "the phrase, whole: " + narrow);
                    tmux("send-keys", "-t", session, "d");
                    assertEquals("REFUSED", alice.await(third, Duration.ofSeconds(20)).path("state").asText(),
                            "the third call, declined");

                    // a caller whose attestation FAILED, whom bob's policy (MEASURED) refuses: bob's screen never
                    // rings, the caller sees the 403. A tampered host cannot be that caller (its TIK signs nothing,
                    // so its TLS handshake never ends); a FAILED caller is one whose evidence does not verify: here
                    // alice's identity relaying evidence her TPM made for another handshake (QUOTE: QUALIFYING_DATA)
                    tmux("resize-window", "-t", session, "-x", String.valueOf(COLUMNS), "-y", "34");
                    Await.until("bob's screen back at " + COLUMNS + " columns", WAIT, () -> pane(session),
                            p -> p.contains("─".repeat(COLUMNS - 2)) && p.contains("No call."));
                    List<String> callerSaw = new java.util.concurrent.CopyOnWriteArrayList<>();
                    try (io.tpmphone.softphone.sip.SipPhone attacker = failedCaller(hosts.alice(), hosts, callerSaw)) {
                        io.tpmphone.softphone.sip.Call refusedCall = attacker.await(attacker.call("sips:bob@bob",
                                new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(),
                                        hosts.bob().childTlsPort())));
                        assertEquals(io.tpmphone.softphone.sip.Call.State.REFUSED, refusedCall.state(),
                                "the FAILED caller's call: " + refusedCall);
                        assertTrue(refusedCall.reason().startsWith("403")
                                        && refusedCall.reason().contains("FAILED"),
                                "the caller sees bob's 403 naming its level FAILED: " + refusedCall.reason());
                        assertFalse(callerSaw.contains("remote ringing"),
                                "bob's phone never rang (no 180 reached the caller): " + callerSaw);
                        String failed = Await.until("bob's screen to list the FAILED caller", WAIT,
                                () -> pane(session), p -> p.contains("[ FAILED ] REFUSED IN \"sips:alice@alice\""));
                        shot.accept("refused-failed.txt", failed);
                        assertFalse(failed.contains("INCOMING CALL"), "a FAILED caller never rings: " + failed);
                        JsonNode bobsCalls = bob.calls();
                        JsonNode seen = null;
                        for (JsonNode c : bobsCalls) {
                            if (c.path("callId").asText().equals(refusedCall.callId())) {
                                seen = c;
                            }
                        }
                        assertTrue(seen != null && seen.path("state").asText().equals("REFUSED")
                                        && seen.path("level").asText().equals("FAILED")
                                        && seen.path("reason").asText().contains("FAILED"),
                                "bob's softphone refused the call at level FAILED: " + bobsCalls);
                    }

                    // killed (SIGTERM), the relay gives the terminal back as it found it
                    String before = Files.readString(dir.resolve("tty-before")).strip();
                    long shell = Long.parseLong(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip());
                    ProcessHandle relay = ProcessHandle.of(shell).orElseThrow().descendants()
                            .filter(h -> h.info().command().map(c -> c.endsWith("/java")).orElse(false)).findFirst()
                            .orElseThrow(() -> new AssertionError("no tpmphone phone under the pane's shell"));
                    assertTrue(relay.destroy(), "SIGTERM to tpmphone phone " + relay.pid());
                    String killed = Await.until("tpmphone phone to end on SIGTERM", WAIT, () -> pane(session),
                            p -> p.contains("phone 1 exited"));
                    assertEquals(before, Await.until("the terminal's settings after SIGTERM", WAIT,
                            () -> Files.exists(dir.resolve("tty-after-1"))
                                    ? Files.readString(dir.resolve("tty-after-1")).strip() : "",
                            t -> !t.isEmpty()), "raw mode undone after SIGTERM; pane: " + killed);
                    assertEquals("0", tmux("display-message", "-p", "-t", session, "#{alternate_on}").strip(),
                            "back on the main screen after SIGTERM");

                    // Ctrl-C still works in raw mode (signals kept) and restores the terminal too
                    Await.until("bob's screen to come up again", WAIT, () -> pane(session),
                            p -> p.contains("No call.") && p.contains("«" + PHRASE + "»"));
                    assertEquals("1", tmux("display-message", "-p", "-t", session, "#{alternate_on}").strip(),
                            "the screen is in the alternate screen while it runs");
                    tmux("send-keys", "-t", session, "C-c");
                    String interrupted = Await.until("tpmphone phone to end on Ctrl-C", WAIT, () -> pane(session),
                            p -> p.contains("phone 2 exited"));
                    assertEquals(before, Await.until("the terminal's settings after Ctrl-C", WAIT,
                            () -> Files.exists(dir.resolve("tty-after-2"))
                                    ? Files.readString(dir.resolve("tty-after-2")).strip() : "",
                            t -> !t.isEmpty()), "raw mode undone after Ctrl-C; pane: " + interrupted);
                    assertEquals("0", tmux("display-message", "-p", "-t", session, "#{alternate_on}").strip(),
                            "back on the main screen after Ctrl-C");

                    // the screenshots in docs/softphone.md are these panes (masked: times, ages, the AK id)
                    List<String> differences = Screenshots.check(Screenshots.softphoneDoc(), captured);
                    assertTrue(differences.isEmpty(), "docs/softphone.md's screenshots are not this run's panes;"
                            + " refresh them with -D" + Screenshots.UPDATE_PROPERTY + "=true if the change is"
                            + " meant:\n" + String.join("\n\n", differences));
                } finally {
                    List<String> kill = new ArrayList<>(TMUX);
                    kill.add("kill-server");
                    new ProcessBuilder(kill).start().waitFor(10, TimeUnit.SECONDS);
                }
            }
        }
    }
}
