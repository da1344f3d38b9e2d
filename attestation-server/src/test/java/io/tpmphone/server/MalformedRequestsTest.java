package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Requests the fuzzer found the server answering with 500 (and a stack trace at ERROR, which any client could have it
 * log), sent to a real server over HTTPS: each is a 400 naming what is wrong. The inputs are also kept in
 * {@code HttpApiFuzzTestInputs/request/}.
 */
@Timeout(120)
class MalformedRequestsTest {
    @TempDir
    static Path dir;
    private static AttestationServer server;
    private static SSLSocketFactory sockets;

    @BeforeAll
    static void start() throws Exception {
        server = AttestationServer.builder().stateDirectory(dir).adminToken("an-admin-token-for-this-test").start();
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, tmf.getTrustManagers(), null);
        sockets = tls.getSocketFactory();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private record Answer(int status, String body) {
    }

    private static Answer send(String method, String pathAndQuery, byte[] body) throws Exception {
        HttpsURLConnection c = (HttpsURLConnection) new URL(server.uri() + pathAndQuery).openConnection();
        c.setSSLSocketFactory(sockets);
        c.setHostnameVerifier((host, session) -> true); // trust is pinned to the server's certificate
        c.setRequestMethod(method);
        c.setRequestProperty("Authorization", "Bearer an-admin-token-for-this-test");
        if (body != null) {
            c.setDoOutput(true);
            c.setFixedLengthStreamingMode(body.length);
            c.setRequestProperty("Content-Type", "application/json");
            try (OutputStream out = c.getOutputStream()) {
                out.write(body);
            }
        }
        int status = c.getResponseCode();
        try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
            return new Answer(status, in == null ? "" : new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }

    @Test
    void aBodyThatIsNotUtf8_isA400_notA500() throws Exception {
        byte[] body = "{\"akId\":\"\u00ff\"}".getBytes(StandardCharsets.ISO_8859_1); // 0xff never occurs in UTF-8
        Answer a = send("POST", "/v1/appraisals", body);
        assertEquals(400, a.status(), a.body());
        assertTrue(a.body().contains("not valid UTF-8"), a.body());
    }

    @Test
    void aQueryWithABrokenPercentEscape_isA400_notA500() throws Exception {
        for (String query : new String[] {"?from=1&limit=%5", "?from=%zz", "?%=1"}) {
            Answer a = send("GET", "/v1/audit" + query, null);
            assertEquals(400, a.status(), query + ": " + a.body());
            assertTrue(a.body().contains("not URL-encoded"), a.body());
        }
    }
}
