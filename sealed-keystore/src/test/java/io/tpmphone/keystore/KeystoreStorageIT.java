package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What the keystore keeps on disk: owner-only, and never silently forgotten. */
@WithSwtpm(perMethod = true)
class KeystoreStorageIT {
    @TempDir
    Path dir;

    @Test
    void aKeystoreWhoseFingerprintLogIsGone_refusesToOpen_insteadOfForgettingWhatItIssued(SwtpmProcess swtpm)
            throws Exception {
        Path store = dir.resolve("ks");
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()))) {
            try (SealedKeystore ks = SealedKeystore.create(tpm, store, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                    Optional.empty())) {
                ks.srtpKey("call-1", SrtpSuite.AES_CM_128_HMAC_SHA1_80).destroy();
            }
            try (Stream<Path> files = Files.list(store)) {
                Path log = files.filter(f -> f.getFileName().toString().startsWith("fingerprint")).findFirst()
                        .orElseThrow();
                Files.delete(log);
            }
            KeystoreException e = assertThrows(KeystoreException.class, () -> SealedKeystore.open(tpm, store));
            assertEquals(KeystoreException.Reason.STORAGE, e.reason(), e.getMessage());
        }
    }

    @Test
    void theKeystoreDirectoryAndItsFiles_areOwnerOnly(SwtpmProcess swtpm) throws Exception {
        Path store = dir.resolve("ks");
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             SealedKeystore ks = SealedKeystore.create(tpm, store, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                     Optional.empty())) {
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(store)));
            try (Stream<Path> files = Files.list(store)) {
                for (Path f : (Iterable<Path>) files::iterator) {
                    if (f.getFileName().toString().endsWith(".sealed")) {
                        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(f)),
                                f.toString());
                    }
                }
            }
            assertTrue(ks.fingerprintCount() >= 0, () -> "the keystore still reads its fingerprints: count "
                    + ks.fingerprintCount());
        }
    }

    @Test
    void aSecondInstanceOnTheSameDirectory_isRefused(SwtpmProcess swtpm) throws Exception {
        Path store = dir.resolve("ks");
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             SealedKeystore first = SealedKeystore.create(tpm, store, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                     Optional.empty())) {
            KeystoreException e = assertThrows(KeystoreException.class, () -> SealedKeystore.open(tpm, store));
            assertEquals(KeystoreException.Reason.STORAGE, e.reason(), e.getMessage());
            assertTrue(e.getMessage().contains("another keystore instance"), e.getMessage());
            first.srtpKey("still-usable", SrtpSuite.AES_CM_128_HMAC_SHA1_80).destroy();
        }
    }

    @Test
    void aWrongLockoutAuthorization_isItsOwnReason_notAWrongPin(SwtpmProcess swtpm) throws Exception {
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             SealedKeystore ks = SealedKeystore.create(tpm, dir.resolve("ks"),
                     Protection.pcrOnly(Protection.DEFAULT_PCRS), Optional.empty())) {
            KeystoreException e = assertThrows(KeystoreException.class, () -> ks.resetLockout(
                    io.tpmphone.attestation.SecretBytes.copyOf("not-the-lockout-auth".getBytes(
                            java.nio.charset.StandardCharsets.US_ASCII))));
            assertEquals(KeystoreException.Reason.LOCKOUT_AUTH_WRONG, e.reason(), e.getMessage());
        }
    }
}
