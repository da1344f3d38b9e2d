package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import io.tpmphone.swtpm.testing.ManualClock;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The registry's storage rules, the same on SQLite and on PostgreSQL. */
@Timeout(60)
class RegistryTest {
    private static final byte[] EK = name(0x0b);
    private static final byte[] AK = name(0x0c);

    @TempDir
    Path dir;
    private final ManualClock clock = new ManualClock(Instant.parse("2026-01-01T00:00:00Z"));
    private Registry registry;

    @BeforeEach
    void open(TestBackend backend) throws Exception {
        registry = backend.registry(dir, clock);
        registry.enroll(new Registry.Host("alice", EK, new byte[] {1}, new byte[] {2}, AK, new byte[] {3},
                clock.instant().toString()));
    }

    @AfterEach
    void close() throws Exception {
        registry.close();
    }

    @OnEachBackend
    void aTpmState_movesOnlyFromTheVersionItWasReadAt() {
        assertTrue(registry.tpmState(EK).isEmpty(), "no state before the first appraisal: " + registry.tpmState(EK));
        Registry.TpmState first = Registry.TpmState.next(null, 1, 0, 100, null);
        assertTrue(registry.compareAndSetTpmState(EK, null, first), "the first state is recorded");
        assertFalse(registry.compareAndSetTpmState(EK, null, Registry.TpmState.next(null, 1, 0, 50, null)),
                "a second 'first' state (another appraisal that read no state) is refused");
        Registry.TpmState read = registry.tpmState(EK).orElseThrow();
        assertEquals(100, read.clock(), "saw " + read);
        Registry.TpmState second = Registry.TpmState.next(read, 1, 0, 200, null);
        assertTrue(registry.compareAndSetTpmState(EK, read, second));
        assertFalse(registry.compareAndSetTpmState(EK, read, Registry.TpmState.next(read, 1, 0, 150, null)),
                "a change from a state read before the last one is refused");
        Registry.TpmState now = registry.tpmState(EK).orElseThrow();
        assertEquals(200, now.clock(), "saw " + now);
        assertEquals(2, now.version(), "saw " + now);
    }

    @OnEachBackend
    void advanceClock_neverMovesTheStateBack() {
        registry.advanceClock(EK, 2, 0, 500);
        registry.advanceClock(EK, 2, 0, 400);
        registry.advanceClock(EK, 1, 9, 900);
        Registry.TpmState s = registry.tpmState(EK).orElseThrow();
        assertEquals(2, s.resetCount(), "saw " + s);
        assertEquals(500, s.clock(), "saw " + s);
    }

    @OnEachBackend
    void theAcceptedLog_isKeptWithinTheBoot_andStartsAnewAfterAReset() {
        byte[] log = {1, 2, 3};
        Registry.TpmState a = Registry.TpmState.next(null, 1, 0, 10, log);
        assertArrayEquals(log, Registry.TpmState.next(a, 1, 0, 20, null).acceptedLog(), "kept in the same boot");
        assertArrayEquals(new byte[] {1, 2, 3, 4}, Registry.TpmState.next(a, 1, 0, 20, new byte[] {1, 2, 3, 4})
                .acceptedLog(), "an extending log replaces it");
        assertArrayEquals(log, Registry.TpmState.next(a, 1, 0, 20, new byte[] {9}).acceptedLog(),
                "a log that does not extend it does not replace it");
        assertNull(Registry.TpmState.next(a, 2, 0, 1, null).acceptedLog(), "a new boot has no accepted log");
        assertTrue(registry.compareAndSetTpmState(EK, null, a));
        assertArrayEquals(log, registry.tpmState(EK).orElseThrow().acceptedLog(), "stored with the state");
    }

    @OnEachBackend
    void anEnrollmentToken_isConsumedOnce() throws Exception {
        byte[] hash = HttpApi.sha256(new byte[] {7});
        registry.storeEnrollmentToken("bob", hash, clock.instant().plusSeconds(60), "operator");
        assertFalse(registry.consumeEnrollmentToken("bob", HttpApi.sha256(new byte[] {8})), "another token");
        assertTrue(registry.consumeEnrollmentToken("bob", hash), "the token, once");
        assertFalse(registry.consumeEnrollmentToken("bob", hash), "and never again");
        assertTrue(registry.enrollmentToken("bob").isEmpty(), "gone: " + registry.enrollmentToken("bob"));
    }

