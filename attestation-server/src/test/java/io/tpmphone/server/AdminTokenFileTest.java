package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The admin token file ({@code tpmphone server --admin-token-file F [--generate-admin-token]}) was read through a
 * symbolic link and whatever its mode and owner: a local user who could put a link at that name (or who owned the
 * file) chose the server's admin token. The next rules refused every link and every group permission, which refused
 * Kubernetes Secrets, systemd credentials and {@code root:tpmphone 0640} files too. Now a file is read if nobody but
 * the server's user and root could have chosen it or what leads to it, and nobody else can read it
 * ({@code OwnerOnlyFilesTest} has the rules case by case); each refusal says what to do and never shows the token.
 */
@Timeout(30)
class AdminTokenFileTest {
    private static final String CHOSEN = "a-token-someone-else-chose-0123456789";

    @TempDir
    Path dir;

    private Path file(String name, String content, String mode) throws IOException {
        Path f = Files.writeString(dir.resolve(name), content + "\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString(mode));
        return f;
    }

    private static IOException refused(Path token, boolean generate) {
        IOException e = assertThrows(IOException.class,
                () -> AttestationServer.builder().adminTokenFile(token, generate),
                "the server took " + token + " as its admin token file (generate " + generate + ")");
        assertFalse(e.getMessage().contains(CHOSEN), "the refusal shows the token: " + e.getMessage());
        return e;
    }

    private static void assumeRoot() {
        Assumptions.assumeTrue(new com.sun.security.auth.module.UnixSystem().getUid() == 0,
                "only root can give a file to another user");
    }

    @Test
    void aSymbolicLinkSomeoneElseCouldHaveMade_isRefused_withOrWithoutGenerate() throws Exception {
        Path chosen = file("chosen", CHOSEN, "rw-------"); // owner-only, so only the link is wrong
        Path shared = Files.createDirectory(dir.resolve("shared"));
        Files.setAttribute(shared, "unix:mode", 01777); // like /tmp: anyone may put a link there
        Path token = Files.createSymbolicLink(shared.resolve("admin.token"), chosen);
        for (boolean generate : new boolean[] {false, true}) {
            IOException e = refused(token, generate);
            assertTrue(e.getMessage().contains("the symbolic link " + token + " (to " + chosen + ") in " + shared
                    + ", a directory others can write"), e.getMessage());
        }
        assertEquals(CHOSEN + "\n", Files.readString(chosen), "the link's target is left alone");
    }

    @Test
    void aSymbolicLinkOfAnotherUser_isRefused() throws Exception {
        assumeRoot();
        Path chosen = file("chosen", CHOSEN, "rw-------");
        Path token = Files.createSymbolicLink(dir.resolve("admin.token"), chosen);
        Files.setAttribute(token, "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
        IOException e = refused(token, false);
        assertTrue(e.getMessage().contains("which belongs to uid 65534"), e.getMessage());
    }

    /** A Kubernetes Secret volume as the server sees it: links into ..data/, all root's, file mode 0400. */
    @Test
    void aKubernetesSecretVolume_isRead() throws Exception {
        Path volume = Files.createDirectory(dir.resolve("admin-secret"));
        Files.setPosixFilePermissions(volume, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path data = Files.createDirectory(volume.resolve("..2025_01_31_12_00_00.000000001"));
        Files.setPosixFilePermissions(data, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path real = Files.writeString(data.resolve("admin-token"), "a-kubernetes-admin-token-0123456789\n");
        Files.setPosixFilePermissions(real, PosixFilePermissions.fromString("r--------"));
        Files.createSymbolicLink(volume.resolve("..data"), data.getFileName());
        Path token = Files.createSymbolicLink(volume.resolve("admin-token"), Path.of("..data", "admin-token"));
        AttestationServer.builder().adminTokenFile(token, false);
        AttestationServer.builder().adminTokenFile(token, true); // nothing is generated over what is there
        assertEquals("a-kubernetes-admin-token-0123456789\n", Files.readString(real), "left as it was");
    }

    @Test
    void aDanglingSymbolicLink_withGenerate_isRefused_andNothingIsCreatedAtItsTarget() throws Exception {
        Path target = dir.resolve("made-through-the-link");
        Path token = Files.createSymbolicLink(dir.resolve("admin.token"), target);
        IOException e = refused(token, true);
        assertTrue(e.getMessage().contains(token + " is a symbolic link to " + target + ", which does not exist"),
                e.getMessage());
        assertFalse(Files.exists(target, LinkOption.NOFOLLOW_LINKS), "a token was written through the link");
    }

    @Test
    void aWorldReadableAdminTokenFile_isRefused_andLeftAsItWas_sayingHowToFixIt() throws Exception {
        for (String mode : new String[] {"rw-r--r--", "r--r--r--"}) { // r--r--r--: a Docker secret's default
            Path token = file("admin.token." + mode.replace('-', '_'), CHOSEN, mode);
            for (boolean generate : new boolean[] {false, true}) {
                IOException e = refused(token, generate);
                assertTrue(e.getMessage().contains("is accessible to other users (" + mode + ")")
                        && e.getMessage().contains("chmod 600 " + token)
                        && e.getMessage().contains("make a new secret")
                        && e.getMessage().contains("give it mode 0400"), e.getMessage());
            }
            assertEquals(mode, PosixFilePermissions.toString(Files.getPosixFilePermissions(token)),
                    "the mode is not changed behind the operator's back");
        }
    }

    @Test
    void aGroupReadableAdminTokenFile_isRefused_unlessTheServerIsInTheGroup() throws Exception {
        assumeRoot();
        Path token = file("admin.token", CHOSEN, "rw-r-----");
        Files.setAttribute(token, "unix:gid", 65534, LinkOption.NOFOLLOW_LINKS); // a group this test is not in
        IOException e = refused(token, false);
        assertTrue(e.getMessage().contains("is accessible to other users (rw-r-----): its group")
                && e.getMessage().contains("the server is not in that group"), e.getMessage());
        Files.setAttribute(token, "unix:gid", 0, LinkOption.NOFOLLOW_LINKS); // root:root 0640: the server's group
        AttestationServer.builder().adminTokenFile(token, false);
    }

    @Test
    void anAdminTokenFileOfAnotherUser_isRefused() throws Exception {
        Assumptions.assumeTrue(new com.sun.security.auth.module.UnixSystem().getUid() == 0,
                "only root can give a file to another user");
        Path token = file("admin.token", CHOSEN, "rw-------");
        Files.setAttribute(token, "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
        IOException e = refused(token, false);
        assertTrue(e.getMessage().contains("(uid 65534), not to the user reading it"), e.getMessage());
    }

    @Test
    void generate_makesAnOwnerOnlyToken_whichTheNextStartReads() throws Exception {
        Path token = dir.resolve("etc").resolve("admin.token");
        AttestationServer.builder().adminTokenFile(token, true);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(token)));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(token.getParent())));
        String written = Files.readString(token).trim();
        assertTrue(written.length() >= 16, "a generated token has " + written.length() + " characters");
        AttestationServer.builder().adminTokenFile(token, false); // an owner-only file of ours is read as it is
        assertThrows(NoSuchFileException.class,
                () -> AttestationServer.builder().adminTokenFile(dir.resolve("missing.token"), false));
        Path shortToken = file("short.token", "too-short", "rw-------");
        assertTrue(refused(shortToken, false).getMessage().contains("fewer than 16 characters"));
    }
}
