package io.tpmphone.server.internal;

import io.tpmphone.attestation.UntrustedText;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The versioned HTTP API ({@code /v1/...}) as one Jetty core handler with a small router. Bodies are JSON of at
 * most 1 MiB with a Content-Length; every refusal is a JSON object {@code {error, check, message}}. Admin routes need
 * {@code Authorization: Bearer <admin token>}: 401 without it, 403 with a wrong one, both audited through the
 * {@link RefusalAggregator} (the first per source and reason at once, then a count per window).
 */
public final class HttpApi extends Handler.Abstract {
    private static final Logger LOG = LoggerFactory.getLogger(HttpApi.class);
    public static final int MAX_BODY = 1 << 20;

    /** One route's work: returns the JSON response body (status 200) or throws an ApiException. */
    @FunctionalInterface
    public interface Endpoint {
        Object handle(Call call) throws Exception;
    }

    /** What an endpoint sees of a request. */
    public record Call(String method, String path, List<String> pathParameters, Map<String, String> query,
                       String body, String remoteAddress, String adminUser) {
        /** A query parameter as a long within bounds, or the default. */
        public long longParameter(String name, long defaultValue, long min, long max) throws ApiException {
            String v = query.get(name);
            if (v == null) {
                return defaultValue;
            }
            try {
                long n = Long.parseLong(v);
                if (n < min || n > max) {
                    throw ApiException.badRequest(name + " must be " + min + ".." + max + ", got " + n);
                }
                return n;
            } catch (NumberFormatException e) {
                throw ApiException.badRequest(name + " is not a number: " + v);
            }
        }

        /** A query parameter as an int within bounds, or the default. */
        public int intParameter(String name, int defaultValue, int min, int max) throws ApiException {
            String v = query.get(name);
            if (v == null) {
                return defaultValue;
            }
            try {
                int n = Integer.parseInt(v);
                if (n < min || n > max) {
                    throw ApiException.badRequest(name + " must be " + min + ".." + max + ", got " + n);
                }
                return n;
            } catch (NumberFormatException e) {
                throw ApiException.badRequest(name + " is not a number: " + v);
            }
        }
    }

    /** A response body that is not JSON: sent as it is, with its content type. */
    public record RawBody(String contentType, String text) {
    }

    /** Who may call a route. */
    public enum Access {
        /** Anyone (hosts: enrollment, nonces, appraisals). */
        ANYONE,
        /** The admin token only. */
        ADMIN,
        /** The admin token or the read-only auditor credential: reading audit data, never changing anything. */
        AUDIT_READER
    }

    private record Route(String method, Pattern path, Access access, Endpoint endpoint) {
    }

    private final List<Route> routes = new ArrayList<>();
    private final byte[] adminTokenSha256;
    private final byte[] auditorTokenSha256;
    private final RefusalAggregator refusals;

    /**
     * @param refusals records refused admin calls, rate-limited: anyone can send them, so each is not a record
     */
    public HttpApi(byte[] adminTokenSha256, RefusalAggregator refusals) {
        this(adminTokenSha256, null, refusals);
    }

    /**
     * @param auditorTokenSha256 SHA-256 of the read-only auditor credential (docs/console.md), or null without one
     * @param refusals           records refused admin calls, rate-limited: anyone can send them
     */
    public HttpApi(byte[] adminTokenSha256, byte[] auditorTokenSha256, RefusalAggregator refusals) {
        this.adminTokenSha256 = adminTokenSha256.clone();
        this.auditorTokenSha256 = auditorTokenSha256 == null ? null : auditorTokenSha256.clone();
        this.refusals = refusals;
    }

    /** The routes served, each as {@code METHOD path-regex} (for checking the API description against them). */
    public List<String> routes() {
        return routes.stream().map(r -> r.method() + " " + r.path().pattern()).toList();
    }

    /** Adds a route; {@code path} is a regex whose groups become path parameters. */
    public HttpApi route(String method, String path, boolean admin, Endpoint endpoint) {
        return route(method, path, admin ? Access.ADMIN : Access.ANYONE, endpoint);
    }

    /** Adds a route that {@code access} may call; {@link Call#adminUser()} names who did ("admin", "auditor"). */
    public HttpApi route(String method, String path, Access access, Endpoint endpoint) {
        routes.add(new Route(method, Pattern.compile(path), access, endpoint));
        return this;
    }

