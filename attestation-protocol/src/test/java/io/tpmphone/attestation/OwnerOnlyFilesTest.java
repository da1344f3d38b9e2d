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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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
}
