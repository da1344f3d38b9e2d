package io.tpmphone.agent;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Rejected call decisions, summed up so that a peer cannot make the host report (and the server record) one audit
 * record per INVITE, or attest once per INVITE. Anyone who can reach the phone can send INVITEs the policy rejects;
 * each used to become a {@code CALL_DECISION} event and an immediate attestation (a TPM quote and an appraisal).
 *
 * <p>Per (direction, peer level, required level) — at most 2 × 5 × 5 keys, whatever the peers send — the first
 * rejection of a {@link #WINDOW} is reported in full; the rest are counted and reported as one summary event with a
 * {@code count} with the next report. Immediate attestations for rejections are at most one per
 * {@link #ATTEST_SOON_GAP}. Not thread-safe: {@link HostKeys} calls it under its own lock.
 */
final class RejectedCalls {
    /** How long after a full report the same kind of rejection is only counted. */
    static final Duration WINDOW = Duration.ofSeconds(60);
    /** The least time between two attestations asked for because of rejections or a long backlog. */
    static final Duration ATTEST_SOON_GAP = Duration.ofSeconds(10);

    private final Clock clock;
    private final Map<String, Window> windows = new LinkedHashMap<>();
    private Instant lastAttestSoon;

    RejectedCalls(Clock clock) {
        this.clock = clock;
    }

    private static final class Window {
        final String direction;
        final String peerLevel;
        final String requiredLevel;
        final Instant start;
        long counted;
        Instant first;
        Instant last;

        Window(String direction, String peerLevel, String requiredLevel, Instant start) {
            this.direction = direction;
            this.peerLevel = peerLevel;
            this.requiredLevel = requiredLevel;
            this.start = start;
        }
    }

    /**
     * Takes a rejection; true if it is to be reported in full, false if it was only counted.
     *
     * @param peerLevel and {@code requiredLevel}: level names (a closed set), never peer text
     */
    boolean admit(String direction, String peerLevel, String requiredLevel) {
        Instant now = clock.instant();
        forgetExpired(now);
        String key = direction + '|' + peerLevel + '|' + requiredLevel;
        Window window = windows.get(key);
        if (window == null) {
            windows.put(key, new Window(direction, peerLevel, requiredLevel, now));
            return true;
        }
        if (window.counted == 0) {
            window.first = now;
        }
        window.counted++;
        window.last = now;
        return false;
    }

    /** One summary event per kind of rejection counted since the last call, oldest first; their counts restart. */
    List<Map<String, Object>> drainSummaries() {
        Instant now = clock.instant();
        List<Map<String, Object>> summaries = new ArrayList<>();
        for (Window w : windows.values()) {
            if (w.counted == 0) {
                continue;
            }
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("at", now.toString());
            m.put("operation", "CALL_DECISION");
            m.put("outcome", "REJECT");
            m.put("direction", w.direction);
            m.put("peer", "(" + w.counted + " calls)");
            m.put("peerLevel", w.peerLevel);
            m.put("requiredLevel", w.requiredLevel);
            m.put("count", w.counted);
            m.put("message", w.counted + " more calls rejected like this between " + w.first + " and " + w.last
                    + "; the first of each minute is reported in full");
            summaries.add(m);
            w.counted = 0;
        }
        forgetExpired(now);
        return summaries;
    }

    /** True (and remembered) if an immediate attestation may be asked for now. */
    boolean attestSoonDue() {
        Instant now = clock.instant();
        if (lastAttestSoon != null && now.isBefore(lastAttestSoon.plus(ATTEST_SOON_GAP))
                && !now.isBefore(lastAttestSoon)) {
            return false;
        }
        lastAttestSoon = now;
        return true;
    }

    private void forgetExpired(Instant now) {
        for (Iterator<Window> it = windows.values().iterator(); it.hasNext(); ) {
            Window w = it.next();
            // A window with a count waits for its summary; a clock set back also ends a window.
            if (w.counted == 0 && (!now.isBefore(w.start.plus(WINDOW)) || now.isBefore(w.start))) {
                it.remove();
            }
        }
    }
}
