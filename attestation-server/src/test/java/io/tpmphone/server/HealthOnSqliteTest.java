package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code GET /health} on the embedded default (SQLite): 200 while the server runs, without the admin token; the
 * metrics port serves nothing unless asked for. PostgreSQL stopped and resumed: {@code TwoServersOnPostgresIT}.
 */
@Timeout(120)
class HealthOnSqliteTest {
    @TempDir
    Path dir;

    @Test
    void aRunningServer_isHealthy_withoutAnyToken_andHasNoMetricsPortUnlessGiven() throws Exception {
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir)
                .adminToken("an-admin-token-for-this-test").start()) {
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            trust.setCertificateEntry("server", server.tlsCertificate());
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext tls = SSLContext.getInstance("TLS");
            tls.init(null, tmf.getTrustManagers(), null);
            HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + "/health").openConnection();
            c.setSSLSocketFactory(tls.getSocketFactory());
            c.setHostnameVerifier((host, session) -> true); // trust is pinned to the server's certificate
            c.setConnectTimeout(10_000);
            c.setReadTimeout(30_000);
            assertEquals(200, c.getResponseCode(), "GET /health on SQLite");
            try (InputStream in = c.getInputStream()) {
                String body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(body.contains("\"status\":\"ok\""), "says ok: " + body);
            }
            assertTrue(server.metricsUri().isEmpty(), "no metrics port unless one is given: " + server.metricsUri());
        }
    }
}
