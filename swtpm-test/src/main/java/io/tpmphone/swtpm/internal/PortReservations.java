package io.tpmphone.swtpm.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Port numbers handed out recently, reserved machine-wide: byte P of a shared lock file is write-locked
 * ({@code fcntl}) by the process that holds port P, for {@link #HOLD_NANOS} after the pick, or until that process
 * ends (the kernel drops a dead process's locks, even after SIGKILL). So two picks can never return one number while
 * both are held: not two threads of one JVM (CI: bob's SIP listener "address already in use" on a number just picked
 * for alice), and not two test JVMs at once — the modules {@code ./tpmphone test} runs side by side, a JVM a test
 * starts ({@code tpmphone demo}), another checkout's build on the same machine. That is an exclusion, not a bet on
 * random numbers rarely meeting.
 *
 * <p>What it does not cover: a process that binds a number in the range without asking here. Nothing of ours does:
 * everything else binds port 0, which the kernel takes from the ephemeral range, outside ours.
 *
 * <p>The file is per user: test runs are root's, and another user's picks are not excluded. A lock file that cannot be
 * opened for writing (planted by another user; a read-only {@code /tmp}) leaves the reservation to this JVM alone,
 * with a warning. Thread-safe.
 */
final class PortReservations {
    private static final Logger LOG = LoggerFactory.getLogger(PortReservations.class);
    /**
     * Where every JVM of this user on the machine looks, whatever its {@code java.io.tmpdir}: one file per user, so
     * that a file another user made first (root's, 0644) never leaves us unable to lock.
     */
    static final Path MACHINE_WIDE = Path.of("/tmp", "tpmphone-loopback-ports-"
            + System.getProperty("user.name", "unknown").replaceAll("[^A-Za-z0-9._-]", "_") + ".lock");
    /** How long a number stays reserved after it was handed out, unless its process ends first. */
    static final long HOLD_NANOS = 10L * 60 * 1_000_000_000L;
    /** Numbers one JVM holds at most; the oldest is let go beyond this. */
    static final int MAX_HELD = 4_096;

    private record Held(long at, FileLock lock) {
    }

    private final Path file;
    private final FileChannel channel;
    private final Map<Integer, Held> held = new LinkedHashMap<>();

    PortReservations(Path file) {
        this.file = file;
        FileChannel c = null;
        try {
            // No link followed: in a shared /tmp, a link planted there must not make us open (and lock) its target.
            c = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            LOG.warn("cannot open {} to reserve loopback ports machine-wide ({}): ports are reserved within this JVM"
                    + " only, and a test JVM running at the same time may pick the same number", file, e.toString());
        }
        this.channel = c;
    }

    /** Whether reservations reach other processes (the lock file opened). */
    boolean machineWide() {
        return channel != null;
    }

    /**
     * Reserves {@code port .. port + span - 1} unless one of them is held already, here or by another process;
     * true if it did.
     */
    synchronized boolean reserve(int port, int span) {
        long now = System.nanoTime();
        for (Iterator<Held> it = held.values().iterator(); it.hasNext(); ) {
            Held h = it.next();
            if (now - h.at() < HOLD_NANOS && held.size() <= MAX_HELD) {
                break; // insertion order: the rest are newer
            }
            it.remove();
            release(h);
        }
        for (int p = port; p < port + span; p++) {
            if (held.containsKey(p)) {
                return false;
            }
        }
        List<Held> taken = new ArrayList<>(span);
        for (int p = port; p < port + span; p++) {
            FileLock lock;
            try {
                lock = channel == null ? null : channel.tryLock(p, 1, false);
            } catch (java.nio.channels.OverlappingFileLockException ours) {
                lock = null; // this JVM holds it through another instance on the same file
            } catch (IOException e) {
                taken.forEach(PortReservations::release);
                throw new UncheckedIOException("cannot lock byte " + p + " of " + file + " to reserve port " + p, e);
            }
            if (channel != null && lock == null) {
                taken.forEach(PortReservations::release); // another process holds p
                return false;
            }
            taken.add(new Held(now, lock));
        }
        for (int i = 0; i < span; i++) {
            held.put(port + i, taken.get(i));
        }
        return true;
    }

    private static void release(Held h) {
        if (h.lock() != null) {
            try {
                h.lock().release();
            } catch (IOException e) {
                LOG.debug("releasing a port lock: {}", e.toString()); // the channel is gone: so is the lock
            }
        }
    }
}
