package io.tpmphone.attestation;

import static io.tpmphone.attestation.Evidence.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class TpmsAttestTest {
    private static final byte[] NONCE = hex("00112233445566778899aabbccddeeff");
    private static final PcrSelection SEL = PcrSelection.of(HashAlgorithm.SHA256, 0, 7);
    private static final byte[] DIGEST = hex("ab".repeat(32));

    /** A quote assembled field by field by hand. */
    private static final byte[] HAND_QUOTE = hex("ff544347" + "8018" + "0004" + "000b1234" + "0010"
            + "00112233445566778899aabbccddeeff" + "0000000000000064" + "00000002" + "00000003" + "01"
            + "0000000100020003" + "00000001" + "000b" + "03" + "810000" + "0020" + "ab".repeat(32));

    @Test
    void handAssembledQuote_parsesEveryField() throws Exception {
        TpmsAttest a = TpmsAttest.parse(HAND_QUOTE);
        assertEquals(AttestType.QUOTE, a.type());
        assertEquals(0xFF544347, a.magic());
        assertArrayEquals(hex("000b1234"), a.qualifiedSigner());
        assertArrayEquals(NONCE, a.extraData());
        assertEquals(new ClockInfo(100, 2, 3, true), a.clockInfo());
        assertEquals(0x0000000100020003L, a.firmwareVersion());
        assertEquals(new QuoteInfo(SEL, DIGEST), a.quoteInfo().orElseThrow());
        assertFalse(a.certifyInfo().isPresent());
    }

    @Test
    void encodeQuote_matchesHandAssembledBytes_andRoundTrips() throws Exception {
        byte[] encoded = TpmsAttest.encodeQuote(hex("000b1234"), NONCE, new ClockInfo(100, 2, 3, true),
                0x0000000100020003L, SEL, DIGEST);
        assertArrayEquals(HAND_QUOTE, encoded);
        assertArrayEquals(encoded, TpmsAttest.parse(encoded).encoded());
    }

    @Test
    void certify_parsesNames() throws Exception {
        byte[] c = TpmsAttest.encodeCertify(new byte[0], NONCE, Evidence.CLOCK, 9, hex("000b" + "01".repeat(32)),
                hex("000b" + "02".repeat(32)));
        TpmsAttest a = TpmsAttest.parse(c);
        assertEquals(AttestType.CERTIFY, a.type());
        assertArrayEquals(hex("000b" + "01".repeat(32)), a.certifyInfo().orElseThrow().name());
        assertArrayEquals(hex("000b" + "02".repeat(32)), a.certifyInfo().orElseThrow().qualifiedName());
        assertFalse(a.quoteInfo().isPresent());
        assertArrayEquals(c, a.encoded());
    }

    @Test
    void attestTruncatedAtEveryLength_isRejected() {
        for (int len = 0; len < HAND_QUOTE.length; len++) {
            byte[] cut = Arrays.copyOf(HAND_QUOTE, len);
            MalformedStructureException e = assertThrows(MalformedStructureException.class,
                    () -> TpmsAttest.parse(cut), "length " + len);
            assertEquals("TPMS_ATTEST", e.structure());
            assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        }
    }

    @Test
    void attestWithTrailingByte_isRejected() {
        byte[] longer = Arrays.copyOf(HAND_QUOTE, HAND_QUOTE.length + 1);
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> TpmsAttest.parse(longer));
        assertEquals(HAND_QUOTE.length, e.offset());
        assertTrue(e.getMessage().contains("trailing"), e.getMessage());
    }

    @Test
    void attestWithWrongMagic_isRejected() {
        byte[] bad = HAND_QUOTE.clone();
        bad[3] = 0x48;
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(bad));
        assertEquals("magic", e.field());
        assertTrue(e.getMessage().contains("0xFF544348"), e.getMessage());
    }

    @Test
    void attestOfUnsupportedType_isRejectedNamingTheType() {
        byte[] bad = HAND_QUOTE.clone();
        bad[4] = (byte) 0x80;
        bad[5] = 0x14;
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(bad));
        assertEquals("type", e.field());
        assertEquals(4, e.offset());
        assertTrue(e.getMessage().contains("unsupported attestation type 0x8014"), e.getMessage());
    }

    @Test
    void safeFlagOtherThanZeroOrOne_isRejected() {
        byte[] bad = HAND_QUOTE.clone();
        int safeOffset = 4 + 2 + 6 + 18 + 8 + 4 + 4;
        assertEquals(1, bad[safeOffset]);
        bad[safeOffset] = 2;
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(bad));
        assertEquals("clockInfo.safe", e.field());
    }

    @Test
    void oversizedExtraData_isRejected() {
        byte[] bad = TpmsAttest.encodeQuote(new byte[0], new byte[67], Evidence.CLOCK, 0, SEL, DIGEST);
        MalformedStructureException e = assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(bad));
        assertEquals("extraData.size", e.field());
    }

    @Test
    void emptyPcrDigest_isRejected() {
        byte[] bad = TpmsAttest.encodeQuote(new byte[0], NONCE, Evidence.CLOCK, 0, SEL, new byte[0]);
        assertThrows(MalformedStructureException.class, () -> TpmsAttest.parse(bad));
    }

    @Test
    void accessorsReturnCopies() throws Exception {
        TpmsAttest a = TpmsAttest.parse(HAND_QUOTE);
        a.extraData()[0] ^= 1;
        a.encoded()[0] ^= 1;
        assertArrayEquals(NONCE, a.extraData());
        assertArrayEquals(HAND_QUOTE, a.encoded());
    }
}
