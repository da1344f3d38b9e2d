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
import org.junit.jupiter.api.io.TempDir;

/**
 * Finding 7: unauthenticated requests must not grow the audit log without bound. Before the refusal aggregation,
 * each of these 2,000 requests left a durable record.
 */
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
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            trust.setCertificateEntry("server", server.tlsCertificate());
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext tls = SSLContext.getInstance("TLS");
            tls.init(null, tmf.getTrustManagers(), null);
            javax.net.ssl.SSLSocketFactory sockets = tls.getSocketFactory(); // one instance: connections are reused
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
}
