package io.tpmphone.keystore.internal;

import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Properties;

/**
 * The files of a keystore directory: {@code keystore.properties} (format, mode, PCRs, authority), the sealed blobs
 * {@code root.sealed} and {@code pin.sealed}, and {@code fingerprints.log}. Every file is written to a temporary file,
 * forced to disk and atomically renamed; the metadata is written last, so a keystore either exists whole or not at
 * all. Stateless and thread-safe.
 */
public final class KeystoreDirectory {
    public static final String METADATA = "keystore.properties";
    public static final String ROOT = "root.sealed";
    public static final String PIN = "pin.sealed";
    public static final String FINGERPRINTS = "fingerprints.log";
    public static final String IDENTITY_KEY = "identity-key.public";

    private KeystoreDirectory() {
    }

    public static void writeAtomically(Path file, byte[] content) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel c = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(content);
            while (b.hasRemaining()) {
                c.write(b);
            }
            c.force(true);
        }
        try {
            restrictToOwner(tmp);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.deleteIfExists(tmp);
            throw new IOException("the file system of " + file + " cannot rename atomically; put the keystore on a"
                    + " local file system", e);
        }
        try (FileChannel dir = FileChannel.open(file.getParent(), StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException ignored) {
            // Some platforms cannot open a directory for fsync; the rename itself is still atomic.
        }
    }

    public static void writeProperties(Path file, Properties p) throws IOException {
        StringWriter w = new StringWriter();
        p.store(w, "tpmphone sealed keystore; do not edit");
        writeAtomically(file, w.toString().getBytes(StandardCharsets.UTF_8));
    }

    public static Properties readProperties(Path file) throws IOException {
        Properties p = new Properties();
        p.load(new StringReader(Files.readString(file, StandardCharsets.UTF_8)));
        return p;
    }

    /** Owner-only (0700 / 0600): the sealed objects and the PIN object are of use to anyone who can reach the TPM. */
    public static void restrictToOwner(Path path) throws IOException {
        try {
            java.nio.file.Files.setPosixFilePermissions(path, java.nio.file.attribute.PosixFilePermissions.fromString(
                    java.nio.file.Files.isDirectory(path) ? "rwx------" : "rw-------"));
        } catch (UnsupportedOperationException e) {
            // not a POSIX file system: the directory's own protection applies
        }
    }
}
