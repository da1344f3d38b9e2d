package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A peer's INVITE flood becomes a bounded number of call-decision events and immediate attestations. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class RejectedCallsTest {
    private final ManualClock clock = new ManualClock(Instant.parse("2026-12-06T12:00:00Z"));
    private final RejectedCalls rejected = new RejectedCalls(clock);

    @Test
    void aFloodOfAlikeRejections_isOneFullEventAndOneSummaryWithTheCount() {
        assertTrue(rejected.admit("IN", "UNATTESTED", "MEASURED"), "the first is reported in full");
        for (int i = 0; i < 10_000; i++) {
            assertFalse(rejected.admit("IN", "UNATTESTED", "MEASURED"), "rejection " + i + " is only counted");
        }
        List<Map<String, Object>> summaries = rejected.drainSummaries();
        assertEquals(1, summaries.size(), summaries.toString());
        Map<String, Object> summary = summaries.get(0);
        assertEquals(10_000L, summary.get("count"), summary.toString());
        assertEquals("CALL_DECISION", summary.get("operation"));
        assertEquals("REJECT", summary.get("outcome"));
        assertEquals("UNATTESTED", summary.get("peerLevel"));
        assertEquals("MEASURED", summary.get("requiredLevel"));
        assertEquals(List.of(), rejected.drainSummaries(), "counts restart after a summary");
    }

    @Test
    void afterTheWindow_theNextRejectionIsReportedInFullAgain() {
        assertTrue(rejected.admit("IN", "FAILED", "IDENTIFIED"));
        clock.advance(RejectedCalls.WINDOW.minusSeconds(1));
        assertFalse(rejected.admit("IN", "FAILED", "IDENTIFIED"), "still within the minute");
        assertEquals(1, rejected.drainSummaries().size());
        clock.advance(Duration.ofSeconds(1));
        assertTrue(rejected.admit("IN", "FAILED", "IDENTIFIED"), "a new minute");
    }

    @Test
    void differentKindsOfRejection_areKeptApart_andTheirNumberIsBoundedByTheLevels() {
        String[] levels = {"FAILED", "UNATTESTED", "IDENTIFIED", "MEASURED", "HARDENED"};
        int full = 0;
        for (int round = 0; round < 3; round++) {
            for (String direction : new String[] {"IN", "OUT"}) {
                for (String peer : levels) {
                    for (String required : levels) {
                        full += rejected.admit(direction, peer, required) ? 1 : 0;
                    }
                }
            }
        }
        assertEquals(50, full, "one full event per kind, whatever the peers send");
        assertEquals(50, rejected.drainSummaries().size());
    }

    @Test
    void immediateAttestations_areAtMostOnePerGap() {
        assertTrue(rejected.attestSoonDue());
        int due = 0;
        for (int i = 0; i < 1000; i++) {
            due += rejected.attestSoonDue() ? 1 : 0;
        }
        assertEquals(0, due, "none within the gap");
        clock.advance(RejectedCalls.ATTEST_SOON_GAP);
        assertTrue(rejected.attestSoonDue(), "one after the gap");
    }
}
