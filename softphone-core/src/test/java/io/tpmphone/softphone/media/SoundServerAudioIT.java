package io.tpmphone.softphone.media;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.SoundServer;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real audio through a real PulseAudio server (headless, null sinks): two sessions, each with a virtual microphone
 * that plays a tone and a null-sink speaker; each speaker's monitor must carry the other side's tone (Goertzel),
 * over SRTP with Opus and with PCMU. Fails when PulseAudio is not installed.
 */
@Timeout(120)
class SoundServerAudioIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    private static final SecureRandom RANDOM = new SecureRandom();

    @TempDir
    Path dir;
    private SoundServer server;
    private AudioSession alice;
    private AudioSession bob;

    @BeforeEach
    void startServer() throws Exception {
        server = SoundServer.start(dir);
        server.speaker("alice_speaker");
        server.speaker("bob_speaker");
        server.microphone("alice_mic", Wav.tone(1000, 0.5, 1));
        server.microphone("bob_mic", Wav.tone(440, 0.5, 1));
    }

    @AfterEach
    void stop() {
        if (alice != null) {
            alice.close();
        }
        if (bob != null) {
            bob.close();
        }
        if (server != null) {
            server.close();
        }
    }

    private static SdesCrypto key() {
        byte[] k = new byte[16];
        byte[] s = new byte[14];
        RANDOM.nextBytes(k);
        RANDOM.nextBytes(s);
        return SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, k, s);
    }

    private void call(int payloadType) throws Exception {
        alice = AudioSession.open(LOOPBACK, new AudioDevice.SoundServer(server.address(), Optional.of("alice_mic"),
                Optional.of("alice_speaker")));
        bob = AudioSession.open(LOOPBACK, new AudioDevice.SoundServer(server.address(), Optional.of("bob_mic"),
                Optional.of("bob_speaker")));
        SdesCrypto a = key();
        SdesCrypto b = key();
        SdesCrypto a2 = SdesCrypto.parse(a.format());
        SdesCrypto b2 = SdesCrypto.parse(b.format());
        alice.start(a, b, new InetSocketAddress(LOOPBACK, bob.localPort()), payloadType);
        bob.start(b2, a2, new InetSocketAddress(LOOPBACK, alice.localPort()), payloadType);
    }

    private void eachHearsTheOther() throws Exception {
        Await.until("both sessions to receive RTP", Duration.ofSeconds(20),
                () -> alice.stats().packetsReceived() > 50 && bob.stats().packetsReceived() > 50,
                () -> "alice " + alice.stats() + ", bob " + bob.stats() + "; server log: " + server.logTail());
        short[] atBob = server.record("bob_speaker", 1.0);
        short[] atAlice = server.record("alice_speaker", 1.0);
        double heardByBob = Wav.dominantFrequency(atBob, atBob.length);
        double heardByAlice = Wav.dominantFrequency(atAlice, atAlice.length);
        assertEquals(1000, heardByBob, 20, "bob's speaker should play alice's 1000 Hz tone, its monitor's dominant"
                + " frequency was " + heardByBob + " Hz (peak sample " + peak(atBob) + ")");
        assertEquals(440, heardByAlice, 20, "alice's speaker should play bob's 440 Hz tone, its monitor's dominant"
                + " frequency was " + heardByAlice + " Hz (peak sample " + peak(atAlice) + ")");
        assertTrue(peak(atBob) > 1000, "bob's speaker is nearly silent: peak sample " + peak(atBob));
    }

    private long ourClients() throws Exception {
        return server.pactl("list", "clients").lines().filter(l -> l.contains("application.name = \"tpmphone\""))
                .count();
    }

    private static int peak(short[] s) {
        int p = 0;
        for (short v : s) {
            p = Math.max(p, Math.abs(v));
        }
        return p;
    }

    @Test
    void eachSideHearsTheOtherThroughTheSoundServer_withOpus() throws Exception {
        call(111);
        eachHearsTheOther();
    }

    @Test
    void eachSideHearsTheOtherThroughTheSoundServer_withPcmu() throws Exception {
        call(0);
        eachHearsTheOther();
    }

    @Test
    void toneSessions_stillCarryMedia_afterSoundServerSessionsOfBothRates() throws Exception {
        call(111);
        eachHearsTheOther();
        alice.close();
        bob.close();
        call(0);
        eachHearsTheOther();
        alice.close();
        bob.close();
        alice = AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1));
        bob = AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1));
        SdesCrypto a = key();
        SdesCrypto b = key();
        SdesCrypto a2 = SdesCrypto.parse(a.format());
        SdesCrypto b2 = SdesCrypto.parse(b.format());
        alice.start(a, b, new InetSocketAddress(LOOPBACK, bob.localPort()), 0);
        bob.start(b2, a2, new InetSocketAddress(LOOPBACK, alice.localPort()), 0);
        Await.until("tone sessions to receive RTP", Duration.ofSeconds(20),
                () -> alice.stats().packetsReceived() > 50 && bob.stats().packetsReceived() > 50,
                () -> "alice " + alice.stats() + ", bob " + bob.stats());
        short[] atBob = bob.received().samples();
        assertEquals(1000, Wav.dominantFrequency(atBob, 4000), 20, "bob's tone session hears alice's tone");
    }

    @Test
    void theRinger_rings425HzOnTheSpeaker_andGivesItsAccessBack() throws Exception {
        java.util.List<String> access = new java.util.concurrent.CopyOnWriteArrayList<>();
        AudioDevice.SoundServer device = new AudioDevice.SoundServer(server.address(), Optional.empty(),
                Optional.of("alice_speaker"), new AudioDevice.Access() {
                    @Override
                    public void acquire(String callId) {
                        access.add("acquire " + callId);
                    }

                    @Override
                    public void release(String callId) {
                        access.add("release " + callId);
                    }
                });
        try (Ringer ringer = Ringer.start(device, "c1#ring")) {
            short[] heard = server.record("alice_speaker", 0.5);
            assertEquals(425, Wav.dominantFrequency(heard, heard.length), 20, "the ring tone on the speaker, peak "
                    + peak(heard));
            assertEquals(java.util.List.of("acquire c1#ring"), access, "the ringer holds the sound server access");
        }
        assertEquals(java.util.List.of("acquire c1#ring", "release c1#ring"), access, "and gives it back");
        Await.until("the ringer's client to leave the server", Duration.ofSeconds(10), () -> ourClients() == 0,
                () -> server.pactl("list", "clients"));
    }

    @Test
    void closingTheCall_closesItsSoundServerConnection() throws Exception {
        call(0);
        Await.until("the server to list both sessions as clients", Duration.ofSeconds(10),
                () -> ourClients() == 2, () -> server.pactl("list", "clients"));
        alice.close();
        Await.until("the server to list only bob's session once alice's closed", Duration.ofSeconds(10),
                () -> ourClients() == 1, () -> server.pactl("list", "clients"));
        bob.close();
        Await.until("the server to list no tpmphone client once both closed", Duration.ofSeconds(10),
                () -> ourClients() == 0, () -> server.pactl("list", "clients"));
    }

    /**
     * A call whose audio close is stuck (held where FMJ hung) has its sound server connection cut before its grant is
     * given back: the server no longer lists it as a client when the release runs, although libjitsi never let go.
     */
    @Test
    void aStuckClose_cutsTheSoundServerConnection_beforeTheGrantIsReleased() throws Exception {
        java.util.List<String> access = new java.util.concurrent.CopyOnWriteArrayList<>();
        CountDownLatch release = new CountDownLatch(1);
        AudioDevice.Access recorder = new AudioDevice.Access() {
            @Override
            public void acquire(String callId) {
            }

            @Override
            public void release(String callId) {
                long clients;
                try {
                    clients = Await.until("alice's connection to be gone as her grant is released",
                            Duration.ofSeconds(3), () -> ourClients(), n -> n <= 1);
                } catch (Exception | AssertionError e) {
                    clients = -1;
                }
                access.add("release " + callId + " with " + clients + " tpmphone clients");
            }
        };
        alice = AudioSession.open(LOOPBACK, new AudioDevice.SoundServer(server.address(), Optional.of("alice_mic"),
                Optional.of("alice_speaker"), recorder), "c1");
        bob = AudioSession.open(LOOPBACK, new AudioDevice.SoundServer(server.address(), Optional.of("bob_mic"),
                Optional.of("bob_speaker")));
        SdesCrypto a = key();
        SdesCrypto b = key();
        alice.start(a, SdesCrypto.parse(b.format()), new InetSocketAddress(LOOPBACK, bob.localPort()), 0);
        bob.start(b, SdesCrypto.parse(a.format()), new InetSocketAddress(LOOPBACK, alice.localPort()), 0);
        Await.until("the server to list both sessions as clients", Duration.ofSeconds(10),
                () -> ourClients() == 2, () -> server.pactl("list", "clients"));
        AudioSession.beforeStreamClose = () -> {
            try {
                release.await(5, TimeUnit.MINUTES);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        try {
            alice.close();
            assertEquals(java.util.List.of("release c1 with 1 tpmphone clients"), access, "alice's grant was released"
                    + " once her connection was gone (only bob's left), while her stream's close was still held");
        } finally {
            AudioSession.beforeStreamClose = () -> { };
            release.countDown();
        }
    }
}
