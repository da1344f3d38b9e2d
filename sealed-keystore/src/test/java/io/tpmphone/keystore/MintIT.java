package io.tpmphone.keystore;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.swtpm.WithSwtpm;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

@WithSwtpm
class MintIT {
    private static final Logger LOG = LoggerFactory.getLogger(MintIT.class);
    private static final int KEYS = 10_000;

    @TempDir
    Path dir;

    @Test
    void tenThousandKeys_areAllDistinct_andAllRemembered(SwtpmProcess swtpm) throws Exception {
        // PCR_ONLY: one unseal (load, policy session, PolicyPCR, unseal, flushes) + GetRandom + fsync per key.
        try (TpmClient tpm = TpmClient.open(TpmUri.parse(swtpm.tpmUri()));
             SealedKeystore ks = SealedKeystore.create(tpm, dir, Protection.pcrOnly(Protection.DEFAULT_PCRS),
                     Optional.empty())) {
            Set<ByteBuffer> fingerprints = new HashSet<>();
            long start = System.nanoTime();
            for (int i = 0; i < KEYS; i++) {
                SrtpKeys k = ks.srtpKey("call-" + (i % 100), SrtpSuite.AES_CM_128_HMAC_SHA1_80);
                byte[] key = k.masterKey().reveal();
                byte[] salt = k.masterSalt().reveal();
                assertTrue(fingerprints.add(ByteBuffer.wrap(HashAlgorithm.SHA256.digest(key, salt))), "key " + i);
                k.destroy();
            }
            LOG.info("minted {} keys in {} ms", KEYS, (System.nanoTime() - start) / 1_000_000);
            assertEquals(KEYS, ks.fingerprintCount(), "one fingerprint per minted key");
            assertEquals(8 + 32L * KEYS, Files.size(dir.resolve("fingerprints.log")),
                    () -> "an 8-byte header and 32 bytes per key; fingerprint count " + ks.fingerprintCount());
        }
    }
}
