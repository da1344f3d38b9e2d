package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.server.testing.PostgresExtension;
import io.tpmphone.server.testing.TestBackend;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The SIEM export of a server on a real PostgreSQL, where someone with the database's superuser rights removes a
 * record while the server runs (on SQLite the server's writer holds the file's write lock, and a record removed while
 * it is stopped makes it refuse to start): the SIEM reading on from its cursor gets a chain break naming the record.
 */
@Timeout(120)
@ExtendWith(PostgresExtension.class)
class SiemExportOnPostgresIT {
    private static final String ADMIN = "admin-token-of-the-siem-postgres-test";
    private static final String AUDITOR = "auditor-credential-of-the-siem-postgres-test";
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static HttpClient client(AttestationServer server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, tmf.getTrustManagers(), null);
        return HttpClient.newBuilder().sslContext(tls).connectTimeout(Duration.ofSeconds(10)).build();
    }

    private static HttpResponse<String> send(HttpClient http, AttestationServer server, String method, String path,
                                             String body, String token) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.uri() + path)).timeout(Duration.ofSeconds(30))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(body)).header("Authorization", "Bearer " + token);
        if (body != null) {
            b.header("Content-Type", "application/json");
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    private static void someActivity(HttpClient http, AttestationServer server, String prefix) throws Exception {
        for (int i = 0; i < 3; i++) {
            HttpResponse<String> r = send(http, server, "POST", "/v1/enrollment-tokens", "{\"host\":\"" + prefix + i
                    + "\"}", ADMIN);
            assertEquals(200, r.statusCode(), r.body());
        }
    }

    @Test
    void aRecordRemovedFromTheLiveDatabase_reachesTheSiemAsABreakNamingIt(TestBackend db) throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN)
                .auditorToken(AUDITOR).database(db.databaseUrl()).refusalWindow(Duration.ZERO).start()) {
            HttpClient http = client(server);
            someActivity(http, server, "first-");
            HttpResponse<String> first = send(http, server, "GET", "/v1/audit/ocsf?after=0&checkpoints_after=0",
                    null, AUDITOR);
            assertEquals(200, first.statusCode(), first.body());
            long after = 0;
            for (String line : first.body().split("\n")) {
                JsonNode r = JSON.readTree(line).path("unmapped").path("tpmphone_audit_record");
                after = r.isMissingNode() ? after : r.get("seq").asLong();
            }
            assertTrue(after >= 3, "the first page has the activity: " + first.body());
            someActivity(http, server, "second-");
            long removed = after + 2;
            // The database's superuser, while the server runs: triggers off for this session, then the delete.
            try (java.sql.Connection c = java.sql.DriverManager.getConnection(db.databaseUrl());
                    java.sql.Statement st = c.createStatement()) {
                st.execute("SET session_replication_role = replica");
                assertEquals(1, st.executeUpdate("DELETE FROM audit_record WHERE seq = " + removed),
                        "record " + removed + " removed");
            }
            HttpResponse<String> next = send(http, server, "GET", "/v1/audit/ocsf?after=" + after, null, AUDITOR);
            assertEquals(200, next.statusCode(), next.body());
            List<JsonNode> breaks = new ArrayList<>();
            List<Long> seqs = new ArrayList<>();
            for (String line : next.body().split("\n")) {
                JsonNode u = JSON.readTree(line).path("unmapped");
                if (u.has("tpmphone_audit_chain_break")) {
                    breaks.add(JSON.readTree(line));
                }
                if (u.has("tpmphone_audit_record")) {
                    seqs.add(u.get("tpmphone_audit_record").get("seq").asLong());
                }
            }
            assertEquals(1, breaks.size(), "one break: " + next.body());
            JsonNode b = breaks.get(0);
            assertEquals(removed + 1, b.path("unmapped").path("tpmphone_audit_chain_break").path("seq").asLong(),
                    "the break is at the record after the gap: " + b);
            assertTrue(b.path("message").asText().contains("records " + removed + " are missing"), b.toString());
            assertEquals(2, b.path("status_id").asInt(), "status Failure: " + b);
            assertTrue(!seqs.contains(removed) && seqs.contains(removed - 1) && seqs.contains(removed + 1),
                    "the records around the gap are exported, the removed one is not: " + seqs);
        }
    }
}
