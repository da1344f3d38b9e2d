package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(30)
class OwnerOnlyFilesTest {
    @TempDir
    Path dir;

    private static String mode(Path p) throws IOException {
        return PosixFilePermissions.toString(Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void createPrivateDirectories_makesEveryNewDirectory0700() throws IOException {
        Path deep = dir.resolve("a/b/c");
        OwnerOnlyFiles.createPrivateDirectories(deep);
        for (Path p : List.of(dir.resolve("a"), dir.resolve("a/b"), deep)) {
            assertEquals("rwx------", mode(p), "mode of the new directory " + p);
        }
    }

    @Test
    void createPrivateDirectories_tightensAnExistingOpenDirectory() throws IOException {
        Path state = Files.createDirectory(dir.resolve("state"));
        Files.setPosixFilePermissions(state, PosixFilePermissions.fromString("rwxr-xr-x"));
        OwnerOnlyFiles.createPrivateDirectories(state);
        assertEquals("rwx------", mode(state), "an existing 0755 state directory after createPrivateDirectories");
    }

    @Test
    void writeNew_createsTheFile0600WithTheContent() throws IOException {
        Path f = dir.resolve("token");
        OwnerOnlyFiles.writeNew(f, "secret\n".getBytes(StandardCharsets.US_ASCII));
        assertEquals("rw-------", mode(f), "mode of a file made by writeNew");
        assertEquals("secret\n", Files.readString(f), "content of a file made by writeNew");
    }

    @Test
    void writeNew_neverReplacesOrFollowsWhatIsThere() throws IOException {
        Path existing = Files.writeString(dir.resolve("existing"), "old");
        assertThrows(FileAlreadyExistsException.class, () -> OwnerOnlyFiles.writeNew(existing, new byte[] {1}));
        assertEquals("old", Files.readString(existing), "an existing file after a refused writeNew");
        Path target = dir.resolve("target");
        Path link = Files.createSymbolicLink(dir.resolve("link"), target);
        assertThrows(FileAlreadyExistsException.class, () -> OwnerOnlyFiles.writeNew(link, new byte[] {1}));
        assertFalse(Files.exists(target), "writeNew through a dangling symbolic link created its target");
    }

    @Test
    void replace_leavesOnlyTheNewOwnerOnlyFile() throws IOException {
        Path f = Files.writeString(dir.resolve("status.json"), "old");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-r--r--"));
        OwnerOnlyFiles.replace(f, new byte[] {1, 2, 3});
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(f), "content after replace");
        assertEquals("rw-------", mode(f), "mode after replacing a 0644 file");
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(f), files.toList(), "files in the directory after replace (no temporary left)");
        }
    }

    @Test
    void createPrivateFile_createsEmpty0600_andTightensAnExistingFile() throws IOException {
        Path db = OwnerOnlyFiles.createPrivateFile(dir.resolve("audit.db"));
        assertEquals("rw-------", mode(db), "mode of a new file from createPrivateFile");
        assertEquals(0, Files.size(db), "size of a new file from createPrivateFile");
        Path old = Files.writeString(dir.resolve("registry.db"), "data");
        Files.setPosixFilePermissions(old, PosixFilePermissions.fromString("rw-rw-r--"));
        OwnerOnlyFiles.createPrivateFile(old);
        assertEquals("rw-------", mode(old), "mode of an existing 0664 file after createPrivateFile");
        assertEquals("data", Files.readString(old), "content of an existing file after createPrivateFile");
    }

    @Test
    void restrict_removesOnlyGroupAndOtherBits_andReportsWhetherItChangedAnything() throws IOException {
        Path f = Files.createFile(dir.resolve("f"));
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("r-xrw-rwx"));
        assertTrue(OwnerOnlyFiles.restrict(f), "restrict of a 0567 file said nothing changed");
        assertEquals("r-x------", mode(f), "mode after restrict");
        assertFalse(OwnerOnlyFiles.restrict(f), "restrict of an owner-only file said it changed it");
        assertFalse(OwnerOnlyFiles.restrict(dir.resolve("absent")), "restrict of a missing file said it changed it");
    }

    // ----------------------------------------------------------------------------------------- readPrivateFile
    // The rules (OwnerOnlyFiles.readPrivateFile): the file, links resolved, is a regular file of this user or root,
    // nothing for others, no group write, group read only for a group the reader is in (or root's); every directory
    // from / down to it and to every link is this user's or root's and not writable by others (sticky ones may hold
    // the file but no link; read-only tmpfs/ramfs mounts pass; nothing on FUSE); links belong to this user or root; the descriptor is the file.

    private static final String SECRET = "a-secret-of-this-test\n";
    /** A server user that is not root, in its own group and the group tpmphone (4242), as a test reader. */
    private static final OwnerOnlyFiles.Reader SERVER_USER = new OwnerOnlyFiles.Reader(1000, Set.of(1000L, 4242L));
    private static final OwnerOnlyFiles.Reader OUTSIDE_TPMPHONE = new OwnerOnlyFiles.Reader(1000, Set.of(1000L));

    private Path secret(String name, String mode) throws IOException {
        return secret(dir.resolve(name), mode);
    }

    private static Path secret(Path f, String mode) throws IOException {
        Files.writeString(f, SECRET);
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString(mode));
        return f;
    }

    private static Path directory(Path d, String mode) throws IOException {
        Files.createDirectories(d);
        Files.setPosixFilePermissions(d, PosixFilePermissions.fromString(mode));
        return d;
    }

    private static void chown(Path p, int uid, int gid) throws IOException {
        Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
        Files.setAttribute(p, "unix:gid", gid, LinkOption.NOFOLLOW_LINKS);
    }

    private static void assumeRoot() {
        Assumptions.assumeTrue(new com.sun.security.auth.module.UnixSystem().getUid() == 0,
                "only root can give files to other users");
    }

    private static String read(Path f, OwnerOnlyFiles.Reader reader) throws IOException {
        return new String(OwnerOnlyFiles.readPrivateFile(f, 4096, reader), StandardCharsets.US_ASCII);
    }

    private static IOException refused(Path f) {
        return refused(f, OwnerOnlyFiles.Reader.current());
    }

    private static IOException refused(Path f, OwnerOnlyFiles.Reader reader) {
        IOException e = assertThrows(IOException.class, () -> OwnerOnlyFiles.readPrivateFile(f, 4096, reader),
                "reading " + f);
        assertFalse(e.getMessage().contains("a-secret-of-this-test"), "the message holds no secret: " + e.getMessage());
        return e;
    }

    /**
     * A FUSE mount whose daemon reports root as the owner: where fuse.conf has user_allow_other, any user may mount
     * one on a name they create in /tmp and serve the token they want. The file system type is the reader's view
     * here (no FUSE on the test machines); a real mount reports {@code fuse.NAME}.
     */
    @Test
    void readPrivateFile_refusesASecretOnAFuseFileSystem_whoseOwnerIsWhateverItsDaemonSays() throws IOException {
        Path f = secret("fuse.token", "r--------");
        Path parent = f.getParent();
        OwnerOnlyFiles.Reader fileOnFuse = new OwnerOnlyFiles.Reader(0, Set.of(0L),
                p -> p.equals(f) ? "fuse.attacker" : OwnerOnlyFiles.fileSystemType(p));
        assertTrue(refused(f, fileOnFuse).getMessage().contains("is on a FUSE file system (fuse.attacker)"),
                "a FUSE mount on the file itself");
        OwnerOnlyFiles.Reader directoryOnFuse = new OwnerOnlyFiles.Reader(0, Set.of(0L),
                p -> p.equals(parent) ? "fuse" : OwnerOnlyFiles.fileSystemType(p));
        assertTrue(refused(f, directoryOnFuse).getMessage().contains(parent + " on the path of " + f
                + " is on a FUSE file system (fuse)"), "a FUSE directory on the way");
        assertEquals(SECRET, read(f, new OwnerOnlyFiles.Reader(0, Set.of(0L))), "the same file on its real file"
                + " system (" + OwnerOnlyFiles.fileSystemType(f) + ") is read");
    }

    @Test
    void readPrivateFile_readsAnOwnerOnlyFile() throws IOException {
        for (String mode : List.of("rw-------", "r--------")) {
            Path f = secret("token-" + mode.replace('-', '_'), mode);
            assertEquals(SECRET, new String(OwnerOnlyFiles.readPrivateFile(f, 4096), StandardCharsets.US_ASCII),
                    "content of a " + mode + " file");
        }
    }

    /**
     * A Kubernetes Secret volume: the file is a link into ..data/, itself a link to a timestamped directory, all
     * root's. The last review's rules refused every link, so a Secret could not be used; a link only root or the
     * server user could have made is followed now.
     */
    @Test
    void readPrivateFile_followsLinksOnlyRootOrItsUserCouldMake_likeAKubernetesSecretVolume() throws IOException {
        Path volume = directory(dir.resolve("secret-volume"), "rwxr-xr-x");
        Path timestamped = directory(volume.resolve("..2025_01_31_12_00_00.123456789"), "rwxr-xr-x");
        secret(timestamped.resolve("admin-token"), "r--------"); // defaultMode 0400
        Files.createSymbolicLink(volume.resolve("..data"), Path.of(timestamped.getFileName().toString()));
        Path token = Files.createSymbolicLink(volume.resolve("admin-token"), Path.of("..data/admin-token"));
        assertEquals(SECRET, read(token, OwnerOnlyFiles.Reader.current()), "read as root, the files' owner");
        assertEquals(SECRET, read(token, SERVER_USER), "read by a server user: the files are root's");
    }

    @Test
    void readPrivateFile_refusesALinkOfAnotherUser_evenToAGoodFile() throws IOException {
        assumeRoot();
        Path target = secret("elsewhere", "rw-------");
        Path link = Files.createSymbolicLink(dir.resolve("admin.token"), target);
        chown(link, 65534, 65534);
        IOException e = refused(link);
        assertTrue(e.getMessage().contains("leads through the symbolic link " + link + " (to " + target + "), which"
                + " belongs to uid 65534") && e.getMessage().contains("put the file itself at " + link),
                e.getMessage());
    }

    @Test
    void readPrivateFile_refusesALinkInAStickyDirectoryOthersCanWrite_likeTmp() throws IOException {
        Path target = secret("elsewhere", "rw-------");
        Path tmp = directory(dir.resolve("tmp"), "rwxrwxrwx");
        Files.setAttribute(tmp, "unix:mode", 01777);
        Path link = Files.createSymbolicLink(tmp.resolve("admin.token"), target); // root's own link, even so
        IOException e = refused(link);
        assertTrue(e.getMessage().contains("the symbolic link " + link) && e.getMessage().contains("a directory"
                + " others can write (like /tmp)"), e.getMessage());
        Path inTmp = secret(tmp.resolve("direct.token"), "rw-------");
        assertEquals(SECRET, read(inTmp, OwnerOnlyFiles.Reader.current()), "the file itself in a sticky directory");
    }

    @Test
    void readPrivateFile_refusesAFileOthersCanRead_sayingHowToFixIt_andWhatDockerAndKubernetesNeed()
            throws IOException {
        for (String mode : List.of("rw-r--r--", "r--r--r--", "rw----r--", "rw-----w-", "rw------x")) {
            Path f = secret("token-" + mode.replace('-', '_'), mode);
            IOException e = refused(f);
            assertTrue(e.getMessage().contains("is accessible to other users (" + mode + ")")
                    && e.getMessage().contains("chmod 600 " + f)
                    && e.getMessage().contains("Docker secret is mounted 0444 unless its mode is set: give it mode"
                    + " 0400") && e.getMessage().contains("defaultMode 0400"), mode + ": " + e.getMessage());
            assertEquals(mode, mode(f), "the mode is left as it was");
        }
    }

    /** The last review's rules refused root:tpmphone 0640, read by a server in group tpmphone. */
    @Test
    void readPrivateFile_allowsGroupReadOnlyForAGroupTheServerIsIn_likeRootTpmphone0640() throws IOException {
        assumeRoot();
        Path f = secret("admin.token", "rw-r-----");
        chown(f, 0, 4242); // root:tpmphone
        assertEquals(SECRET, read(f, SERVER_USER), "read by a member of the file's group");
        IOException e = refused(f, OUTSIDE_TPMPHONE);
        assertTrue(e.getMessage().contains("is accessible to other users (rw-r-----): its group")
                && e.getMessage().contains("(gid 4242) may read it, and the server is not in that group"),
                e.getMessage());
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-rw----"));
        IOException write = refused(f, SERVER_USER);
        assertTrue(write.getMessage().contains("is writable by its group") && write.getMessage().contains("chmod g-w "
                + f), "group write is refused even for the server's own group: " + write.getMessage());
    }

    /**
     * systemd LoadCredential=: the file is root's, mode 0400 plus an ACL entry for the service user, which shows as
     * 0440 (the group bits are the ACL mask) with group root; the directory is 0500, the service user's or root's.
     * The last review's rules refused it (not the reader's own, group bits set).
     */
    @Test
    void readPrivateFile_readsASystemdCredential_rootsFile0440InA0500Directory() throws IOException {
        assumeRoot();
        for (int directoryOwner : new int[] {1000, 0}) {
            Path credentials = directory(dir.resolve("credentials-" + directoryOwner), "rwx------");
            Path f = secret(credentials.resolve("admin-token"), "r--r-----");
            Files.setPosixFilePermissions(credentials, PosixFilePermissions.fromString("r-x------"));
            chown(credentials, directoryOwner, directoryOwner);
            assertEquals(SECRET, read(f, OUTSIDE_TPMPHONE), "directory of uid " + directoryOwner);
        }
    }

    @Test
    void readPrivateFile_refusesAFileOfAnotherUser() throws IOException {
        assumeRoot();
        Path f = secret("token", "rw-------");
        Files.setAttribute(f, "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
        IOException e = refused(f);
        assertTrue(e.getMessage().contains("(uid 65534), not to the user reading it (uid 0) or root"), e.getMessage());
        assertEquals(SECRET, read(secret("root.token", "rw-------"), new OwnerOnlyFiles.Reader(1001, Set.of())),
                "root's file is read by a server user that is not root: root can choose it anyway");
        Files.setAttribute(f, "unix:uid", 1001, LinkOption.NOFOLLOW_LINKS);
        assertEquals(SECRET, read(f, new OwnerOnlyFiles.Reader(1001, Set.of())), "and the server user's own file");
    }

    @Test
    void readPrivateFile_refusesAFileInADirectoryOthersCanChange() throws IOException {
        Path open = Files.createDirectory(dir.resolve("open"));
        Path f = secret(open.resolve("token"), "rw-------");
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
        IOException e = refused(f);
        assertTrue(e.getMessage().contains("the directory " + open.toRealPath() + " on the path of " + f
                + " can be changed by other users (mode 777)"), e.getMessage());
        Files.setAttribute(open, "unix:mode", 01777); // sticky, like /tmp: nobody can rename another's file
        assertEquals(21 + 1, OwnerOnlyFiles.readPrivateFile(f, 4096).length, "read in a sticky directory");
    }

    /**
     * Review finding 5: only the file's own directory was checked, so a world-writable, non-sticky directory higher
     * up let anyone rename the directories below it away and put their own in place between the check and the open.
     * Every directory from / down is checked now.
     */
    @Test
    void readPrivateFile_checksEveryAncestor_notOnlyTheFilesDirectory() throws IOException {
        Path open = directory(dir.resolve("open"), "rwxrwxrwx");
        Path inner = directory(open.resolve("inner").resolve("keys"), "rwx------");
        Files.setPosixFilePermissions(inner.getParent(), PosixFilePermissions.fromString("rwx------"));
        Path f = secret(inner.resolve("admin.token"), "rw-------");
        IOException e = refused(f);
        assertTrue(e.getMessage().contains("the directory " + open + " on the path of " + f + " can be changed by"
                + " other users (mode 777)"), e.getMessage());
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxr-xr-x"));
        assertEquals(SECRET, read(f, OwnerOnlyFiles.Reader.current()), "read once the ancestor is safe");
    }

    @Test
    void readPrivateFile_refusesAnAncestorOfAnotherUser() throws IOException {
        assumeRoot();
        Path theirs = directory(dir.resolve("theirs"), "rwxr-xr-x");
        Path f = secret(directory(theirs.resolve("mine"), "rwx------").resolve("admin.token"), "rw-------");
        chown(theirs, 65534, 65534);
        IOException e = refused(f);
        assertTrue(e.getMessage().contains("the directory " + theirs + " on the path of " + f + " can be changed by"
                + " uid 65534, its owner"), e.getMessage());
    }

    /** A directory a link leads through is on the path as much as the file's own. */
    @Test
    void readPrivateFile_checksTheDirectoriesALinkLeadsThrough() throws IOException {
        Path open = directory(dir.resolve("open"), "rwxrwxrwx");
        Path target = secret(directory(open.resolve("keys"), "rwx------").resolve("admin.token"), "rw-------");
        Path link = Files.createSymbolicLink(dir.resolve("admin.token"), target);
        IOException e = refused(link);
        assertTrue(e.getMessage().contains("the directory " + open + " on the path of " + link), e.getMessage());
    }

    /** The descriptor opened must be the file checked: here another owner-only file is renamed over it in between. */
    @Test
    void readPrivateFile_refusesAFileReplacedBetweenItsCheckAndItsOpening() throws IOException {
        Path f = secret("admin.token", "rw-------");
        Path other = Files.writeString(dir.resolve("other.token"), "chosen-by-whoever-renamed-it\n");
        Files.setPosixFilePermissions(other, PosixFilePermissions.fromString("rw-------"));
        IOException e = assertThrows(IOException.class, () -> OwnerOnlyFiles.readPrivateFile(f, 4096,
                OwnerOnlyFiles.Reader.current(), () -> {
                    try {
                        Files.move(other, f, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                    } catch (IOException io) {
                        throw new java.io.UncheckedIOException(io);
                    }
                }));
        assertTrue(e.getMessage().contains(f + " was replaced between its check and its opening"), e.getMessage());
        assertFalse(e.getMessage().contains("chosen-by"), e.getMessage());
    }

    @Test
    void openedFileKey_isTheOpenFilesEvenAfterItsNameIsTakenByAnother() throws IOException {
        Path f = secret("admin.token", "rw-------");
        Object original = Files.readAttributes(f, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
        try (java.nio.channels.FileChannel a = java.nio.channels.FileChannel.open(f);
             java.nio.channels.FileChannel b = java.nio.channels.FileChannel.open(f)) {
            Files.move(secret("replacement", "rw-------"), f, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            Object now = Files.readAttributes(f, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
            assertFalse(original.equals(now), "the name now holds another file");
            assertEquals(Optional.of(original), OwnerOnlyFiles.openedFileKey(a),
                    "the descriptor's file, not the name's");
            assertEquals(Optional.of(original), OwnerOnlyFiles.openedFileKey(b),
                    "two descriptors of it are told apart");
            assertEquals(0, a.position(), "the position is back at 0");
        }
    }

    @Test
    void readPrivateFile_refusesWhatIsNotARegularFile_orIsTooLarge_orALinkToNothing_orALoop() throws IOException {
        assertTrue(refused(dir).getMessage().contains("is not a regular file"));
        Path big = secret("big", "rw-------");
        assertTrue(assertThrows(IOException.class, () -> OwnerOnlyFiles.readPrivateFile(big, 8)).getMessage()
                .contains("is larger than 8 bytes"));
        assertThrows(java.nio.file.NoSuchFileException.class,
                () -> OwnerOnlyFiles.readPrivateFile(dir.resolve("missing"), 4096));
        Path dangling = Files.createSymbolicLink(dir.resolve("dangling"), dir.resolve("nothing-here"));
        assertThrows(java.nio.file.NoSuchFileException.class, () -> OwnerOnlyFiles.readPrivateFile(dangling, 4096));
        Path loop = Files.createSymbolicLink(dir.resolve("loop-a"), dir.resolve("loop-b"));
        Files.createSymbolicLink(dir.resolve("loop-b"), loop);
        assertTrue(refused(loop).getMessage().contains("more than 40 symbolic links"), "a link loop");
    }

    /**
     * A real Kubernetes Secret volume's directory is a tmpfs of mode 1777 mounted read-only: its links are in a
     * sticky, world-writable directory, which passes only because nobody can write a read-only mount. Run in a child
     * JVM in a private mount namespace, with a real read-only tmpfs.
     */
    @Test
    @Timeout(120)
    void readPrivateFile_followsLinksOnAReadOnlyMount_likeAKubernetesSecretVolume() throws Exception {
        Assumptions.assumeTrue(new com.sun.security.auth.module.UnixSystem().getUid() == 0
                && Files.isExecutable(Path.of("/usr/bin/unshare")), "needs root and unshare to mount a tmpfs");
        Path volume = Files.createDirectory(dir.resolve("secret-volume"));
        String javaBinary = ProcessHandle.current().info().command().orElse("java");
        String script = "set -e; V='" + volume + "'; mount -t tmpfs -o mode=1777 tmpfs \"$V\";"
                + " mkdir -m 755 \"$V/..2025_01_31\";"
                + " printf 'a-secret-of-this-test\\n' > \"$V/..2025_01_31/admin-token\";"
                + " chmod 0400 \"$V/..2025_01_31/admin-token\"; ln -s ..2025_01_31 \"$V/..data\";"
                + " ln -s ..data/admin-token \"$V/admin-token\";"
                + " \"$0\" -cp \"$1\" " + SecretFileProbe.class.getName() + " \"$V/admin-token\";"
                + " mount -o remount,ro \"$V\"; exec \"$0\" -cp \"$1\" " + SecretFileProbe.class.getName()
                + " \"$V/admin-token\"";
        Process p = new ProcessBuilder("unshare", "--mount", "--propagation", "private", "sh", "-c", script, javaBinary,
                System.getProperty("java.class.path")).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(100, java.util.concurrent.TimeUnit.SECONDS), "the probe finished: " + out);
        List<String> lines = out.lines().filter(l -> l.startsWith("read ") || l.startsWith("refused ")).toList();
        assertEquals(2, lines.size(), "two probes, writable then read-only: " + out);
        assertTrue(lines.get(0).startsWith("refused ") && lines.get(0).contains("a directory others can write"),
                "while the tmpfs (1777) is writable, its links are not followed: " + lines.get(0));
        assertEquals("read 22 bytes", lines.get(1), "once it is mounted read-only: " + out);
        assertEquals(0, p.exitValue(), out);
    }
}