    @OnEachBackend
    void aChallenge_isTakenOnce_andExpiredOnesArePurged() throws Exception {
        Registry.Challenge c = new Registry.Challenge("c1", "bob", new byte[] {1}, new byte[] {2}, new byte[] {3},
                HttpApi.sha256(new byte[] {4}), clock.instant().plusSeconds(60), true);
        registry.storeChallenge(c);
        registry.storeChallenge(new Registry.Challenge("c2", "carol", new byte[] {1}, new byte[] {2},
                new byte[] {3}, new byte[32], clock.instant().plusSeconds(1), false));
        Registry.Challenge taken = registry.takeChallenge("c1").orElseThrow();
        assertEquals("bob", taken.host());
        assertArrayEquals(c.secretSha256(), taken.secretSha256());
        assertEquals(c.expiresAt(), taken.expiresAt());
        assertTrue(taken.newHost());
        assertTrue(registry.takeChallenge("c1").isEmpty(), "taken once");
        clock.advance(Duration.ofSeconds(2));
        assertEquals(0, registry.purgeChallenges(clock.instant()), "the expired one is purged");
        assertTrue(registry.takeChallenge("c2").isEmpty(), "the expired challenge is gone");
    }

    @OnEachBackend
    void aPolicyVersion_isStoredOnlyIfNewerThanEveryStoredOne() throws SQLException {
        assertEquals(0, registry.latestPolicyVersion(), "no policy stored yet");
        assertTrue(registry.storePolicy(3, "{\"v\":3}", "operator"));
        assertFalse(registry.storePolicy(3, "{\"v\":3}", "operator"), "the same version again");
        assertFalse(registry.storePolicy(2, "{\"v\":2}", "operator"), "an older version");
        assertTrue(registry.storePolicy(4, "{\"v\":4}", "operator"));
        assertEquals(4, registry.latestPolicyVersion(), "the newest stored version");
        assertEquals("{\"v\":4}", registry.latestPolicy().orElseThrow().getValue());
    }

    @OnEachBackend
    void theLastAppraisal_isKeptPerHost() {
        assertTrue(registry.lastAppraisal("alice").isEmpty(), "none yet: " + registry.lastAppraisal("alice"));
        Instant at = clock.instant();
        registry.recordAppraisal(new Registry.LastAppraisal("alice", IntegrityLevel.MEASURED, null, at,
                at.plusSeconds(300)));
        registry.recordAppraisal(new Registry.LastAppraisal("alice", IntegrityLevel.FAILED, "CLOCK",
                at.plusSeconds(1), at.plusSeconds(301)));
        Registry.LastAppraisal last = registry.lastAppraisal("alice").orElseThrow();
        assertEquals(IntegrityLevel.FAILED, last.level(), "saw " + last);
        assertEquals("CLOCK", last.failedCheck(), "saw " + last);
        assertEquals(at.plusSeconds(301), last.expiresAt(), "saw " + last);
    }

    @OnEachBackend
    void aHostKeepsItsEk_andAnEkBelongsToOneHost() throws Exception {
        SQLException e = assertThrows(SQLException.class, () -> registry.enroll(new Registry.Host("alice",
                name(0x0d), new byte[] {1}, new byte[] {2}, name(0x0e), new byte[] {3}, "now")));
        assertTrue(e.getMessage().contains("another EK"), e::getMessage);
        assertThrows(SQLException.class, () -> registry.enroll(new Registry.Host("bob", EK, new byte[] {1},
                new byte[] {2}, name(0x0f), new byte[] {3}, "now")), "the EK is alice's");
        byte[] newAk = name(0x10);
        registry.enroll(new Registry.Host("alice", EK, new byte[] {1}, new byte[] {2}, newAk, new byte[] {4}, "now"));
        assertTrue(registry.hostByAkId(java.util.HexFormat.of().formatHex(AK)).isEmpty(), "the old AK is gone");
        assertEquals("alice", registry.hostByEkName(EK).orElseThrow().host());
        assertEquals(java.util.HexFormat.of().formatHex(newAk), registry.hostByName("alice").orElseThrow().akId(),
                "by name: the host with its new AK");
        assertEquals(java.util.HexFormat.of().formatHex(newAk), registry.hostByEkName(EK).orElseThrow().akId(),
                "by EK: the host with its new AK");
        assertTrue(registry.hostByName("bob").isEmpty(), "bob's refused enrollment left nothing");
        assertTrue(registry.hostByEkName(name(0x0d)).isEmpty(), "alice's refused EK left nothing");
        assertEquals(1, registry.hosts().size(), "hosts: " + registry.hosts());
    }

    private static byte[] name(int fill) {
        byte[] n = new byte[34];
        n[1] = 0x0b;
        java.util.Arrays.fill(n, 2, 34, (byte) fill);
        return n;
    }
}
