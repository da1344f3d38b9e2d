package io.tpmphone.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The documented byte layouts: round trips, and every malformation refused with the right alert. */
class ExtensionCodecTest {
    private static final byte[] NONCE = new byte[32];

    static {
        Arrays.fill(NONCE, (byte) 0x5a);
    }

    @Test
    void request_roundTrips_andHasTheDocumentedLayout() throws Exception {
        AttestationRequest r = new AttestationRequest(IntegrityLevel.MEASURED, new byte[] {1}, NONCE);
        byte[] wire = r.encode();
        assertArrayEquals(new byte[] {1, 3, 1, 1, 32}, Arrays.copyOf(wire, 5));
        assertEquals(5 + 32, wire.length);
        AttestationRequest back = AttestationRequest.decode(wire);
        assertEquals(IntegrityLevel.MEASURED, back.minLevel());
        assertArrayEquals(NONCE, back.nonce());
        assertTrue(back.accepts(AttestationRequest.FORMAT_TPM2_PASSPORT));
        assertFalse(back.accepts((byte) 2));
    }

    @Test
    void request_everyTruncation_trailingBytes_badVersionLevelOrNonce_areRefused() {
        byte[] wire = new AttestationRequest(IntegrityLevel.MEASURED, new byte[] {1}, NONCE).encode();
        for (int n = 0; n < wire.length; n++) {
            byte[] cut = Arrays.copyOf(wire, n);
            assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(cut), "length " + n);
        }
        byte[] trailing = Arrays.copyOf(wire, wire.length + 1);
        assertFalse(assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(trailing))
                .illegalParameter(), "decode_error");
        byte[] v2 = wire.clone();
        v2[0] = 2;
        assertTrue(assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(v2))
                .illegalParameter(), "illegal_parameter");
        byte[] level9 = wire.clone();
        level9[1] = 9;
        assertTrue(assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(level9))
                .illegalParameter());
        byte[] shortNonce = {1, 3, 1, 1, 4, 1, 2, 3, 4};
        assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(shortNonce));
        byte[] noFormats = {1, 3, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(noFormats));
        assertThrows(MalformedExtensionException.class, () -> AttestationRequest.decode(null));
    }

    @Test
    void evidence_roundTrips_andRefusesEveryTruncationAndRandomBytes() throws Exception {
        Evidence e = new Evidence(AttestationRequest.FORMAT_TPM2_PASSPORT, new byte[] {1, 2, 3}, new byte[] {4, 5},
                new byte[] {6}, "a.b.c");
        byte[] wire = e.encode();
        assertArrayEquals(new byte[] {1, 1, 0, 3, 1, 2, 3, 0, 2, 4, 5, 0, 1, 6, 0, 5}, Arrays.copyOf(wire, 16));
        Evidence back = Evidence.decode(wire);
        assertArrayEquals(new byte[] {1, 2, 3}, back.akPublic());
        assertEquals("a.b.c", back.passport());
        for (int n = 0; n < wire.length; n++) {
            byte[] cut = Arrays.copyOf(wire, n);
            assertThrows(MalformedExtensionException.class, () -> Evidence.decode(cut), "length " + n);
        }
        assertThrows(MalformedExtensionException.class, () -> Evidence.decode(Arrays.copyOf(wire, wire.length + 1)));
        byte[] otherFormat = wire.clone();
        otherFormat[1] = 7;
        assertTrue(assertThrows(MalformedExtensionException.class, () -> Evidence.decode(otherFormat))
                .illegalParameter());
        byte[] controlInPassport = wire.clone();
        controlInPassport[wire.length - 1] = '\n';
        assertThrows(MalformedExtensionException.class, () -> Evidence.decode(controlInPassport));
        Random random = new Random(4475);
        for (int i = 0; i < 10_000; i++) {
            byte[] junk = new byte[random.nextInt(64)];
            random.nextBytes(junk);
            try {
                Evidence.decode(junk);
            } catch (MalformedExtensionException expected) {
                // refused with a reason: fine
            }
            try {
                AttestationRequest.decode(junk);
            } catch (MalformedExtensionException expected) {
                // refused with a reason: fine
            }
        }
    }
}
