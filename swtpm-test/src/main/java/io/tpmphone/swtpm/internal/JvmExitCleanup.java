package io.tpmphone.swtpm.internal;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One JVM shutdown hook that kills swtpm processes and deletes directories still registered when the JVM exits
 * (a test that crashed or forgot to close). Actions run newest first. Thread-safe.
 *
 * <p>Not covered: a JVM killed with SIGKILL runs no hooks; its swtpm children live on until killed by hand.
 */
public final class JvmExitCleanup {
    private static final Logger LOG = LoggerFactory.getLogger(JvmExitCleanup.class);
    private static final Map<Long, Runnable> ACTIONS = new LinkedHashMap<>();
    private static final AtomicLong NEXT_ID = new AtomicLong();
    private static boolean hookInstalled;

    private JvmExitCleanup() {
    }

    /** A registered action; {@link #unregister()} when the resource was released normally. */
    public static final class Registration {
        private final long id;

        private Registration(long id) {
            this.id = id;
        }

        /** Removes the action; idempotent. */
        public void unregister() {
            synchronized (ACTIONS) {
                ACTIONS.remove(id);
            }
        }
    }

    /** Registers {@code action} to run at JVM exit unless unregistered before. */
    public static Registration register(Runnable action) {
        long id = NEXT_ID.incrementAndGet();
        synchronized (ACTIONS) {
            if (!hookInstalled) {
                Runtime.getRuntime().addShutdownHook(new Thread(JvmExitCleanup::runAll, "swtpm-exit-cleanup"));
                hookInstalled = true;
            }
            ACTIONS.put(id, action);
        }
        return new Registration(id);
    }

    private static void runAll() {
        List<Runnable> actions;
        synchronized (ACTIONS) {
            actions = new ArrayList<>(ACTIONS.values());
            ACTIONS.clear();
        }
        for (int i = actions.size() - 1; i >= 0; i--) {
            try {
                actions.get(i).run();
            } catch (RuntimeException e) {
                LOG.warn("swtpm cleanup at JVM exit failed: {}", e.toString());
            }
        }
    }
}
