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
}
