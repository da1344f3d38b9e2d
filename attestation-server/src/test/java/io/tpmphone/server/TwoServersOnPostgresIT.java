package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import io.tpmphone.server.audit.VerifyOptions;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.PublicKey;
import java.util.Optional;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;
import io.tpmphone.swtpm.testing.Await;
import io.tpmphone.swtpm.testing.PostgresServer;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two {@link AttestationServer}s (Jetty, TLS, the whole wiring) on one PostgreSQL database: what an operator does at
 * one is in force at the other, both write one audit chain, and an instance with keys of its own is refused.
 */
@Timeout(120)
@ExtendWith(PostgresExtension.class)
class TwoServersOnPostgresIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ADMIN = "an-admin-token-for-this-test";

    @TempDir
    Path dir;

    private static String policy(int version) {
        return "{\"version\":" + version + ",\"measurementPcr\":14,\"pcrBank\":\"sha256\",\"bootPcrs\":[0],"
                + "\"releases\":[{\"name\":\"softphone-test\",\"jvm\":{\"/usr/bin/java\":\"" + "11".repeat(32)
                + "\"},\"jars\":{\"softphone.jar\":\"" + "22".repeat(32) + "\"},\"configuration\":"
                + "{\"softphone.properties\":\"" + "33".repeat(32) + "\"},\"commandLine\":[\"/usr/bin/java\",\"-cp\","
                + "\"softphone.jar\",\"Main\"]}],\"requireIsolation\":false,\"nonceTtlSeconds\":30,"
                + "\"resultTtlSeconds\":300}";
    }

    @Test
    void aPolicyPutAtOneServer_isInForceAtTheOther_andBothWriteOneAuditChain(TestBackend db) throws Exception {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        PublicKey key;
        try (AttestationServer atA = AttestationServer.builder().stateDirectory(a).adminToken(ADMIN)
                .database(db.databaseUrl()).policy(policy(1)).start()) {
            key = atA.resultVerificationKey();
            copyKeys(a, b);
            try (AttestationServer atB = AttestationServer.builder().stateDirectory(b).adminToken(ADMIN)
                    .database(db.databaseUrl()).start()) {
                SSLSocketFactory tls = pinned(atA);
                assertEquals(1, call(atB, tls, "GET", "/v1/policy", null).body.get("version").asInt(),
                        "B serves the policy A was started with");
                Answer put = call(atA, tls, "PUT", "/v1/policy", policy(2));
                assertEquals(200, put.status, "PUT at A: " + put.body);
                assertEquals(2, call(atB, tls, "GET", "/v1/policy", null).body.get("version").asInt(),
                        "B serves the version A stored, at once");
                Answer stale = call(atB, tls, "PUT", "/v1/policy", policy(2));
                assertEquals(409, stale.status, "the same version again at B: " + stale.body);
                JsonNode records = call(atB, tls, "GET", "/v1/audit", null).body.get("records");
                long changes = 0;
                for (JsonNode r : records) {
                    changes += r.get("type").asText().equals("POLICY_CHANGE") ? 1 : 0;
                }
                assertEquals(2, changes, "B's audit view holds A's policy changes (start and PUT): " + records);
                assertTrue(Files.notExists(b.resolve("audit.db")) && Files.notExists(a.resolve("audit.db")),
                        "no per-instance audit file");
            }
        }
        VerificationReport report = AuditVerifier.verify(db.databaseUrl(), Optional.of(key), VerifyOptions.closed());
        assertTrue(report.intact(), "one chain, closed by the last server: " + report.summary());
    }

    /** Nothing is decided on stale memory: with its database gone, a server answers 503 and says to retry. */
    @Test
    void aServerWhoseDatabaseIsGone_answers503StorageUnavailable(TestBackend db) throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir.resolve("a")).adminToken(ADMIN)
                .database(db.databaseUrl()).policy(policy(1)).start()) {
            SSLSocketFactory tls = pinned(server);
            assertEquals(200, call(server, tls, "GET", "/v1/hosts", null).status, "served while the database is up");
            String name = db.databaseUrl().substring(db.databaseUrl().lastIndexOf('/') + 1,
                    db.databaseUrl().indexOf('?'));
            try (java.sql.Connection c = java.sql.DriverManager.getConnection(db.databaseUrl().replace("/" + name
                    + "?", "/postgres?")); java.sql.Statement s = c.createStatement()) {
                s.execute("DROP DATABASE " + name + " WITH (FORCE)");
            }
            Answer gone = call(server, tls, "GET", "/v1/hosts", null);
            assertEquals(503, gone.status, "with the database gone: " + gone.body);
            assertEquals("storage_unavailable", gone.body.get("error").asText(), "says why: " + gone.body);
            assertTrue(!gone.body.toString().contains("postgres"), "names no database internals: " + gone.body);
        }
    }

    /** What a load balancer sees: 503 naming the cause while PostgreSQL is down, 200 again once it is back. */
    @Test
    void health_is503WhilePostgresqlIsPaused_and200AfterItResumes(TestBackend db) throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir.resolve("a")).adminToken(ADMIN)
                .database(db.databaseUrl()).policy(policy(1)).start()) {
            SSLSocketFactory tls = pinned(server);
            Answer up = call(server, tls, "GET", "/health", null);
            assertEquals(200, up.status, "healthy while PostgreSQL answers: " + up.body);
            assertEquals("ok", up.body.path("status").asText(), "says ok: " + up.body);
            PostgresServer postgres = PostgresServer.shared();
            postgres.pause();
            try {
                Answer down = call(server, tls, "GET", "/health", null);
                assertEquals(503, down.status, "unhealthy while PostgreSQL is stopped: " + down.body);
                assertEquals("unhealthy", down.body.path("error").asText(), "says so: " + down.body);
                assertTrue(down.body.path("message").asText().contains("database"), "names the database as the"
                        + " cause: " + down.body);
                assertTrue(!down.body.toString().toLowerCase(java.util.Locale.ROOT).contains("postgres"),
                        "names no database internals: " + down.body);
            } finally {
                postgres.resume();
            }
            Answer back = Await.until("/health is 200 again after PostgreSQL resumed", Duration.ofSeconds(60),
                    () -> call(server, tls, "GET", "/health", null), a -> a.status == 200);
            assertEquals("ok", back.body.path("status").asText(), "says ok: " + back.body);
            // The audit log commits again: an operator's call that writes a record is served and recorded.
            Answer put = call(server, tls, "PUT", "/v1/policy", policy(2));
            assertEquals(200, put.status, "a policy change is served: " + put.body);
            JsonNode records = call(server, tls, "GET", "/v1/audit", null).body.get("records");
            long changes = 0;
            for (JsonNode r : records) {
                changes += r.get("type").asText().equals("POLICY_CHANGE") ? 1 : 0;
            }
            assertEquals(2, changes, "the change after the pause is in the audit log: " + records);
        }
    }

    /** The server's own metrics port: the audit commits, the chain's head and the PostgreSQL pool, as scraped. */
    @Test
    void theMetricsPort_showsAuditCommitsTheChainHeadAndThePool(TestBackend db) throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir.resolve("a")).adminToken(ADMIN)
                .database(db.databaseUrl()).policy(policy(1)).metricsPort(0).start()) {
            SSLSocketFactory tls = pinned(server);
            java.net.URI metrics = server.metricsUri().orElseThrow();
            String before = scrape(metrics);
            double commits = sample(before, "tpmphone_audit_commit_duration_seconds_count");
            assertEquals(200, call(server, tls, "PUT", "/v1/policy", policy(2)).status, "a policy change");
            String after = scrape(metrics);
            assertEquals(commits + 1, sample(after, "tpmphone_audit_commit_duration_seconds_count"),
                    "one more audit record committed (POLICY_CHANGE): " + after);
            long head = JSON.readTree(call(server, tls, "GET", "/v1/audit", null).body.toString()).path("records")
                    .size();
            assertTrue(sample(after, "tpmphone_audit_head_sequence") >= head && head >= 2,
                    "the chain's head covers the records served (" + head + "): " + after);
            assertTrue(sample(after, "tpmphone_database_pool_connections", "state=\"total\"") >= 1,
                    "the PostgreSQL pool: " + after);
            assertTrue(sample(after, "tpmphone_https_connections") >= 1, "this test's own HTTPS connection is open"
                    + " (kept alive): " + after);
            assertTrue(after.contains("\ntpmphone_audit_unsigned_records "), "the cluster's unsigned records: "
                    + after);
            assertTrue(sample(after, "tpmphone_audit_unsigned_records") <= sample(after,
                    "tpmphone_audit_head_sequence"), "at most the chain's records are unsigned: " + after);
        }
    }

    private static String scrape(java.net.URI metrics) throws Exception {
        java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(metrics).timeout(Duration.ofSeconds(10)).GET().build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "GET " + metrics + ": " + r.body());
        return r.body();
    }

    /** The sample of {@code name} with all of {@code labels}, or 0. */
    private static double sample(String text, String name, String... labels) {
        for (String line : text.split("\n")) {
            if (line.startsWith(name + "{") || line.startsWith(name + " ")) {
                String series = line.substring(0, line.lastIndexOf(' '));
                if (java.util.Arrays.stream(labels).allMatch(series::contains)) {
                    return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                }
            }
        }
        return 0;
    }

    /** A console session is the cluster's: made at A it works at B, signed out at A it is refused at B. */
    @Test
    void aConsoleSessionMadeAtOneServer_worksAtTheOther_andASignOutAtOneEndsItAtBoth(TestBackend db)
            throws Exception {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        String auditor = "an-auditor-credential-for-this-test";
        try (AttestationServer atA = AttestationServer.builder().stateDirectory(a).adminToken(ADMIN)
                .auditorToken(auditor).database(db.databaseUrl()).policy(policy(1)).start()) {
            copyKeys(a, b);
            try (AttestationServer atB = AttestationServer.builder().stateDirectory(b).adminToken(ADMIN)
                    .auditorToken(auditor).database(db.databaseUrl()).start()) {
                java.net.http.HttpClient http = java.net.http.HttpClient.newBuilder().sslContext(context(atA))
                        .followRedirects(java.net.http.HttpClient.Redirect.NEVER).build();
                java.net.http.HttpResponse<String> signIn = http.send(form(atA, "/ui/sign-in", null,
                        "credential=" + auditor), java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(303, signIn.statusCode(), "sign-in at A: " + signIn.body());
                String setCookie = signIn.headers().firstValue("Set-Cookie").orElseThrow();
                String cookie = setCookie.substring(0, setCookie.indexOf(';'));
                java.net.http.HttpResponse<String> atBPage = http.send(java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create(atB.uri() + "/ui/audit")).header("Cookie", cookie).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(200, atBPage.statusCode(), "A's session at B: " + atBPage.headers().map());
                java.util.regex.Matcher csrf = java.util.regex.Pattern.compile(
                        "name=\"csrf\" value=\"([A-Za-z0-9_-]{43})\"").matcher(atBPage.body());
                assertTrue(csrf.find(), "B's page carries the session's token: " + atBPage.body());
                // Signed out at A with the token B's page showed: one session, one token.
                java.net.http.HttpResponse<String> signOut = http.send(form(atA, "/ui/sign-out", cookie,
                        "csrf=" + csrf.group(1)), java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(303, signOut.statusCode(), "sign-out at A: " + signOut.body());
                java.net.http.HttpResponse<String> after = http.send(java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create(atB.uri() + "/ui/audit")).header("Cookie", cookie).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(303, after.statusCode(), "after sign-out at A, B refuses the cookie: " + after.body());
                assertEquals("/ui/sign-in", after.headers().firstValue("Location").orElse(""));
                assertEquals(0, atB.consoleSessions(), "no session left in the cluster");
            }
        }
    }

    private static java.net.http.HttpRequest form(AttestationServer server, String path, String cookie,
                                                  String body) {
        java.net.http.HttpRequest.Builder r = java.net.http.HttpRequest.newBuilder(java.net.URI.create(server.uri()
                + path)).header("Content-Type", "application/x-www-form-urlencoded")
                .header("Origin", "https://" + server.uri().getAuthority())
                .POST(java.net.http.HttpRequest.BodyPublishers.ofString(body));
        if (cookie != null) {
            r.header("Cookie", cookie);
        }
        return r.build();
    }

    private static SSLContext context(AttestationServer server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }

    private record Answer(int status, JsonNode body) {
    }

    private static Answer call(AttestationServer server, SSLSocketFactory tls, String method, String path,
                               String body) throws Exception {
        HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + path).openConnection();
        c.setSSLSocketFactory(tls);
        c.setHostnameVerifier((host, session) -> true); // trust is pinned to the servers' certificate
        c.setRequestMethod(method);
        c.setRequestProperty("Authorization", "Bearer " + ADMIN);
        c.setConnectTimeout(10_000);
        c.setReadTimeout(30_000);
        if (body != null) {
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            c.setDoOutput(true);
            c.setFixedLengthStreamingMode(bytes.length);
            c.setRequestProperty("Content-Type", "application/json");
            try (OutputStream out = c.getOutputStream()) {
                out.write(bytes);
            }
        }
        int status = c.getResponseCode();
        try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
            return new Answer(status, JSON.readTree(in.readAllBytes()));
        }
    }

    private static SSLSocketFactory pinned(AttestationServer server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context.getSocketFactory();
    }

    private static void copyKeys(Path from, Path to) throws Exception {
        Path keys = Files.createDirectories(to.resolve("keys"));
        Files.setPosixFilePermissions(to, PosixFilePermissions.fromString("rwx------"));
        Files.setPosixFilePermissions(keys, PosixFilePermissions.fromString("rwx------"));
        try (var files = Files.list(from.resolve("keys"))) {
            for (Path f : files.toList()) {
                Files.copy(f, keys.resolve(f.getFileName()), StandardCopyOption.COPY_ATTRIBUTES);
            }
        }
    }
}
