package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class HashAlgorithmTest {
    @Test
    void tpmIdsAndNames_roundTrip() throws Exception {
        for (HashAlgorithm h : HashAlgorithm.values()) {
            assertEquals(h, HashAlgorithm.fromTpmId(h.tpmId()));
            assertEquals(h, HashAlgorithm.fromName(h.tpmName()));
            assertEquals(h.digestLength(), h.digest().length);
        }
        assertEquals(0x000B, HashAlgorithm.SHA256.tpmId());
        assertEquals(HashAlgorithm.SHA384, HashAlgorithm.fromName("SHA-384"));
    }

    @Test
    void unknownIdOrName_isRejected() {
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> HashAlgorithm.fromTpmId(0x0010));
        assertTrue(e.getMessage().contains("0x0010"), e.getMessage());
        IllegalArgumentException n = assertThrows(IllegalArgumentException.class, () -> HashAlgorithm.fromName("md5"));
        assertTrue(n.getMessage().contains("sha1, sha256, sha384, sha512"), n.getMessage());
    }

    @Test
    void digestOfParts_isDigestOfConcatenation() {
        byte[] abc = "abc".getBytes(StandardCharsets.US_ASCII);
        assertArrayEquals(hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                HashAlgorithm.SHA256.digest(new byte[] {'a'}, new byte[] {'b', 'c'}));
        assertArrayEquals(HashAlgorithm.SHA256.digest(abc), HashAlgorithm.SHA256.digest(abc, new byte[0]));
    }

    @Test
    void hmac_matchesRfc4231Case2() {
        assertArrayEquals(hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
                HashAlgorithm.SHA256.hmac("Jefe".getBytes(StandardCharsets.US_ASCII),
                        "what do ya want ".getBytes(StandardCharsets.US_ASCII),
                        "for nothing?".getBytes(StandardCharsets.US_ASCII)));
    }
}
