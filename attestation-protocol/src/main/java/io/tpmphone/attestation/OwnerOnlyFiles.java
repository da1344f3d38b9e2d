package io.tpmphone.attestation;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Secret and state files that nobody but their owner can ever open: every file is created with mode 0600 and every
 * directory with 0700 in the {@code open}/{@code mkdir} call itself, never created with the process umask and
 * restricted afterwards (a local user who opens the file in between keeps a readable descriptor). Content that
 * changes is written to a fresh owner-only file in the same directory and renamed over the old one atomically.
 *
 * <p>The umask can only remove permission bits, so whatever it is, a file made here is at most 0600 and a directory
 * at most 0700. Files and directories that exist already (made by earlier versions, or by hand) are
 * {@linkplain #restrict restricted} when a party opens its state, so none stays readable by others.
 *
 * <p>Needs a POSIX file system; anything else is refused with an {@link IOException} rather than written unprotected.
 * Stateless and thread-safe. Lives in the module every party shares because the server, the agent, the keystore and
 * the command line all keep secrets in files.
 */
public final class OwnerOnlyFiles {
    private static final Logger LOG = LoggerFactory.getLogger(OwnerOnlyFiles.class);
    private static final Set<PosixFilePermission> FILE = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> DIRECTORY = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> GROUP_OR_OTHER = EnumSet.of(PosixFilePermission.GROUP_READ,
            PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.OTHERS_READ,
            PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_EXECUTE);

    private OwnerOnlyFiles() {
    }

    /**
     * Creates {@code directory} and any missing parents with mode 0700; if {@code directory} exists already, removes
     * every group and other permission from it (parents that exist are left alone). Use for a party's own state
     * directory, never for a directory the user merely names a file in.
     *
     * @return {@code directory}
     * @throws IOException if it cannot be created or restricted (e.g. it belongs to another user), or is not a
     *                     directory
     */
    public static Path createPrivateDirectories(Path directory) throws IOException {
        Objects.requireNonNull(directory, "directory");
        requirePosix(directory);
        if (!Files.isDirectory(directory)) {
            Files.createDirectories(directory, PosixFilePermissions.asFileAttribute(DIRECTORY));
        }
        restrict(directory.toRealPath());
        return directory;
    }

    /**
     * Creates {@code file} owner-only (0600) with {@code content}, durably. Never replaces or follows anything: an
     * existing file or symbolic link at that name fails with {@link FileAlreadyExistsException}. The parent must
     * exist.
     */
    public static void writeNew(Path file, byte[] content) throws IOException {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(content, "content");
        requirePosix(file.toAbsolutePath().getParent());
        try (FileChannel channel = FileChannel.open(file, Set.of(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE), fileAttribute())) {
            writeFully(channel, content);
        }
    }

    /**
     * Replaces {@code file} (or creates it) atomically with an owner-only file holding {@code content}: a fresh 0600
     * file in the same directory is written, forced to disk and renamed over {@code file}, so a reader sees the old
     * content or the new, never a part, and never a moment with other permissions.
     *
     * @throws IOException if the file system cannot rename atomically (the temporary file is removed)
     */
    public static void replace(Path file, byte[] content) throws IOException {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(content, "content");
        Path directory = file.toAbsolutePath().getParent();
        requirePosix(directory);
        Path tmp = Files.createTempFile(directory, "." + file.getFileName() + ".", ".tmp", fileAttribute());
        try {
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                writeFully(channel, content);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the file system of " + file + " cannot rename atomically; keep state on a local"
                    + " file system", e);
        } finally {
            Files.deleteIfExists(tmp);
        }
        try (FileChannel dir = FileChannel.open(directory, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException ignored) {
            // Some platforms cannot open a directory for fsync; the rename itself is still atomic.
        }
    }

    /**
     * Makes sure {@code file} exists and only its owner may use it: creates it empty with mode 0600 if absent,
     * otherwise {@linkplain #restrict restricts} it. For files that another component opens by name afterwards
     * (a database, a lock file, a log a child process appends to), which then keeps this mode.
     *
     * @return {@code file}
     */
    public static Path createPrivateFile(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        requirePosix(file.toAbsolutePath().getParent());
        try {
            Files.createFile(file, fileAttribute());
        } catch (FileAlreadyExistsException e) {
            restrict(file);
        }
        return file;
    }

    /**
     * Removes every group and other permission from an existing file or directory (a symbolic link itself is not
     * followed, and left alone). Does nothing if there is none or it is owner-only already.
     *
     * @return whether the permissions were changed
     * @throws IOException if they cannot be changed (e.g. the file belongs to another user)
     */
    public static boolean restrict(Path path) throws IOException {
        Objects.requireNonNull(path, "path");
        PosixFileAttributeView view = Files.getFileAttributeView(path, PosixFileAttributeView.class,
                LinkOption.NOFOLLOW_LINKS);
        if (view == null) {
            throw notPosix(path);
        }
        Set<PosixFilePermission> permissions;
        try {
            if (Files.isSymbolicLink(path)) {
                return false;
            }
            permissions = view.readAttributes().permissions();
        } catch (java.nio.file.NoSuchFileException e) {
            return false;
        }
        Set<PosixFilePermission> owner = EnumSet.noneOf(PosixFilePermission.class);
        owner.addAll(permissions);
        if (!owner.removeAll(GROUP_OR_OTHER)) {
            return false;
        }
        try {
            view.setPermissions(owner);
        } catch (IOException e) {
            throw new IOException(path + " is accessible to other users (" + PosixFilePermissions.toString(permissions)
                    + ") and cannot be made owner-only: " + e + "; run `chmod go= " + path + "` as its owner", e);
        }
        LOG.warn("{} was accessible to other users ({}); made it owner-only ({})", path,
                PosixFilePermissions.toString(permissions), PosixFilePermissions.toString(owner));
        return true;
    }

    private static FileAttribute<Set<PosixFilePermission>> fileAttribute() {
        return PosixFilePermissions.asFileAttribute(FILE);
    }

    private static void writeFully(FileChannel channel, byte[] content) throws IOException {
        ByteBuffer buffer = ByteBuffer.wrap(content);
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
        channel.force(true);
    }

    private static void requirePosix(Path anyPath) throws IOException {
        Path p = anyPath == null ? Path.of("").toAbsolutePath() : anyPath;
        if (!p.getFileSystem().supportedFileAttributeViews().contains("posix")) {
            throw notPosix(p);
        }
    }

    private static IOException notPosix(Path path) {
        return new IOException(path + " is on a file system without POSIX permissions; tpmphone keeps its secrets"
                + " and state owner-only and needs one (e.g. a local ext4 or xfs)");
    }
}
