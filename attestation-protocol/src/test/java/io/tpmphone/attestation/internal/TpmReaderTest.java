package io.tpmphone.attestation.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.MalformedStructureException;
import org.junit.jupiter.api.Test;

class TpmReaderTest {
    @Test
    void readsBigEndianIntegersAndTpm2b() throws Exception {
        byte[] data = new TpmWriter().u8(0xAB).u16(0xBEEF).u32(0xFFFF_FFFEL).u64(-2L).tpm2b(new byte[] {7, 8})
                .toByteArray();
        TpmReader r = new TpmReader(data, "TEST");
        assertEquals(0xAB, r.u8("a"));
        assertEquals(0xBEEF, r.u16("b"));
        assertEquals(0xFFFF_FFFEL, r.u32("c"));
        assertEquals(-2L, r.u64("d"));
        assertArrayEquals(new byte[] {7, 8}, r.tpm2b("e", 2));
        r.requireEnd();
    }

    @Test
    void truncation_namesFieldAndOffset() throws Exception {
        TpmReader r = new TpmReader(new byte[] {0, 5, 1, 2}, "TEST");
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> r.tpm2b("blob", 10));
        assertEquals("blob", e.field());
        assertEquals(2, e.offset());
        assertTrue(e.getMessage().contains("TEST.blob at offset 2"), e.getMessage());
        assertTrue(e.getMessage().contains("need 5"), e.getMessage());
    }

    @Test
    void oversizedTpm2b_isRejected() {
        TpmReader r = new TpmReader(new byte[] {0, 3, 1, 2, 3}, "TEST");
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> r.tpm2b("blob", 2));
        assertEquals("blob.size", e.field());
    }

    @Test
    void trailingBytes_areRejected() throws Exception {
        TpmReader r = new TpmReader(new byte[] {1, 2}, "TEST");
        r.u8("x");
        MalformedStructureException e = assertThrows(MalformedStructureException.class, r::requireEnd);
        assertEquals(1, e.offset());
    }
}
