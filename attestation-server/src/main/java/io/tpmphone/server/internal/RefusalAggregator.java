package io.tpmphone.server.internal;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rate-limits the audit records of refusals that anyone can provoke without a credential (a missing or wrong admin
 * token, an AK nobody enrolled), so that unauthenticated requests cannot grow the append-only audit log without bound
 * (docs/audit.md, "Refusals").
 *
 * <p>Per key (outcome, source address, reason) the first refusal is recorded at once, with its detail and
 * {@code "count": 1}; later ones within the window are only counted, and at most one summary record per window
 * carries their {@code count} ({@code "aggregated": true}, first and last time). The counts of a key's records add up
 * to its refusals. A key with nothing to report for a whole window is forgotten, so its next refusal is recorded
 * again in full. At most {@code maxKeys} keys are tracked; refusals of further keys are counted in one bucket per
 * outcome, source {@value #OTHER_SOURCES}. Memory is therefore bounded whatever the number of sources.
 *
 * <p>Summaries are written by {@link #flushDue()} (the server calls it every second, and each refusal triggers it)
 * and by {@link #flushAll()} on shutdown; counts of the last window are lost if the process dies. Times come from the
 * injected {@link Clock}. Thread-safe: the table is guarded by this object's lock; records are written outside it.
 */
public final class RefusalAggregator {
    private static final Logger LOG = LoggerFactory.getLogger(RefusalAggregator.class);
    /** Source of the bucket that counts refusals of keys beyond {@code maxKeys}. */
    public static final String OTHER_SOURCES = "other-sources";
    public static final Duration DEFAULT_WINDOW = Duration.ofSeconds(60);
    public static final int DEFAULT_MAX_KEYS = 1024;

    private record Key(String outcome, String source, String reason) {
    }

    private static final class Bucket {
        final String summarySubject;
        long windowStart;
        long count; // refusals since the last record of this key
        long firstMillis;
        long lastMillis;

        Bucket(long now, String summarySubject) {
            this.windowStart = now;
            this.summarySubject = summarySubject;
        }
    }

    private record Summary(Key key, String subject, long count, long firstMillis, long lastMillis) {
    }

    private final AuditTrail trail;
    private final Clock clock;
    private final long windowMillis;
    private final int maxKeys;
    private final Map<Key, Bucket> buckets = new LinkedHashMap<>();
    private int overflowKeys;
    private long nextScanMillis;

    public RefusalAggregator(AuditTrail trail, Clock clock, Duration window, int maxKeys) {
        this.trail = Objects.requireNonNull(trail, "trail");
        this.clock = Objects.requireNonNull(clock, "clock");
        if (window.isNegative()) {
            throw new IllegalArgumentException("window must not be negative, got " + window);
        }
        if (maxKeys < 1) {
            throw new IllegalArgumentException("maxKeys must be >= 1, got " + maxKeys);
        }
        this.windowMillis = window.toMillis();
        this.maxKeys = maxKeys;
    }

    /**
     * Counts one refusal and records it if it is the first of its key in a window.
     *
     * @param outcome the record's outcome, e.g. {@code ADMIN_REFUSED}
     * @param source  the client's address
     * @param reason  a server-chosen reason from a small fixed set (not client text: it is part of the key)
     * @param detail  the first record's detail; keep it small (never a request body)
     * @throws ApiException 503 if the first record cannot be written (as {@link AuditTrail#record})
     */
    public void refuse(String outcome, String source, String reason, Map<String, Object> detail)
            throws ApiException {
        refuse(outcome, source, reason, detail, source, source);
    }

    /**
     * As {@link #refuse(String, String, String, Map)}, with the records' subjects: {@code firstSubject} for the
     * first record (e.g. the AK it named), {@code summarySubject} for the key's summaries (e.g. "ak:(unenrolled)
     * from 192.0.2.1"; keep it short, it is kept per key).
     */
    public void refuse(String outcome, String source, String reason, Map<String, Object> detail,
            String firstSubject, String summarySubject) throws ApiException {
        if (windowMillis == 0) { // no aggregation: every refusal is its own record
            Map<String, Object> m = new LinkedHashMap<>(detail);
            m.put("reason", reason);
            m.put("count", 1);
            trail.record("REFUSAL", firstSubject, outcome, m);
            return;
        }
        long now = clock.millis();
        boolean first = false;
        Key key = new Key(outcome, source, reason);
        List<Summary> due;
        synchronized (this) {
            Bucket bucket = buckets.get(key);
            if (bucket == null && buckets.size() - overflowKeys >= maxKeys) {
                key = new Key(outcome, OTHER_SOURCES, "various");
                bucket = buckets.get(key);
            }
            if (bucket == null) {
                bucket = new Bucket(now, OTHER_SOURCES.equals(key.source()) ? OTHER_SOURCES : summarySubject);
                buckets.put(key, bucket);
                if (OTHER_SOURCES.equals(key.source())) {
                    overflowKeys++;
                }
                first = true;
            } else {
                if (bucket.count == 0) {
                    bucket.firstMillis = now;
                }
                bucket.count++;
                bucket.lastMillis = now;
            }
            due = takeDue(now, false);
        }
        if (first) {
            Map<String, Object> m = new LinkedHashMap<>();
            if (OTHER_SOURCES.equals(key.source())) {
                m.put("reason", "various");
                m.put("note", "more than " + maxKeys + " distinct refused sources; counted together");
            } else {
                m.putAll(detail);
                m.put("reason", reason);
            }
            m.put("count", 1);
            trail.record("REFUSAL", OTHER_SOURCES.equals(key.source()) ? OTHER_SOURCES : firstSubject, outcome, m);
        }
        write(due);
    }

    /** Writes a summary for every key whose window is over and forgets idle keys. */
    public void flushDue() {
        List<Summary> due;
        synchronized (this) {
            due = takeDue(clock.millis(), false);
        }
        write(due);
    }

    /** Writes a summary for every key with uncounted refusals, whatever its window; for shutdown. */
    public void flushAll() {
        List<Summary> due;
        synchronized (this) {
            due = takeDue(clock.millis(), true);
        }
        write(due);
    }

    /** Keys tracked now (bounded by {@code maxKeys} plus one bucket per outcome). */
    public synchronized int keys() {
        return buckets.size();
    }

    private List<Summary> takeDue(long now, boolean all) {
        List<Summary> due = new ArrayList<>();
        if (!all && now < nextScanMillis) {
            return due; // scan the table at most once a second (or window), not on every refusal
        }
        nextScanMillis = now + Math.min(windowMillis, 1000);
        for (Iterator<Map.Entry<Key, Bucket>> it = buckets.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Key, Bucket> e = it.next();
            Bucket b = e.getValue();
            if (!all && now - b.windowStart < windowMillis) {
                continue;
            }
            if (b.count > 0) {
                due.add(new Summary(e.getKey(), b.summarySubject, b.count, b.firstMillis, b.lastMillis));
                b.count = 0;
                b.windowStart = now;
            } else if (!all) {
                it.remove();
                if (OTHER_SOURCES.equals(e.getKey().source())) {
                    overflowKeys--;
                }
            }
        }
        return due;
    }

    private void write(List<Summary> due) {
        for (Summary s : due) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("aggregated", true);
            m.put("reason", s.key().reason());
            m.put("count", s.count());
            m.put("first", Instant.ofEpochMilli(s.firstMillis()).toString());
            m.put("last", Instant.ofEpochMilli(s.lastMillis()).toString());
            try {
                m.put("source", s.key().source());
                trail.record("REFUSAL", s.subject(), s.key().outcome(), m);
            } catch (ApiException e) {
                LOG.warn("summary of {} {} refusals from {} not recorded, retried later: {}", s.count(),
                        s.key().outcome(), s.key().source(), e.getMessage());
                synchronized (this) {
                    Bucket b = buckets.computeIfAbsent(s.key(), k -> new Bucket(clock.millis(), s.subject()));
                    if (b.count == 0) {
                        b.firstMillis = s.firstMillis();
                        b.lastMillis = s.lastMillis();
                    }
                    b.count += s.count();
                }
            }
        }
    }
}
