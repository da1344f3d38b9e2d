package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The JVM event's digest covers the whole java.home tree, links included. */
class JavaHomeDigestTest {
    @TempDir
    Path dir;
    private Path home;
    private Path etc;

    /** A small java.home laid out like Debian's: conf/security/java.security is a link into an /etc-like tree. */
    @BeforeEach
    void fakeJavaHome() throws Exception {
        home = Files.createDirectories(dir.resolve("jdk"));
        etc = Files.createDirectories(dir.resolve("etc/java-17/security"));
        write(home.resolve("bin/java"), "launcher");
        write(home.resolve("lib/server/libjvm.so"), "libjvm");
        write(home.resolve("lib/modules"), "modules image");
        write(etc.resolve("java.security"), "securerandom.source=file:/dev/urandom\n");
        Files.createDirectories(home.resolve("conf/security"));
        Files.createSymbolicLink(home.resolve("conf/security/java.security"), etc.resolve("java.security"));
        Files.createSymbolicLink(home.resolve("lib/src.zip"), Path.of("../nowhere/src.zip")); // dangling, as on Debian
    }

    private static void write(Path file, String content) throws Exception {
        Files.createDirectories(file.getParent());
        Files.writeString(file, content, StandardCharsets.UTF_8);
    }

    private byte[] digest() throws Exception {
        return MeasuredLauncher.treeDigest(home);
    }

    @Test
    void theDigestIsStable() throws Exception {
        assertArrayEquals(digest(), digest());
    }

    @Test
    void oneChangedByteInAnyFile_changesTheDigest() throws Exception {
        byte[] before = digest();
        for (String f : List.of("bin/java", "lib/server/libjvm.so", "lib/modules")) {
            Path file = home.resolve(f);
            byte[] original = Files.readAllBytes(file);
            byte[] changed = original.clone();
            changed[0] ^= 1;
            Files.write(file, changed);
            assertFalse(Arrays.equals(before, digest()), f);
            Files.write(file, original);
        }
        assertArrayEquals(before, digest());
    }

    @Test
    void anAddedFile_changesTheDigest() throws Exception {
        byte[] before = digest();
        write(home.resolve("lib/libevil.so"), "");
        assertFalse(Arrays.equals(before, digest()));
    }

    @Test
    void anAddedEmptyDirectory_changesTheDigest() throws Exception {
        byte[] before = digest();
        Files.createDirectories(home.resolve("lib/ext"));
        assertFalse(Arrays.equals(before, digest()));
    }

    @Test
    void aRenamedFile_changesTheDigest() throws Exception {
        byte[] before = digest();
        Files.move(home.resolve("lib/modules"), home.resolve("lib/modules2"));
        assertFalse(Arrays.equals(before, digest()));
    }

    @Test
    void contentReachedThroughASymlink_isCovered() throws Exception {
        byte[] before = digest();
        write(etc.resolve("java.security"), "securerandom.source=file:/tmp/predictable\n");
        assertFalse(Arrays.equals(before, digest()), "the linked /etc file is part of the JVM");
    }

    @Test
    void aDanglingLinksTarget_isCovered() throws Exception {
        byte[] before = digest();
        Files.delete(home.resolve("lib/src.zip"));
        Files.createSymbolicLink(home.resolve("lib/src.zip"), Path.of("../elsewhere/src.zip"));
        assertFalse(Arrays.equals(before, digest()));
    }

    @Test
    void aLinkedDirectory_isWalked_andALoopEnds() throws Exception {
        Path extra = Files.createDirectories(dir.resolve("extra"));
        write(extra.resolve("x.properties"), "a=1");
        Files.createSymbolicLink(home.resolve("conf/extra"), extra);
        Files.createSymbolicLink(home.resolve("conf/loop"), home.resolve("conf"));
        byte[] before = digest();
        write(extra.resolve("x.properties"), "a=2");
        assertFalse(Arrays.equals(before, digest()));
    }

    @Test
    void theEncoding_isTheDocumentedOne() throws Exception {
        Path small = Files.createDirectories(dir.resolve("small"));
        write(small.resolve("b"), "B");
        Files.createDirectories(small.resolve("a"));
        Files.createSymbolicLink(small.resolve("c"), Path.of("missing"));
        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
        java.io.ByteArrayOutputStream expected = new java.io.ByteArrayOutputStream();
        expected.writeBytes("a\0d".getBytes(StandardCharsets.US_ASCII));
        expected.writeBytes(new byte[32]);
        expected.writeBytes("b\0f".getBytes(StandardCharsets.US_ASCII));
        expected.writeBytes(md.digest("B".getBytes(StandardCharsets.US_ASCII)));
        expected.writeBytes("c\0l".getBytes(StandardCharsets.US_ASCII));
        expected.writeBytes(md.digest("missing".getBytes(StandardCharsets.US_ASCII)));
        assertArrayEquals(md.digest(expected.toByteArray()), MeasuredLauncher.treeDigest(small));
    }

    @Test
    void theReleaseManifest_approvesJavaHomeByRealPath_withItsTreeDigest_inUnderTwoSeconds() throws Exception {
        Path jar = Files.writeString(dir.resolve("app.jar"), "jar");
        Path cfg = Files.writeString(dir.resolve("app.properties"), "a=1");
        LaunchSpec spec = new LaunchSpec(Path.of(System.getProperty("java.home")), List.of(jar), cfg, "Main",
                List.of(), List.of(), true);
        long started = System.nanoTime();
        MeasuredLauncher.JvmDigest jvm = MeasuredLauncher.jvmDigest(spec);
        long ms = (System.nanoTime() - started) / 1_000_000;
        System.err.println("tree digest of " + jvm.javaHome() + ": " + ms + " ms");
        assertEquals(Path.of(System.getProperty("java.home")).toRealPath().toString(), jvm.javaHome());
        @SuppressWarnings("unchecked")
        Map<String, String> approved = (Map<String, String>) ReleaseManifest.of("r", spec).get("jvm");
        assertEquals(Map.of(jvm.javaHome(), jvm.digestHex()), approved);
        assertTrue(ms < 10_000, "digesting java.home took " + ms + " ms");
    }
}
