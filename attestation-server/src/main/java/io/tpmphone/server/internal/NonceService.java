package io.tpmphone.server.internal;

import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Map;

/**
 * Single-use appraisal nonces, <b>at most one outstanding per attestation key</b>, valid for at most 30 s. Nonces are
 * issued only for nonce requests the AK signed (V1Routes verifies the signature, this class the freshness): a new
 * request for an AK replaces its outstanding nonce, and since only the AK's holder can make one, nobody else can
 * evict it (docs/attestation.md, "Nonce requests"). A nonce is consumed by the first appraisal or device-certificate
 * request that presents it, whether that passes or not.
 *
 * <p>Freshness of a signed request: its {@code requestedAt} must be within {@link #MAX_SKEW} of the server's clock and
 * strictly after the last one accepted for the AK — so a captured request cannot be replayed to take the nonce of a
 * later one. A request older than the skew window is refused by time alone, so the last accepted time of an AK is
 * remembered only that long.
 *
 * <p>Memory: one outstanding nonce and one last request time per AK that made a verified request, i.e. at most the
 * number of enrolled AKs; expired entries are dropped as new ones arrive. Thread-safe (one lock; every operation is
 * a few map lookups).
 */
public final class NonceService {
    public static final Duration MAX_TTL = Duration.ofSeconds(30);
    /** How far a request's {@code requestedAt} may be from the server's clock, either way. */
    public static final Duration MAX_SKEW = Duration.ofMinutes(5);
    /** Sweep expired entries when a map grows past this (amortised; the maps hold one entry per active AK). */
    private static final int SWEEP_ABOVE = 1024;

    /** Why a nonce was not accepted. */
    public enum Refusal { UNKNOWN, EXPIRED, OTHER_KEY }

    /** Why a signed nonce request was not accepted. */
    public enum RequestRefusal {
        /** requestedAt is more than {@link #MAX_SKEW} away from the server's clock. */
        TIME,
        /** requestedAt is not after the last request accepted for this AK: a replay (or a clock gone back). */
        REPLAYED
    }

    /** A nonce request refused for its freshness; {@link #refusal()} says why. Carries no secret. */
    public static final class RequestRefusedException extends Exception {
        private static final long serialVersionUID = 1L;
        private final RequestRefusal refusal;

        RequestRefusedException(RequestRefusal refusal, String message) {
            super(message);
            this.refusal = refusal;
        }

        public RequestRefusal refusal() {
            return refusal;
        }
    }

    private record Issued(String akId, String nonce, Instant expiresAt) {
    }

    /** A consumed nonce: the refusal, or null if the nonce was good. */
    public record Consumed(Refusal refusal) {
    }

    /** A nonce handed out: the value and when it expires. */
    public record Grant(byte[] nonce, Instant expiresAt) {
        public Grant {
            nonce = nonce.clone();
        }

        @Override
        public byte[] nonce() {
            return nonce.clone();
        }
    }

    private final Object lock = new Object();
    private final Map<String, Issued> byAk = new HashMap<>();
    private final Map<String, Issued> byNonce = new HashMap<>();
    private final Map<String, Long> lastRequestedAt = new HashMap<>();
    private final SecureRandom random = new SecureRandom();
    private final Clock clock;

    public NonceService(Clock clock) {
        this.clock = clock;
    }

    /**
     * Issues the nonce for a nonce request whose AK signature the caller verified: checks {@code requestedAt}
     * (milliseconds since the epoch, as signed), then replaces the AK's outstanding nonce, if any, with a fresh one.
     *
     * @throws RequestRefusedException if the request is not fresh; nothing changes then
     */
    public Grant issueForVerifiedRequest(String akId, long requestedAt, Duration ttl)
            throws RequestRefusedException {
        Instant now = clock.instant();
        long nowMillis = now.toEpochMilli();
        long skew = MAX_SKEW.toMillis();
        if (requestedAt < nowMillis - skew || requestedAt > nowMillis + skew) {
            throw new RequestRefusedException(RequestRefusal.TIME, "the request was made at "
                    + Instant.ofEpochMilli(requestedAt) + " but the server's time is " + now + "; requests more than "
                    + MAX_SKEW.toMinutes() + " min off are refused: set the host's clock (NTP)");
        }
        synchronized (lock) {
            Long last = lastRequestedAt.get(akId);
            if (last != null && requestedAt <= last) {
                throw new RequestRefusedException(RequestRefusal.REPLAYED, "the request's time "
                        + Instant.ofEpochMilli(requestedAt) + " is not after the last accepted request of this AK ("
                        + Instant.ofEpochMilli(last) + "): a replayed request, or the host's clock went back");
            }
            lastRequestedAt.put(akId, requestedAt);
            return issueLocked(akId, ttl, now);
        }
    }

    /**
     * Issues a nonce for {@code akId} without a request: in-process benchmarks and tests only, never reachable
     * over HTTP. It replaces the AK's outstanding nonce like a verified request does.
     */
    public byte[] issue(String akId, Duration ttl) {
        synchronized (lock) {
            return issueLocked(akId, ttl, clock.instant()).nonce();
        }
    }

    private Grant issueLocked(String akId, Duration ttl, Instant now) {
        Duration effective = ttl.compareTo(MAX_TTL) > 0 ? MAX_TTL : ttl;
        if (byAk.size() > SWEEP_ABOVE || lastRequestedAt.size() > SWEEP_ABOVE) {
            sweep(now);
        }
        byte[] nonce = new byte[32];
        random.nextBytes(nonce);
        String key = HexFormat.of().formatHex(nonce);
        Issued issued = new Issued(akId, key, now.plus(effective));
        Issued replaced = byAk.put(akId, issued);
        if (replaced != null) {
            byNonce.remove(replaced.nonce());
        }
        byNonce.put(key, issued);
        return new Grant(nonce, issued.expiresAt());
    }

    /** The number of outstanding nonces (at most one per AK). */
    public int outstanding() {
        synchronized (lock) {
            return byAk.size();
        }
    }

    /**
     * Consumes a nonce: no refusal if it is the outstanding one of {@code akId} and not expired. Either way the
     * nonce cannot be used again (a nonce presented for another AK is used up too: it was disclosed).
     */
    public Consumed consume(byte[] nonce, String akId) {
        String key = HexFormat.of().formatHex(nonce);
        Issued issued;
        synchronized (lock) {
            issued = byNonce.remove(key);
            if (issued == null) {
                return new Consumed(Refusal.UNKNOWN);
            }
            byAk.remove(issued.akId(), issued);
        }
        if (!clock.instant().isBefore(issued.expiresAt())) {
            return new Consumed(Refusal.EXPIRED);
        }
        return new Consumed(issued.akId().equals(akId) ? null : Refusal.OTHER_KEY);
    }

    private void sweep(Instant now) {
        for (Iterator<Issued> it = byAk.values().iterator(); it.hasNext(); ) {
            Issued i = it.next();
            if (!now.isBefore(i.expiresAt())) {
                it.remove();
                byNonce.remove(i.nonce());
            }
        }
        long horizon = now.toEpochMilli() - MAX_SKEW.toMillis();
        lastRequestedAt.values().removeIf(t -> t < horizon);
    }
}
