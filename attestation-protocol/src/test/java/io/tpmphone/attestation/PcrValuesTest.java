package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class PcrValuesTest {
    @Test
    void compositeDigestOfOneZeroPcr_isSha256OfZeros() {
        PcrValues v = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA256, 0), List.of(new byte[32]));
        assertArrayEquals(hex("66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"),
                v.compositeDigest(HashAlgorithm.SHA256));
    }

    @Test
    void compositeDigest_concatenatesInAscendingPcrOrder() {
        byte[] a = hex("aa".repeat(20));
        byte[] b = hex("bb".repeat(20));
        PcrValues v = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA1, 10, 3), List.of(a, b));
        assertArrayEquals(a, v.value(3));
        assertArrayEquals(b, v.value(10));
        byte[] concat = new byte[40];
        System.arraycopy(a, 0, concat, 0, 20);
        System.arraycopy(b, 0, concat, 20, 20);
        assertArrayEquals(HashAlgorithm.SHA384.digest(concat), v.compositeDigest(HashAlgorithm.SHA384));
    }

    @Test
    void wrongCountOrLength_isRejected() {
        PcrSelection sel = PcrSelection.of(HashAlgorithm.SHA256, 0, 1);
        assertThrows(IllegalArgumentException.class, () -> PcrValues.of(sel, List.of(new byte[32])));
        assertThrows(IllegalArgumentException.class, () -> PcrValues.of(sel, List.of(new byte[32], new byte[20])));
    }

    @Test
    void withValue_changesOnlyThatPcr_andValuesAreCopied() {
        byte[] zero = new byte[32];
        PcrValues v = PcrValues.of(PcrSelection.of(HashAlgorithm.SHA256, 0, 1), List.of(zero, zero));
        zero[0] = 9;
        assertArrayEquals(new byte[32], v.value(0));
        v.value(0)[0] = 9;
        assertArrayEquals(new byte[32], v.value(0));
        PcrValues w = v.withValue(1, hex("01".repeat(32)));
        assertArrayEquals(new byte[32], w.value(0));
        assertArrayEquals(hex("01".repeat(32)), w.value(1));
        assertNotEquals(v, w);
        assertEquals(v, v.withValue(1, new byte[32]));
        assertThrows(IllegalArgumentException.class, () -> v.value(2));
    }
}
