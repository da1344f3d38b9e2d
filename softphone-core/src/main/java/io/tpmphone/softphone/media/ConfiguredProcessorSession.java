package io.tpmphone.softphone.media;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import javax.media.ConfigureCompleteEvent;
import javax.media.Controller;
import javax.media.ControllerEvent;
import javax.media.ControllerListener;
import javax.media.Player;
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
 *
 * <p>Nothing is deallocated in a transitional state (issue 15). FMJ's {@code BasicController.deallocate()}, on a
 * controller it reads as configuring, realizing or prefetching, raises an interrupt flag and then waits, with no
 * deadline, for the state-transition thread to lower it; that thread lowers it only when it starts and when it ends,
 * so deallocate waits for ever when the thread ended between deallocate's reading of the state and its raising of the
 * flag, and as long as the thread waits for its engine (a receive player of a call closed right after its start sat
 * "configuring" for seconds; a capture processor whose start was still pending in FMJ's play thread began prefetching
 * after libjitsi had disconnected its capture device, and waited for ever). libjitsi's close deallocates the capture
 * processor and each receive player; here, once a controller is being closed libjitsi's listener no longer moves it
 * on (no set-up, realize or start), the capture processor is first waited for (bounded by {@link #SETTLE_TIMEOUT_MS},
 * woken by its events) until it is in no transitional state and not below its target state, and a receive player
 * still transitional so is stopped and closed without deallocate: close wakes its transition thread, which then gives
 * up, and waits for nothing.
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

    /** How long closing the session waits for its capture processor to leave a transitional state. */
    static final long SETTLE_TIMEOUT_MS = 3_000;

    /**
     * Receive players disposed of and the capture processor being closed: libjitsi's listeners no longer move them on
     * (no realize, no start). Weak: a disposed player is forgotten with it.
     */
    private final Set<Controller> disposing = Collections.synchronizedSet(Collections.newSetFromMap(
            new java.util.WeakHashMap<>()));

    /** The capture processor libjitsi created last (it closes it in {@link #close()}). */
    private volatile Processor captureProcessor;

    /** Processors whose ConfigureCompleteEvent was handled and that {@link #createProcessor()} has not claimed. */
    private final Set<Controller> configured = Collections.newSetFromMap(new IdentityHashMap<>());

    ConfiguredProcessorSession(AbstractMediaDevice device) {
        super(device);
    }

    @Override
    protected Processor createProcessor() {
        Processor processor = super.createProcessor(); // configured by its state; not necessarily set up yet
        captureProcessor = processor;
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
        if (disposing.contains(event.getSourceController())) {
            return; // being closed: libjitsi must not move it on any more
        }
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

    /**
     * Closes the session once its capture processor is in no transitional state (libjitsi's close deallocates it as it
     * does the receive players; see the class comment).
     */
    @Override
    public void close() {
        Processor processor = captureProcessor;
        if (processor == null) {
            super.close();
            return;
        }
        disposing.add(processor); // for good, as a disposed player
        if (!awaitSettled(processor)) {
            LOG.warn("the capture processor was still {} {} ms after its call ended; deallocating it may hang",
                    stateName(processor), SETTLE_TIMEOUT_MS);
        }
        super.close();
    }

    @Override
    protected void playerControllerUpdate(ControllerEvent event) {
        if (disposing.contains(event.getSourceController())) {
            return; // disposed of: libjitsi must not set up, realize or start it any more
        }
        super.playerControllerUpdate(event);
    }

    /**
     * libjitsi's dispose (stop, deallocate, close) for a settled player; a player still configuring, realizing or
     * prefetching is stopped and closed without deallocate: close wakes its transition thread (which then gives up)
     * and waits for nothing, where deallocate could wait for ever (see the class comment). libjitsi's listener
     * ignores the player from here on, so nothing moves it into a transition between this check and deallocate.
     */
    @Override
    protected void disposePlayer(Player player) {
        disposing.add(player); // for good: a closed player's late events must not reach libjitsi either
        if (!transitional(player)) {
            super.disposePlayer(player);
            return;
        }
        LOG.info("the receive player was still {} when its call ended: closed without deallocate", stateName(player));
        player.stop();
        player.close();
    }

    /**
     * Waits, woken by the controller's events (and re-reading its state every 50 ms, in case FMJ's event thread is
     * held by another listener), until it is in no transitional state; false if it still is at the deadline.
     */
    private static boolean awaitSettled(Controller controller) {
        if (!transitional(controller)) {
            return true;
        }
        Object changed = new Object();
        ControllerListener wake = e -> {
            synchronized (changed) {
                changed.notifyAll();
            }
        };
        controller.addControllerListener(wake);
        long start = System.nanoTime();
        long deadline = start + TimeUnit.MILLISECONDS.toNanos(SETTLE_TIMEOUT_MS);
        boolean interrupted = false;
        try {
            synchronized (changed) {
                while (transitional(controller)) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        return false;
                    }
                    try {
                        TimeUnit.NANOSECONDS.timedWait(changed, Math.min(left, TimeUnit.MILLISECONDS.toNanos(50)));
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            }
            LOG.debug("the capture processor settled {} after {} ms", stateName(controller),
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
            return true;
        } finally {
            controller.removeControllerListener(wake);
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Configuring, realizing or prefetching, or about to be: below its target state (a start FMJ's play thread has yet
     * to carry out prefetches first).
     */
    private static boolean transitional(Controller c) {
        int state = c.getState();
        return state == Processor.Configuring || state == Controller.Realizing || state == Controller.Prefetching
                || state < c.getTargetState();
    }

    private static String stateName(Controller c) {
        int state = c.getState();
        String name = switch (state) {
            case Processor.Configuring -> "configuring";
            case Controller.Realizing -> "realizing";
            case Controller.Prefetching -> "prefetching";
            default -> "in state " + state;
        };
        return state < c.getTargetState() ? name + " (target state " + c.getTargetState() + ")" : name;
    }
}
