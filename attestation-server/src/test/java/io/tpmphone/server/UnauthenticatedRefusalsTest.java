package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.server.audit.AuditReader;
import io.tpmphone.server.audit.AuditRecord;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import java.io.InputStream;
import java.net.URL;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.List;
import java.util.Optional;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Finding 7: unauthenticated requests must not grow the audit log without bound. Before the refusal aggregation,
 * each of these 2,000 requests left a durable record.
 */
@Timeout(120)
class UnauthenticatedRefusalsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void twoThousandUnauthenticatedAdminCalls_leaveAFewRecordsWhoseCountsAddUpTo2000(@TempDir Path dir)
            throws Exception {
        int requests = 2000;
        java.security.PublicKey key;
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir)
                .adminToken("an-admin-token-for-this-test").start()) {
            key = server.resultVerificationKey();
            javax.net.ssl.SSLSocketFactory sockets = pinned(server); // one instance: connections are reused
            for (int i = 0; i < requests; i++) {
                HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + (i % 2 == 0 ? "/v1/hosts"
                        : "/v1/policy")).openConnection();
                c.setSSLSocketFactory(sockets);
                c.setHostnameVerifier((host, session) -> true); // trust is pinned to the server's certificate
                if (i % 4 == 3) {
                    c.setRequestProperty("Authorization", "Bearer wrong-token-" + i);
                }
                int status = c.getResponseCode();
                assertEquals(i % 4 == 3 ? 403 : 401, status, "request " + i);
                try (InputStream err = c.getErrorStream()) {
                    err.readAllBytes(); // so the connection is reused
                }
            }
        } // close: the aggregator writes the counts of the open windows, then the log its closing checkpoint
        Path db = dir.resolve("audit.db");
        List<AuditRecord> refusals;
        try (AuditReader reader = AuditReader.open(db)) {
            refusals = reader.records(1, AuditReader.MAX_PAGE).stream()
                    .filter(r -> r.outcome().equals("ADMIN_REFUSED")).toList();
        }
        assertTrue(refusals.size() <= 4, "at most a first record and a summary per reason, got " + refusals.size()
                + " records");
        long counted = 0;
        for (AuditRecord r : refusals) {
            JsonNode detail = JSON.readTree(r.detailJson());
            assertTrue(detail.has("count"), "every refusal record carries its count: " + r.detailJson());
            assertTrue(r.detailJson().length() < 400, "records stay small: " + r.detailJson());
            counted += detail.get("count").asLong();
        }
        assertEquals(requests, counted, "the counts add up to the refused requests: " + refusals);
        VerificationReport report = AuditVerifier.verify(db, Optional.of(key));
        assertTrue(report.intact(), report.summary());
    }

    /**
     * The nonce endpoint's refusals were keyed by a prefix of the AK id the client sent: one client sending made-up
     * ids filled the 1024-key table (and wrote 1024 full records a minute). Every id nobody enrolled is one key now,
     * and the ids, which the client chooses, reach the log escaped: a terminal showing it is not painted, and an id
     * that is valid JSON but not valid Unicode is a refusal like any other rather than a lost record and a 500.
     */
    @Test
    void nonceRequestsForMadeUpAkIds_fromOneClient_areOneKey_andTheIdsAreEscaped(@TempDir Path dir)
            throws Exception {
        int requests = 1500;
        java.security.PublicKey key;
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir)
                .adminToken("an-admin-token-for-this-test").start()) {
            key = server.resultVerificationKey();
            javax.net.ssl.SSLSocketFactory sockets = pinned(server);
            for (int i = 0; i < requests; i++) {
                // JSON escapes: ESC [2J clears a terminal, U+202E reverses the text, a lone surrogate is no Unicode.
                String akId = switch (i % 500) {
                    case 0 -> "\\u001b[2J\\u202eDEVRESAP-" + i;
                    case 1 -> "000b\\ud800" + i;
                    default -> "000b" + String.format("%08x", i) + "0".repeat(56); // each its own 20-char prefix
                };
                HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + "/v1/nonces").openConnection();
                c.setSSLSocketFactory(sockets);
                c.setHostnameVerifier((host, session) -> true); // trust is pinned to the server's certificate
                c.setRequestMethod("POST");
                c.setDoOutput(true);
                byte[] body = ("{\"akId\":\"" + akId + "\"}").getBytes(java.nio.charset.StandardCharsets.UTF_8);
                c.setFixedLengthStreamingMode(body.length);
                c.setRequestProperty("Content-Type", "application/json");
                try (java.io.OutputStream out = c.getOutputStream()) {
                    out.write(body);
                }
                int status = c.getResponseCode();
                String answer;
                try (InputStream err = c.getErrorStream()) {
                    answer = err == null ? "" : new String(err.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
                }
                assertEquals(404, status, "request " + i + " for AK id " + akId + ": " + answer);
            }
        }
        Path db = dir.resolve("audit.db");
        List<AuditRecord> refusals;
        try (AuditReader reader = AuditReader.open(db)) {
            refusals = reader.records(1, AuditReader.MAX_PAGE).stream()
                    .filter(r -> r.outcome().equals("NONCE_REFUSED")).toList();
        }
        assertTrue(refusals.size() <= 2, "one first record and one summary for all made-up ids, got "
                + refusals.size() + " records, the first: " + refusals.subList(0, Math.min(3, refusals.size())));
        long counted = 0;
        for (AuditRecord r : refusals) {
            assertTrue(r.subject().codePoints().noneMatch(c -> c < 0x20 || c == 0x7f || c == 0x202e),
                    "the subject is escaped: " + r.subject());
            assertTrue(r.detailJson().codePoints().noneMatch(c -> c == 0x1b || c == 0x202e),
                    "the detail is escaped: " + r.detailJson());
            counted += JSON.readTree(r.detailJson()).get("count").asLong();
        }
        assertEquals("ak:\\x1b[2J\\u{202E}DEVRESAP-0", refusals.get(0).subject(), "the first record's subject");
        assertEquals("ak:(unenrolled) from 127.0.0.1", refusals.get(refusals.size() - 1).subject(),
                "the summary's subject");
        assertEquals(requests, counted, "the counts add up to the refused requests: " + refusals);
        VerificationReport report = AuditVerifier.verify(db, Optional.of(key));
        assertTrue(report.intact(), report.summary());
    }

    /**
     * Review of the issue-12 fixes, finding 1: {@code POST /v1/device-certificates} naming an ENROLLED AK (AK ids are
     * public: passports and results carry them) wrote one audit record per NONCE or CERTIFY refusal, although nothing
     * is authenticated before the certify signature verifies: anyone could grow the log by a record a request. Only
     * AKs nobody enrolled were counted. Now these refusals are counted per client, check and AK.
     */
    @Test
    void junkDeviceCertificateRequestsForAnEnrolledAk_leaveAFewRecordsWhoseCountsAddUp(@TempDir Path dir)
            throws Exception {
        int requests = 150;
        String akId = "000b" + "c0ffee".repeat(10) + "0123"; // a SHA-256 AK name, as the registry holds it
        try (io.tpmphone.server.internal.Registry registry = io.tpmphone.server.internal.Registry.open(
                dir.resolve("registry.db"), java.time.Clock.systemUTC())) {
            registry.enroll(new io.tpmphone.server.internal.Registry.Host("victim",
                    java.util.HexFormat.of().parseHex("000b" + "e1".repeat(32)), new byte[] {1}, new byte[] {2},
                    java.util.HexFormat.of().parseHex(akId), new byte[] {3}, "2025-01-31T12:00:00Z"));
        }
        java.security.PublicKey key;
        java.security.SecureRandom random = new java.security.SecureRandom();
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir)
                .adminToken("an-admin-token-for-this-test").start()) {
            key = server.resultVerificationKey();
            javax.net.ssl.SSLSocketFactory sockets = pinned(server);
            java.util.Base64.Encoder b64 = java.util.Base64.getEncoder();
            for (int i = 0; i < requests; i++) {
                byte[] nonce = new byte[32];
                random.nextBytes(nonce);
                byte[] junk = new byte[16 + i];
                random.nextBytes(junk);
                String body = "{\"akId\":\"" + akId + "\",\"nonce\":\"" + java.util.HexFormat.of().formatHex(nonce)
                        + "\",\"tikPublic\":\"" + b64.encodeToString(junk) + "\",\"certifyInfo\":\""
                        + b64.encodeToString(junk) + "\",\"signature\":\"" + b64.encodeToString(junk) + "\"}";
                Answer answer = post(server, sockets, "/v1/device-certificates", body);
                assertEquals(403, answer.status(), "request " + i + ": " + answer.body());
                assertEquals("NONCE", JSON.readTree(answer.body()).path("check").asText(),
                        "request " + i + " is refused at its nonce: " + answer.body());
            }
        }
        Path db = dir.resolve("audit.db");
        List<AuditRecord> refusals;
        try (AuditReader reader = AuditReader.open(db)) {
            refusals = reader.records(1, AuditReader.MAX_PAGE).stream()
                    .filter(r -> r.outcome().equals("DEVICE_CERTIFICATE_REFUSED")).toList();
        }
        assertTrue(refusals.size() <= 2, "one first record and one summary for the AK's NONCE refusals from this"
                + " client, got " + refusals.size() + " records, the first: "
                + refusals.subList(0, Math.min(3, refusals.size())));
        long counted = 0;
        for (AuditRecord r : refusals) {
            counted += JSON.readTree(r.detailJson()).get("count").asLong();
        }
        String subject = "ak:" + akId.substring(0, 20) + "…";
        assertEquals(subject, refusals.get(0).subject(), "the first record names the AK: " + refusals.get(0));
        assertEquals("NONCE", JSON.readTree(refusals.get(0).detailJson()).path("check").asText(),
                refusals.get(0).detailJson());
        assertEquals(subject + " from 127.0.0.1", refusals.get(refusals.size() - 1).subject(),
                "the summary's subject");
        assertEquals(requests, counted, "the counts add up to the refused requests: " + refusals);
        VerificationReport report = AuditVerifier.verify(db, Optional.of(key));
        assertTrue(report.intact(), report.summary());
    }

    private record Answer(int status, String body) {
    }

    private static Answer post(AttestationServer server, javax.net.ssl.SSLSocketFactory sockets, String path,
                               String json) throws Exception {
        HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + path).openConnection();
        c.setSSLSocketFactory(sockets);
        c.setHostnameVerifier((host, session) -> true); // trust is pinned to the server's certificate
        c.setRequestMethod("POST");
        c.setDoOutput(true);
        byte[] body = json.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        c.setFixedLengthStreamingMode(body.length);
        c.setRequestProperty("Content-Type", "application/json");
        try (java.io.OutputStream out = c.getOutputStream()) {
            out.write(body);
        }
        int status = c.getResponseCode();
        try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
            return new Answer(status, in == null ? "" : new String(in.readAllBytes(),
                    java.nio.charset.StandardCharsets.UTF_8));
        }
    }

    private static javax.net.ssl.SSLSocketFactory pinned(AttestationServer server) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, tmf.getTrustManagers(), null);
        return tls.getSocketFactory();
    }
}
