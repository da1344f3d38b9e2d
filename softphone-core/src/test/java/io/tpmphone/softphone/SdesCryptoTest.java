package io.tpmphone.softphone;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.Test;

class SdesCryptoTest {
    /** RFC 4568 §9.1's example key (base64 of 30 bytes). */
    private static final String RFC_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    @Test
    void theRfcExample_parses_withLifetimeAndMki() {
        SdesCrypto c = SdesCrypto.parse("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + "|2^20|1:32");
        assertEquals(1, c.tag());
        assertEquals(SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_80, c.suite());
        byte[] all = Base64.getDecoder().decode(RFC_KEY);
        assertArrayEquals(Arrays.copyOf(all, 16), c.masterKey());
        assertArrayEquals(Arrays.copyOfRange(all, 16, 30), c.masterSalt());
        assertEquals(Optional.of("2^20"), c.lifetime());
        assertEquals(Optional.of("1:32"), c.mki());
        assertEquals("crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + "|2^20|1:32", c.format());
        assertFalse(c.toString().contains(RFC_KEY));
        c.destroy();
        assertArrayEquals(new byte[16], c.masterKey());
    }

    @Test
    void ourOwnAttribute_roundTrips() {
        byte[] key = new byte[16];
        byte[] salt = new byte[14];
        new Random(1).nextBytes(key);
        new Random(2).nextBytes(salt);
        SdesCrypto c = SdesCrypto.of(3, SdesCrypto.Suite.AES_CM_128_HMAC_SHA1_32, key, salt);
        SdesCrypto back = SdesCrypto.parse(c.format());
        assertArrayEquals(key, back.masterKey());
        assertArrayEquals(salt, back.masterSalt());
        assertEquals(3, back.tag());
    }

    @Test
    void malformedAttributes_areRefusedWithAReason_thatNeverEchoesTheKey() {
        for (String bad : List.of("", "crypto:", "crypto:1 AES_CM_128_HMAC_SHA1_80",
                "crypto:0 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY,
                "crypto:1 F8_128_HMAC_SHA1_80 inline:" + RFC_KEY,
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + "|2^20|1:32|extra",
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + "|1:32|2^20",
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + " KDR=1",
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + "|lifetime",
                "crypto:1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY,
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY.substring(1))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SdesCrypto.parse(bad),
                    bad);
            assertFalse(e.getMessage().contains(RFC_KEY.substring(4, 20)), e.getMessage());
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SdesCrypto.parse(
                "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA")).getMessage().contains("3 bytes"));
    }
}
