package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.server.audit.AuditReader;
import io.tpmphone.server.audit.AuditRecord;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The SIEM export over HTTPS (GET /v1/audit/ocsf) and as a file sink (--ocsf-file), across a server restart: a SIEM
 * resuming from its cursor gets every record once, in order; every export that found something is itself a record.
 */
@Timeout(120)
class SiemExportTest {
    private static final String ADMIN = "admin-token-of-the-siem-export-test";
    private static final String AUDITOR = "auditor-credential-of-the-siem-export-test";
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private AttestationServer start() throws Exception {
        return AttestationServer.builder().stateDirectory(dir.resolve("state")).adminToken(ADMIN)
                .auditorToken(AUDITOR).ocsfFile(dir.resolve("siem/audit.jsonl")).refusalWindow(Duration.ZERO).start();
    }

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
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.uri() + path)).timeout(Duration.ofSeconds(10))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(body));
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
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

    /** Record seqs and checkpoint numbers of an export page, added to the running lists. */
    private static long collect(String ndjson, List<Long> seqs, Set<Long> checkpoints) throws Exception {
        long last = -1;
        for (String line : ndjson.split("\n")) {
            if (line.isEmpty()) {
                continue;
            }
            JsonNode u = JSON.readTree(line).path("unmapped");
            assertTrue(u.path("tpmphone_audit_chain_break").isMissingNode(), "no break in an intact log: " + line);
            if (u.has("tpmphone_audit_record")) {
                last = u.get("tpmphone_audit_record").get("seq").asLong();
                seqs.add(last);
            }
            if (u.has("tpmphone_audit_checkpoint")) {
                assertTrue(checkpoints.add(u.get("tpmphone_audit_checkpoint").get("n").asLong()), "twice: " + line);
            }
        }
        return last;
    }

    @Test
    void aSiemResumingFromItsCursor_getsEveryRecordOnce_acrossARestart() throws Exception {
        List<Long> seqs = new ArrayList<>();
        Set<Long> checkpoints = new HashSet<>();
        long after;
        try (AttestationServer server = start()) {
            HttpClient http = client(server);
            assertEquals(401, send(http, server, "GET", "/v1/audit/ocsf", null, null).statusCode(),
                    "the export needs the admin token");
            someActivity(http, server, "before-");
            HttpResponse<String> page = send(http, server, "GET", "/v1/audit/ocsf?after=0&checkpoints_after=0", null,
                    ADMIN);
            assertEquals(200, page.statusCode(), page.body());
            assertEquals("application/x-ndjson", page.headers().firstValue("Content-Type").orElse(""));
            after = collect(page.body(), seqs, checkpoints);
            assertTrue(after >= 3, "the page has the activity: " + page.body());
        }
        try (AttestationServer server = start()) {
            HttpClient http = client(server);
            someActivity(http, server, "after-");
            // After the restart the SIEM reads with the read-only auditor credential: same stream, same cursor.
            HttpResponse<String> page = send(http, server, "GET", "/v1/audit/ocsf?after=" + after
                    + "&checkpoints_after=" + checkpoints.size(), null, AUDITOR);
            assertEquals(200, page.statusCode(), page.body());
            long last = collect(page.body(), seqs, checkpoints);
            assertTrue(page.body().contains("AUDIT_EXPORT"), "the first export is a record: " + page.body());
            // A poll that finds only the previous export's record is not recorded itself: no feeding loop.
            long size;
            try (AuditReader reader = AuditReader.open(dir.resolve("state/audit.db"))) {
                size = reader.size();
            }
            HttpResponse<String> quiet = send(http, server, "GET", "/v1/audit/ocsf?after=" + (size - 1), null, ADMIN);
            assertEquals(1, quiet.body().lines().filter(l -> l.contains("tpmphone_audit_record")).count(),
                    quiet.body());
            try (AuditReader reader = AuditReader.open(dir.resolve("state/audit.db"))) {
                assertEquals(size, reader.size(), "the quiet poll left no record");
            }
            assertTrue(last > after);
        }
        for (int i = 0; i < seqs.size(); i++) {
            assertEquals(i + 1, seqs.get(i), "records in order, none missing or twice: " + seqs);
        }
        List<Long> fileSeqs = new ArrayList<>();
        collect(Files.readString(dir.resolve("siem/audit.jsonl"), StandardCharsets.UTF_8), fileSeqs, new HashSet<>());
        try (AuditReader reader = AuditReader.open(dir.resolve("state/audit.db"))) {
            assertEquals(reader.size(), fileSeqs.size(), "the file sink has every record: it flushes at close, after"
                    + " the last record");
        }
        for (int i = 0; i < fileSeqs.size(); i++) {
            assertEquals(i + 1, fileSeqs.get(i), "the file sink too, across the restart: " + fileSeqs);
        }
    }
    @Test
    void readingRecordsThroughTheApi_isItselfARecordNamingTheRange_butAPageOfOnlySuchReadsIsNot() throws Exception {
        long size;
        try (AttestationServer server = start()) {
            HttpClient http = client(server);
            someActivity(http, server, "read-");
            HttpResponse<String> page = send(http, server, "GET", "/v1/audit?from=2&limit=2", null, ADMIN);
            assertEquals(200, page.statusCode(), page.body());
            try (AuditReader reader = AuditReader.open(dir.resolve("state/audit.db"))) {
                size = reader.size();
                AuditRecord last = reader.records(size, 1).get(0);
                assertEquals("AUDIT_VIEW", last.outcome(), "the read is the last record: " + last.outcome() + " "
                        + last.detailJson());
                assertEquals("admin", last.subject(), last.detailJson());
                JsonNode detail = new ObjectMapper().readTree(last.detailJson());
                assertEquals(2, detail.get("from").asLong(), last.detailJson());
                assertEquals(2, detail.get("limit").asLong(), last.detailJson());
                assertEquals(2, detail.get("records").asLong(), last.detailJson());
                assertEquals(3, detail.get("lastSeq").asLong(), last.detailJson());
                assertTrue(detail.has("remote"), last.detailJson());
            }
            HttpResponse<String> quiet = send(http, server, "GET", "/v1/audit?from=" + size, null, ADMIN);
            assertEquals(200, quiet.statusCode(), quiet.body());
            assertTrue(quiet.body().contains("AUDIT_VIEW"), "the page holds the earlier read: " + quiet.body());
        }
        try (AuditReader reader = AuditReader.open(dir.resolve("state/audit.db"))) {
            assertTrue(reader.records(size + 1, 100).stream().noneMatch(r -> r.outcome().equals("AUDIT_VIEW")),
                    "a page of only earlier reads is not recorded: " + reader.records(size + 1, 100).stream()
                            .map(AuditRecord::outcome).toList());
        }
    }

    @Test
    void theAuditorCredential_readsTheExport_isRecordedAsTheReader_andAdministersNothing() throws Exception {
        try (AttestationServer server = start()) {
            HttpClient http = client(server);
            someActivity(http, server, "host-");
            HttpResponse<String> page = send(http, server, "GET", "/v1/audit/ocsf?after=0&checkpoints_after=0", null,
                    AUDITOR);
            assertEquals(200, page.statusCode(), page.body());
            assertTrue(page.body().lines().anyMatch(l -> l.contains("tpmphone_audit_record")), page.body());
            HttpResponse<String> admin = send(http, server, "POST", "/v1/enrollment-tokens", "{\"host\":\"x\"}",
                    AUDITOR);
            assertEquals(403, admin.statusCode(), "the auditor changes nothing: " + admin.body());
            assertTrue(admin.body().contains("only reads audit data"), admin.body());
            HttpResponse<String> wrong = send(http, server, "GET", "/v1/audit/ocsf?after=0", null, "not-a-credential"
                    + "-of-this-server");
            assertEquals(403, wrong.statusCode(), wrong.body());
        }
        try (AuditReader reader = AuditReader.open(dir.resolve("state/audit.db"))) {
            var records = reader.records(1, 10_000);
            assertTrue(records.stream().anyMatch(r -> r.outcome().equals("AUDIT_EXPORT")
                    && r.subject().equals("auditor")), "the auditor's export is a record naming the auditor: "
                    + records.stream().map(r -> r.subject() + " " + r.outcome()).toList());
        }
    }
}
