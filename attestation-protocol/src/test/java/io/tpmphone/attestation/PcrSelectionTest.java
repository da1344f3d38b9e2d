package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class PcrSelectionTest {
    @Test
    void parse_readsListsAndRanges() {
        PcrSelection s = PcrSelection.parse("sha256:0-2,16,7");
        assertEquals(HashAlgorithm.SHA256, s.bank());
        assertEquals(List.of(0, 1, 2, 7, 16), List.copyOf(s.pcrs()));
        assertArrayEquals(new int[] {0, 1, 2, 7, 16}, s.indices());
        assertEquals("sha256:0,1,2,7,16", s.toString());
        assertEquals(s, PcrSelection.parse(s.toString()));
        assertEquals(PcrSelection.of(HashAlgorithm.SHA1, 23), PcrSelection.parse("SHA1: 23"));
    }

    @Test
    void parse_rejectsBadTextWithAClearMessage() {
        for (String bad : new String[] {"sha256", "sha256:", "md5:0", "sha256:24", "sha256:-1", "sha256:a",
            "sha256:5-3", "sha256:0+sha1:0", "sha256:0,,1"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PcrSelection.parse(bad),
                    bad);
            assertTrue(e.getMessage().length() > 20, e.getMessage());
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PcrSelection.parse("md5:0")).getMessage()
                .contains("sha256"));
    }

    @Test
    void of_rejectsEmptyAndOutOfRange() {
        assertThrows(IllegalArgumentException.class, () -> PcrSelection.of(HashAlgorithm.SHA256));
        assertThrows(IllegalArgumentException.class, () -> PcrSelection.of(HashAlgorithm.SHA256, 24));
    }

    @Test
    void toTpml_isCountHashSizeBitmap() {
        PcrSelection s = PcrSelection.of(HashAlgorithm.SHA256, 0, 1, 2, 16);
        assertArrayEquals(hex("07 00 01".replace(" ", "")), s.selectBitmap());
        assertArrayEquals(hex("00000001" + "000b" + "03" + "070001"), s.toTpml());
    }

    @Test
    void fromTpml_roundTripsAndAcceptsFourByteSelect() throws Exception {
        PcrSelection s = PcrSelection.of(HashAlgorithm.SHA384, 0, 23);
        assertEquals(s, PcrSelection.fromTpml(s.toTpml()));
        assertEquals(s, PcrSelection.fromTpml(hex("00000001" + "000c" + "04" + "01008000")));
    }

    @Test
    void fromTpml_rejectsMultiBankUnknownHashBadSizesAndTrailingBytes() {
        assertRejected("00000002000b03010000000403010000", "count", "multi-bank");
        assertRejected("00000000", "count", "expected 1");
        assertRejected("000000010012" + "03010000", "pcrSelections[0].hash", "unsupported hash");
        assertRejected("00000001000b" + "020100", "pcrSelections[0].sizeofSelect", "expected 3");
        assertRejected("00000001000b" + "050100000000", "pcrSelections[0].sizeofSelect", "expected 3");
        assertRejected("00000001000b" + "04" + "00000001", "pcrSelections[0].pcrSelect", "PCR 24");
        assertRejected("00000001000b" + "03" + "000000", "pcrSelections[0].pcrSelect", "no PCR");
        assertRejected("00000001000b" + "03" + "010000" + "00", "(end)", "trailing");
        assertRejected("00000001000b" + "03" + "0100", "pcrSelections[0].pcrSelect", "truncated");
    }

    private static void assertRejected(String hexTpml, String field, String messagePart) {
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> PcrSelection.fromTpml(hex(hexTpml)), hexTpml);
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().contains(messagePart), e.getMessage());
    }
}
