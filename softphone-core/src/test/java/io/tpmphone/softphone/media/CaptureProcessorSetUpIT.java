package io.tpmphone.softphone.media;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.softphone.SdesCrypto;
import io.tpmphone.swtpm.testing.Await;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import javax.media.ConfigureCompleteEvent;
import javax.media.NotConfiguredError;
import javax.media.Processor;
import javax.media.TransitionEvent;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The soak's media stall (issue 18). libjitsi sets a call's capture processor up (RAW_RTP, the call's codec, a level
 * effect) in a listener of its ConfigureCompleteEvent, on FMJ's event thread; the thread starting the stream waits for
 * the processor's configured <em>state</em>, which FMJ sets before it posts that event. On a loaded machine the event
 * thread lost the processor to the starting thread, which realized it first: "Failed to change format of track 0 from
 * LINEAR … to ULAW/rtp … Processor is in state 200", then a NotConfiguredError from the listener ended FMJ's event
 * thread, the start waited out libjitsi's 10 s and the stream sent a few packets, then nothing (seen with a two-process
 * probe, 1 call in 300 at load 10-30). {@link ConfiguredProcessorSession} waits for that listener before the processor
 * goes on, and keeps whatever the listener throws from ending the event thread. Real libjitsi streams, SRTP over
 * loopback UDP.
 *
 * <p>What cannot be injected here is the event thread losing the CPU between two events (FMJ dispatches each event
 * holding its listener list's lock, which the starting thread also needs on its way on, so holding an event in a
 * listener holds the starting thread too); the first test holds the event as late as FMJ allows and checks the
 * set-up still runs on a configured processor, the second makes the listener throw, as it did in the stall.
 */
@Timeout(60)
class CaptureProcessorSetUpIT {
    private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();
    /** How long the event thread is held at most. */
    private static final long HOLD_NANOS = TimeUnit.SECONDS.toNanos(3);

    @AfterEach
    void noMoreDelay() {
        ConfiguredProcessorSession.beforeEventHandled = (p, e) -> { };
    }

    @Test
    void aLateConfigureCompleteEvent_isHandledWhileTheProcessorIsConfigured_andAudioFlowsBothWays() throws Exception {
        List<String> statesAtSetUp = Collections.synchronizedList(new ArrayList<>());
        // FMJ's event thread late with the event (a delay injected on purpose, bounded): until the processor leaves
        // the Configured state (what the starting thread did in the stall) or HOLD
        ConfiguredProcessorSession.beforeEventHandled = (p, e) -> {
            if (e instanceof ConfigureCompleteEvent) {
                hold(() -> p.getState() == Processor.Configured);
                statesAtSetUp.add(state(p.getState()));
            }
        };
        String seen = callBothWays();
        assertEquals(List.of("Configured", "Configured"), statesAtSetUp, "each capture processor was still"
                + " configured when libjitsi set it up (states the set-up saw): " + seen);
    }

    @Test
    void anErrorInTheCaptureProcessorsListener_doesNotEndFmjsEventThread_andAudioFlowsBothWays() throws Exception {
        List<String> thrown = Collections.synchronizedList(new ArrayList<>());
        // what the level effect's NotConfiguredError did in the stall, on an event before the set-up
        ConfiguredProcessorSession.beforeEventHandled = (p, e) -> {
            if (e instanceof TransitionEvent t && t.getCurrentState() == Processor.Configuring) {
                thrown.add(e.getClass().getSimpleName());
                throw new NotConfiguredError("thrown by the test in the listener of " + e);
            }
        };
        String seen = callBothWays();
        assertEquals(List.of("TransitionEvent", "TransitionEvent"), thrown, "the listener threw once per capture"
                + " processor: " + seen);
    }

    /** A call between two sessions: asserts each decodes a second of the other's tone; returns what it saw. */
    private static String callBothWays() throws Exception {
        try (AudioSession a = AudioSession.open(LOOPBACK, Wav.tone(1000, 0.5, 1));
             AudioSession b = AudioSession.open(LOOPBACK, Wav.tone(440, 0.5, 1))) {
            byte[] keyA = key(1);
            byte[] keyB = key(2);
            long t0 = System.nanoTime();
            a.start(sdes(keyA), sdes(keyB), new InetSocketAddress(LOOPBACK, b.localPort()), 0);
            b.start(sdes(keyB), sdes(keyA), new InetSocketAddress(LOOPBACK, a.localPort()), 0);
            long startMs = (System.nanoTime() - t0) / 1_000_000;
            Await.until("each side to decode a second of the other's audio", Duration.ofSeconds(20),
                    () -> a.received().samples().length >= 8000 && b.received().samples().length >= 8000,
                    () -> "a " + a.received().samples().length + " samples (" + a.stats() + "), b "
                            + b.received().samples().length + " samples (" + b.stats() + "); the starts took "
                            + startMs + " ms");
            assertEquals(440.0, Wav.dominantFrequency(a.received().samples(), 4000), 20.0,
                    () -> "a hears b's tone: " + a.stats());
            assertEquals(1000.0, Wav.dominantFrequency(b.received().samples(), 4000), 20.0,
                    () -> "b hears a's tone: " + b.stats());
            assertTrue(startMs < ConfiguredProcessorSession.SETUP_TIMEOUT_MS, "no start waited out libjitsi's"
                    + " 10 s: the starts took " + startMs + " ms");
            return "the starts took " + startMs + " ms; a " + a.stats() + ", b " + b.stats();
        }
    }

    private static void hold(java.util.function.BooleanSupplier whilst) {
        long until = System.nanoTime() + HOLD_NANOS;
        while (whilst.getAsBoolean() && System.nanoTime() < until) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
        }
    }

    private static String state(int s) {
        return switch (s) {
            case Processor.Configured -> "Configured";
            case Processor.Realizing -> "Realizing";
            case Processor.Realized -> "Realized";
            case Processor.Prefetching -> "Prefetching";
            case Processor.Prefetched -> "Prefetched";
            case Processor.Started -> "Started";
            default -> "state " + s;
        };
    }

    private static byte[] key(int seed) {
        byte[] k = new byte[30];
        for (int i = 0; i < k.length; i++) {
            k[i] = (byte) (seed * 31 + i * 7);
        }
        return k;
    }

    private static SdesCrypto sdes(byte[] keyAndSalt) {
        return SdesCrypto.of(1, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, java.util.Arrays.copyOf(keyAndSalt, 16),
                java.util.Arrays.copyOfRange(keyAndSalt, 16, 30));
    }
}
