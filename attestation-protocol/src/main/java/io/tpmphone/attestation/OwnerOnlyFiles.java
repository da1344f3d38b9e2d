package io.tpmphone.attestation;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
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
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
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
     * Reads a secret file whose content decides who is trusted (an admin token), if nobody but this process's user
     * and root can choose what it holds, and nobody else can read it. It may be reached through symbolic links, as a
     * Kubernetes Secret volume or a systemd credential is, as long as nobody else can change any of them:
     * <ul>
     *   <li>The file, after every link is resolved, is a regular file owned by this user or root, with no permission
     *       for others and no group write; group read only if its group is one this process is in, or root's.</li>
     *   <li>Every directory from {@code /} down to the file, and down to every link followed, is owned by this user
     *       or root and not writable by group or others; a directory on a read-only mount passes whatever its owner
     *       and mode if it is tmpfs or ramfs (nobody can change it). A sticky directory that others can write (such as {@code /tmp}) may
     *       hold the file, or a directory on its path (nobody can rename another's entry there), but no link.</li>
     *   <li>Every link followed is owned by this user or root (or on a read-only mount). At most 40 links.</li>
     *   <li>Nothing on the way, nor the file, is on a FUSE file system (its daemon chooses owner and mode).</li>
     *   <li>The descriptor opened is the file that was checked: its device and inode (from {@code /proc/self}, where
     *       there is one; else the file's, once more after reading) are the checked file's.</li>
     * </ul>
     * Otherwise the file is not read, and the {@link IOException} names the file or directory at fault and what to
     * do. Nothing is created or changed: a file that others could read may have been read, so it is refused rather
     * than restricted. POSIX ACLs are not read (Java cannot): an ACL entry for another user or group needs the group
     * read bit (the ACL mask), so a file without group permissions grants nobody else anything; with group read
     * allowed, whoever owns the file (this user or root) decided who else may read it.
     *
     * @param maxBytes the largest content accepted
     * @return the content; the caller wipes it when done
     * @throws java.nio.file.NoSuchFileException if there is no such file (or a link on the way leads nowhere)
     * @throws IOException if the file is not protected as above, larger than {@code maxBytes}, or unreadable
     */
    public static byte[] readPrivateFile(Path file, int maxBytes) throws IOException {
        return readPrivateFile(file, maxBytes, Reader.current());
    }

    /** The user and groups a secret file is checked for: this process's (a test gives others). */
    record Reader(long uid, Set<Long> groups, java.util.function.Function<Path, String> fileSystemType) {
        Reader {
            groups = Set.copyOf(groups);
            Objects.requireNonNull(fileSystemType, "fileSystemType");
        }

        Reader(long uid, Set<Long> groups) {
            this(uid, groups, OwnerOnlyFiles::fileSystemType);
        }

        static Reader current() {
            com.sun.security.auth.module.UnixSystem unix = new com.sun.security.auth.module.UnixSystem();
            Set<Long> groups = new java.util.HashSet<>();
            groups.add(unix.getGid());
            for (long g : unix.getGroups() == null ? new long[0] : unix.getGroups()) {
                groups.add(g);
            }
            return new Reader(unix.getUid(), groups);
        }

        boolean trusts(long owner) {
            return owner == uid || owner == 0;
        }
    }

    /** How a directory on a secret file's path was found safe. */
    private enum Directory {
        /** Owned by the reader or root, not writable by group or others. */
        OWNED,
        /** On a read-only mount: nobody can change it. */
        READ_ONLY,
        /** Owned by the reader or root, writable by others but sticky: they cannot rename the reader's entries. */
        STICKY
    }

    private static final int MAX_LINKS = 40;

    static byte[] readPrivateFile(Path file, int maxBytes, Reader reader) throws IOException {
        return readPrivateFile(file, maxBytes, reader, () -> { });
    }

    /** As {@link #readPrivateFile(Path, int)}; tests swap the file in {@code beforeOpen}, after it was checked. */
    static byte[] readPrivateFile(Path file, int maxBytes, Reader reader, Runnable beforeOpen) throws IOException {
        Objects.requireNonNull(file, "file");
        if (maxBytes < 0 || maxBytes > MAX_SECRET_FILE_BYTES) {
            throw new IllegalArgumentException("maxBytes must be 0.." + MAX_SECRET_FILE_BYTES + ", got " + maxBytes);
        }
        Path absolute = file.toAbsolutePath();
        requirePosix(absolute.getParent());
        Path resolved = resolveSafely(file, absolute, reader);
        Map<String, Object> checked = unixAttributes(resolved, "*"); // one lstat: every rule below is of one file
        String at = resolved.equals(absolute) ? file.toString() : file + " (" + resolved + ")";
        if (!Boolean.TRUE.equals(checked.get("isRegularFile"))) {
            throw new IOException(at + " is not a regular file: give the path of the secret file itself");
        }
        requireNotUserMounted(reader.fileSystemType().apply(resolved), resolved, file); // a FUSE mount on the file
        int mode = (Integer) checked.get("mode");
        long owner = ((Number) checked.get("uid")).longValue();
        long group = ((Number) checked.get("gid")).longValue();
        String ownerName = ((java.nio.file.attribute.UserPrincipal) checked.get("owner")).getName();
        String groupName = ((java.nio.file.attribute.GroupPrincipal) checked.get("group")).getName();
        Object fileKey = checked.get("fileKey");
        if (!reader.trusts(owner)) {
            throw new IOException(at + " belongs to " + ownerName + " (uid " + owner + "), not to the user reading it"
                    + " (uid " + reader.uid() + ") or root: its owner can choose or read the secret. Have this user or"
                    + " root create it, mode 0600 or 0400 (`chown` it only if you trust everyone who owned it)");
        }
        @SuppressWarnings("unchecked")
        String permissions = PosixFilePermissions.toString((Set<PosixFilePermission>) checked.get("permissions"));
        if ((mode & 0007) != 0) {
            throw new IOException(at + " is accessible to other users (" + permissions + "): anyone who could read"
                    + " it may hold the secret. Make it owner-only (`chmod 600 " + resolved + "`, or 640 for a group"
                    + " the server runs in) and, if others may have read it, make a new secret. A Docker secret is"
                    + " mounted 0444 unless its mode is set: give it mode 0400 (or 0440 and the server's gid); a"
                    + " Kubernetes Secret volume: defaultMode 0400 (or 0440 with fsGroup)");
        }
        if ((mode & 0020) != 0) {
            throw new IOException(at + " is writable by its group " + groupName + " (" + permissions + "): the"
                    + " group's members could choose the secret. Remove group write (`chmod g-w " + resolved + "`)");
        }
        if ((mode & 0070) != 0 && group != 0 && !reader.groups().contains(group)) {
            throw new IOException(at + " is accessible to other users (" + permissions + "): its group " + groupName
                    + " (gid " + group + ") may read it, and the server is not in that group. Make it owner-only"
                    + " (`chmod 600 " + resolved + "`), or give it to a group the server runs in (`chgrp`); if others"
                    + " may have read it, make a new secret");
        }
        beforeOpen.run();
        try (FileChannel channel = FileChannel.open(resolved, Set.of(StandardOpenOption.READ,
                LinkOption.NOFOLLOW_LINKS))) {
            Optional<Object> opened = openedFileKey(channel);
            if (opened.isPresent() && !opened.get().equals(fileKey)) {
                throw new IOException(at + " was replaced between its check and its opening: check who else can"
                        + " change " + resolved.getParent());
            }
            byte[] content = readAtMost(channel, maxBytes, at);
            if (opened.isEmpty()) { // no /proc: the file at that name must still be the one checked
                Object after = Files.readAttributes(resolved, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                        .fileKey();
                if (fileKey == null || !fileKey.equals(after)) {
                    Arrays.fill(content, (byte) 0);
                    throw new IOException(at + " was replaced while it was read: check who else can change "
                            + resolved.getParent());
                }
            }
            return content;
        }
    }

    /**
     * The real path of {@code file}, resolved one name at a time from {@code /} with {@code lstat}: every directory
     * a name is looked up in, and every link followed, is checked as {@link #readPrivateFile} says.
     */
    private static Path resolveSafely(Path file, Path absolute, Reader reader) throws IOException {
        Path root = absolute.getRoot();
        Map<Path, Directory> checked = new java.util.HashMap<>();
        Deque<String> rest = new ArrayDeque<>();
        absolute.forEach(name -> rest.addLast(name.toString()));
        Path current = root;
        int links = 0;
        while (!rest.isEmpty()) {
            String name = rest.removeFirst();
            if (name.isEmpty() || name.equals(".")) {
                continue;
            }
            if (name.equals("..")) {
                current = current.getParent() == null ? current : current.getParent(); // a real path: no link in it
                continue;
            }
            Directory directory = checked.get(current);
            if (directory == null) {
                directory = checkDirectory(current, file, reader);
                checked.put(current, directory);
            }
            Path next = current.resolve(name);
            PosixFileAttributes a;
            try {
                a = Files.readAttributes(next, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            } catch (java.nio.file.NoSuchFileException e) {
                if (next.equals(absolute)) {
                    throw e;
                }
                throw new java.nio.file.NoSuchFileException(file.toString(), next.toString(),
                        "no such file on the way (through a symbolic link?)");
            }
            if (a.isSymbolicLink()) {
                Path target = Files.readSymbolicLink(next);
                checkLink(next, target, directory, file, reader);
                if (++links > MAX_LINKS) {
                    throw new IOException(file + " leads through more than " + MAX_LINKS + " symbolic links (a loop?)");
                }
                List<String> names = new ArrayList<>();
                target.forEach(n -> names.add(n.toString()));
                for (int i = names.size() - 1; i >= 0; i--) {
                    rest.addFirst(names.get(i));
                }
                if (target.isAbsolute()) {
                    current = root;
                }
                continue;
            }
            if (!rest.isEmpty() && !a.isDirectory()) {
                throw new java.nio.file.NotDirectoryException(next.toString());
            }
            current = next;
        }
        return current;
    }

    /** Whether others could change what {@code directory} holds; throws if they could. */
    private static Directory checkDirectory(Path directory, Path file, Reader reader) throws IOException {
        String type = reader.fileSystemType().apply(directory);
        requireNotUserMounted(type, directory, file);
        Map<String, Object> a = unixAttributes(directory, "mode,uid");
        int mode = (Integer) a.get("mode");
        long owner = ((Number) a.get("uid")).longValue();
        boolean othersWrite = (mode & 0022) != 0;
        if (reader.trusts(owner) && !othersWrite) {
            return Directory.OWNED;
        }
        // Only a read-only tmpfs or ramfs: a read-only bind mount may stay writable through its source path, and
        // what a FUSE daemon reports (owner, mode) is whatever that daemon's user chooses.
        if (IN_MEMORY_FILE_SYSTEMS.contains(type) && onReadOnlyMount(directory)) {
            return Directory.READ_ONLY;
        }
        if (reader.trusts(owner) && (mode & 01000) != 0) {
            return Directory.STICKY;
        }
        throw new IOException("the directory " + directory + " on the path of " + file + " can be changed by "
                + (reader.trusts(owner) ? "other users (mode " + Integer.toOctalString(mode & 07777) + ")"
                : "uid " + owner + ", its owner") + ", who could replace the secret file or a directory or link on"
                + " its way: keep it where only its user and root can change every directory from / down to it");
    }

    private static void checkLink(Path link, Path target, Directory directory, Path file, Reader reader)
            throws IOException {
        if (directory == Directory.STICKY) {
            throw new IOException(file + " leads through the symbolic link " + link + " (to " + target + ") in "
                    + link.getParent() + ", a directory others can write (like /tmp): a secret file is not read"
                    + " through a link there. Put the file itself at " + link + ", or the link in a directory only"
                    + " its user and root can change");
        }
        long owner = uid(link, LinkOption.NOFOLLOW_LINKS);
        if (directory != Directory.READ_ONLY && !reader.trusts(owner)) {
            throw new IOException(file + " leads through the symbolic link " + link + " (to " + target + "), which"
                    + " belongs to uid " + owner + ", not to the user reading it (uid " + reader.uid() + ") or root:"
                    + " whoever made it chose the secret file. Remove it and put the file itself at " + link);
        }
    }

    /** File systems that exist only as mounted, whose read-only mounts nobody can change (Kubernetes Secrets). */
    private static final Set<String> IN_MEMORY_FILE_SYSTEMS = Set.of("tmpfs", "ramfs");

    /**
     * Refuses a FUSE file system on a secret's path: with {@code user_allow_other} in /etc/fuse.conf, any user may
     * mount one (on a name they create in a sticky directory such as /tmp) whose daemon reports root as the owner.
     */
    private static void requireNotUserMounted(String type, Path at, Path file) throws IOException {
        if (type.equals("fuse") || type.startsWith("fuse.") || type.equals("fuseblk")) {
            throw new IOException(at + " on the path of " + file + " is on a FUSE file system (" + type + "), whose"
                    + " owner and modes are whatever its daemon reports (any user may mount one where fuse.conf has"
                    + " user_allow_other): keep the secret file on a local file system");
        }
    }

    /** The type of the file system {@code path} is on ({@code ext4}, {@code tmpfs}, {@code fuse.sshfs}), or "". */
    static String fileSystemType(Path path) {
        try {
            return Files.getFileStore(path).type();
        } catch (IOException e) {
            return "";
        }
    }

    private static boolean onReadOnlyMount(Path directory) {
        try {
            return Files.getFileStore(directory).isReadOnly();
        } catch (IOException e) {
            return false; // unknown: treated as writable
        }
    }

    /**
     * The key (device and inode) of the file open on {@code channel}, as the kernel sees its descriptor: the channel
     * is moved to a random position, which tells its descriptor apart in {@code /proc/self/fdinfo}, and
     * {@code /proc/self/fd/N} is stat'ed (stat follows that link to the open file, whatever its name now). Empty if
     * there is no {@code /proc/self/fdinfo}. Leaves the position at 0.
     */
    static Optional<Object> openedFileKey(FileChannel channel) throws IOException {
        Path fdinfo = Path.of("/proc/self/fdinfo");
        if (!Files.isDirectory(fdinfo)) {
            return Optional.empty();
        }
        long marker = (1L << 40) + (new java.security.SecureRandom().nextLong() >>> 23);
        channel.position(marker);
        String pos = "pos:\t" + marker + "\n";
        List<String> found = new ArrayList<>();
        try (DirectoryStream<Path> descriptors = Files.newDirectoryStream(fdinfo)) {
            for (Path d : descriptors) {
                try {
                    if (Files.readString(d).startsWith(pos)) {
                        found.add(d.getFileName().toString());
                    }
                } catch (IOException gone) {
                    // closed meanwhile by another thread: not ours
                }
            }
        }
        channel.position(0);
        if (found.size() != 1) {
            throw new IOException("cannot tell which descriptor is the secret file just opened (" + found.size()
                    + " in /proc/self/fdinfo at its position)");
        }
        return Optional.of(Files.readAttributes(Path.of("/proc/self/fd", found.get(0)), BasicFileAttributes.class)
                .fileKey());
    }

    private static byte[] readAtMost(FileChannel channel, int maxBytes, String at) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(maxBytes + 1);
        try {
            while (buffer.hasRemaining() && channel.read(buffer) >= 0) {
                if (buffer.position() > maxBytes) {
                    throw new IOException(at + " is larger than " + maxBytes + " bytes: not the secret file");
                }
            }
            return Arrays.copyOf(buffer.array(), buffer.position());
        } finally {
            Arrays.fill(buffer.array(), (byte) 0);
        }
    }

    /** The {@code unix:} attributes {@code names} of {@code path} itself (not followed), read with one lstat. */
    private static Map<String, Object> unixAttributes(Path path, String names) throws IOException {
        try {
            return Files.readAttributes(path, "unix:" + names, LinkOption.NOFOLLOW_LINKS);
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            throw notPosix(path);
        }
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
