package io.tpmphone.server.internal.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditException;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditRecord;
import io.tpmphone.server.audit.AuditSigner;
import io.tpmphone.attestation.HashAlgorithm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class ConsoleIndexTest {
    @TempDir
    Path dir;

    private static AuditLog log(Path file) throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return AuditLog.open(file, AuditSigner.ecdsa(g.generateKeyPair()), AuditLog.Options.defaults());
    }

    private static ConsoleIndex.RecordSource source(AuditLog log) {
        return new ConsoleIndex.RecordSource() {
            @Override
            public long size() {
                return log.size();
            }

            @Override
            public List<AuditRecord> records(long fromSeq, int limit) throws AuditException {
                return log.records(fromSeq, limit);
            }
        };
    }

    private static void appraisal(AuditLog log, String host, String level, String executables, int policy)
            throws Exception {
        log.append(AuditEntry.of(AuditEventType.APPRAISAL, host, level, Map.of("level", level, "policyVersion",
                policy, "release", "rel-" + policy, "reasons", List.of(), "claims", Map.of("executables",
                        executables, "instance-identity", "affirming"))));
    }

    @Test
    void theFleet_holdsEachHostsLatestAppraisal_filtersAndPagesByKeyset() throws Exception {
        try (AuditLog log = log(dir.resolve("audit.db"))) {
            for (int i = 0; i < 7; i++) {
                log.append(AuditEntry.of(AuditEventType.ENROLLMENT, "host-" + i, "ACCEPTED"));
            }
            appraisal(log, "host-1", "MEASURED", "affirming", 1);
            appraisal(log, "host-1", "FAILED", "contraindicated", 2);
            appraisal(log, "host-2", "MEASURED", "affirming", 2);
            appraisal(log, "host-3", "IDENTIFIED", "warning", 2);
            try (ConsoleIndex index = ConsoleIndex.open(dir.resolve("console.db"), source(log))) {
                assertEquals(0, index.sync(100_000));
                assertEquals(log.size(), index.indexedSeq());
                assertEquals(7, index.hostCount());
                ConsoleIndex.HostRow h1 = index.host("host-1").orElseThrow();
                assertEquals("FAILED", h1.level(), "the latest appraisal wins");
                assertEquals(Integer.valueOf(2), h1.policyVersion());
                assertEquals("contraindicated", h1.claims().get("executables"));
                assertEquals(List.of("host-1"), names(index.fleet(new ConsoleIndex.FleetFilter("FAILED", null, null,
                        null, null, null), null, 50)));
                assertEquals(List.of("host-3"), names(index.fleet(new ConsoleIndex.FleetFilter(null, "executables",
                        "warning", null, null, null), null, 50)));
                assertEquals(List.of("host-2", "host-3"), names(index.fleet(new ConsoleIndex.FleetFilter(null, null,
                        null, "rel-2", 2, null), "host-1", 50)));
                List<ConsoleIndex.HostRow> page1 = index.fleet(ConsoleIndex.FleetFilter.none(), null, 3);
                List<ConsoleIndex.HostRow> page2 = index.fleet(ConsoleIndex.FleetFilter.none(), page1.get(2).name(),
                        3);
                assertEquals(List.of("host-0", "host-1", "host-2"), names(page1));
                assertEquals(List.of("host-3", "host-4", "host-5"), names(page2));
                assertEquals(3, index.fleet(new ConsoleIndex.FleetFilter(null, null, null, null, null, 0L), null, 3)
                        .size(), "never-appraised hosts are stale");
                List<Long> timeline = index.bySubject("host-1", Long.MAX_VALUE, 10);
                assertEquals(3, timeline.size());
                assertTrue(timeline.get(0) > timeline.get(1), "newest first");
                assertEquals(timeline.subList(1, 3), index.bySubject("host-1", timeline.get(0), 10), "keyset");
                assertEquals(2, index.bySubjectAndType("host-1", "APPRAISAL", Long.MAX_VALUE, 10).size());
            }
        }
    }

    @Test
    void callDecisions_areJoinedByCallId_andNewRecordsAreIndexedIncrementally() throws Exception {
        try (AuditLog log = log(dir.resolve("audit.db"));
             ConsoleIndex index = ConsoleIndex.open(dir.resolve("console.db"), source(log))) {
            log.append(AuditEntry.of(AuditEventType.CALL_DECISION, "alice", "REJECT", Map.of("callId", "c1@x",
                    "direction", "OUT")));
            index.sync(1000);
            log.append(AuditEntry.of(AuditEventType.CALL_DECISION, "bob", "ACCEPT", Map.of("callId", "c1@x",
                    "direction", "IN")));
            log.append(AuditEntry.of(AuditEventType.CALL_DECISION, "bob", "ACCEPT", Map.of("callId", "c2@x")));
            assertEquals(2, log.size() - index.indexedSeq(), "not read yet");
            index.sync(1000);
            assertEquals(List.of(1L, 2L), index.byCall("c1@x", 10));
            assertEquals(2, index.byType("CALL_DECISION", 3, 10).size());
        }
    }

    @Test
    void anIndexOverAnotherLog_isRebuiltFromThatLog() throws Exception {
        try (AuditLog a = log(dir.resolve("a.db"))) {
            a.append(AuditEntry.of(AuditEventType.ENROLLMENT, "from-a", "ACCEPTED"));
            try (ConsoleIndex index = ConsoleIndex.open(dir.resolve("console.db"), source(a))) {
                index.sync(10);
            }
        }
        try (AuditLog b = log(dir.resolve("b.db"))) {
            b.append(AuditEntry.of(AuditEventType.ENROLLMENT, "from-b", "ACCEPTED"));
            try (ConsoleIndex index = ConsoleIndex.open(dir.resolve("console.db"), source(b))) {
                index.sync(10);
                assertTrue(index.host("from-a").isEmpty(), "nothing of the other log is left");
                assertTrue(index.host("from-b").isPresent());
            }
        }
    }

    @Test
    void theEventLogArchive_returnsOnlyALogMatchingItsHash() throws Exception {
        try (AuditLog log = log(dir.resolve("audit.db"));
             ConsoleIndex index = ConsoleIndex.open(dir.resolve("console.db"), source(log))) {
            byte[] good = "a log".getBytes(StandardCharsets.UTF_8);
            byte[] sha = HashAlgorithm.SHA256.digest(good);
            index.archive(sha, good);
            index.archive(sha, good);
            assertEquals("a log", new String(index.eventLog(sha).orElseThrow(), StandardCharsets.UTF_8));
            byte[] wrong = HashAlgorithm.SHA256.digest("another".getBytes(StandardCharsets.UTF_8));
            index.archive(wrong, good); // stored under a hash it does not have
            assertTrue(index.eventLog(wrong).isEmpty(), "a log that does not match its hash is not returned");
            index.archive(new byte[32], new byte[ConsoleIndex.MAX_ARCHIVED_LOG + 1]);
            assertTrue(index.eventLog(new byte[32]).isEmpty(), "too large to archive");
        }
    }

    private static List<String> names(List<ConsoleIndex.HostRow> rows) {
        return rows.stream().map(ConsoleIndex.HostRow::name).toList();
    }
}
