package io.tpmphone.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.server.audit.AuditException;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.testing.OnEachBackend;
import io.tpmphone.server.testing.TestBackend;
import io.tpmphone.swtpm.testing.ManualClock;
import io.tpmphone.tpm.TpmQuote;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The metrics as Prometheus scrapes them: real appraisals of a real swtpm's quotes, then {@code GET /metrics} over a
 * real socket, and each counter moved by exactly what happened (two results, one CLOCK rollback, one replayed nonce
 * refused).
 */
@Timeout(60)
class ServerMetricsIT {
    private static TpmHost host;
    private static final Duration STALE_AFTER = Duration.ofSeconds(150);
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @TempDir
    Path dir;
    private final ManualClock clock = new ManualClock(Instant.now());
    private Registry registry;
    private NonceService nonces;
    private AttestationPolicy policy;
    private Appraisals appraisals;
    private ServerMetrics metrics;
    private MetricsEndpoint endpoint;

    @BeforeAll
    static void startHost() throws Exception {
        host = TpmHost.start().measureRelease();
    }

    @AfterAll
    static void stopHost() {
        if (host != null) {
            host.close();
        }
    }

    @BeforeEach
    void openServer(TestBackend backend) throws Exception {
        registry = backend.registry(dir, clock);
        registry.enroll(host.enrolledAs("alice"));
        metrics = new ServerMetrics().withScraped(() -> 0, registry.database()::poolState)
                .withStaleHosts(() -> registry.staleHosts(clock.instant().minus(STALE_AFTER)));
        nonces = TestBackend.nonces(registry, clock).withMetrics(metrics);
        policy = AttestationPolicy.parse(TpmHost.policy(3));
        appraisals = new Appraisals(registry, nonces, new ResultSigner(ec()), new KeyApprover(ec()),
                (type, subject, outcome, detail) -> { }, clock, () -> policy).withMetrics(metrics);
        endpoint = MetricsEndpoint.start(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), metrics);
    }

    @AfterEach
    void closeServer() throws Exception {
        endpoint.close();
        registry.close();
    }

    private String scrape() throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + endpoint.address().getPort() + "/metrics")).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "GET /metrics: " + r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"),
                "the Prometheus text format: " + r.headers().map());
        return r.body();
    }

    /** The sample of {@code name} with all of {@code labels} (each {@code key="value"}), or 0 if it is not there. */
    static double sample(String text, String name, String... labels) {
        for (String line : text.split("\n")) {
            if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) {
                continue;
            }
            String series = line.substring(0, line.lastIndexOf(' '));
            boolean all = true;
            for (String l : labels) {
                all &= series.contains(l);
            }
            if (all) {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return 0;
    }

    @OnEachBackend
    void realAppraisals_moveEachCounterByWhatHappened() throws Exception {
        String before = scrape();
        assertEquals(0, sample(before, "tpmphone_appraisals_total", "result=\"MEASURED\""), before);

        // Two results: MEASURED, then FAILED at CLOCK (the server once saw this TPM an hour ahead).
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        String first = host.appraisalRequest(nonce, host.quote(policy.requiredPcrSelection(), nonce), host.log(),
                Map.of());
        assertEquals("MEASURED", appraisals.appraise(first).get("level"));
        ClockInfo now = host.tpm().readClock();
        registry.advanceClock(host.ek().name(), now.resetCount(), now.restartCount(), now.clock() + 3_600_000L);
        byte[] second = nonces.issue(host.akId(), policy.nonceTtl());
        TpmQuote quote = host.quote(policy.requiredPcrSelection(), second);
        Map<String, Object> rolledBack = appraisals.appraise(host.appraisalRequest(second, quote, host.log(),
                Map.of()));
        assertEquals("CLOCK", rolledBack.get("failedCheck"), "the second appraisal fails at CLOCK: " + rolledBack);
        // And the first request again: its nonce is used up, a refusal before anything is signed.
        ApiException replay = assertThrows(ApiException.class, () -> appraisals.appraise(first));
        assertEquals("NONCE", replay.check(), replay::getMessage);

        String after = scrape();
        assertEquals(1, sample(after, "tpmphone_appraisals_total", "result=\"MEASURED\"", "failed_check=\"none\""),
                after);
        assertEquals(1, sample(after, "tpmphone_appraisals_total", "result=\"FAILED\"", "failed_check=\"CLOCK\""),
                after);
        assertEquals(1, sample(after, "tpmphone_rollbacks_detected_total"), after);
        assertEquals(2, sample(after, "tpmphone_nonce_redemptions_total", "outcome=\"redeemed\""), after);
        assertEquals(1, sample(after, "tpmphone_nonce_redemptions_total", "outcome=\"unknown\""), after);
        assertEquals(1, sample(after, "tpmphone_appraisal_refusals_total", "check=\"NONCE\""), after);
        assertEquals(2, sample(after, "tpmphone_appraisal_duration_seconds_count"), after);
        assertEquals(2, sample(after, "tpmphone_appraisal_duration_seconds_bucket", "le=\"+Inf\""), after);
        assertTrue(sample(after, "tpmphone_appraisal_duration_seconds_sum") > 0, after);
        if (registry.database().shared()) {
            assertTrue(sample(after, "tpmphone_database_pool_connections", "state=\"total\"") >= 1,
                    "the pool's connections (PostgreSQL): " + after);
        } else {
            assertTrue(!after.contains("tpmphone_database_pool_connections{"), "no pool on SQLite: " + after);
        }
    }

    @OnEachBackend
    void aHostIsStale_untilItIsAppraised_andAgainFiveIntervalsLater() throws Exception {
        assertEquals(1, sample(scrape(), "tpmphone_stale_hosts"), "enrolled, never appraised");
        byte[] nonce = nonces.issue(host.akId(), policy.nonceTtl());
        assertEquals("MEASURED", appraisals.appraise(host.appraisalRequest(nonce, host.quote(
                policy.requiredPcrSelection(), nonce), host.log(), Map.of())).get("level"));
        String fresh = scrape();
        assertEquals(0, sample(fresh, "tpmphone_stale_hosts"), "just appraised: " + fresh);
        assertTrue(fresh.contains("tpmphone_stale_hosts 0"), "the sample is there, at 0: " + fresh);
        clock.advance(STALE_AFTER.plusSeconds(1));
        assertEquals(1, sample(scrape(), "tpmphone_stale_hosts"), "no appraisal for five intervals");
    }

    /** The checkpoint gauges, read from the audit log at scrape time; a failed read leaves them out. */
    @OnEachBackend
    void checkpointAge_isTheTimeSinceTheLastCheckpoint_andAFailedReadLeavesItOut() throws Exception {
        java.util.concurrent.atomic.AtomicReference<AuditLog.CheckpointState> state = new java.util.concurrent
                .atomic.AtomicReference<>(new AuditLog.CheckpointState(Optional.empty(), 4));
        metrics.withAuditCheckpoints(() -> {
            AuditLog.CheckpointState s = state.get();
            if (s == null) {
                throw new AuditException(AuditException.Code.STORAGE, "the database is down (test)");
            }
            return s;
        }, clock);
        String none = scrape();
        assertEquals(4, sample(none, "tpmphone_audit_unsigned_records"), none);
        assertTrue(!none.contains("tpmphone_audit_checkpoint_age_seconds "), "no checkpoint, no age: " + none);
        state.set(new AuditLog.CheckpointState(Optional.of(clock.instant().minusMillis(7_500)), 2));
        String signed = scrape();
        assertEquals(7.5, sample(signed, "tpmphone_audit_checkpoint_age_seconds"), signed);
        assertEquals(2, sample(signed, "tpmphone_audit_unsigned_records"), signed);
        clock.advance(Duration.ofSeconds(10));
        assertEquals(17.5, sample(scrape(), "tpmphone_audit_checkpoint_age_seconds"), "ten seconds later");
        state.set(null);
        String failed = scrape();
        assertTrue(!failed.contains("tpmphone_audit_checkpoint_age_seconds ")
                && !failed.contains("tpmphone_audit_unsigned_records "), "a failed read, no samples: " + failed);
    }

    @OnEachBackend
    void onlyGetMetrics_isServed() throws Exception {
        HttpResponse<String> other = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + endpoint.address().getPort() + "/v1/hosts")).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(404, other.statusCode(), "another path: " + other.body());
        HttpResponse<String> post = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + endpoint.address().getPort() + "/metrics")).timeout(Duration.ofSeconds(10))
                .POST(HttpRequest.BodyPublishers.ofString("x")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(405, post.statusCode(), "POST /metrics: " + post.body());
    }

    private static KeyPair ec() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }
}
