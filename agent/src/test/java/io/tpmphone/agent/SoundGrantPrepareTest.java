package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SoundGrant#prepare(Path, MeasuredLauncher.ChildUser, int)} against the directory's old owner: the desktop
 * user owns the old grant directory and may swap what is in it while root clears it.
 */
class SoundGrantPrepareTest {
    private static final int FILES = 3000;

    @Test
    @Timeout(120)
    void aSubdirectorySwappedForALinkWhileTheOldDirectoryIsCleared_leavesTheLinksTargetAlone(@TempDir Path tmp)
            throws Exception {
        Path parent = Files.createDirectory(tmp.resolve("sound"));
        Path victim = Files.createDirectory(tmp.resolve("victim"));
        for (int i = 0; i < FILES; i++) {
            Files.writeString(victim.resolve("f" + i), "precious");
        }
        Path dir = parent.resolve("agent-x");
        Files.createDirectory(dir);
        Path sub = Files.createDirectory(dir.resolve("sub"));
        for (int i = 0; i < FILES; i++) {
            Files.writeString(sub.resolve("f" + i), "junk");
        }
        // The attacker (the old directory's owner): as soon as the clearing has started inside sub (some of its files
        // gone), move the real sub away and put a link to the victim where it was, in whichever directory now holds it.
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger swaps = new AtomicInteger();
        Thread attacker = new Thread(() -> {
            while (!stop.get() && swaps.get() == 0) {
                try (Stream<Path> children = Files.list(parent)) {
                    for (Path c : (Iterable<Path>) children::iterator) {
                        Path s = c.resolve("sub");
                        if (Files.isDirectory(s, LinkOption.NOFOLLOW_LINKS)) {
                            int left;
                            try (Stream<Path> l = Files.list(s)) {
                                left = (int) l.count();
                            }
                            if (left > 0 && left < FILES) {
                                Path link = Files.createSymbolicLink(c.resolve("lnk"), victim);
                                Files.move(s, c.resolve("sub2"));
                                Files.move(link, s); // two renames: the gap between them is a few microseconds
                                swaps.incrementAndGet();
                            }
                        }
                    }
                } catch (java.io.IOException | java.io.UncheckedIOException e) {
                    // the clearing raced us: look again
                }
            }
        }, "attacker");
        attacker.start();
        java.io.IOException thrown = null;
        try {
            SoundGrant.prepare(dir, null, 0);
        } catch (java.io.IOException e) {
            thrown = e; // the victim's files say whether it did harm; then it must not have failed either
        } finally {
            stop.set(true);
            attacker.join(10_000);
        }
        int left;
        try (Stream<Path> l = Files.list(victim)) {
            left = (int) l.count();
        }
        assertEquals(FILES, left, "files of the link's target left after prepare (attacker swapped " + swaps.get()
                + " time(s))");
        assertEquals(null, thrown, "prepare failed");
        assertTrue(Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS), "a fresh grant directory");
        try (Stream<Path> l = Files.list(dir)) {
            assertEquals(0, l.count(), "the fresh grant directory is empty");
        }
    }

    @Test
    @Timeout(30)
    void aParentOthersMayWriteIn_isRefused(@TempDir Path tmp) throws Exception {
        Path parent = Files.createDirectory(tmp.resolve("sound"));
        Files.setPosixFilePermissions(parent, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
        java.io.IOException e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                () -> SoundGrant.prepare(parent.resolve("agent-x"), null, 0));
        assertTrue(e.getMessage().contains("only root may write"), e.getMessage());
    }

    @Test
    @Timeout(30)
    void noMoreThanTheHourlyNumberOfCallsIsAccepted(@TempDir Path tmp) throws Exception {
        try (SoundGrant grant = new SoundGrant("unix:" + tmp.resolve("no-server"), tmp.resolve("sound"))) {
            for (int i = 0; i < SoundGrant.MAX_ACCEPTS_PER_HOUR; i++) {
                grant.accepted("call-" + i);
            }
            grant.accepted("one-too-many");
            org.junit.jupiter.api.Assertions.assertThrows(SoundGrant.NotAcceptedException.class,
                    () -> grant.open("one-too-many"), "the call beyond the hourly number of accepted calls");
            // the calls within the number were accepted: opening one goes on to the (absent) sound server
            java.io.IOException e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                    () -> grant.open("call-0"));
            assertTrue(e.getMessage().contains("pactl"), e.getMessage());
        }
    }
}
