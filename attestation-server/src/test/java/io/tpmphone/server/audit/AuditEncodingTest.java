package io.tpmphone.server.audit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Known-answer vectors of docs/audit.md, and the unambiguity of the encoding. */
class AuditEncodingTest {
    static final String DETAIL = "{\"evidenceSha256\":\"00ff\",\"level\":\"MEASURED\"}";

    @Test
    void recordHash_matchesTheDocumentedVector() {
        byte[] hash = AuditEncoding.recordHash(1, 1_700_000_000_123L, "APPRAISAL", "host-a", "MEASURED", DETAIL,
                new byte[32]);
        assertEquals(RECORD_VECTOR, AuditEncoding.hex(hash));
    }

    @Test
    void checkpointEncoding_matchesTheDocumentedVector() {
        byte[] data = AuditEncoding.checkpointSignedData(1000, AuditEncoding.unhex("11".repeat(32)),
                1_700_000_000_123L);
        assertEquals(CHECKPOINT_VECTOR, AuditEncoding.hex(data));
    }

    @Test
    void checkpointV2Encoding_matchesTheDocumentedVector() {
        byte[] data = AuditEncoding.checkpointV2SignedData(1000, AuditEncoding.unhex("11".repeat(32)),
                1_700_000_000_123L, 1000, 10_000, true, AuditEncoding.unhex("22".repeat(32)));
        assertEquals(CHECKPOINT_V2_VECTOR, AuditEncoding.hex(data));
        assertEquals(CHECKPOINT_V2_DIGEST, AuditEncoding.hex(new AuditCheckpoint(2, 1000,
                AuditEncoding.unhex("11".repeat(32)), java.time.Instant.ofEpochMilli(1_700_000_000_123L), "k",
                new byte[0], 1000, 10_000, true, AuditEncoding.unhex("22".repeat(32))).digest()));
    }

    @Test
    void everyCheckpointV2Field_isCovered() {
        byte[] h = new byte[32];
        byte[] base = AuditEncoding.checkpointV2SignedData(10, h, 5, 10, 100, false, h);
        byte[] other = h.clone();
        other[0] = 1;
        for (byte[] changed : new byte[][] {
                AuditEncoding.checkpointV2SignedData(11, h, 5, 10, 100, false, h),
                AuditEncoding.checkpointV2SignedData(10, other, 5, 10, 100, false, h),
                AuditEncoding.checkpointV2SignedData(10, h, 6, 10, 100, false, h),
                AuditEncoding.checkpointV2SignedData(10, h, 5, 11, 100, false, h),
                AuditEncoding.checkpointV2SignedData(10, h, 5, 10, 101, false, h),
                AuditEncoding.checkpointV2SignedData(10, h, 5, 10, 100, true, h),
                AuditEncoding.checkpointV2SignedData(10, h, 5, 10, 100, false, other),
                AuditEncoding.checkpointV3SignedData(10, h, 5, 10, 100, false, h),
                AuditEncoding.checkpointSignedData(10, h, 5)}) {
            assertFalse(Arrays.equals(base, changed), "a signed field or the tag is not covered");
        }
    }

    @Test
    void headEncoding_matchesTheDocumentedVector() {
        byte[] data = AuditEncoding.headSignedData(1000, AuditEncoding.unhex("11".repeat(32)), 1_700_000_000_123L,
                3, AuditEncoding.unhex("22".repeat(32)), 60_000, true);
        assertEquals(HEAD_VECTOR, AuditEncoding.hex(data));
    }

    @Test
    void everyHeadField_isCovered() {
        byte[] h = new byte[32];
        byte[] other = h.clone();
        other[0] = 1;
        byte[] base = AuditEncoding.headSignedData(10, h, 5, 2, h, 100, false);
        for (byte[] changed : new byte[][] {
                AuditEncoding.headSignedData(11, h, 5, 2, h, 100, false),
                AuditEncoding.headSignedData(10, other, 5, 2, h, 100, false),
                AuditEncoding.headSignedData(10, h, 6, 2, h, 100, false),
                AuditEncoding.headSignedData(10, h, 5, 3, h, 100, false),
                AuditEncoding.headSignedData(10, h, 5, 2, other, 100, false),
                AuditEncoding.headSignedData(10, h, 5, 2, h, 101, false),
                AuditEncoding.headSignedData(10, h, 5, 2, h, 100, true),
                AuditEncoding.checkpointV2SignedData(10, h, 5, 2, 100, false, h)}) {
            assertFalse(Arrays.equals(base, changed), "a signed field or the tag is not covered");
        }
    }

    @Test
    void movingBytesBetweenFields_changesTheHash() {
        byte[] a = AuditEncoding.recordHash(1, 0, "ADMIN", "ab", "c", "{}", new byte[32]);
        byte[] b = AuditEncoding.recordHash(1, 0, "ADMIN", "a", "bc", "{}", new byte[32]);
        assertFalse(Arrays.equals(a, b));
    }

    @Test
    void everyField_isCovered() {
        byte[] base = AuditEncoding.recordHash(2, 5, "ADMIN", "s", "o", "{}", new byte[32]);
        byte[] prev = new byte[32];
        prev[31] = 1;
        for (byte[] other : new byte[][] {
                AuditEncoding.recordHash(3, 5, "ADMIN", "s", "o", "{}", new byte[32]),
                AuditEncoding.recordHash(2, 6, "ADMIN", "s", "o", "{}", new byte[32]),
                AuditEncoding.recordHash(2, 5, "REFUSAL", "s", "o", "{}", new byte[32]),
                AuditEncoding.recordHash(2, 5, "ADMIN", "t", "o", "{}", new byte[32]),
                AuditEncoding.recordHash(2, 5, "ADMIN", "s", "p", "{}", new byte[32]),
                AuditEncoding.recordHash(2, 5, "ADMIN", "s", "o", "{\"a\":1}", new byte[32]),
                AuditEncoding.recordHash(2, 5, "ADMIN", "s", "o", "{}", prev)}) {
            assertFalse(Arrays.equals(base, other));
        }
    }

    static final String RECORD_VECTOR = "694b986d3c73c985c85580ad7e2bb51bb65826953fe825d39f08b5267ef734c4";
    static final String CHECKPOINT_VECTOR = "0000001c74706d70686f6e652e61756469742e636865636b706f696e742e7631"
            + "00000000000003e8000000201111111111111111111111111111111111111111111111111111111111111111"
            + "0000018bcfe5687b";
    /** Computed independently (Python struct/hashlib) from the layout in docs/audit.md. */
    static final String CHECKPOINT_V2_VECTOR = "0000001c74706d70686f6e652e61756469742e636865636b706f696e742e7632"
            + "00000000000003e8000000201111111111111111111111111111111111111111111111111111111111111111"
            + "0000018bcfe5687b" + "000003e8" + "0000000000002710" + "01"
            + "000000202222222222222222222222222222222222222222222222222222222222222222";
    static final String HEAD_VECTOR = "0000001674706d70686f6e652e61756469742e686561642e7631" + "00000000000003e8"
            + "00000020" + "11".repeat(32) + "0000018bcfe5687b" + "0000000000000003" + "00000020" + "22".repeat(32)
            + "000000000000ea60" + "01";
    static final String CHECKPOINT_V2_DIGEST = "80ab7bfd779a05ebee5f8a2926d64fa5095bcc609dc64c342de85825faa2cd86";
}
