package io.tpmphone.server.internal;

import io.tpmphone.attestation.UntrustedText;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
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
 * <p>Per key (outcome, source, reason) the first refusal is recorded at once, with its detail and
 * {@code "count": 1}; later ones within the window are only counted, and at most one summary record per window
 * carries their {@code count} ({@code "aggregated": true}, first and last time). The counts of a key's records add up
 * to its refusals. A key with nothing to report for a whole window is forgotten, so its next refusal is recorded
 * again in full.
 *
 * <p>A source is what one client can be assumed to hold ({@link #sourceOf}): an IPv4 address, or an IPv6 /64 (a
 * host or subscriber is given a whole /64, RFC 6177; counted address by address, 16 addresses of it took the whole
 * table); an IPv4-mapped IPv6 address is its IPv4 address.
 *
 * <p>Bounds: one source holds at most {@code maxKeysPerSource} keys (by default {@code maxKeys /} {@value
 * #SOURCE_SHARE}); its further kinds of refusal are counted in one bucket per outcome, reason {@value #VARIOUS}, so
 * one client cannot take the table from the others. At most {@code maxKeys} keys are tracked in all; refusals of
 * further keys are counted in one bucket per outcome, source {@value #OTHER_SOURCES}. Memory is therefore bounded
 * whatever the number of sources. Reasons must come from a small server-chosen set: callers never put client text
 * (such as an AK id nobody enrolled) in a reason.
 *
 * <p>Client text: subjects, reasons and the detail's strings are rendered by {@link UntrustedText} (no control, bidi
 * or invisible characters, no unpaired surrogates, bounded length), and a record the audit log still refuses for its
 * form is written without its subject and detail rather than lost. A refusal whose first record cannot be written
 * (the audit log is unavailable) is not counted, so the next one of its key is recorded in full.
 *
 * <p>Summaries are written only by {@link #flushDue()} (the server calls it every second from its housekeeping
 * thread) and by {@link #flushAll()} on shutdown, never by {@link #refuse}: a refusal's caller may hold a lock (the
 * appraisal of one TPM) that a slow audit write must not extend to other refusals' summaries. Counts of the last
 * window are lost if the process dies. Times come from the injected {@link Clock}. Thread-safe: the table is guarded
 * by this object's lock; records are written outside it.
 */
public final class RefusalAggregator {
    private static final Logger LOG = LoggerFactory.getLogger(RefusalAggregator.class);
    /** Source of the bucket that counts refusals of keys beyond {@code maxKeys}. */
    public static final String OTHER_SOURCES = "other-sources";
    /** Reason of the buckets that count refusals of keys beyond a bound. */
    public static final String VARIOUS = "various";
    public static final Duration DEFAULT_WINDOW = Duration.ofSeconds(60);
    public static final int DEFAULT_MAX_KEYS = 1024;
    /** By default one source may hold {@code 1/SOURCE_SHARE} of the table. */
    public static final int SOURCE_SHARE = 16;
    /** Subjects keep at most this many code points of their text (escaped, that stays under the log's limit). */
    static final int MAX_SUBJECT_CODE_POINTS = 100;
    /** Strings in a detail keep at most this many code points. */
    static final int MAX_TEXT_CODE_POINTS = 512;
    /** The subject of a record whose subject the audit log refused even after rendering. */
    static final String UNRENDERABLE = "(unrenderable)";

    private enum Kind {
        /** A key of its own. */
        OWN,
        /** The refusals of one source beyond its share of the table. */
        SOURCE_OVERFLOW,
        /** The refusals of every key beyond the table. */
        OTHER_SOURCES
    }

    private record Key(String outcome, String source, String reason, Kind kind) {
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
    private final int maxKeysPerSource;
    private final Map<Key, Bucket> buckets = new LinkedHashMap<>();
    /** Keys of kind OWN per source. */
    private final Map<String, Integer> keysBySource = new HashMap<>();
    private int otherSourcesKeys;
    private long nextScanMillis;

    /** One source may hold {@code maxKeys /} {@value #SOURCE_SHARE} keys (at least one). */
    public RefusalAggregator(AuditTrail trail, Clock clock, Duration window, int maxKeys) {
        this(trail, clock, window, maxKeys, Math.max(1, maxKeys / SOURCE_SHARE));
    }

    public RefusalAggregator(AuditTrail trail, Clock clock, Duration window, int maxKeys, int maxKeysPerSource) {
        this.trail = Objects.requireNonNull(trail, "trail");
        this.clock = Objects.requireNonNull(clock, "clock");
        if (window.isNegative()) {
            throw new IllegalArgumentException("window must not be negative, got " + window);
        }
        if (maxKeys < 1) {
            throw new IllegalArgumentException("maxKeys must be >= 1, got " + maxKeys);
        }
        if (maxKeysPerSource < 1 || maxKeysPerSource > maxKeys) {
            throw new IllegalArgumentException("maxKeysPerSource must be 1.." + maxKeys + ", got " + maxKeysPerSource);
        }
        this.windowMillis = window.toMillis();
        this.maxKeys = maxKeys;
        this.maxKeysPerSource = maxKeysPerSource;
    }

    /**
     * Counts one refusal and records it if it is the first of its key in a window; its summaries have the source as
     * their subject.
     *
     * @param outcome the record's outcome, e.g. {@code ADMIN_REFUSED}
     * @param address the client's address (counted under its {@linkplain #sourceOf source})
     * @param reason  a server-chosen reason from a small fixed set (not client text: it is part of the key)
     * @param detail  the first record's detail; keep it small (never a request body)
     * @throws ApiException 503 if the first record cannot be written (as {@link AuditTrail#record})
     */
    public void refuse(String outcome, String address, String reason, Map<String, Object> detail)
            throws ApiException {
        refuse(outcome, address, reason, detail, address, null);
    }

    /**
     * As {@link #refuse(String, String, String, Map)}, with the records' subjects: {@code firstSubject} for the
     * first record (e.g. the AK it named; it may hold client text); the key's summaries are {@code summaryLabel}
     * "from" its source (e.g. "ak:(unenrolled) from 192.0.2.1", "ak:(unenrolled) from 2001:db8:0:1:0:0:0:0/64";
     * keep the label short and free of client text, it is kept per key).
     */
    public void refuse(String outcome, String address, String reason, Map<String, Object> detail,
            String firstSubject, String summaryLabel) throws ApiException {
        Objects.requireNonNull(outcome, "outcome");
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(reason, "reason");
        Objects.requireNonNull(detail, "detail");
        if (windowMillis == 0) { // no aggregation: every refusal is its own record
            Map<String, Object> m = safeDetail(detail);
            m.put("reason", safeText(reason));
            m.put("count", 1);
            record(subject(firstSubject), outcome, m);
            return;
        }
        String source = sourceOf(address);
        long now = clock.millis();
        Key key = new Key(outcome, source, reason, Kind.OWN);
        Bucket created = null;
        synchronized (this) {
            Bucket bucket = buckets.get(key);
            if (bucket == null) {
                key = placeNewKey(key);
                bucket = buckets.get(key);
            }
            if (bucket == null) {
                bucket = new Bucket(now, switch (key.kind()) {
                    case OWN -> subject(summaryLabel == null ? source : summaryLabel + " from " + source);
                    case SOURCE_OVERFLOW -> subject(VARIOUS + " from " + source);
                    case OTHER_SOURCES -> OTHER_SOURCES;
                });
                add(key, bucket);
                created = bucket;
            } else {
                if (bucket.count == 0) {
                    bucket.firstMillis = now;
                }
                bucket.count++;
                bucket.lastMillis = now;
            }
        }
        // Summaries are not written here, on the refusing request's thread: see the class comment.
        if (created != null) {
            recordFirst(key, detail, firstSubject, created);
        }
    }

    /**
     * The source a client address is counted under: an IPv4 address itself; an IPv6 address its /64 prefix, as
     * {@code 2001:db8:0:1:0:0:0:0/64}; an IPv4-mapped IPv6 address its IPv4 address. Accepts what Jetty reports
     * ({@code 192.0.2.1}, {@code [2001:db8::1]}, with or without brackets and a zone). Never resolves a name: text
     * that is not an IP literal is its own source.
     */
    static String sourceOf(String address) {
        String a = address;
        if (a.startsWith("[") && a.endsWith("]")) {
            a = a.substring(1, a.length() - 1);
        }
        int zone = a.indexOf('%');
        if (zone >= 0) {
            a = a.substring(0, zone);
        }
        if (a.indexOf(':') < 0 || !a.chars().allMatch(c -> c == ':' || c == '.' || Character.digit(c, 16) >= 0)) {
            return address; // IPv4 (the address is the source), or not an address at all
        }
        try {
            // In brackets, InetAddress parses an IPv6 literal or fails; it never looks the text up as a name.
            InetAddress parsed = InetAddress.getByName("[" + a + "]");
            if (parsed instanceof Inet4Address) { // ::ffff:a.b.c.d
                return parsed.getHostAddress();
            }
            byte[] bytes = parsed.getAddress();
            Arrays.fill(bytes, 8, 16, (byte) 0);
            return InetAddress.getByAddress(bytes).getHostAddress() + "/64";
        } catch (UnknownHostException e) {
            return address;
        }
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

    /** The key a refusal of a key not in the table goes to: its own, or a bucket if a bound is reached. */
    private Key placeNewKey(Key key) {
        Key placed = key;
        if (keysBySource.getOrDefault(key.source(), 0) >= maxKeysPerSource) {
            placed = new Key(key.outcome(), key.source(), VARIOUS, Kind.SOURCE_OVERFLOW);
        }
        if (!buckets.containsKey(placed) && buckets.size() - otherSourcesKeys >= maxKeys) {
            placed = new Key(key.outcome(), OTHER_SOURCES, VARIOUS, Kind.OTHER_SOURCES);
        }
        return placed;
    }

    private void add(Key key, Bucket bucket) {
        buckets.put(key, bucket);
        switch (key.kind()) {
            case OWN -> keysBySource.merge(key.source(), 1, Integer::sum);
            case OTHER_SOURCES -> otherSourcesKeys++;
            default -> {
            }
        }
    }

    private void forgotten(Key key) {
        switch (key.kind()) {
            case OWN -> keysBySource.computeIfPresent(key.source(), (s, n) -> n == 1 ? null : n - 1);
            case OTHER_SOURCES -> otherSourcesKeys--;
            default -> {
            }
        }
    }

    private void recordFirst(Key key, Map<String, Object> detail, String firstSubject, Bucket created)
            throws ApiException {
        Map<String, Object> m = new LinkedHashMap<>();
        String subject;
        switch (key.kind()) {
            case OTHER_SOURCES -> {
                m.put("reason", VARIOUS);
                m.put("note", "more than " + maxKeys + " distinct refusal keys; counted together");
                subject = OTHER_SOURCES;
            }
            case SOURCE_OVERFLOW -> {
                m.putAll(safeDetail(detail));
                m.put("reason", VARIOUS);
                m.put("note", "more than " + maxKeysPerSource + " kinds of refusal from this source; counted"
                        + " together");
                subject = created.summarySubject;
            }
            default -> {
                m.putAll(safeDetail(detail));
                m.put("reason", safeText(key.reason()));
                subject = subject(firstSubject);
            }
        }
        m.put("count", 1);
        try {
            record(subject, key.outcome(), m);
        } catch (ApiException e) {
            // Not recorded, so not counted either: the key's next refusal is recorded in full.
            synchronized (this) {
                if (buckets.get(key) == created && created.count == 0) {
                    buckets.remove(key);
                    forgotten(key);
                }
            }
            throw e;
        }
    }

    /**
     * Writes one refusal record. If the audit log refuses its form (subject or detail) even so, the record is
     * written without them rather than lost: the count must reach the log.
     */
    private void record(String subject, String outcome, Map<String, Object> detail) throws ApiException {
        try {
            trail.record("REFUSAL", subject, outcome, detail);
        } catch (IllegalArgumentException e) {
            LOG.warn("a {} record was refused for its form ({}); recording it without its subject and detail",
                    outcome, e.getMessage());
            Map<String, Object> m = new LinkedHashMap<>();
            for (String field : List.of("aggregated", "reason", "count", "first", "last", "source")) {
                if (detail.get(field) != null) {
                    m.put(field, detail.get(field));
                }
            }
            m.put("note", "the record's subject or detail was refused by the audit log: "
                    + safeText(String.valueOf(e.getMessage())));
            trail.record("REFUSAL", UNRENDERABLE, outcome, m);
        }
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
                forgotten(e.getKey());
            }
        }
        return due;
    }

    private void write(List<Summary> due) {
        for (Summary s : due) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("aggregated", true);
            m.put("reason", safeText(s.key().reason()));
            m.put("count", s.count());
            m.put("first", Instant.ofEpochMilli(s.firstMillis()).toString());
            m.put("last", Instant.ofEpochMilli(s.lastMillis()).toString());
            m.put("source", safeText(s.key().source()));
            try {
                record(s.subject(), s.key().outcome(), m);
            } catch (ApiException e) {
                LOG.warn("summary of {} {} refusals from {} not recorded, retried later: {}", s.count(),
                        s.key().outcome(), safeText(s.key().source()), e.getMessage());
                synchronized (this) {
                    Bucket b = buckets.get(s.key());
                    if (b == null) {
                        b = new Bucket(clock.millis(), s.subject());
                        add(s.key(), b);
                    }
                    if (b.count == 0) {
                        b.firstMillis = s.firstMillis();
                        b.lastMillis = s.lastMillis();
                    }
                    b.count += s.count();
                }
            }
        }
    }

    /** A record subject made of {@code text}: escaped, bounded, never empty. */
    static String subject(String text) {
        if (text == null || text.isEmpty()) {
            return "(empty)";
        }
        return UntrustedText.forTerminal(text, MAX_SUBJECT_CODE_POINTS);
    }

    private static String safeText(String text) {
        return UntrustedText.forTerminal(text, MAX_TEXT_CODE_POINTS);
    }

    /** A copy of {@code detail} whose strings, at any depth, are escaped and bounded. */
    private static Map<String, Object> safeDetail(Map<String, ?> detail) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<String, ?> e : detail.entrySet()) {
            out.put(safeText(e.getKey()), safeValue(e.getValue()));
        }
        return out;
    }

    private static Object safeValue(Object value) {
        if (value instanceof String s) {
            return safeText(s);
        }
        if (value instanceof Map<?, ?> map) {
            Map<String, Object> out = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : map.entrySet()) {
                out.put(safeText(String.valueOf(e.getKey())), safeValue(e.getValue()));
            }
            return out;
        }
        if (value instanceof Collection<?> list) {
            List<Object> out = new ArrayList<>(list.size());
            for (Object o : list) {
                out.add(safeValue(o));
            }
            return out;
        }
        return value;
    }
}
