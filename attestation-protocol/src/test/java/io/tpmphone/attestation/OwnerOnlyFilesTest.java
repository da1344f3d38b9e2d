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

    private Path secret(String name, String mode) throws IOException {
        Path f = Files.writeString(dir.resolve(name), "a-secret-of-this-test\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString(mode));
        return f;
    }

    private static IOException refused(Path f) {
        return assertThrows(IOException.class, () -> OwnerOnlyFiles.readPrivateFile(f, 4096), "reading " + f);
    }

    @Test
    void readPrivateFile_readsAnOwnerOnlyFile() throws IOException {
        for (String mode : List.of("rw-------", "r--------")) {
            Path f = secret("token-" + mode.replace('-', '_'), mode);
            assertEquals("a-secret-of-this-test\n", new String(OwnerOnlyFiles.readPrivateFile(f, 4096),
                    StandardCharsets.US_ASCII), "content of a " + mode + " file");
        }
    }

    @Test
    void readPrivateFile_refusesASymbolicLink_evenToAnOwnerOnlyFile() throws IOException {
        Path target = secret("elsewhere", "rw-------");
        Path link = Files.createSymbolicLink(dir.resolve("admin.token"), target);
        IOException e = refused(link);
        assertTrue(e.getMessage().contains("is a symbolic link (to " + target + ")")
                && e.getMessage().contains("put the file itself at " + link), e.getMessage());
        assertFalse(e.getMessage().contains("a-secret-of-this-test"), "the message holds no secret: " + e.getMessage());
    }

    @Test
    void readPrivateFile_refusesAFileOthersCanRead_sayingHowToFixIt() throws IOException {
        for (String mode : List.of("rw-r--r--", "rw-r-----", "rw----r--", "rw--w----")) {
            Path f = secret("token-" + mode.replace('-', '_'), mode);
            IOException e = refused(f);
            assertTrue(e.getMessage().contains("is accessible to other users (" + mode + ")")
                    && e.getMessage().contains("chmod 600 " + f), mode + ": " + e.getMessage());
            assertEquals(mode, mode(f), "the mode is left as it was");
        }
    }

    @Test
    void readPrivateFile_refusesAFileOfAnotherUser() throws IOException {
        Assumptions.assumeTrue(new com.sun.security.auth.module.UnixSystem().getUid() == 0,
                "only root can give a file to another user");
        Path f = secret("token", "rw-------");
        Files.setAttribute(f, "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
        IOException e = refused(f);
        assertTrue(e.getMessage().contains("(uid 65534), not to the user reading it (uid 0)"), e.getMessage());
    }

    @Test
    void readPrivateFile_refusesAFileInADirectoryOthersCanChange() throws IOException {
        Path open = Files.createDirectory(dir.resolve("open"));
        Path f = Files.writeString(open.resolve("token"), "a-secret-of-this-test");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-------"));
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
        IOException e = refused(f);
        assertTrue(e.getMessage().contains("the directory " + open.toRealPath() + " of " + f
                + " can be changed by other users (mode 777)"), e.getMessage());
        Files.setAttribute(open, "unix:mode", 01777); // sticky, like /tmp: nobody can rename another's file
        assertEquals(21, OwnerOnlyFiles.readPrivateFile(f, 4096).length, "read in a sticky directory");
    }

    @Test
    void readPrivateFile_refusesWhatIsNotARegularFile_orIsTooLarge() throws IOException {
        assertTrue(refused(dir).getMessage().contains("is not a regular file"));
        Path big = secret("big", "rw-------");
        assertTrue(assertThrows(IOException.class, () -> OwnerOnlyFiles.readPrivateFile(big, 8)).getMessage()
                .contains("is larger than 8 bytes"));
        assertThrows(java.nio.file.NoSuchFileException.class,
                () -> OwnerOnlyFiles.readPrivateFile(dir.resolve("missing"), 4096));
    }
}
