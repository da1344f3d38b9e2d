package io.tpmphone.agent;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's measurement log, persisted append-only in {@code measurements.log} and kept in step with the
 * measurement PCR. Write-ahead: an event is appended and fsync'ed before its {@code PCR_Extend}, so a crash between
 * the two is recovered on the next open by completing the extend, and an extend that fails (TPM error) is completed
 * before the next measurement ({@link #completePendingExtend()}).
 *
 * <p>On open the store reconciles the file with the TPM ({@link State}):
 * <ul>
 *   <li>the TPM rebooted since the log began — its reset count changed (TPM Reset), or its restart count changed
 *       and the PCR no longer holds the log (TPM Restart resets PCRs): the old log is archived and a new one starts
 *       with a BASELINE of the PCR's current value. A changed restart count with the PCR still holding the log is a
 *       TPM Resume (PCRs kept): the log continues;</li>
 *   <li>the log replays to the PCR: it continues;</li>
 *   <li>the log without its last event replays to the PCR: that extend never happened and is done now;</li>
 *   <li>otherwise something else extended the PCR: the log is kept as it is and never re-baselined, so that every
 *       appraisal of this boot fails until the host reboots.</li>
 * </ul>
 * Thread-safe.
 */
public final class MeasurementLogStore implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MeasurementLogStore.class);
    private static final String LOG_FILE = "measurements.log";
    private static final String BOOT_FILE = "boot";

    /** How the log relates to the TPM after opening. */
    public enum State { NEW_BOOT, CONTINUED, RECOVERED, INCONSISTENT }

    private final Path directory;
    private final TpmClient tpm;
    private final int pcr;
    private FileChannel lockChannel;
    private java.nio.channels.FileLock lock;
    private MeasurementLog log;
    private State state;
    /** An event in the log whose extend failed; completed before the next measurement. */
    private MeasurementEvent pending;
    private TpmException failNextExtend;

    private MeasurementLogStore(Path directory, TpmClient tpm, int pcr) {
        this.directory = directory;
        this.tpm = tpm;
        this.pcr = pcr;
    }

    /** Opens (or starts) the log in {@code directory} for measurement PCR {@code pcr}. */
    public static MeasurementLogStore open(Path directory, TpmClient tpm, int pcr) throws IOException, TpmException {
        Objects.requireNonNull(tpm, "tpm");
        if (pcr < 0 || pcr > 23 || pcr == 16 || pcr == 23) {
            throw new IllegalArgumentException("measurement PCR must be 0..22 and not resettable (16, 23), got " + pcr);
        }
        // The log tells anyone who reads it what to replay into a cloned TPM: owner-only, from the first byte.
        OwnerOnlyFiles.createPrivateDirectories(directory);
        try (java.util.stream.Stream<Path> files = Files.list(directory)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                OwnerOnlyFiles.restrict(f); // logs of earlier versions, which wrote them readable by others
            }
        }
        MeasurementLogStore store = new MeasurementLogStore(directory, tpm, pcr);
        store.lockChannel = FileChannel.open(OwnerOnlyFiles.createPrivateFile(directory.resolve("lock")),
                StandardOpenOption.WRITE);
        try {
            store.lock = store.lockChannel.tryLock();
        } catch (java.nio.channels.OverlappingFileLockException e) {
            store.lock = null; // held by this JVM already
        }
        if (store.lock == null) {
            store.lockChannel.close();
            throw new IOException("another agent holds the measurement log in " + directory
                    + ": one agent per TPM (stop it first)");
        }
        try {
            store.reconcile();
        } catch (IOException | TpmException | RuntimeException e) {
            store.close();
            throw e;
        }
        return store;
    }

    public synchronized State state() {
        return state;
    }

    public synchronized MeasurementLog log() {
        return log;
    }

    public int pcr() {
        return pcr;
    }

    /** Re-checks the log against the TPM (e.g. after the agent noticed a TPM restart). */
    public synchronized State reconcile() throws IOException, TpmException {
        ClockInfo clock = tpm.readClock();
        String boot = bootId(clock);
        byte[] pcrNow = currentPcr();
        Path file = directory.resolve(LOG_FILE);
        Path bootFile = directory.resolve(BOOT_FILE);
        if (!Files.exists(file) || !Files.exists(bootFile)) {
            return startNewLog(boot, pcrNow, "no log yet");
        }
        pending = null;
        String loggedBoot = Files.readString(bootFile, StandardCharsets.US_ASCII).trim();
        MeasurementLog loaded;
        try {
            loaded = MeasurementLog.parse(Files.readAllBytes(file));
        } catch (MalformedStructureException e) {
            if (compareBoot(loggedBoot, clock, false) == BootChange.REBOOTED) {
                archive(file, loggedBoot);
                return startNewLog(boot, pcrNow, "the TPM rebooted (boot " + loggedBoot + " -> " + boot + ")");
            }
            LOG.error("measurement log {} is corrupt ({}); appraisals of this boot will fail until reboot", file,
                    e.getMessage());
            log = MeasurementLog.empty();
            state = State.INCONSISTENT;
            return state;
        }
        boolean replays = Arrays.equals(loaded.replay(pcr).value(), pcrNow);
        boolean replaysButLast = !replays && loaded.size() > 1 && Arrays.equals(
                MeasurementLog.of(loaded.events().subList(0, loaded.size() - 1)).replay(pcr).value(), pcrNow);
        BootChange change = compareBoot(loggedBoot, clock, replays || replaysButLast);
        if (change == BootChange.REBOOTED) {
            archive(file, loggedBoot);
            return startNewLog(boot, pcrNow, "the TPM rebooted (boot " + loggedBoot + " -> " + boot + ")");
        }
        if (change == BootChange.RESUMED) {
            writeBoot(boot);
            LOG.info("the TPM resumed (boot {} -> {}): PCR {} still holds the log, which continues", loggedBoot,
                    boot, pcr);
        }
        log = loaded;
        if (replays) {
            state = State.CONTINUED;
        } else if (replaysButLast) {
            MeasurementEvent last = loaded.event(loaded.size() - 1);
            tpm.pcrExtend(pcr, last.extendDigest());
            LOG.info("completed the extend of event {} ({}) interrupted by a crash", last.sequence(), last.type());
            state = State.RECOVERED;
        } else {
            LOG.error("PCR {} = {} does not match the measurement log (replay {}): something else extended it. The"
                    + " log is kept; appraisals fail until the host reboots.", pcr, HexFormat.of().formatHex(pcrNow),
                    loaded.replay(pcr).valueHex());
            state = State.INCONSISTENT;
        }
        return state;
    }

    /** How the TPM's boot counters moved since the log began. */
    enum BootChange {
        /** Same reset and restart count. */
        SAME_BOOT,
        /** Only the restart count changed and the PCR still holds the log: a TPM Resume, which keeps PCRs. */
        RESUMED,
        /** The reset count changed, or the restart count changed and the PCR no longer holds the log. */
        REBOOTED
    }

    /**
     * The reboot decision, pure: a changed reset count is a reboot (TPM Reset: PCRs reset); a changed restart count
     * alone is a TPM Restart (PCRs reset) or a TPM Resume (PCRs kept), told apart by whether the PCR still holds the
     * log ({@code pcrHoldsLog}: the log, or the log without an interrupted last extend, replays to it).
     *
     * @param loggedBoot "resetCount.restartCount" when the log began (an unparsable value counts as a reboot)
     */
    static BootChange compareBoot(String loggedBoot, ClockInfo now, boolean pcrHoldsLog) {
        long loggedReset;
        long loggedRestart;
        try {
            int dot = loggedBoot.indexOf('.');
            loggedReset = Long.parseLong(loggedBoot.substring(0, dot));
            loggedRestart = Long.parseLong(loggedBoot.substring(dot + 1));
        } catch (RuntimeException e) {
            return BootChange.REBOOTED;
        }
        if (loggedReset != now.resetCount()) {
            return BootChange.REBOOTED;
        }
        if (loggedRestart == now.restartCount()) {
            return BootChange.SAME_BOOT;
        }
        return pcrHoldsLog ? BootChange.RESUMED : BootChange.REBOOTED;
    }

    /**
     * Whether the TPM was reset or restarted since this log began, so its PCRs no longer hold the log (see
     * {@link #compareBoot}). Does not change the log; {@link #reconcile()} then starts a new one.
     */
    public synchronized boolean tpmRebooted() throws IOException, TpmException {
        Path bootFile = directory.resolve(BOOT_FILE);
        if (!Files.exists(bootFile)) {
            return true;
        }
        String loggedBoot = Files.readString(bootFile, StandardCharsets.US_ASCII).trim();
        byte[] pcrNow = currentPcr();
        boolean holds = log.size() > 0 && (Arrays.equals(log.replay(pcr).value(), pcrNow) || (log.size() > 1
                && Arrays.equals(MeasurementLog.of(log.events().subList(0, log.size() - 1)).replay(pcr).value(),
                pcrNow)));
        return compareBoot(loggedBoot, tpm.readClock(), holds) == BootChange.REBOOTED;
    }

    static String bootId(ClockInfo clock) {
        return clock.resetCount() + "." + clock.restartCount();
    }

    private void archive(Path file, String loggedBoot) throws IOException {
        Files.move(file, directory.resolve("measurements-boot-" + loggedBoot + ".log"),
                StandardCopyOption.REPLACE_EXISTING);
    }

    /**
     * Measures one thing: appends the event durably, then extends the PCR with its extend digest.
     *
     * @return the event as logged
     */
    public synchronized MeasurementEvent measure(EventType type, byte[] contentDigest, String data)
            throws IOException, TpmException {
        if (log.size() == 0) {
            throw new IllegalStateException("the measurement log is unusable (corrupt); reboot the host");
        }
        completePendingExtend();
        MeasurementLog next = log.append(type, contentDigest, data);
        MeasurementEvent event = next.event(next.size() - 1);
        appendDurably(event.encode());
        log = next;
        pending = event;
        extend(event);
        pending = null;
        return event;
    }

    /**
     * Completes the extend of an event that {@link #measure} logged but whose {@code PCR_Extend} failed (a TPM
     * transport error, a timeout): the event is in the log, so it must reach the PCR before anything else is measured.
     * If the PCR already holds it (the failed command reached the TPM after all), nothing is extended. Does nothing
     * without such an event.
     *
     * @throws IOException if the PCR holds neither the log nor the log without that event: the store is then
     *                     {@link State#INCONSISTENT}
     */
    public synchronized void completePendingExtend() throws IOException, TpmException {
        MeasurementEvent event = pending;
        if (event == null) {
            return;
        }
        byte[] pcrNow = currentPcr();
        if (Arrays.equals(log.replay(pcr).value(), pcrNow)) {
            LOG.info("the extend of event {} ({}) had reached the TPM after all", event.sequence(), event.type());
        } else if (Arrays.equals(MeasurementLog.of(log.events().subList(0, log.size() - 1)).replay(pcr).value(),
                pcrNow)) {
            extend(event);
            LOG.info("completed the failed extend of event {} ({})", event.sequence(), event.type());
        } else {
            state = State.INCONSISTENT;
            throw new IOException("PCR " + pcr + " holds neither the measurement log nor the log without event "
                    + event.sequence() + " whose extend failed: something else extended it; appraisals fail until"
                    + " the host reboots");
        }
        pending = null;
    }

    /** Whether an event is logged whose extend has not reached the PCR yet (see {@link #completePendingExtend}). */
    public synchronized boolean extendPending() {
        return pending != null;
    }

    /** Test seam: the next {@code PCR_Extend} fails with {@code failure} without reaching the TPM. */
    synchronized void failNextExtend(TpmException failure) {
        this.failNextExtend = failure;
    }

    private void extend(MeasurementEvent event) throws TpmException {
        TpmException failure = failNextExtend;
        if (failure != null) {
            failNextExtend = null;
            throw failure;
        }
        tpm.pcrExtend(pcr, event.extendDigest());
    }

    /** Measures a file: its SHA-256 and its name. */
    public MeasurementEvent measureFile(EventType type, Path file, String name) throws IOException, TpmException {
        return measure(type, sha256(file), name);
    }

    static byte[] sha256(Path file) throws IOException {
        java.security.MessageDigest md = HashAlgorithm.SHA256.newMessageDigest();
        try (java.io.InputStream in = Files.newInputStream(file)) {
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = in.read(buffer)) > 0; ) {
                md.update(buffer, 0, n);
            }
        }
        return md.digest();
    }

    private State startNewLog(String boot, byte[] pcrNow, String why) throws IOException {
        log = MeasurementLog.builder(pcr, pcrNow).build();
        OwnerOnlyFiles.replace(directory.resolve(LOG_FILE), log.encode());
        pending = null;
        writeBoot(boot);
        LOG.info("new measurement log for PCR {}: {}", pcr, why);
        state = State.NEW_BOOT;
        return state;
    }

    private void writeBoot(String boot) throws IOException {
        OwnerOnlyFiles.replace(directory.resolve(BOOT_FILE), boot.getBytes(StandardCharsets.US_ASCII));
    }

    /** Releases the log for another agent. */
    @Override
    public synchronized void close() throws IOException {
        if (lockChannel != null) {
            lockChannel.close();
            lockChannel = null;
        }
    }

    private byte[] currentPcr() throws TpmException {
        return tpm.pcrRead(PcrSelection.of(HashAlgorithm.SHA256, pcr)).value(pcr);
    }

    private void appendDurably(byte[] bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(directory.resolve(LOG_FILE), StandardOpenOption.WRITE,
                StandardOpenOption.APPEND)) {
            ch.write(ByteBuffer.wrap(bytes));
            ch.force(true);
        }
    }

}
