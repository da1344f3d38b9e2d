package io.tpmphone.keystore.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FingerprintLogTest {
    @TempDir
    Path dir;

    private static byte[] fp(int n) {
        byte[] f = new byte[32];
        f[0] = (byte) n;
        f[31] = (byte) (n >> 8);
        return f;
    }

    @Test
    void fingerprints_surviveReopening_andAreAddedOnce() throws Exception {
        Path file = dir.resolve("f.log");
        try (FingerprintLog log = FingerprintLog.open(file, true)) {
            assertTrue(log.add(fp(1)));
            assertTrue(log.add(fp(2)));
            assertFalse(log.add(fp(1)));
        }
        assertEquals(8 + 64, Files.size(file));
        try (FingerprintLog log = FingerprintLog.open(file, true)) {
            assertEquals(2, log.size());
            assertTrue(log.contains(fp(2)));
            assertFalse(log.add(fp(2)));
            assertTrue(log.add(fp(3)));
        }
    }

    @Test
    void tornLastRecord_isCutOff_andLaterAppendsStayAligned() throws Exception {
        Path file = dir.resolve("f.log");
        try (FingerprintLog log = FingerprintLog.open(file, true)) {
            log.add(fp(1));
        }
        Files.write(file, new byte[] {1, 2, 3, 4, 5}, StandardOpenOption.APPEND);
        try (FingerprintLog log = FingerprintLog.open(file, true)) {
            assertEquals(1, log.size());
            log.add(fp(2));
        }
        try (FingerprintLog log = FingerprintLog.open(file, true)) {
            assertTrue(log.contains(fp(1)) && log.contains(fp(2)));
            assertEquals(2, log.size());
        }
    }

    @Test
    void aFileThatIsNotAFingerprintLog_isRefused() throws Exception {
        Path file = dir.resolve("f.log");
        Files.writeString(file, "something else entirely, 32+ bytes long");
        assertThrows(IOException.class, () -> FingerprintLog.open(file, true));
    }

    @Test
    void fingerprintsOfTheWrongLength_areArgumentErrors() throws Exception {
        try (FingerprintLog log = FingerprintLog.open(dir.resolve("f.log"), true)) {
            assertThrows(IllegalArgumentException.class, () -> log.add(new byte[31]));
        }
    }
}