    @Override
    public boolean handle(Request request, Response response, Callback callback) {
        String path = Request.getPathInContext(request);
        String method = request.getMethod();
        int status = 200;
        Object body;
        try {
            body = dispatch(request, method, path);
        } catch (ApiException e) {
            status = e.status();
            Map<String, Object> refusal = error(e.error(), e.check(), e.getMessage());
            refusal.putAll(e.fields());
            body = refusal;
        } catch (StorageUnavailableException e) {
            // Nothing was decided; the client retries (another instance, on a shared database).
            LOG.warn("{} {}: {}", UntrustedText.forTerminal(method, 20), UntrustedText.forTerminal(path, 200),
                    e.getMessage());
            status = 503;
            body = error("storage_unavailable", null, "the server's database is unavailable; retry shortly");
        } catch (Exception e) {
            LOG.error("{} {} failed", UntrustedText.forTerminal(method, 20), UntrustedText.forTerminal(path, 200), e);
            status = 500;
            body = error("internal_error", null, "the server failed to handle this request; see its log");
        }
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, body instanceof RawBody raw ? raw.contentType()
                : "application/json");
        response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-store");
        Content.Sink.write(response, true, body instanceof RawBody raw ? raw.text()
                : body instanceof String s ? s : Json.write(body), callback);
        return true;
    }

    private Object dispatch(Request request, String method, String path) throws Exception {
        boolean pathMatched = false;
        for (Route route : routes) {
            Matcher m = route.path().matcher(path);
            if (!m.matches()) {
                continue;
            }
            pathMatched = true;
            if (!route.method().equals(method)) {
                continue;
            }
            String remote = Request.getRemoteAddr(request);
            String admin = route.access() == Access.ANYONE ? null
                    : authenticate(request, method, path, remote, route.access() == Access.AUDIT_READER);
            List<String> params = new ArrayList<>();
            for (int i = 1; i <= m.groupCount(); i++) {
                params.add(m.group(i));
            }
            String body = method.equals("GET") ? "" : readBody(request);
            return route.endpoint().handle(new Call(method, path, params, query(request), body, remote, admin));
        }
        if (pathMatched) {
            throw new ApiException(405, "method_not_allowed", method + " is not allowed on " + path);
        }
        throw new ApiException(404, "not_found", "no such resource: " + path + " (see /v1/openapi.json)");
    }

    private String authenticate(Request request, String method, String path, String remote, boolean auditorToo)
            throws ApiException {
        String which = auditorToo ? "the admin or the auditor credential" : "the admin credential";
        String header = request.getHeaders().get(HttpHeader.AUTHORIZATION);
        if (header == null || !header.startsWith("Bearer ")) {
            refuseAdmin(remote, method, path, "no admin credential");
            throw new ApiException(401, "unauthenticated", "this operation needs " + which
                    + ": Authorization: Bearer <token>");
        }
        byte[] presented = sha256(header.substring("Bearer ".length()).trim().getBytes(StandardCharsets.UTF_8));
        // Both compared in constant time, whichever matches: the time does not say which credential was close.
        boolean admin = MessageDigest.isEqual(presented, adminTokenSha256);
        boolean auditor = auditorTokenSha256 != null && MessageDigest.isEqual(presented, auditorTokenSha256);
        if (admin) {
            return "admin";
        }
        if (auditor && auditorToo) {
            return "auditor";
        }
        refuseAdmin(remote, method, path, auditor ? "auditor credential on an admin operation"
                : "wrong admin credential");
        throw new ApiException(403, "forbidden", auditor ? "the auditor credential only reads audit data; this"
                + " operation needs the admin credential" : "the credential is not valid for " + which);
    }

    private void refuseAdmin(String remote, String method, String path, String why) throws ApiException {
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("request", method + " " + path);
        detail.put("remote", remote);
        detail.put("reason", why);
        refusals.refuse("ADMIN_REFUSED", remote, why, detail);
    }

    private static String readBody(Request request) throws Exception {
        long length = request.getLength();
        if (length < 0) {
            throw new ApiException(411, "length_required", "send a Content-Length (at most " + MAX_BODY + " bytes)");
        }
        if (length > MAX_BODY) {
            throw new ApiException(413, "too_large", "request body of " + length + " bytes exceeds " + MAX_BODY);
        }
        try {
            return RequestBodies.utf8(request);
        } catch (java.nio.charset.CharacterCodingException e) {
            // A client error, not the server's (found by HttpApiFuzzTest: it was a 500 with a stack trace at ERROR,
            // which any client could have the server log).
            throw ApiException.badRequest("the request body is not valid UTF-8 (JSON text is UTF-8, RFC 8259 §8.1)");
        } catch (java.io.IOException e) {
            // The client went away or was cut off mid-body (a too-slow body, RequestDeadlines): nobody to answer, and
            // nothing for the server's log at ERROR, which any client could otherwise fill.
            throw ApiException.badRequest("the request body could not be read to its end: " + e.getClass()
                    .getSimpleName());
        }
    }

    private static Map<String, String> query(Request request) throws ApiException {
        String q = request.getHttpURI().getQuery();
        Map<String, String> m = new LinkedHashMap<>();
        if (q == null || q.isEmpty()) {
            return m;
        }
        for (String pair : q.split("&")) {
            int eq = pair.indexOf('=');
            String k;
            String v;
            try {
                k = java.net.URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
                v = eq < 0 ? "" : java.net.URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                // e.g. "%5": a client error, not the server's (found by HttpApiFuzzTest: it was a 500)
                throw ApiException.badRequest("the query is not URL-encoded: " + e.getMessage());
            }
            if (m.put(k, v) != null) {
                throw ApiException.badRequest("query parameter '" + k + "' given twice");
            }
        }
        return m;
    }

    static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JRE", e);
        }
    }

    private static Map<String, Object> error(String error, String check, String message) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("error", error);
        if (check != null) {
            m.put("check", check);
        }
        m.put("message", message);
        return m;
    }
}
