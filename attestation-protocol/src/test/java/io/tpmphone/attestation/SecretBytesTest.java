package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SecretBytesTest {
    @Test
    void holdsAPrivateCopy() {
        byte[] in = {1, 2, 3};
        SecretBytes s = SecretBytes.copyOf(in);
        in[0] = 9;
        assertArrayEquals(new byte[] {1, 2, 3}, s.reveal());
        s.reveal()[1] = 9;
        assertArrayEquals(new byte[] {1, 2, 3}, s.reveal());
        assertEquals(3, s.length());
    }

    @Test
    void toString_showsOnlyTheLength() {
        SecretBytes s = SecretBytes.copyOf(new byte[] {0x41, 0x42});
        assertEquals("SecretBytes[2 bytes]", s.toString());
    }

    @Test
    void equalsConstantTime_comparesContent() {
        assertTrue(SecretBytes.copyOf(new byte[] {1, 2}).equalsConstantTime(SecretBytes.copyOf(new byte[] {1, 2})));
        assertFalse(SecretBytes.copyOf(new byte[] {1, 2}).equalsConstantTime(SecretBytes.copyOf(new byte[] {1, 3})));
        assertFalse(SecretBytes.copyOf(new byte[] {1, 2}).equalsConstantTime(SecretBytes.copyOf(new byte[] {1})));
    }

    @Test
    void useAfterDestroy_throws() {
        SecretBytes s = SecretBytes.copyOf(new byte[] {1, 2});
        s.destroy();
        assertTrue(s.isDestroyed());
        assertThrows(IllegalStateException.class, s::reveal);
        assertThrows(IllegalStateException.class, s::length);
        assertThrows(IllegalStateException.class, () -> s.equalsConstantTime(SecretBytes.copyOf(new byte[0])));
        assertEquals("SecretBytes[destroyed]", s.toString());
        s.destroy();
    }
}
