package io.tpmphone.agent;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * HTTPS client of the attestation server's {@code /v1} API. Trusts exactly one server certificate (pinned), not the
 * JDK's CA set. Every request has a timeout. Thread-safe; reuse one instance (keep-alive connections).
 */
public final class AttestationClient {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final URI base;
    private final HttpClient http;
    private final Duration timeout;

    public AttestationClient(URI server, X509Certificate pinnedServerCertificate, Duration timeout)
            throws GeneralSecurityException {
        this.base = Objects.requireNonNull(server, "server");
        this.timeout = Objects.requireNonNull(timeout, "timeout");
        KeyStore trust = KeyStore.getInstance("PKCS12");
        try {
            trust.load(null, null);
        } catch (IOException e) {
            throw new GeneralSecurityException("cannot create an in-memory trust store", e);
        }
        trust.setCertificateEntry("attestation-server", pinnedServerCertificate);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLSv1.3");
        tls.init(null, tmf.getTrustManagers(), null);
        this.http = HttpClient.newBuilder().sslContext(tls).connectTimeout(timeout)
                .version(HttpClient.Version.HTTP_1_1).build();
    }

    public URI server() {
        return base;
    }

    /** POST a JSON object; returns the response object or throws with the server's error and check. */
    public JsonNode post(String path, Map<String, ?> body, String adminToken) throws AttestationClientException {
        try {
            return send(HttpRequest.newBuilder(base.resolve(path)).timeout(timeout)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))), adminToken, path);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("cannot serialize request to " + path, e);
        }
    }

    /** PUT a raw JSON document (e.g. a policy). */
    public JsonNode put(String path, String json, String adminToken) throws AttestationClientException {
        return send(HttpRequest.newBuilder(base.resolve(path)).timeout(timeout)
                .header("Content-Type", "application/json").PUT(HttpRequest.BodyPublishers.ofString(json)),
                adminToken, path);
    }

    public JsonNode get(String path, String adminToken) throws AttestationClientException {
        return send(HttpRequest.newBuilder(base.resolve(path)).timeout(timeout).GET(), adminToken, path);
    }

    /** The JDK's HTTP client reports a refused connection and an unknown host as a ConnectException without text. */
    private String reason(IOException e) {
        if (e.getMessage() != null && !e.getMessage().isBlank()) {
            return e.getMessage();
        }
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof java.nio.channels.UnresolvedAddressException) {
                return "unknown host " + base.getHost();
            }
        }
        return e instanceof java.net.ConnectException ? "connection refused" : e.getClass().getSimpleName();
    }

    private JsonNode send(HttpRequest.Builder request, String adminToken, String path)
            throws AttestationClientException {
        if (adminToken != null) {
            request.header("Authorization", "Bearer " + adminToken);
        }
        HttpResponse<String> response;
        try {
            response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new AttestationClientException(0, "unreachable", null, "attestation server " + base
                    + " unreachable for " + path + ": " + reason(e), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AttestationClientException(0, "interrupted", null, "interrupted calling " + path, e);
        }
        JsonNode body;
        try {
            body = JSON.readTree(response.body());
        } catch (IOException e) {
            throw new AttestationClientException(response.statusCode(), "bad_response", null, "the server answered "
                    + path + " with " + response.statusCode() + " and no JSON", e);
        }
        if (response.statusCode() != 200) {
            JsonNode serverTime = body.path("serverTime");
            throw new AttestationClientException(response.statusCode(), body.path("error").asText("error"),
                    body.hasNonNull("check") ? body.get("check").asText() : null,
                    serverTime.isIntegralNumber() && serverTime.canConvertToLong()
                            ? java.time.Instant.ofEpochMilli(serverTime.asLong()) : null,
                    path + " refused (" + response.statusCode() + "): " + body.path("message").asText(), null);
        }
        return body;
    }
}
