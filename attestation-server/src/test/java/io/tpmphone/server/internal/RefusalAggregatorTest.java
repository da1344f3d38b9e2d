package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.audit.AuditEntry;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.swtpm.testing.ManualClock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
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

    @Test
    void oneSourceWithManyKindsOfRefusal_holdsOnlyItsShareOfTheTable_andANewSourceStillGetsItsOwnRecord()
            throws Exception {
        RefusalAggregator a = aggregator(1024); // a source may hold 1024 / 16 = 64 keys
        for (int i = 0; i < 5000; i++) {
            a.refuse("APPRAISAL_REFUSED", "203.0.113.66", "NONCE ak:000b" + i, Map.of("check", "NONCE"));
        }
        assertEquals(65, a.keys(), "64 keys of its own and one bucket for the rest");
        assertEquals(65, records.size(), "a first record per key and one for the bucket: " + records.get(64));
        Rec bucketFirst = records.get(64);
        assertEquals("various", bucketFirst.detail().get("reason"), bucketFirst.toString());
        assertEquals("various from 203.0.113.66", bucketFirst.subject());

        a.refuse("APPRAISAL_REFUSED", "198.51.100.9", "NONCE ak:000bvictim", Map.of("check", "NONCE"));
        Rec victim = records.get(records.size() - 1);
        assertEquals("198.51.100.9", victim.subject(),
                "another source's refusal is recorded on its own, not counted under other-sources: " + victim);
        assertEquals("NONCE ak:000bvictim", victim.detail().get("reason"), victim.toString());
        a.flushAll();
        assertEquals(5001, total(), "every refusal is counted: " + records.subList(65, records.size()));
    }

    /**
     * Sources were keyed by their full address, so one client with an IPv6 /64 (2^64 addresses) used 16 of them, 64
     * kinds of refusal each, to take all 1024 keys: every other client's refusals were then only counted under
     * other-sources, and their first records were never written. A /64 is one source now.
     */
    @Test
    void sixteenAddressesOfOneIpv6Slash64_areOneSource_andLeaveTheTableToOthers() throws Exception {
        RefusalAggregator a = aggregator(1024); // a source may hold 1024 / 16 = 64 keys
        for (int host = 1; host <= 16; host++) {
            // As Jetty reports them: in brackets, full or compressed.
            String address = host % 2 == 0 ? "[2001:db8:0:1::" + Integer.toHexString(host) + "]"
                    : "[2001:db8:0:1:" + host + ":0:0:" + Integer.toHexString(host * 4097) + "]";
            for (int kind = 0; kind < 64; kind++) {
                a.refuse("APPRAISAL_REFUSED", address, "NONCE ak:000b" + kind + "x" + host,
                        Map.of("check", "NONCE"), "ak:000b" + kind, "ak:000b" + kind);
            }
        }
        assertEquals(65, a.keys(), "the /64 holds its share of 64 keys and one bucket for the rest, not 1024");
        assertEquals("various from 2001:db8:0:1:0:0:0:0/64", records.get(64).subject(), records.get(64).toString());

        a.refuse("ADMIN_REFUSED", "198.51.100.9", "no admin credential", Map.of("request", "GET /v1/hosts"));
        Rec other = records.get(records.size() - 1);
        assertEquals("198.51.100.9", other.subject(), "another client's refusal is recorded on its own, not only"
                + " counted under other-sources: " + other);
        a.flushAll();
        assertEquals(16 * 64 + 1, total(), "every refusal is counted");
        assertTrue(records.stream().anyMatch(r -> "2001:db8:0:1:0:0:0:0/64".equals(r.detail().get("source"))),
                "summaries name the /64: " + records.subList(65, records.size()));
    }

    @Test
    void sourceOf_isTheIpv4Address_theIpv6Slash64_orTheIpv4OfAMappedAddress_withoutNameLookups() {
        assertEquals("192.0.2.7", RefusalAggregator.sourceOf("192.0.2.7"));
        assertEquals("2001:db8:0:1:0:0:0:0/64", RefusalAggregator.sourceOf("[2001:db8:0:1:ab::7]"));
        assertEquals("2001:db8:0:1:0:0:0:0/64", RefusalAggregator.sourceOf("2001:db8:0:1:ffff:ffff:ffff:ffff"));
        assertEquals("2001:db8:0:2:0:0:0:0/64", RefusalAggregator.sourceOf("2001:db8:0:2::1"));
        assertEquals("fe80:0:0:0:0:0:0:0/64", RefusalAggregator.sourceOf("[fe80::1%eth0]"));
        assertEquals("0:0:0:0:0:0:0:0/64", RefusalAggregator.sourceOf("[0:0:0:0:0:0:0:1]"));
        assertEquals("192.0.2.7", RefusalAggregator.sourceOf("[::ffff:192.0.2.7]"), "IPv4-mapped");
        assertEquals("localhost", RefusalAggregator.sourceOf("localhost"), "not an address: itself, not resolved");
        assertEquals("abc:def", RefusalAggregator.sourceOf("abc:def"), "not an IPv6 literal: itself");
    }

    /**
     * refuse() wrote the summaries that were due on the refusing request's thread, which may hold the lock of a TPM's
     * appraisal: one slow audit write then held up that TPM's other appraisals. Only flushDue (the housekeeping
     * thread) and flushAll write summaries now.
     */
    @Test
    void refuse_neverWritesASummary_onlyFlushDueDoes() throws Exception {
        RefusalAggregator a = aggregator(16);
        a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential", Map.of());
        a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential", Map.of());
        clock.advance(Duration.ofSeconds(61)); // the window is over: a summary of one refusal is due
        a.refuse("ADMIN_REFUSED", "192.0.2.2", "no admin credential", Map.of());
        assertEquals(2, records.size(), "a refusal wrote only its own first record: " + records);
        assertFalse(records.stream().anyMatch(r -> r.detail().containsKey("aggregated")), records.toString());
        a.flushDue();
        assertEquals(3, records.size(), "the housekeeping flush wrote the summary: " + records);
        assertEquals(1L, records.get(2).count(), records.get(2).toString());
        a.flushAll();
        assertEquals(3, total(), records.toString());
    }

    @Test
    void clientTextInSubjectsAndDetail_isEscaped() throws Exception {
        RefusalAggregator a = aggregator(16);
        // ESC [2J clears a terminal, U+202E reverses what follows, a newline forges a line of its own.
        String painted = "ak:" + (char) 0x1b + "[2J" + (char) 0x202e + "DEVRESAP\nforged line";
        a.refuse("NONCE_REFUSED", "192.0.2.5", "AK_ENROLLED ak:(unenrolled)", Map.of("akId", painted.substring(3)),
                painted, "ak:(unenrolled)");
        Rec first = records.get(0);
        assertEquals("ak:\\x1b[2J\\u{202E}DEVRESAP\\x0aforged line", first.subject(), "subject as recorded");
        assertEquals("\\x1b[2J\\u{202E}DEVRESAP\\x0aforged line", first.detail().get("akId"), "detail as recorded");
        assertTrue(first.subject().codePoints().noneMatch(c -> c < 0x20 || c == 0x202e), first.subject());
    }

    @Test
    void aSubjectTheAuditLogWouldRefuse_isRenderedSafely_andNoRecordIsLost() throws Exception {
        // The server's trail: the audit log's own rules for a record (AuditEntry) decide what it accepts.
        RefusalAggregator a = new RefusalAggregator((type, subject, outcome, detail) -> {
            AuditEntry.of(AuditEventType.valueOf(type), subject, outcome, detail);
            records.add(new Rec(type, subject, outcome, Map.copyOf(detail)));
        }, clock, Duration.ofSeconds(60), 16);
        String unpaired = "ak:" + (char) 0xd800 + "x"; // valid JSON ("\ud800"), not valid Unicode
        String[] subjects = {unpaired, "", "ak:" + "f".repeat(5000)};
        for (int i = 0; i < subjects.length; i++) {
            String source = "192.0.2." + i;
            a.refuse("NONCE_REFUSED", source, "AK_ENROLLED ak:(unenrolled)", Map.of("akId", subjects[i]),
                    subjects[i], "ak:(unenrolled)");
            a.refuse("NONCE_REFUSED", source, "AK_ENROLLED ak:(unenrolled)", Map.of("akId", subjects[i]),
                    subjects[i], "ak:(unenrolled)");
        }
        assertEquals(3, records.size(), "one first record per source: " + records);
        assertEquals("ak:\\u{D800}x", records.get(0).subject());
        assertEquals("(empty)", records.get(1).subject());
        assertTrue(records.get(2).subject().length() <= AuditEntry.MAX_SUBJECT_CHARS
                && records.get(2).subject().endsWith("…"), "shortened: " + records.get(2).subject().length());
        a.flushAll();
        assertEquals(6, total(), "every refusal is counted: " + records);
    }

    @Test
    void aRecordTheAuditLogRefusesForItsForm_isWrittenWithoutSubjectAndDetail() throws Exception {
        RefusalAggregator a = new RefusalAggregator((type, subject, outcome, detail) -> {
            if (!subject.equals("(unrenderable)")) {
                throw new IllegalArgumentException("audit entry subject refused by a rule of the log");
            }
            records.add(new Rec(type, subject, outcome, Map.copyOf(detail)));
        }, clock, Duration.ofSeconds(60), 16);
        a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential", Map.of("request", "GET /v1/hosts"));
        assertEquals(1, records.size(), records.toString());
        assertEquals(1L, records.get(0).count());
        assertEquals("no admin credential", records.get(0).detail().get("reason"));
        assertTrue(String.valueOf(records.get(0).detail().get("note")).contains("refused by a rule of the log"),
                records.get(0).toString());
    }

    @Test
    void aFirstRecordTheLogCannotWrite_isNotCounted_soTheNextRefusalIsRecordedInFull() throws Exception {
        boolean[] failing = {true};
        RefusalAggregator a = new RefusalAggregator((type, subject, outcome, detail) -> {
            if (failing[0]) {
                throw new ApiException(503, "audit_unavailable", "disk full");
            }
            records.add(new Rec(type, subject, outcome, Map.copyOf(detail)));
        }, clock, Duration.ofSeconds(60), 8);
        assertThrows(ApiException.class, () -> a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential",
                Map.of("request", "GET /v1/hosts")));
        failing[0] = false;
        a.refuse("ADMIN_REFUSED", "192.0.2.1", "no admin credential", Map.of("request", "GET /v1/policy"));
        assertEquals(1, records.size(), "the second refusal is the key's first record: " + records);
        assertEquals("GET /v1/policy", records.get(0).detail().get("request"));
        a.flushAll();
        assertEquals(1, total(), records.toString());
        assertFalse(records.stream().anyMatch(r -> r.detail().containsKey("aggregated")), records.toString());
    }
}
