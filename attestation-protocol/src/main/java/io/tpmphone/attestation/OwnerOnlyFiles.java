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
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
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

    /** The largest secret file {@link #readPrivateFile} reads. */
    public static final int MAX_SECRET_FILE_BYTES = 1 << 20;

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
     * Reads a secret file that must be its owner's alone, without following a symbolic link at any point: {@code file}
     * itself (as {@code lstat} sees it) must be a regular file, owned by the user this process runs as, with no group
     * or other permission, in a directory that only this user or root can change (or a sticky one such as
     * {@code /tmp}, where nobody can rename another's file). Otherwise the file is not read, and the
     * {@link IOException} says what is wrong and what to do. Nothing is created or changed: a file that others could
     * read may have been read, so it is refused rather than restricted.
     *
     * <p>The file is opened with {@code O_NOFOLLOW} and must still be the same file (device and inode) after it was
     * read, so a file swapped in between the check and the read is refused too. Only the file's own directory is
     * checked, not the directories above it.
     *
     * @param maxBytes the largest content accepted
     * @return the content; the caller wipes it when done
     * @throws java.nio.file.NoSuchFileException if there is no such file
     * @throws IOException if the file is not its owner's alone, as above, larger than {@code maxBytes}, or unreadable
     */
    public static byte[] readPrivateFile(Path file, int maxBytes) throws IOException {
        Objects.requireNonNull(file, "file");
        if (maxBytes < 0 || maxBytes > MAX_SECRET_FILE_BYTES) {
            throw new IllegalArgumentException("maxBytes must be 0.." + MAX_SECRET_FILE_BYTES + ", got " + maxBytes);
        }
        requirePosix(file.toAbsolutePath().getParent());
        PosixFileAttributes before = Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (before.isSymbolicLink()) {
            throw new IOException(file + " is a symbolic link (to " + Files.readSymbolicLink(file) + "); a secret file"
                    + " must be the file itself, or whoever can change the link or its target chooses the secret:"
                    + " put the file itself at " + file + " (move the target there), owned by the user that reads it,"
                    + " mode 0600");
        }
        if (!before.isRegularFile()) {
            throw new IOException(file + " is not a regular file: give the path of the secret file itself");
        }
        long self = processUid();
        long owner = uid(file, LinkOption.NOFOLLOW_LINKS);
        if (owner != self) {
            throw new IOException(file + " belongs to " + before.owner().getName() + " (uid " + owner + "), not to"
                    + " the user reading it (uid " + self + "): its owner can choose or read the secret. Have this user"
                    + " create it, mode 0600 (`chown` it only if you trust everyone who owned it)");
        }
        if (before.permissions().stream().anyMatch(GROUP_OR_OTHER::contains)) {
            throw new IOException(file + " is accessible to other users (" + PosixFilePermissions.toString(
                    before.permissions()) + "): anyone who could read it may hold the secret. Make it owner-only"
                    + " (`chmod 600 " + file + "`) and, if others may have read it, make a new secret");
        }
        Path directory = file.toAbsolutePath().getParent().toRealPath();
        int directoryMode = (Integer) unixAttribute(directory, "mode");
        long directoryOwner = uid(directory);
        boolean othersMayWrite = (directoryMode & 0022) != 0 && (directoryMode & 01000) == 0; // not sticky
        if (othersMayWrite || (directoryOwner != self && directoryOwner != 0)) {
            throw new IOException("the directory " + directory + " of " + file + " can be changed by other users ("
                    + (othersMayWrite ? "mode " + Integer.toOctalString(directoryMode & 07777)
                    : "it belongs to uid " + directoryOwner) + "), who could replace the secret file: keep it in a"
                    + " directory that only you or root can change");
        }
        byte[] content;
        try (FileChannel channel = FileChannel.open(file, Set.of(StandardOpenOption.READ,
                LinkOption.NOFOLLOW_LINKS))) {
            ByteBuffer buffer = ByteBuffer.allocate(maxBytes + 1);
            while (buffer.hasRemaining() && channel.read(buffer) >= 0) {
                if (buffer.position() > maxBytes) {
                    Arrays.fill(buffer.array(), (byte) 0);
                    throw new IOException(file + " is larger than " + maxBytes + " bytes: not the secret file");
                }
            }
            content = Arrays.copyOf(buffer.array(), buffer.position());
            Arrays.fill(buffer.array(), (byte) 0);
        }
        Object after = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        if (before.fileKey() == null || !before.fileKey().equals(after)) {
            Arrays.fill(content, (byte) 0);
            throw new IOException(file + " was replaced while it was read: check who else can change " + directory);
        }
        return content;
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

    private static long processUid() {
        return new com.sun.security.auth.module.UnixSystem().getUid();
    }

    private static long uid(Path path, LinkOption... options) throws IOException {
        return ((Number) unixAttribute(path, "uid", options)).longValue();
    }

    private static Object unixAttribute(Path path, String name, LinkOption... options) throws IOException {
        try {
            return Files.getAttribute(path, "unix:" + name, options);
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            throw notPosix(path);
        }
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
