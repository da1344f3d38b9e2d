package io.tpmphone.agent;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.UntrustedText;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * HTTPS client of the attestation server's {@code /v1} API, over one server or several instances of one cluster.
 *
 * <p><b>Trust.</b> Either one pinned server certificate, or the certificates of a private CA that issues every
 * instance's certificate ({@link Builder#trustedCa}); never the JDK's CA set. The JDK's HTTP client checks the URL's host
 * name or IP address against the certificate's subject alternative names in both cases. When a CA is trusted, a
 * server certificate must carry a subject alternative name of the URL's kind (a DNS name, or an IP address): the
 * common name is never taken for the host name.
 *
 * <p><b>Failover.</b> With several servers, requests go to one chosen by a stable hash of
 * {@link Builder#preferenceKey} (the host name), so the hosts of a fleet spread over the instances. When a request to
 * one fails — no connection, a timeout, or a 5xx answer — the client moves to the next server after a jittered
 * exponential back-off, and stays there. A 4xx answer is a verdict, never a reason to ask another instance: it is
 * thrown at once. At most two rounds over the list are tried per request. With one server a failure is thrown at
 * once, as before.
 *
 * <p><b>Requests that must not run twice</b> ({@link #postOnce}: an enrollment, which spends a single-use token, and
 * its activation) go to another instance only when the first could not be connected to, so the request never left
 * this host. If the request was sent and no answer (or a 5xx) came back, the instance may have carried it out: the
 * failure is thrown, and the client moves to the next instance for the caller's next attempt. A new attempt with the
 * same enrollment token is then refused if the first one was carried out; the operator issues a new token.
 *
 * <p><b>Keep-alive.</b> Connections are kept between requests (an agent's cycles reuse one TLS session instead of
 * a handshake each) for at most {@link #KEEP_ALIVE}, which is shorter than the server's idle timeout
 * ({@code AttestationServer.CONNECTION_IDLE_TIMEOUT}): the client always drops an idle connection before the server
 * does, so a request is never written to a connection the server has just closed (that request would fail with
 * "header parser received no bytes" and, being a POST, could not be repeated safely). The JDK's HTTP client reads
 * this limit once per JVM from the system property {@value #KEEP_ALIVE_PROPERTY}, when its first client is made;
 * loading this class sets it unless it is set already ({@link #keepAliveConfigured()}).
 *
 * <p>Every request has a timeout. Thread-safe; reuse one instance (keep-alive connections).
 */
public final class AttestationClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Logger LOG = LoggerFactory.getLogger(AttestationClient.class);

    /** The JDK HTTP client's limit on a pooled connection's idle time, in seconds (JDK default 1200). */
    public static final String KEEP_ALIVE_PROPERTY = "jdk.httpclient.keepalive.timeout";
    /**
     * How long an idle connection is kept: longer than the agents' default interval (60 s) and the fleet's 30 s, so
     * cycles reuse it, and 30 s shorter than the server's idle timeout, so the client closes it first.
     */
    public static final Duration KEEP_ALIVE = Duration.ofSeconds(90);

    static {
        keepAliveConfigured();
    }

    /**
     * Sets {@value #KEEP_ALIVE_PROPERTY} to {@link #KEEP_ALIVE} unless it is set (an operator's {@code -D} wins);
     * returns the value in force. Call before the JVM's first {@link HttpClient} is built (this class's loading does);
     * a client built earlier fixed the JDK's default of 1200 s for the whole JVM.
     */
    public static synchronized Duration keepAliveConfigured() {
        String set = System.getProperty(KEEP_ALIVE_PROPERTY);
        if (set == null) {
            System.setProperty(KEEP_ALIVE_PROPERTY, Long.toString(KEEP_ALIVE.toSeconds()));
            return KEEP_ALIVE;
        }
        try {
            return Duration.ofSeconds(Long.parseLong(set.trim()));
        } catch (NumberFormatException e) {
            return Duration.ofSeconds(1200); // the JDK ignores a value it cannot read
        }
    }

    /** Default first back-off after a failed server; doubled per failure, up to {@link #DEFAULT_MAX_BACKOFF}. */
    public static final Duration DEFAULT_INITIAL_BACKOFF = Duration.ofMillis(200);
    public static final Duration DEFAULT_MAX_BACKOFF = Duration.ofSeconds(5);

    private final List<URI> servers;
    private final AtomicInteger current;
    private final HttpClient http;
    private final Duration timeout;
    private final Duration initialBackoff;
    private final Duration maxBackoff;

    /** One server, pinned to its certificate (the form before failover). */
    public AttestationClient(URI server, X509Certificate pinnedServerCertificate, Duration timeout)
            throws GeneralSecurityException {
        this(builder().servers(List.of(Objects.requireNonNull(server, "server")))
                .pinnedCertificate(pinnedServerCertificate).timeout(timeout));
    }

    private AttestationClient(Builder b) throws GeneralSecurityException {
        if (b.servers.isEmpty()) {
            throw new IllegalArgumentException("no attestation server: give at least one URL");
        }
        if (b.trusted.isEmpty()) {
            throw new IllegalArgumentException("no trust for the attestation server: pin its certificate or trust"
                    + " the CA that issues its instances' certificates");
        }
        this.servers = List.copyOf(b.servers);
        this.timeout = Objects.requireNonNull(b.timeout, "timeout");
        this.initialBackoff = b.initialBackoff;
        this.maxBackoff = b.maxBackoff;
        this.current = new AtomicInteger(startIndex(b.preferenceKey, servers.size()));
        KeyStore trust = KeyStore.getInstance("PKCS12");
        try {
            trust.load(null, null);
        } catch (IOException e) {
            throw new GeneralSecurityException("cannot create an in-memory trust store", e);
        }
        int i = 0;
        for (X509Certificate c : b.trusted) {
            trust.setCertificateEntry("attestation-server-" + i++, c);
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        javax.net.ssl.TrustManager[] managers = tmf.getTrustManagers();
        if (b.ca) {
            // The JDK's host-name check falls back to the subject's CN when a certificate has no DNS name in its SAN;
            // a CA that issues many certificates must not make a SAN-less one valid for the name in its CN.
            managers = new javax.net.ssl.TrustManager[] {new SubjectAltNameTrustManager(only(managers))};
        }
        SSLContext tls = SSLContext.getInstance("TLSv1.3");
        tls.init(null, managers, null);
        this.http = HttpClient.newBuilder().sslContext(tls).connectTimeout(timeout)
                .version(HttpClient.Version.HTTP_1_1).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    private static javax.net.ssl.X509ExtendedTrustManager only(javax.net.ssl.TrustManager[] managers)
            throws GeneralSecurityException {
        for (javax.net.ssl.TrustManager m : managers) {
            if (m instanceof javax.net.ssl.X509ExtendedTrustManager x) {
                return x;
            }
        }
        throw new GeneralSecurityException("the JDK offers no X.509 trust manager");
    }

    /** How a client is made: its servers, what it trusts, its timeouts. Not thread-safe; build once. */
    public static final class Builder {
        private final List<URI> servers = new ArrayList<>();
        private final List<X509Certificate> trusted = new ArrayList<>();
        private Duration timeout = Duration.ofSeconds(15);
        private String preferenceKey = "";
        private Duration initialBackoff = DEFAULT_INITIAL_BACKOFF;
        private Duration maxBackoff = DEFAULT_MAX_BACKOFF;
        private boolean pinned;
        private boolean ca;

        private Builder() {
        }

        /** The instances of one attestation service, all https. */
        public Builder servers(List<URI> urls) {
            for (URI u : urls) {
                if (!"https".equalsIgnoreCase(Objects.requireNonNull(u, "server").getScheme())) {
                    throw new IllegalArgumentException("the attestation server URL must be https://…, got " + u);
                }
                if (servers.contains(u)) {
                    throw new IllegalArgumentException("the attestation server " + u + " is listed twice");
                }
                servers.add(u);
            }
            return this;
        }

        /** Trusts exactly this certificate (the server's own, self-signed); not with {@link #trustedCa}. */
        public Builder pinnedCertificate(X509Certificate certificate) {
            if (ca) {
                throw new IllegalArgumentException("pin a server certificate or trust a CA, not both");
            }
            pinned = true;
            trusted.add(Objects.requireNonNull(certificate, "certificate"));
            return this;
        }

        /**
         * Trusts the certificates this private CA issues (each instance's own, for the names in its SAN); not with
         * {@link #pinnedCertificate}.
         *
         * @throws IllegalArgumentException if a certificate is not a CA certificate
         */
        public Builder trustedCa(List<X509Certificate> caCertificates) {
            if (pinned) {
                throw new IllegalArgumentException("pin a server certificate or trust a CA, not both");
            }
            for (X509Certificate c : caCertificates) {
                if (c.getBasicConstraints() < 0) {
                    throw new IllegalArgumentException("the certificate for " + c.getSubjectX500Principal()
                            + " is not a CA certificate (no basicConstraints CA:true): give the CA that issues the"
                            + " servers' certificates, or pin a server certificate instead");
                }
                trusted.add(c);
            }
            ca = true;
            return this;
        }

        /** Time for one request to one server (connecting included). */
        public Builder timeout(Duration t) {
            this.timeout = Objects.requireNonNull(t, "timeout");
            return this;
        }

        /** What chooses the first server (this host's name): the same key always starts at the same server. */
        public Builder preferenceKey(String key) {
            this.preferenceKey = Objects.requireNonNull(key, "key");
            return this;
        }

        /** The back-off after the first failure, and the most it grows to. */
        public Builder backoff(Duration initial, Duration max) {
            if (initial.isNegative() || max.compareTo(initial) < 0) {
                throw new IllegalArgumentException("back-off must be 0 <= initial <= max, got " + initial + ", "
                        + max);
            }
            this.initialBackoff = initial;
            this.maxBackoff = max;
            return this;
        }

        public AttestationClient build() throws GeneralSecurityException {
            return new AttestationClient(this);
        }
    }

    /**
     * The index of the first server for {@code key} among {@code n}: the first four bytes of SHA-256 of its UTF-8,
     * modulo {@code n}. Stable across runs and JVMs.
     */
    public static int startIndex(String key, int n) {
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8));
            int v = ((h[0] & 0xff) << 24) | ((h[1] & 0xff) << 16) | ((h[2] & 0xff) << 8) | (h[3] & 0xff);
            return Math.floorMod(v, n);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * The wait before the attempt after {@code failures} failures: {@code min(max, initial·2^(failures-1))}, of which
     * a random half is taken off ("equal jitter"), so agents that lost the same instance do not all arrive at once.
     */
    static Duration backoff(int failures, Duration initial, Duration max, double random) {
        long base = initial.toMillis();
        for (int i = 1; i < failures && base < max.toMillis(); i++) {
            base *= 2;
        }
        base = Math.min(base, max.toMillis());
        return Duration.ofMillis(base / 2 + (long) (random * (base - base / 2)));
    }

    /** The server requests go to now. */
    public URI server() {
        return servers.get(current.get());
    }

    /** Every server, in the order given. */
    public List<URI> servers() {
        return servers;
    }

    /** POST a JSON object; returns the response object or throws with the server's error and check. */
    public JsonNode post(String path, Map<String, ?> body, String adminToken) throws AttestationClientException {
        String json;
        try {
            json = JSON.writeValueAsString(body);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("cannot serialize request to " + path, e);
        }
        return send(base -> HttpRequest.newBuilder(base.resolve(path)).timeout(timeout)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)),
                adminToken, path, true);
    }

    /**
     * POST a request that must not be carried out twice (an enrollment, its activation): another instance is tried
     * only if this one could not be connected to. After a sent request failed without a verdict the failure is
     * thrown (its {@link AttestationClientException#error()} is {@code no_answer} or the server's), and the next
     * request goes to the next instance.
     */
    public JsonNode postOnce(String path, Map<String, ?> body, String adminToken)
            throws AttestationClientException {
        String json;
        try {
            json = JSON.writeValueAsString(body);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("cannot serialize request to " + path, e);
        }
        return send(base -> HttpRequest.newBuilder(base.resolve(path)).timeout(timeout)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)),
                adminToken, path, false);
    }

    /** PUT a raw JSON document (e.g. a policy). */
    public JsonNode put(String path, String json, String adminToken) throws AttestationClientException {
        return send(base -> HttpRequest.newBuilder(base.resolve(path)).timeout(timeout)
                .header("Content-Type", "application/json").PUT(HttpRequest.BodyPublishers.ofString(json)),
                adminToken, path, true);
    }

    public JsonNode get(String path, String adminToken) throws AttestationClientException {
        return send(base -> HttpRequest.newBuilder(base.resolve(path)).timeout(timeout).GET(), adminToken, path,
                true);
    }

    /** The JDK's HTTP client reports a refused connection and an unknown host as a ConnectException without text. */
    private static String reason(URI base, IOException e) {
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

    private JsonNode send(Function<URI, HttpRequest.Builder> request, String adminToken, String path,
                          boolean repeatable) throws AttestationClientException {
        int attempts = servers.size() == 1 ? 1 : 2 * servers.size();
        AttestationClientException last = null;
        List<String> failures = new ArrayList<>();
        for (int attempt = 1; attempt <= attempts; attempt++) {
            int index = current.get();
            URI base = servers.get(index);
            try {
                return sendOnce(base, request.apply(base), adminToken, path);
            } catch (AttestationClientException e) {
                if (!serverFailed(e)) {
                    throw e; // a verdict, or we were interrupted
                }
                last = e;
                failures.add(base + ": " + e.getMessage());
                int next = (index + 1) % servers.size();
                if (!repeatable && !NOT_SENT.equals(e.error())) {
                    if (servers.size() > 1) {
                        current.compareAndSet(index, next); // the caller's next attempt goes elsewhere
                    }
                    throw e; // the instance may have carried it out: never repeat it elsewhere
                }
                if (attempt == attempts) {
                    break;
                }
                current.compareAndSet(index, next); // another thread may have moved on already
                Duration wait = backoff(attempt, initialBackoff, maxBackoff, ThreadLocalRandom.current().nextDouble());
                LOG.warn("attestation server {} failed ({}); trying {} in {} ms", base,
                        UntrustedText.forTerminal(e.getMessage(), 300), servers.get(current.get()), wait.toMillis());
                try {
                    Thread.sleep(wait.toMillis());
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new AttestationClientException(0, "interrupted", null, "interrupted calling " + path, ie);
                }
            }
        }
        if (servers.size() == 1) {
            throw last;
        }
        throw new AttestationClientException(last.status(), last.error(), last.check().orElse(null),
                "no attestation server answered " + path + " (" + attempts + " attempts): " + String.join("; ",
                        failures), last);
    }

    /** The error of a failure before the request left this host (no connection, no TLS session). */
    static final String NOT_SENT = "unreachable";

    /** Whether the request cannot have reached the server: the connection or its TLS handshake failed. */
    static boolean neverSent(IOException e) {
        return e instanceof java.net.ConnectException || e instanceof java.net.http.HttpConnectTimeoutException
                || e instanceof javax.net.ssl.SSLHandshakeException;
    }

    /** No answer, or a 5xx: the instance failed, not the request; another instance may serve it. */
    static boolean serverFailed(AttestationClientException e) {
        return (e.status() == 0 && !"interrupted".equals(e.error())) || e.status() >= 500;
    }

    private JsonNode sendOnce(URI base, HttpRequest.Builder request, String adminToken, String path)
            throws AttestationClientException {
        if (adminToken != null) {
            request.header("Authorization", "Bearer " + adminToken);
        }
        HttpResponse<String> response;
        try {
            response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            if (neverSent(e)) {
                throw new AttestationClientException(0, NOT_SENT, null, "attestation server " + base
                        + " unreachable for " + path + ": " + reason(base, e), e);
            }
            throw new AttestationClientException(0, "no_answer", null, "attestation server " + base
                    + " did not answer " + path + " (the request was sent): " + reason(base, e), e);
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
