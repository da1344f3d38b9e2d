package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RefusalAggregatorTest {
    record Rec(String type, String subject, String outcome, Map<String, Object> detail) {
        long count() {
            return ((Number) detail.get("count")).longValue();
        }
    }

    final List<Rec> records = new ArrayList<>();
    final ManualClock clock = new ManualClock();

    RefusalAggregator aggregator(int maxKeys) {
        return new RefusalAggregator((type, subject, outcome, detail) -> records.add(new Rec(type, subject, outcome,
                Map.copyOf(detail))), clock, Duration.ofSeconds(60), maxKeys);
    }

    long total() {
        return records.stream().mapToLong(Rec::count).sum();
    }

    @Test
    void twoThousandRefusalsFromOneSource_makeOneRecordAndOneSummaryPerWindow() throws Exception {
        RefusalAggregator a = aggregator(1024);
        for (int i = 0; i < 2000; i++) {
            a.refuse("ADMIN_REFUSED", "203.0.113.7", "no admin credential", Map.of("request", "GET /v1/hosts"));
            if (i == 999) {
                clock.advance(java.time.Duration.ofSeconds(30));
            }
        }
        assertEquals(1, records.size(), "only the first is recorded within the window: " + records);
        assertEquals("GET /v1/hosts", records.get(0).detail().get("request"));
        clock.advance(java.time.Duration.ofSeconds(30));
        a.flushDue();
        assertEquals(2, records.size(), "one summary when the window ends: " + records);
        Rec summary = records.get(1);
        assertEquals(1999L, summary.count(), summary.toString());
        assertEquals(true, summary.detail().get("aggregated"));
        assertEquals("REFUSAL", summary.type());
        assertEquals("203.0.113.7", summary.subject());
        assertEquals(2000, total(), "the counts add up to the refusals: " + records);
        a.flushAll();
        assertEquals(2, records.size(), "nothing left to report: " + records);
    }

    @Test
    void aKeyIdleForAWindow_isForgotten_andItsNextRefusalRecordedInFull() throws Exception {
        RefusalAggregator a = aggregator(4);
        a.refuse("ADMIN_REFUSED", "198.51.100.1", "wrong admin credential", Map.of());
        clock.advance(java.time.Duration.ofSeconds(61));
        a.flushDue();
        assertEquals(0, a.keys(), "an idle key is dropped");
        a.refuse("ADMIN_REFUSED", "198.51.100.1", "wrong admin credential", Map.of());
        assertEquals(2, records.size(), records.toString());
        assertEquals(2, total());
    }

    @Test
    void hundredThousandDistinctSources_keepMemoryAndRecordsBounded_andCountEveryRefusal() throws Exception {
        RefusalAggregator a = aggregator(1024);
        for (int i = 0; i < 100_000; i++) {
            a.refuse("NONCE_REFUSED", "10." + (i >> 16) + "." + ((i >> 8) & 255) + "." + (i & 255), "AK_ENROLLED",
                    Map.of("check", "AK_ENROLLED"));
            assertTrue(a.keys() <= 1025, "keys grew to " + a.keys() + " at source " + i);
        }
        assertEquals(1025, a.keys(), "1024 sources plus the other-sources bucket");
        assertEquals(1025, records.size(), "a first record per tracked source and one for the bucket");
        a.flushAll();
        assertEquals(1026, records.size(), "plus one summary of the bucket: " + records.get(records.size() - 1));
        Rec bucket = records.get(records.size() - 1);
        assertEquals(RefusalAggregator.OTHER_SOURCES, bucket.subject());
        assertEquals(100_000 - 1025, bucket.count());
        assertEquals(100_000, total(), "every refusal is counted");
    }

    @Test
    void aFailedSummary_isKeptAndWrittenLater() throws Exception {
        boolean[] failing = {false};
        RefusalAggregator a = new RefusalAggregator((type, subject, outcome, detail) -> {
            if (failing[0]) {
                throw new ApiException(503, "audit_unavailable", "disk full");
            }
            records.add(new Rec(type, subject, outcome, Map.copyOf(detail)));
        }, clock, Duration.ofSeconds(60), 8);
        a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential", Map.of());
        a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential", Map.of());
        failing[0] = true;
        a.flushAll();
        failing[0] = false;
        a.flushAll();
        assertEquals(2, records.size(), records.toString());
        assertEquals(2, total());
    }
}
