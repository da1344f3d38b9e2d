package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

class IntegrityLevelTest {
    @Test
    void levels_areOrderedByRank() {
        assertEquals(0, IntegrityLevel.FAILED.rank());
        assertEquals(4, IntegrityLevel.HARDENED.rank());
        assertTrue(IntegrityLevel.HARDENED.atLeast(IntegrityLevel.MEASURED));
        assertTrue(IntegrityLevel.MEASURED.atLeast(IntegrityLevel.MEASURED));
        assertFalse(IntegrityLevel.IDENTIFIED.atLeast(IntegrityLevel.MEASURED));
        assertFalse(IntegrityLevel.FAILED.atLeast(IntegrityLevel.UNATTESTED));
        assertEquals(IntegrityLevel.FAILED, IntegrityLevel.MEASURED.min(IntegrityLevel.FAILED));
    }

    @Test
    void claimVectorCap_isTheWorstClaim() {
        ClaimVector v = ClaimVector.of(Map.of(ClaimName.EXECUTABLES, new Claim(ClaimStatus.AFFIRMING, "ok")));
        assertEquals(IntegrityLevel.HARDENED, v.cap());
        assertEquals(ClaimStatus.NONE, v.status(ClaimName.STORAGE));
        ClaimVector warned = v.with(ClaimName.CONFIGURATION, new Claim(ClaimStatus.WARNING, "changed"));
        assertEquals(IntegrityLevel.IDENTIFIED, warned.cap());
        assertEquals(IntegrityLevel.FAILED,
                warned.with(ClaimName.RUNTIME, new Claim(ClaimStatus.CONTRAINDICATED, "x")).cap());
        assertEquals(6, v.asMap().size());
        assertThrows(UnsupportedOperationException.class, () -> v.asMap().clear());
    }

    @Test
    void claimNamesAndStatuses_useAr4siVocabulary() {
        assertEquals("instance-identity", ClaimName.INSTANCE_IDENTITY.key());
        assertEquals(ClaimName.RUNTIME, ClaimName.fromKey("runtime-opaque"));
        assertEquals(96, ClaimStatus.CONTRAINDICATED.ar4siValue());
        assertEquals(ClaimStatus.WARNING, ClaimStatus.fromKey("warning"));
        assertThrows(IllegalArgumentException.class, () -> ClaimStatus.fromKey("WARNING"));
    }
}
