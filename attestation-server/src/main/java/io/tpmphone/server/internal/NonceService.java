package io.tpmphone.server.internal;

import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Single-use appraisal nonces bound to one attestation key, valid for at most 30 s. A nonce is consumed by the
 * first appraisal that presents it, whether that appraisal passes or not. Thread-safe.
 */
public final class NonceService {
    /** Outstanding nonces at most; beyond that the oldest expired ones are purged, then issuing is refused. */
    private static final int MAX_OUTSTANDING = 200_000;
    public static final Duration MAX_TTL = Duration.ofSeconds(30);

    /** Why a nonce was not accepted. */
    public enum Refusal { UNKNOWN, EXPIRED, OTHER_KEY }

    private record Issued(String akId, String requester, Instant expiresAt, Registry.TpmState knownAtIssue) {
    }

    /** A consumed nonce: the refusal, or the TPM state the server knew when it issued the nonce (may be null). */
    public record Consumed(Refusal refusal, Registry.TpmState knownAtIssue) {
    }

    /**
     * Outstanding nonces per (AK, client address) at most; issuing one more drops that pair's oldest. Keyed by the
     * requester too, because nonce requests are not authenticated yet and AK ids are public: a cap per AK alone
     * would let anyone evict a host's nonce and keep it from ever being appraised.
     */
    private static final int MAX_PER_REQUESTER = 8;

    private final Map<String, Issued> outstanding = new ConcurrentHashMap<>();
    private final Map<String, java.util.Deque<String>> byAk = new ConcurrentHashMap<>();
    private final SecureRandom random = new SecureRandom();
    private final Clock clock;

    public NonceService(Clock clock) {
        this.clock = clock;
    }

    /** A fresh 32-byte nonce for {@code akId}, valid for {@code ttl} (capped at 30 s). */
    public byte[] issue(String akId, Duration ttl) throws ApiException {
        return issue(akId, "-", ttl, null);
    }

    /**
     * A fresh nonce that also remembers {@code knownState}, the newest TPM state the server has seen for this TPM:
     * a quote over this nonce was made after it, so its clock cannot be behind it — whatever order concurrent
     * appraisals finish in.
     */
    public byte[] issue(String akId, String requester, Duration ttl, Registry.TpmState knownState)
            throws ApiException {
        Duration effective = ttl.compareTo(MAX_TTL) > 0 ? MAX_TTL : ttl;
        if (outstanding.size() >= MAX_OUTSTANDING) {
            purgeExpired();
            if (outstanding.size() >= MAX_OUTSTANDING) {
                throw new ApiException(503, "busy", "too many outstanding nonces; retry in a few seconds");
            }
        }
        byte[] nonce = new byte[32];
        random.nextBytes(nonce);
        String key = HexFormat.of().formatHex(nonce);
        String pair = akId + " " + requester;
        outstanding.put(key, new Issued(akId, pair, clock.instant().plus(effective), knownState));
        java.util.Deque<String> mine = byAk.computeIfAbsent(pair, k -> new java.util.concurrent.ConcurrentLinkedDeque<>());
        mine.addLast(key);
        while (mine.size() > MAX_PER_REQUESTER) {
            String oldest = mine.pollFirst();
            if (oldest != null) {
                outstanding.remove(oldest);
            }
        }
        return nonce;
    }

    public Instant expiry(byte[] nonce) {
        Issued i = outstanding.get(HexFormat.of().formatHex(nonce));
        return i == null ? Instant.EPOCH : i.expiresAt();
    }

    /**
     * Consumes a nonce: no refusal if it was outstanding for {@code akId} and not expired. Either way the nonce
     * cannot be used again.
     */
    public Consumed consume(byte[] nonce, String akId) {
        String key = HexFormat.of().formatHex(nonce);
        Issued issued = outstanding.remove(key);
        if (issued == null) {
            return new Consumed(Refusal.UNKNOWN, null);
        }
        java.util.Deque<String> mine = byAk.get(issued.requester());
        if (mine != null) {
            mine.remove(key);
        }
        if (!clock.instant().isBefore(issued.expiresAt())) {
            return new Consumed(Refusal.EXPIRED, null);
        }
        return issued.akId().equals(akId) ? new Consumed(null, issued.knownAtIssue())
                : new Consumed(Refusal.OTHER_KEY, null);
    }

    private void purgeExpired() {
        Instant now = clock.instant();
        for (Iterator<Issued> it = outstanding.values().iterator(); it.hasNext(); ) {
            if (!now.isBefore(it.next().expiresAt())) {
                it.remove();
            }
        }
    }
}
