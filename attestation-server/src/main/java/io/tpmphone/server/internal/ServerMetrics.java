package io.tpmphone.server.internal;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.server.audit.AuditLog;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * The server's Prometheus metrics (the official client, 1.x): what it decided and how fast, the audit log's progress
 * and the database pool. Each instance has its own registry; sum over instances in the queries. Label values come
 * from fixed sets (levels, check names, outcomes), never from a request, so a client cannot grow the label space.
 * Every metric is listed in docs/operations.md. Thread-safe.
 */
public final class ServerMetrics {
    /** Latency buckets in seconds: the targets are p99 < 1 s per appraisal and a few ms per audit commit. */
    private static final double[] SECONDS = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
        5, 10};

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final Counter appraisals = Counter.builder().name("tpmphone_appraisals_total")
            .help("Appraisals that produced a signed result, by integrity level and the check that failed (none)")
            .labelNames("result", "failed_check").register(registry);
    private final Counter refusals = Counter.builder().name("tpmphone_appraisal_refusals_total")
            .help("Appraisal requests refused before the quote authenticated (403/404), by the check named")
            .labelNames("check").register(registry);
    private final Histogram appraisalSeconds = Histogram.builder().name("tpmphone_appraisal_duration_seconds")
            .help("Time to appraise a request that produced a signed result, its audit record committed")
            .classicOnly().classicUpperBounds(SECONDS).register(registry);
    private final Counter nonceRedemptions = Counter.builder().name("tpmphone_nonce_redemptions_total")
            .help("Nonces presented for redemption, by outcome: redeemed, unknown (never issued or used up),"
                    + " expired, other_key")
            .labelNames("outcome").register(registry);
    private final Counter rollbacks = Counter.builder().name("tpmphone_rollbacks_detected_total")
            .help("Appraisals failed at CLOCK: the TPM's reset, restart or clock went back from what the server saw")
            .register(registry);
    private final Histogram auditCommitSeconds = Histogram.builder().name("tpmphone_audit_commit_duration_seconds")
            .help("Time from handing a record to the audit log until it was committed (group commit included)")
            .classicOnly().classicUpperBounds(SECONDS).register(registry);
    private final Counter connectionRefusals = Counter.builder().name("tpmphone_https_connections_refused_total")
            .help("HTTPS connections the server closed without serving them, by reason: connection_limit,"
                    + " address_limit, slow_first_request, slow_body, slow_next_request")
            .labelNames("reason").register(registry);
    private final Counter connectionLimitReached = Counter.builder()
            .name("tpmphone_https_connection_limit_reached_total")
            .help("Times the HTTPS connection bound was reached (the server stopped accepting until one closed)")
            .register(registry);

    /** Why the server closed a connection unserved: the label values of tpmphone_https_connections_refused_total. */
    public enum ConnectionRefusal {
        /** Accepted while the connection bound was already reached (most wait in the accept queue instead). */
        CONNECTION_LIMIT,
        /** Its client address (IPv6: /64) had the per-address bound open. */
        ADDRESS_LIMIT,
        /** No request reached the server within the request timeout of the accept (TLS handshake and header). */
        SLOW_FIRST_REQUEST,
        /** A request's body was not in within the request timeout of its header. */
        SLOW_BODY,
        /** Bytes after a request that made no next one within the idle timeout plus the request timeout. */
        SLOW_NEXT_REQUEST;

        String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** A registry of its own; {@link #registry()} is what the endpoint scrapes. */
    public ServerMetrics() {
    }

    public PrometheusRegistry registry() {
        return registry;
    }

    /**
     * Gauges read when scraped: the audit chain's head sequence as this instance last saw it, and the database
     * pool's connections (when the database has a pool).
     */
    public ServerMetrics withScraped(LongSupplier auditHeadSequence,
                                     Supplier<Optional<ServerDatabase.PoolState>> pool) {
        Objects.requireNonNull(auditHeadSequence, "auditHeadSequence");
        Objects.requireNonNull(pool, "pool");
        GaugeWithCallback.builder().name("tpmphone_audit_head_sequence")
                .help("Sequence number of the audit chain's last record this instance committed or saw")
                .callback(cb -> cb.call(auditHeadSequence.getAsLong())).register(registry);
        GaugeWithCallback.builder().name("tpmphone_database_pool_connections")
                .help("The database connection pool (PostgreSQL): active, idle, total connections, and threads"
                        + " waiting for one")
                .labelNames("state").callback(cb -> pool.get().ifPresent(p -> {
                    cb.call(p.active(), "active");
                    cb.call(p.idle(), "idle");
                    cb.call(p.total(), "total");
                    cb.call(p.waiting(), "waiting");
                })).register(registry);
        return this;
    }

    /**
     * Gauges: the HTTPS connections open, read when scraped (each agent keeps one between its cycles; each costs the
     * server about 11 KB of heap), and the bounds on them, total and per client address. Every label-less series of
     * all three and of the refusal counters is there from the start, so an alert on a rate sees zeros, not gaps.
     */
    public ServerMetrics withConnections(java.util.function.IntSupplier open, int maxConnections,
                                         int maxPerAddress) {
        Objects.requireNonNull(open, "open");
        GaugeWithCallback.builder().name("tpmphone_https_connections")
                .help("HTTPS connections open (each agent keeps one between its cycles)")
                .callback(cb -> cb.call(open.getAsInt())).register(registry);
        GaugeWithCallback.builder().name("tpmphone_https_connections_max")
                .help("The bound on HTTPS connections open at once (--max-connections)")
                .callback(cb -> cb.call(maxConnections)).register(registry);
        GaugeWithCallback.builder().name("tpmphone_https_connections_per_address_max")
                .help("The bound on HTTPS connections open at once from one client address, IPv6 by /64"
                        + " (--max-connections-per-address)")
                .callback(cb -> cb.call(maxPerAddress)).register(registry);
        for (ConnectionRefusal r : ConnectionRefusal.values()) {
            connectionRefusals.labelValues(r.label());
        }
        return this;
    }

    /** The server closed a connection unserved. */
    public void connectionRefused(ConnectionRefusal reason) {
        connectionRefusals.labelValues(reason.label()).inc();
    }

    /** The connection bound was reached. */
    public void connectionLimitReached() {
        connectionLimitReached.inc();
    }

    /**
     * A gauge read when scraped: enrolled hosts without an appraisal in the last five appraisal intervals (what the
     * console marks stale). A failed read (the database is down) leaves the sample out of that scrape.
     */
    public ServerMetrics withStaleHosts(LongSupplier staleHosts) {
        Objects.requireNonNull(staleHosts, "staleHosts");
        GaugeWithCallback.builder().name("tpmphone_stale_hosts")
                .help("Enrolled hosts without an appraisal in the last five appraisal intervals")
                .callback(cb -> {
                    long n;
                    try {
                        n = staleHosts.getAsLong();
                    } catch (RuntimeException e) {
                        return; // no sample rather than a failed scrape; /health says why
                    }
                    cb.call(n);
                }).register(registry);
        return this;
    }

    /**
     * Gauges read when scraped: seconds since the audit chain's last signed checkpoint (on PostgreSQL the cluster's,
     * whichever instance signed it) and the committed records no checkpoint covers yet. With records unsigned, the
     * age should stay below the log's maxUnsignedAge (10 s) plus a second or two; a quiet log's age grows with
     * nothing unsigned, which is fine. A failed read (the database is down) leaves the samples out of that scrape;
     * no checkpoint yet leaves the age out.
     *
     * @param now the clock the age is measured on
     */
    public ServerMetrics withAuditCheckpoints(java.util.concurrent.Callable<AuditLog.CheckpointState> state,
                                              java.time.Clock now) {
        Objects.requireNonNull(state, "state");
        Objects.requireNonNull(now, "now");
        GaugeWithCallback.builder().name("tpmphone_audit_checkpoint_age_seconds")
                .help("Seconds since the audit chain's last signed checkpoint (alert when it passes maxUnsignedAge"
                        + " while tpmphone_audit_unsigned_records > 0)")
                .callback(cb -> read(state).flatMap(AuditLog.CheckpointState::lastCheckpoint).ifPresent(t ->
                        cb.call(Math.max(0, now.millis() - t.toEpochMilli()) / 1000.0))).register(registry);
        GaugeWithCallback.builder().name("tpmphone_audit_unsigned_records")
                .help("Committed audit records after the last signed checkpoint")
                .callback(cb -> read(state).ifPresent(s -> cb.call(s.unsignedRecords()))).register(registry);
        return this;
    }

    private static Optional<AuditLog.CheckpointState> read(java.util.concurrent.Callable<AuditLog.CheckpointState>
                                                               state) {
        try {
            return Optional.of(state.call());
        } catch (Exception e) {
            return Optional.empty(); // no sample rather than a failed scrape; /health says why
        }
    }

    /** An appraisal that produced a signed result. */
    public void appraised(IntegrityLevel level, Optional<String> failedCheck, long nanos) {
        String check = failedCheck.map(ServerMetrics::label).orElse("none");
        appraisals.labelValues(level.name(), check).inc();
        appraisalSeconds.observe(nanos / 1e9);
        if (failedCheck.isPresent() && failedCheck.get().equals("CLOCK")) {
            rollbacks.inc();
        }
    }

    /** An appraisal refused before its quote authenticated, at {@code check} (one of the verifier's names). */
    public void refused(String check) {
        refusals.labelValues(label(check)).inc();
    }

    /** A nonce presented: {@code refusal} is empty when it was redeemed. */
    public void nonceRedeemed(Optional<NonceService.Refusal> refusal) {
        nonceRedemptions.labelValues(refusal.map(r -> r.name().toLowerCase(Locale.ROOT)).orElse("redeemed")).inc();
    }

    /** One audit record committed after {@code nanos}. */
    public void auditCommitted(long nanos) {
        auditCommitSeconds.observe(nanos / 1e9);
    }

    /** Check names are the verifier's constants; anything else is bounded to one value rather than trusted. */
    private static String label(String check) {
        return check != null && check.matches("[A-Za-z_-]{1,40}") ? check : "other";
    }
}
