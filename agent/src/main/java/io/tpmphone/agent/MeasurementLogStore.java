package io.tpmphone.agent;

import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.MeasurementEvent;
import io.tpmphone.attestation.MeasurementLog;
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
 * the two is recovered on the next open by completing the extend.
 *
 * <p>On open the store reconciles the file with the TPM ({@link State}):
 * <ul>
 *   <li>the TPM rebooted since the log began (its reset or restart count changed, so PCRs were reset): the old log
 *       is archived and a new one starts with a BASELINE of the PCR's current value;</li>
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
        Files.createDirectories(directory);
        MeasurementLogStore store = new MeasurementLogStore(directory, tpm, pcr);
        store.lockChannel = FileChannel.open(directory.resolve("lock"), StandardOpenOption.CREATE,
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
        String boot = clock.resetCount() + "." + clock.restartCount();
        byte[] pcrNow = currentPcr();
        Path file = directory.resolve(LOG_FILE);
        Path bootFile = directory.resolve(BOOT_FILE);
        if (!Files.exists(file) || !Files.exists(bootFile)) {
            return startNewLog(boot, pcrNow, "no log yet");
        }
        String loggedBoot = Files.readString(bootFile, StandardCharsets.US_ASCII).trim();
        if (!loggedBoot.equals(boot)) {
            Files.move(file, directory.resolve("measurements-boot-" + loggedBoot + ".log"),
                    StandardCopyOption.REPLACE_EXISTING);
            return startNewLog(boot, pcrNow, "the TPM rebooted (boot " + loggedBoot + " -> " + boot + ")");
        }
        MeasurementLog loaded;
        try {
            loaded = MeasurementLog.parse(Files.readAllBytes(file));
        } catch (MalformedStructureException e) {
            LOG.error("measurement log {} is corrupt ({}); appraisals of this boot will fail until reboot", file,
                    e.getMessage());
            log = MeasurementLog.empty();
            state = State.INCONSISTENT;
            return state;
        }
        log = loaded;
        if (Arrays.equals(loaded.replay(pcr).value(), pcrNow)) {
            state = State.CONTINUED;
        } else if (loaded.size() > 1 && Arrays.equals(
                MeasurementLog.of(loaded.events().subList(0, loaded.size() - 1)).replay(pcr).value(), pcrNow)) {
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
        MeasurementLog next = log.append(type, contentDigest, data);
        MeasurementEvent event = next.event(next.size() - 1);
        appendDurably(event.encode());
        log = next;
        tpm.pcrExtend(pcr, event.extendDigest());
        return event;
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
        Path tmp = directory.resolve(LOG_FILE + ".new");
        writeSynced(tmp, log.encode());
        Files.move(tmp, directory.resolve(LOG_FILE), StandardCopyOption.ATOMIC_MOVE,
                StandardCopyOption.REPLACE_EXISTING);
        Path bootTmp = directory.resolve(BOOT_FILE + ".new");
        writeSynced(bootTmp, boot.getBytes(StandardCharsets.US_ASCII));
        Files.move(bootTmp, directory.resolve(BOOT_FILE), StandardCopyOption.ATOMIC_MOVE,
                StandardCopyOption.REPLACE_EXISTING);
        LOG.info("new measurement log for PCR {}: {}", pcr, why);
        state = State.NEW_BOOT;
        return state;
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

    private static void writeSynced(Path file, byte[] bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.write(ByteBuffer.wrap(bytes));
            ch.force(true);
        }
    }

}
