package io.tpmphone.server.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.server.AttestationServer;
import io.tpmphone.server.audit.AuditRecord;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The console over real HTTPS, without a browser: headers, sign-in and its records, CSRF and origin checks, session
 * ends, escaping of peer-controlled text. (ConsoleBrowserIT in e2e drives the same pages in chromium.)
 */
@Timeout(60)
class ConsoleHttpTest {
    private static final String ADMIN = "an-admin-token-for-the-console-test";
    private static final String AUDITOR = "an-auditor-credential-for-the-test";
    private static final Pattern CSRF = Pattern.compile("name=\"csrf\" value=\"([A-Za-z0-9_-]{43})\"");

    @TempDir
    Path dir;
    private AttestationServer server;
    private HttpClient http;
    private final AtomicReference<Instant> now = new AtomicReference<>(Instant.parse("2026-12-07T10:00:00Z"));

    /** A clock the test moves: session timeouts without waiting. */
    private final Clock clock = new Clock() {
        @Override
        public java.time.ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return now.get();
        }
    };

    @BeforeEach
    void start() throws Exception {
        server = AttestationServer.builder().stateDirectory(dir).adminToken(ADMIN).auditorToken(AUDITOR)
                .consoleSessionTimeouts(Duration.ofMinutes(15), Duration.ofHours(8)).clock(clock)
                .refusalWindow(Duration.ZERO).start();
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", server.tlsCertificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, tmf.getTrustManagers(), null);
        http = HttpClient.newBuilder().sslContext(tls).followRedirects(HttpClient.Redirect.NEVER)
                .connectTimeout(Duration.ofSeconds(10)).build();
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private String origin() {
        return "https://127.0.0.1:" + server.port();
    }

    private HttpResponse<String> get(String path, String cookie) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(origin() + path)).timeout(Duration.ofSeconds(10));
        if (cookie != null) {
            b.header("Cookie", cookie);
        }
        return http.send(b.GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private HttpResponse<String> post(String path, String cookie, String origin, Map<String, String> form)
            throws Exception {
        StringBuilder body = new StringBuilder();
        form.forEach((k, v) -> body.append(body.length() == 0 ? "" : "&").append(k).append('=')
                .append(URLEncoder.encode(v, StandardCharsets.UTF_8)));
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(origin() + path)).timeout(Duration.ofSeconds(10))
                .header("Content-Type", "application/x-www-form-urlencoded");
        if (cookie != null) {
            b.header("Cookie", cookie);
        }
        if (origin != null) {
            b.header("Origin", origin);
        }
        return http.send(b.POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Signs in; returns the Cookie header value to send. */
    private String signIn(String credential) throws Exception {
        HttpResponse<String> r = post("/ui/sign-in", null, origin(), Map.of("credential", credential));
        assertEquals(303, r.statusCode(), "sign-in answered " + r.statusCode() + ": " + r.body());
        String setCookie = r.headers().firstValue("Set-Cookie").orElseThrow();
        return setCookie.substring(0, setCookie.indexOf(';'));
    }

    private static String csrf(String html) {
        Matcher m = CSRF.matcher(html);
        assertTrue(m.find(), "a signed-in page carries the session's CSRF token in its sign-out form: " + html);
        return m.group(1);
    }

    private List<AuditRecord> records() throws Exception {
        try (var reader = io.tpmphone.server.audit.AuditReader.open(dir.resolve("audit.db"))) {
            return reader.records(1, 10_000);
        }
    }

    @Test
    void everyConsoleResponse_carriesTheStrictHeaders() throws Exception {
        String cookie = signIn(ADMIN);
        for (HttpResponse<String> r : List.of(get("/ui/sign-in", null), get("/ui/fleet", null),
                get("/ui/fleet", cookie), get("/ui/no-such-page", cookie), get("/ui/static/console.css", null),
                post("/ui/sign-out", cookie, "https://evil.example", Map.of()))) {
            String what = r.request().method() + " " + r.uri().getPath() + " -> " + r.statusCode();
            var h = r.headers();
            assertEquals("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self';"
                    + " frame-ancestors 'none'; base-uri 'none'; report-uri /ui/csp-report",
                    h.firstValue("Content-Security-Policy").orElse("(none)"), what);
            assertEquals("max-age=31536000", h.firstValue("Strict-Transport-Security").orElse("(none)"), what);
            assertEquals("nosniff", h.firstValue("X-Content-Type-Options").orElse("(none)"), what);
            assertEquals("DENY", h.firstValue("X-Frame-Options").orElse("(none)"), what);
            assertEquals("same-origin", h.firstValue("Referrer-Policy").orElse("(none)"), what);
            assertEquals("no-store", h.firstValue("Cache-Control").orElse("(none)"), what);
            assertFalse(r.body().contains("<script") || r.body().contains(" style=\"") || r.body().contains("<style"),
                    "no inline script or style in " + what);
        }
    }

    @Test
    void signIn_givesAHostOnlySecureHttpOnlyStrictCookie_andIsRecordedWithoutTheToken() throws Exception {
        HttpResponse<String> r = post("/ui/sign-in", null, origin(), Map.of("credential", ADMIN));
        assertEquals(303, r.statusCode(), r.body());
        assertEquals("/ui/fleet", r.headers().firstValue("Location").orElse(""));
        String setCookie = r.headers().firstValue("Set-Cookie").orElseThrow();
        assertTrue(setCookie.matches("__Host-tpmphone-console=[A-Za-z0-9_-]{43}; Path=/; Secure; HttpOnly;"
                + " SameSite=Strict"), "cookie: " + setCookie);
        HttpResponse<String> fleet = get("/ui/fleet", setCookie.substring(0, setCookie.indexOf(';')));
        assertEquals(200, fleet.statusCode(), fleet.body());
        assertTrue(fleet.body().contains("id=\"role\">admin<"), "the page says who is signed in: " + fleet.body());
        List<AuditRecord> log = records();
        assertTrue(log.stream().anyMatch(a -> a.outcome().equals("CONSOLE_SIGN_IN")
                && a.subject().equals("console:admin")), "a sign-in record: " + log);
        assertTrue(log.stream().anyMatch(a -> a.outcome().equals("CONSOLE_VIEW")
                && a.detailJson().contains("\"view\":\"fleet\"")), "a record of the fleet view: " + log);
        assertTrue(log.stream().noneMatch(a -> a.detailJson().contains(ADMIN) || a.subject().contains(ADMIN)),
                "the token is in no record: " + log);
    }

    @Test
    void theAuditorCredential_signsInAsAuditor() throws Exception {
        String cookie = signIn(AUDITOR);
        HttpResponse<String> audit = get("/ui/audit", cookie);
        assertEquals(200, audit.statusCode(), audit.body());
        assertTrue(audit.body().contains("id=\"role\">auditor<"), audit.body());
        assertTrue(records().stream().anyMatch(a -> a.subject().equals("console:auditor")
                && a.outcome().equals("CONSOLE_VIEW")), "the auditor's view is recorded");
    }

    @Test
    void aWrongCredential_isRefusedAndRecorded_andTheSixthFailureIsThrottledUnchecked() throws Exception {
        for (int i = 0; i < 5; i++) {
            HttpResponse<String> r = post("/ui/sign-in", null, origin(), Map.of("credential", "wrong-" + i));
            assertEquals(403, r.statusCode(), "attempt " + i + ": " + r.body());
            assertTrue(r.headers().firstValue("Set-Cookie").isEmpty(), "no cookie for a failed sign-in");
        }
        HttpResponse<String> throttled = post("/ui/sign-in", null, origin(), Map.of("credential", ADMIN));
        assertEquals(429, throttled.statusCode(), "even the right token is not checked while throttled: "
                + throttled.body());
        List<AuditRecord> refused = records().stream().filter(a -> a.outcome().equals("CONSOLE_SIGN_IN_REFUSED"))
                .toList();
        assertEquals(6, refused.size(), "five refusals and the throttled one (window 0: each its own): " + refused);
        assertTrue(refused.stream().noneMatch(a -> a.detailJson().contains("wrong-")), "no credential in " + refused);
        now.set(now.get().plusSeconds(61));
        assertEquals(303, post("/ui/sign-in", null, origin(), Map.of("credential", ADMIN)).statusCode(),
                "a minute later the throttle has let go");
    }

    @Test
    void aFormThatIsNotUtf8_isA400_notA500() throws Exception {
        byte[] form = "credential=\u00ff".getBytes(StandardCharsets.ISO_8859_1); // 0xff never occurs in UTF-8
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(origin() + "/ui/sign-in"))
                .timeout(Duration.ofSeconds(10)).header("Content-Type", "application/x-www-form-urlencoded")
                .header("Origin", origin()).POST(HttpRequest.BodyPublishers.ofByteArray(form)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(400, r.statusCode(), "a sign-in form with the byte 0xff answered: " + r.body());
        assertTrue(r.body().contains("not valid UTF-8"), "the page says why: " + r.body());
    }

    @Test
    void aCrossSitePost_isRefused_andTheSessionSurvivesIt() throws Exception {
        String cookie = signIn(ADMIN);
        String token = csrf(get("/ui/fleet", cookie).body());
        HttpResponse<String> otherOrigin = post("/ui/sign-out", cookie, "https://evil.example", Map.of("csrf", token));
        assertEquals(403, otherOrigin.statusCode(), otherOrigin.body());
        assertTrue(otherOrigin.body().contains("cross-site request refused"), otherOrigin.body());
        HttpResponse<String> noOrigin = post("/ui/sign-out", cookie, null, Map.of("csrf", token));
        assertEquals(403, noOrigin.statusCode(), noOrigin.body());
        HttpResponse<String> nullOrigin = post("/ui/sign-out", cookie, "null", Map.of("csrf", token));
        assertEquals(403, nullOrigin.statusCode(), nullOrigin.body());
        HttpResponse<String> noToken = post("/ui/sign-out", cookie, origin(), Map.of());
        assertEquals(403, noToken.statusCode(), noToken.body());
        HttpResponse<String> otherToken = post("/ui/sign-out", cookie, origin(), Map.of("csrf", "A".repeat(43)));
        assertEquals(403, otherToken.statusCode(), otherToken.body());
        HttpResponse<String> signIn = post("/ui/sign-in", null, "https://evil.example", Map.of("credential", ADMIN));
        assertEquals(403, signIn.statusCode(), "a cross-site sign-in too: " + signIn.body());
        assertEquals(200, get("/ui/fleet", cookie).statusCode(), "the session is still valid");
    }

    @Test
    void afterSignOut_theCookieIsRefused() throws Exception {
        String cookie = signIn(ADMIN);
        String token = csrf(get("/ui/fleet", cookie).body());
        HttpResponse<String> out = post("/ui/sign-out", cookie, origin(), Map.of("csrf", token));
        assertEquals(303, out.statusCode(), out.body());
        assertTrue(out.headers().firstValue("Set-Cookie").orElse("").contains("Max-Age=0"), "the cookie is cleared");
        HttpResponse<String> after = get("/ui/audit", cookie);
        assertEquals(303, after.statusCode(), "the old cookie is refused: " + after.body());
        assertEquals("/ui/sign-in", after.headers().firstValue("Location").orElse(""));
        assertEquals(0, server.consoleSessions());
        assertTrue(records().stream().anyMatch(a -> a.outcome().equals("CONSOLE_SIGN_OUT")), "sign-out recorded");
    }

    @Test
    void afterTheIdleOrAbsoluteTimeout_theCookieIsRefused() throws Exception {
        String idle = signIn(ADMIN);
        now.set(now.get().plus(Duration.ofMinutes(14)));
        assertEquals(200, get("/ui/fleet", idle).statusCode(), "used within the idle timeout");
        now.set(now.get().plus(Duration.ofMinutes(15)));
        assertEquals(303, get("/ui/fleet", idle).statusCode(), "15 minutes without use end it");

        String busy = signIn(ADMIN);
        for (int i = 0; i < 35; i++) { // used every 14 minutes: never idle, but 8 hours after sign-in it ends
            now.set(now.get().plus(Duration.ofMinutes(14)));
            int status = get("/ui/calls", busy).statusCode();
            assertEquals(i < 34 ? 200 : 303, status, "after " + (i + 1) * 14 + " minutes");
        }
    }

    @Test
    void peerControlledText_isRenderedEscaped() throws Exception {
        String hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        String enrollment = "{\"host\":" + io.tpmphone.server.internal.Json.write(hostile)
                + ",\"ekPublic\":\"AA==\",\"ekCertificate\":\"AA==\",\"akPublic\":\"AA==\"}";
        HttpResponse<String> refused = http.send(HttpRequest.newBuilder(URI.create(origin() + "/v1/enrollments"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(enrollment))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertTrue(refused.statusCode() >= 400, "the enrollment is refused: " + refused.body());
        assertTrue(records().stream().anyMatch(a -> a.detailJson().contains("<script>")
                || a.subject().contains("<script>")), "the refusal recorded the hostile name as sent");
        String cookie = signIn(AUDITOR);
        HttpResponse<String> page = get("/ui/audit?q=" + URLEncoder.encode("alert(1)", StandardCharsets.UTF_8),
                cookie);
        assertEquals(200, page.statusCode(), page.body());
        assertTrue(page.body().contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "shown escaped: " + page.body());
        assertFalse(page.body().contains("<script>") || page.body().contains("<img"), "never as markup");
    }

    @Test
    void theOfflineVerifier_isServedWithoutASession_underTheStrictHeaders_withItsScriptInASeparateFile()
            throws Exception {
        HttpResponse<String> page = get("/ui/verify", null);
        assertEquals(200, page.statusCode(), page.body());
        assertEquals(io.tpmphone.server.internal.console.ConsoleHandler.CSP,
                page.headers().firstValue("Content-Security-Policy").orElse(""));
        assertTrue(page.headers().firstValue("Content-Type").orElse("").startsWith("text/html"), page.headers()
                .toString());
        assertTrue(page.body().contains("<script src=\"static/verify.js\" defer></script>"), page.body());
        assertFalse(Pattern.compile("<script(?![^>]*\\ssrc=)").matcher(page.body()).find(), "no inline script");
        assertFalse(page.body().contains("style="), "no inline style");
        HttpResponse<String> script = get("/ui/static/verify.js", null);
        assertEquals(200, script.statusCode());
        assertTrue(script.headers().firstValue("Content-Type").orElse("").startsWith("text/javascript"),
                script.headers().toString());
        assertTrue(script.body().contains("crypto.subtle.digest"), "the verifier re-hashes with WebCrypto");
        assertEquals("nosniff", script.headers().firstValue("X-Content-Type-Options").orElse(""));
    }

    @Test
    void cspReports_areCountedAndShownToSignedInUsers() throws Exception {
        HttpResponse<String> report = http.send(HttpRequest.newBuilder(URI.create(origin() + "/ui/csp-report"))
                .header("Content-Type", "application/csp-report").POST(HttpRequest.BodyPublishers.ofString(
                        "{\"csp-report\":{\"violated-directive\":\"script-src\",\"blocked-uri\":\"inline\"}}"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(204, report.statusCode(), report.body());
        String cookie = signIn(ADMIN);
        HttpResponse<String> page = get("/ui/csp-reports", cookie);
        assertTrue(page.body().contains("id=\"csp-count\">1<"), page.body());
        assertEquals(303, get("/ui/csp-reports", null).statusCode(), "only for signed-in users");
    }

    @Test
    void everyView_renders_forASignedInUser() throws Exception {
        String cookie = signIn(ADMIN);
        for (String path : List.of("/ui/fleet", "/ui/fleet?level=FAILED&stale=1", "/ui/calls", "/ui/policy",
                "/ui/audit", "/ui/audit?type=ADMIN&subject=console%3Aadmin", "/ui/audit?q=sign")) {
            HttpResponse<String> r = get(path, cookie);
            assertEquals(200, r.statusCode(), path + ": " + r.body());
        }
        assertEquals(404, get("/ui/host?name=nobody", cookie).statusCode());
        assertEquals(400, get("/ui/fleet?level=SUPREME", cookie).statusCode());
        assertEquals(404, get("/ui/call?id=nothing", cookie).statusCode());
        assertEquals(405, http.send(HttpRequest.newBuilder(URI.create(origin() + "/ui/fleet"))
                .header("Cookie", cookie).DELETE().build(), HttpResponse.BodyHandlers.ofString()).statusCode());
        assertEquals(404, get("/v1/nothing", null).statusCode(), "the API still answers outside /ui");
    }

    private static String policyJson(int version) {
        String hex = "ab".repeat(32);
        return "{\"version\":" + version + ",\"measurementPcr\":14,\"pcrBank\":\"sha256\",\"bootPcrs\":[0,1,2,3,4,5,6,7],"
                + "\"releases\":[{\"name\":\"r1\",\"jvm\":{\"/usr/bin/java\":\"" + hex + "\"},\"jars\":{\"a.jar\":\""
                + hex + "\"},\"configuration\":{\"a.properties\":\"" + hex + "\"},\"commandLine\":[\"/usr/bin/java\"]}],"
                + "\"requireIsolation\":false,\"nonceTtlSeconds\":30,\"resultTtlSeconds\":300}";
    }

    @Test
    void aPolicyChange_needsTheAdminRole_aFreshSignIn_andTheSessionsToken() throws Exception {
        String auditor = signIn(AUDITOR);
        String auditorToken = csrf(get("/ui/fleet", auditor).body());
        HttpResponse<String> byAuditor = post("/ui/policy", auditor, origin(), Map.of("csrf", auditorToken,
                "document", policyJson(1)));
        assertEquals(403, byAuditor.statusCode(), byAuditor.body());
        assertTrue(byAuditor.body().contains("needs the admin role"), byAuditor.body());
        assertEquals(403, get("/ui/policy/edit", auditor).statusCode(), "no edit page for the auditor");

        String admin = signIn(ADMIN);
        String token = csrf(get("/ui/policy/edit", admin).body());
        HttpResponse<String> crossSite = post("/ui/policy", admin, "https://evil.example", Map.of("csrf", token,
                "document", policyJson(1)));
        assertEquals(403, crossSite.statusCode(), crossSite.body());
        HttpResponse<String> noToken = post("/ui/policy", admin, origin(), Map.of("document", policyJson(1)));
        assertEquals(403, noToken.statusCode(), noToken.body());
        HttpResponse<String> invalid = post("/ui/policy", admin, origin(), Map.of("csrf", token,
                "document", "{\"version\":1}"));
        assertEquals(400, invalid.statusCode(), "an invalid policy is refused with its reason: " + invalid.body());
        HttpResponse<String> accepted = post("/ui/policy", admin, origin(), Map.of("csrf", token,
                "document", policyJson(1)));
        assertEquals(303, accepted.statusCode(), accepted.body());
        assertEquals("/ui/policy?version=1&diff=1", accepted.headers().firstValue("Location").orElse(""));
        assertTrue(records().stream().anyMatch(a -> a.type().name().equals("POLICY_CHANGE")
                && a.subject().equals("console:admin")), "the change is recorded as by console:admin");
        HttpResponse<String> older = post("/ui/policy", admin, origin(), Map.of("csrf", token,
                "document", policyJson(1)));
        assertEquals(409, older.statusCode(), "not newer: " + older.body());

        now.set(now.get().plus(Duration.ofMinutes(6))); // the session lives on, but its sign-in is not fresh
        HttpResponse<String> stale = post("/ui/policy", admin, origin(), Map.of("csrf", token,
                "document", policyJson(2)));
        assertEquals(403, stale.statusCode(), stale.body());
        assertTrue(stale.body().contains("sign-in within the last 5 minutes"), stale.body());
        assertTrue(get("/ui/policy/edit", admin).body().contains("id=\"policy-stale\""), "the page says why");
        assertEquals(200, get("/ui/policy?version=1", admin).statusCode());
    }
    /** Stops the server, appends {@code entries} to its audit log with its own key, and starts it again. */
    private void appendWhileStopped(io.tpmphone.server.audit.AuditEntry... entries) throws Exception {
        server.close();
        server = null;
        var identity = io.tpmphone.server.internal.ServerIdentity.loadOrCreate(dir.resolve("keys"), List.of());
        try (var log = io.tpmphone.server.audit.AuditLog.open(dir.resolve("audit.db"),
                io.tpmphone.server.audit.AuditSigner.ecdsa(identity.resultKeyPair()),
                io.tpmphone.server.audit.AuditLog.Options.defaults())) {
            for (var entry : entries) {
                log.append(entry);
            }
        }
        start();
    }

    private static io.tpmphone.server.audit.AuditEntry callDecision(String host, String direction, String outcome,
            Map<String, Object> extra) {
        Map<String, Object> detail = new java.util.TreeMap<>(Map.of("callId", "call-1@example.org", "direction",
                direction, "peer", "sips:peer@example.org", "peerLevel", "HARDENED", "requiredLevel", "MEASURED",
                "hostTime", "2026-12-07T09:59:00Z"));
        detail.putAll(extra);
        return io.tpmphone.server.audit.AuditEntry.of(io.tpmphone.server.audit.AuditEventType.CALL_DECISION, host,
                outcome, detail);
    }

    private static String field(String html, String host, String cssClass) {
        Matcher section = Pattern.compile("data-host=\"" + Pattern.quote(host) + "\"(.*?)</section>",
                Pattern.DOTALL).matcher(html);
        assertTrue(section.find(), "the page has a section for " + host + ": " + html);
        Matcher dd = Pattern.compile("<dd class=\"" + cssClass + "[^\"]*\">([^<]*)</dd>").matcher(section.group(1));
        assertTrue(dd.find(), "the section of " + host + " has a " + cssClass + " field: " + section.group(1));
        return dd.group(1);
    }

    @Test
    void theCallView_showsHowEachSideEstablishedTheCall_theEvidenceAndTheAgeOfTheResult_orSaysNotReported()
            throws Exception {
        String digest = "0123456789abcdef".repeat(4);
        appendWhileStopped(
                callDecision("alice", "OUT", "ACCEPT", Map.of("established", "end-to-end DTLS",
                        "evidenceSha256", digest, "resultAgeSeconds", 42)),
                callDecision("bob", "IN", "REJECT", Map.of("established", "one hop TLS <b>",
                        "resultAgeSeconds", 3600)),
                callDecision("carol", "IN", "ACCEPT", Map.of()));
        String cookie = signIn(AUDITOR);
        HttpResponse<String> page = get("/ui/call?id=call-1%40example.org", cookie);
        assertEquals(200, page.statusCode(), page.body());
        String html = page.body();
        assertEquals("end-to-end DTLS", field(html, "alice", "established"));
        assertEquals(digest, field(html, "alice", "evidence"));
        assertEquals("42 s", field(html, "alice", "result-age"));
        assertEquals("one hop TLS &lt;b&gt;", field(html, "bob", "established"), "the agent's text, escaped");
        assertEquals("not reported", field(html, "bob", "evidence"));
        assertEquals("3600 s (1h)", field(html, "bob", "result-age"));
        for (String cssClass : List.of("established", "evidence", "result-age")) {
            assertEquals("not reported", field(html, "carol", cssClass), "carol's agent sent no " + cssClass);
        }
        assertTrue(html.contains("class=\"established not-reported\""), "marked as not reported: " + html);
        assertTrue(html.contains("does not report how the call was established"), "the page says why: " + html);
    }
}
