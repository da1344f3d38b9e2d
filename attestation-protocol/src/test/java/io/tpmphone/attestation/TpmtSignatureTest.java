package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class TpmtSignatureTest {
    private static final byte[] ECDSA = hex("0018" + "000b" + "0020" + "01".repeat(32) + "0020" + "80".repeat(32));

    @Test
    void ecdsa_parsesAndRoundTrips() throws Exception {
        TpmtSignature s = TpmtSignature.parse(ECDSA);
        assertEquals(SchemeAlgorithm.ECDSA, s.algorithm());
        assertEquals(HashAlgorithm.SHA256, s.hash());
        assertArrayEquals(hex("01".repeat(32)), s.r());
        assertArrayEquals(hex("80".repeat(32)), s.s());
        assertArrayEquals(ECDSA, s.encoded());
        assertArrayEquals(ECDSA, TpmtSignature.ecdsa(HashAlgorithm.SHA256, s.r(), s.s()).encoded());
    }

    @Test
    void toDer_andBack_preserveRandS() throws Exception {
        TpmtSignature s = TpmtSignature.parse(ECDSA);
        byte[] der = s.toDer();
        // SEQUENCE { INTEGER 0101..(32), INTEGER 00 8080..(33) }
        assertArrayEquals(hex("3045" + "0220" + "01".repeat(32) + "0221" + "00" + "80".repeat(32)), der);
        assertEquals(s, TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, der, EccCurve.NIST_P256));
    }

    @Test
    void rsassa_parses() throws Exception {
        byte[] sig = hex("0014" + "000b" + "0100" + "5a".repeat(256));
        TpmtSignature s = TpmtSignature.parse(sig);
        assertEquals(SchemeAlgorithm.RSASSA, s.algorithm());
        assertArrayEquals(hex("5a".repeat(256)), s.rsaSignature());
        assertThrows(IllegalStateException.class, s::r);
    }

    @Test
    void unsupportedAlgorithms_areRejected() {
        for (String alg : new String[] {"0010", "001a", "001b", "001c", "0005"}) {
            byte[] bad = ECDSA.clone();
            System.arraycopy(hex(alg), 0, bad, 0, 2);
            MalformedStructureException e = assertThrows(MalformedStructureException.class,
                    () -> TpmtSignature.parse(bad), alg);
            assertEquals("sigAlg", e.field());
        }
    }

    @Test
    void unknownHash_isRejected() {
        byte[] bad = ECDSA.clone();
        bad[3] = 0x12;
        assertThrows(MalformedStructureException.class, () -> TpmtSignature.parse(bad));
    }

    @Test
    void truncatedOrTrailing_isRejected() {
        for (int len = 0; len < ECDSA.length; len++) {
            byte[] cut = Arrays.copyOf(ECDSA, len);
            assertThrows(MalformedStructureException.class, () -> TpmtSignature.parse(cut), "length " + len);
        }
        assertThrows(MalformedStructureException.class,
                () -> TpmtSignature.parse(Arrays.copyOf(ECDSA, ECDSA.length + 1)));
    }
}
