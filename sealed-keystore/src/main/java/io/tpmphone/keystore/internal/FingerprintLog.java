package io.tpmphone.keystore.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An append-only file of 32-byte SHA-256 fingerprints of SRTP key material, mirrored in a hash set. Each append is
 * forced to disk before {@link #add} returns, so a key handed out is remembered across a crash. Growth: 32 bytes on
 * disk and about 100 bytes of heap per key; nothing is ever removed (a fresh keystore starts a fresh log).
 * A torn last record (a crash during an append) is cut off when the log is opened.
 *
 * <p>Not thread-safe: the keystore serializes access.
 */
public final class FingerprintLog implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FingerprintLog.class);
    private static final byte[] HEADER = "TPFP0001".getBytes(StandardCharsets.US_ASCII);
    public static final int FINGERPRINT_LENGTH = 32;

    private final Path file;
    private final FileChannel channel;
    /** Set when an append failed and could not be undone: later records would be misaligned, so none are taken. */
    private boolean broken;
    private final Set<Fingerprint> seen = new HashSet<>();

    private record Fingerprint(byte[] value) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Fingerprint f && Arrays.equals(value, f.value);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(value);
        }

        @Override
        public String toString() {
            return "Fingerprint";
        }
    }

    private FingerprintLog(Path file, FileChannel channel) {
        this.file = file;
        this.channel = channel;
    }

    /**
     * Opens the log and loads every fingerprint in it; creates it only when {@code create} is set (a new keystore).
     * An existing keystore whose log is missing must not silently start a new one: that would forget every key
     * issued or offered before and accept a replayed SDES offer again.
     */
    public static FingerprintLog open(Path file, boolean create) throws IOException {
        if (create) {
            io.tpmphone.attestation.OwnerOnlyFiles.createPrivateFile(file);
        } else {
            io.tpmphone.attestation.OwnerOnlyFiles.restrict(file); // earlier versions created it with the umask
        }
        FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        try {
            // One keystore instance per directory, across processes: two would not see each other's fingerprints.
            java.nio.channels.FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (java.nio.channels.OverlappingFileLockException e) {
                lock = null;
            }
            if (lock == null) {
                throw new IOException(file + " is in use by another keystore instance; one instance per keystore");
            }
            FingerprintLog log = new FingerprintLog(file, channel);
            log.load();
            return log;
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private void load() throws IOException {
        long size = channel.size();
        if (size == 0) {
            channel.write(ByteBuffer.wrap(HEADER), 0);
            channel.force(true);
            size = HEADER.length;
        }
        ByteBuffer header = ByteBuffer.allocate(HEADER.length);
        if (size < HEADER.length || channel.read(header, 0) != HEADER.length
                || !Arrays.equals(header.array(), HEADER)) {
            throw new IOException(file + " is not a fingerprint log (bad header); restore it from a backup");
        }
        long records = (size - HEADER.length) / FINGERPRINT_LENGTH;
        long end = HEADER.length + records * FINGERPRINT_LENGTH;
        if (end != size) {
            LOG.warn("fingerprint log {} ends with a torn record ({} bytes); cutting it off", file, size - end);
            channel.truncate(end);
            channel.force(true);
        }
        ByteBuffer all = ByteBuffer.allocate((int) Math.min(Integer.MAX_VALUE, end - HEADER.length));
        long position = HEADER.length;
        while (all.hasRemaining()) {
            int n = channel.read(all, position);
            if (n < 0) {
                throw new IOException(file + " shrank while being read");
            }
            position += n;
        }
        all.flip();
        while (all.remaining() >= FINGERPRINT_LENGTH) {
            byte[] f = new byte[FINGERPRINT_LENGTH];
            all.get(f);
            seen.add(new Fingerprint(f));
        }
        channel.position(end);
    }

    public boolean contains(byte[] fingerprint) {
        return seen.contains(new Fingerprint(fingerprint.clone()));
    }

    /**
     * Records a fingerprint durably.
     *
     * @return false if it was already recorded (nothing written)
     */
    public boolean add(byte[] fingerprint) throws IOException {
        if (fingerprint.length != FINGERPRINT_LENGTH) {
            throw new IllegalArgumentException("a fingerprint has 32 bytes, got " + fingerprint.length);
        }
        Fingerprint f = new Fingerprint(fingerprint.clone());
        if (seen.contains(f)) {
            return false;
        }
        if (broken) {
            throw new IOException(file + " could not be repaired after a failed write; reopen the keystore");
        }
        long before = channel.position();
        try {
            ByteBuffer b = ByteBuffer.wrap(f.value());
            while (b.hasRemaining()) {
                channel.write(b);
            }
            channel.force(false);
        } catch (IOException e) {
            try {
                channel.truncate(before);
                channel.position(before);
            } catch (IOException suppressed) {
                broken = true;
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        seen.add(f);
        return true;
    }

    public int size() {
        return seen.size();
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
