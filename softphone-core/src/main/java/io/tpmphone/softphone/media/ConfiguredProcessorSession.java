package io.tpmphone.softphone.media;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import javax.media.ConfigureCompleteEvent;
import javax.media.Controller;
import javax.media.ControllerEvent;
import javax.media.Processor;
import org.jitsi.impl.neomedia.device.AbstractMediaDevice;
import org.jitsi.impl.neomedia.device.AudioMediaDeviceSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * libjitsi's audio device session, with its capture processor set up before anything moves it on.
 *
 * <p>libjitsi sets up the processor that encodes what we capture (its RAW_RTP content descriptor, the call's format
 * — PCMU, PCMA or Opus — and a level effect) in a listener of the processor's {@link ConfigureCompleteEvent}, which
 * FMJ delivers on its own event thread. The thread that started the stream waits for the processor to be configured
 * by its <em>state</em>, which FMJ sets before it posts that event, so on a loaded machine the starting thread can
 * realize and start the processor before the listener has run. The listener then finds the processor realizing: the
 * format is not changed ("Failed to change format of track 0 from LINEAR … to ULAW/rtp … Processor is in state
 * 200"), setting the level effect throws {@code NotConfiguredError}, which kills FMJ's event thread, every later event
 * of that processor is lost (the start waits libjitsi's 10 s for a RealizeCompleteEvent that never comes), and the
 * stream sends a handful of packets and then nothing while the call stays up: the soak's media stall (issue 18).
 *
 * <p>Here the starting thread waits, after libjitsi's own wait, until that listener has run for the new processor, so
 * the processor is still configured (and nothing else touches it) when it is set up. Waiting there adds no lock: in
 * the usual order the listener runs while the starting thread is in libjitsi's own wait at the same place. Whatever
 * the listener throws is logged instead of killing FMJ's event thread.
 */
final class ConfiguredProcessorSession extends AudioMediaDeviceSession {
    private static final Logger LOG = LoggerFactory.getLogger(ConfiguredProcessorSession.class);
    /** As long as libjitsi waits for a processor to reach a state. */
    static final long SETUP_TIMEOUT_MS = 10_000;

    /**
     * Runs on FMJ's event thread before each event of a capture processor is handled (tests delay the event thread
     * with it, as a loaded machine does); does nothing otherwise.
     */
    static volatile BiConsumer<Processor, ControllerEvent> beforeEventHandled = (p, e) -> { };

    /** Processors whose ConfigureCompleteEvent was handled and that {@link #createProcessor()} has not claimed. */
    private final Set<Controller> configured = Collections.newSetFromMap(new IdentityHashMap<>());

    ConfiguredProcessorSession(AbstractMediaDevice device) {
        super(device);
    }

    @Override
    protected Processor createProcessor() {
        Processor processor = super.createProcessor(); // configured by its state; not necessarily set up yet
        if (processor != null) {
            awaitSetUp(processor);
        }
        return processor;
    }

    private void awaitSetUp(Processor processor) {
        long start = System.nanoTime();
        long deadline = start + TimeUnit.MILLISECONDS.toNanos(SETUP_TIMEOUT_MS);
        synchronized (configured) {
            if (configured.remove(processor)) {
                return; // the usual order: set up before libjitsi's wait saw the processor configured
            }
            while (!configured.remove(processor)) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    LOG.warn("the capture processor was configured {} ms ago and its set-up has not run yet: its"
                            + " stream may not send", SETUP_TIMEOUT_MS);
                    return;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(configured, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
        // the race this class is for: without the wait, the processor would have gone on before its set-up
        LOG.info("the capture processor was configured before libjitsi set it up; waited {} ms for the set-up",
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
    }

    @Override
    protected void processorControllerUpdate(ControllerEvent event) {
        boolean configureComplete = event instanceof ConfigureCompleteEvent;
        try {
            if (event.getSourceController() instanceof Processor p) {
                beforeEventHandled.accept(p, event);
            }
            super.processorControllerUpdate(event);
        } catch (RuntimeException | javax.media.MediaError e) {
            // thrown on FMJ's event thread, it would end that thread and every later event of this processor
            LOG.warn("setting up the capture processor on {} failed: {}", event.getClass().getSimpleName(),
                    e.toString());
        } finally {
            if (configureComplete) {
                synchronized (configured) {
                    configured.add(event.getSourceController());
                    configured.notifyAll();
                }
            }
        }
    }
}
