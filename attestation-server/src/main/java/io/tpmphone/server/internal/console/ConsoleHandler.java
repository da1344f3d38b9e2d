package io.tpmphone.server.internal.console;

import com.fasterxml.jackson.databind.JsonNode;
import gg.jte.ContentType;
import gg.jte.TemplateEngine;
import gg.jte.output.StringOutput;
import io.tpmphone.attestation.ClaimName;
import io.tpmphone.attestation.ClaimStatus;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.server.audit.AuditCheckpoint;
import io.tpmphone.server.audit.AuditEventType;
import io.tpmphone.server.audit.AuditHead;
import io.tpmphone.server.audit.AuditRecord;
import io.tpmphone.server.internal.ApiException;
import io.tpmphone.server.internal.AuditTrail;
import io.tpmphone.server.internal.Json;
import io.tpmphone.server.internal.RefusalAggregator;
import java.io.IOException;
import java.io.InputStream;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The security team's web console under {@code /ui/} (docs/console.md): server-rendered pages (jte templates compiled
 * at build time, HTML escaping on), no script at all, strict headers on every response, a server-side session
 * ({@link ConsoleSessions}) got once for the admin token or the auditor credential, CSRF protection (the session's
 * synchronizer token and a same-origin check) on every state change, and an audit record for every sign-in, sign-out
 * and view of audit data. Answers only paths under {@code /ui}; everything else falls through to the next handler.
 * Thread-safe.
 */
public final class ConsoleHandler extends Handler.Abstract {
    private static final Logger LOG = LoggerFactory.getLogger(ConsoleHandler.class);

    /** The session cookie; {@code __Host-}: the browser keeps it only if Secure, Path=/ and without Domain. */
    public static final String COOKIE = "__Host-tpmphone-console";
    /** The Content-Security-Policy of every console response: no inline script or style, nothing from elsewhere. */
    public static final String CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
            + " form-action 'self'; frame-ancestors 'none'; base-uri 'none'; report-uri /ui/csp-report";
    private static final int MAX_FORM = 16 * 1024;
    private static final int MAX_POLICY_FORM = 512 * 1024;
    private static final int PAGE = 50;
    private static final int SEARCH_WINDOW = 20_000;

    /** The console's configuration. */
    public record Settings(byte[] adminTokenSha256, byte[] auditorTokenSha256, Duration idleTimeout,
                           Duration absoluteTimeout, int maxSessions, Duration freshSignIn,
                           Duration appraisalInterval) {
        public Settings {
            adminTokenSha256 = adminTokenSha256.clone();
            auditorTokenSha256 = auditorTokenSha256 == null ? null : auditorTokenSha256.clone();
        }
    }

    /** What the console reads: the audit log (records, checkpoints, signed head) and the policy history. */
    public interface AuditSource extends ConsoleIndex.RecordSource {
        List<AuditCheckpoint> checkpoints() throws io.tpmphone.server.audit.AuditException;

        Optional<AuditHead> signedHead() throws io.tpmphone.server.audit.AuditException;
    }

    private final Settings settings;
    private final ConsoleIndex index;
    private final AuditSource log;
    private final PolicyVersions policies;
    private final io.tpmphone.server.internal.V1Routes.PolicyUpdate policyUpdate;
    private final AuditTrail audit;
    private final RefusalAggregator refusals;
    private final Clock clock;
    private final ConsoleSessions sessions;
    private final SignInThrottle throttle;
    private final TemplateEngine templates = TemplateEngine.createPrecompiled(ContentType.Html);
    private final byte[] css;
    /** The in-browser verifier's page and script, read once. */
    private final Map<String, byte[]> verifierFiles;
    private final AtomicLong cspReports = new AtomicLong();
    private final Deque<String> recentCspReports = new ArrayDeque<>();
    private volatile Instant lastCspLog = Instant.EPOCH;

    /**
     * @param sharedSessions the cluster's database when instances share it (PostgreSQL): sessions live there, so any
     *                       instance serves any session; null keeps them in this server's memory
     */
    public ConsoleHandler(Settings settings, ConsoleIndex index, AuditSource log, PolicyVersions policies,
                          io.tpmphone.server.internal.V1Routes.PolicyUpdate policyUpdate, AuditTrail audit,
                          RefusalAggregator refusals, Clock clock,
                          io.tpmphone.server.internal.ServerDatabase sharedSessions) throws IOException {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.index = Objects.requireNonNull(index, "index");
        this.log = Objects.requireNonNull(log, "log");
        this.policies = Objects.requireNonNull(policies, "policies");
        this.policyUpdate = Objects.requireNonNull(policyUpdate, "policyUpdate");
        this.audit = Objects.requireNonNull(audit, "audit");
        this.refusals = Objects.requireNonNull(refusals, "refusals");
        this.clock = Objects.requireNonNull(clock, "clock");
        this.sessions = sharedSessions == null ? ConsoleSessions.inMemory(clock, settings.idleTimeout(),
                settings.absoluteTimeout(), settings.maxSessions())
                : ConsoleSessions.shared(sharedSessions, clock, settings.idleTimeout(), settings.absoluteTimeout(),
                        settings.maxSessions());
        this.throttle = new SignInThrottle(clock, Duration.ofMinutes(1), 5, 30, 4096);
        try (InputStream in = ConsoleHandler.class.getResourceAsStream("/console/console.css")) {
            if (in == null) {
                throw new IOException("resource /console/console.css is missing from the server jar");
            }
            this.css = in.readAllBytes();
        }
        this.verifierFiles = Map.of(io.tpmphone.server.audit.BrowserVerifier.PAGE,
                io.tpmphone.server.audit.BrowserVerifier.file(io.tpmphone.server.audit.BrowserVerifier.PAGE)
                        .orElseThrow(), "static/verify.js",
                io.tpmphone.server.audit.BrowserVerifier.file("static/verify.js").orElseThrow());
    }

    /** Live console sessions (for operators and tests); of the whole cluster when sessions are shared. */
    public int sessionCount() {
        try {
            return sessions.size();
        } catch (ConsoleSessions.Unavailable e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    private static Refused unavailable(ConsoleSessions.Unavailable e) {
        LOG.warn("console: {}", e.getMessage());
        return new Refused(503, "the console cannot reach its sessions' store; retry shortly");
    }

    /** A refusal rendered as a page with this status. */
    private static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        final int status;
        final boolean close;

        Refused(int status, String message) {
            this(status, message, false);
        }

        /** {@code close}: the request's content was not read, so the connection must not be reused. */
        Refused(int status, String message, boolean close) {
            super(message, null, false, false);
            this.status = status;
            this.close = close;
        }
    }

    /** A response already decided (redirect, static file, 204). */
    private record Reply(int status, String contentType, byte[] body, Map<String, String> headers) {
        static Reply redirect(String location) {
            return new Reply(303, null, new byte[0], Map.of("Location", location));
        }

        static Reply html(int status, String html) {
            return new Reply(status, "text/html; charset=utf-8", html.getBytes(StandardCharsets.UTF_8), Map.of());
        }
    }

    /** One request as the routes see it. */
    private final class Exchange {
        final Request request;
        final String method;
        final String path;
        final Map<String, String> query;
        final String remote;
        final List<String> setCookies = new ArrayList<>();
        ConsoleSessions.Session session;
        /** A POST's body, read whole (bounded) before any check, so that no refusal leaves content unread. */
        String body = "";

        Exchange(Request request) throws Refused {
            this.request = request;
            this.method = request.getMethod();
            this.path = Request.getPathInContext(request);
            this.query = parseForm(request.getHttpURI().getQuery());
            this.remote = Request.getRemoteAddr(request);
        }

        Optional<ConsoleSessions.Session> session() throws Refused {
            if (session == null) {
                try {
                    session = sessions.find(cookie(request)).orElse(null);
                } catch (ConsoleSessions.Unavailable e) {
                    throw unavailable(e);
                }
            }
            return Optional.ofNullable(session);
        }

        ConsolePages.Frame frame(String title, String active, List<String> notices) {
            return session == null ? new ConsolePages.Frame(title, active, null, null, notices)
                    : new ConsolePages.Frame(title, active, session.role().label(), session.csrfToken(), notices);
        }

        String param(String name, int maxLength) throws Refused {
            String v = query.get(name);
            if (v == null || v.isEmpty()) {
                return null;
            }
            if (v.length() > maxLength) {
                throw new Refused(400, name + " is longer than " + maxLength + " characters");
            }
            return v;
        }

        Long longParam(String name) throws Refused {
            String v = param(name, 20);
            try {
                return v == null ? null : Long.valueOf(v);
            } catch (NumberFormatException e) {
                throw new Refused(400, name + " is not a number");
            }
        }
    }

    @Override
    public boolean handle(Request request, Response response, Callback callback) {
        String path = Request.getPathInContext(request);
        if (!path.equals("/ui") && !path.startsWith("/ui/")) {
            return false;
        }
        Reply reply;
        Exchange x = null;
        try {
            x = new Exchange(request);
            reply = route(x);
        } catch (Refused e) {
            reply = Reply.html(e.status, page("console/error.jte", errorFrame(x), Map.of("status", e.status,
                    "message", e.getMessage())));
            if (e.close) {
                response.getHeaders().put(HttpHeader.CONNECTION, "close");
            }
        } catch (ApiException e) {
            reply = Reply.html(e.status(), page("console/error.jte", errorFrame(x), Map.of("status", e.status(),
                    "message", e.getMessage())));
        } catch (Exception e) {
            LOG.error("{} {} failed", request.getMethod(), UntrustedText.forTerminal(path), e);
            reply = Reply.html(500, page("console/error.jte", errorFrame(x), Map.of("status", 500,
                    "message", "the console failed to show this page; see the server's log")));
        }
        response.setStatus(reply.status());
        secureHeaders(response);
        if (x != null) {
            for (String c : x.setCookies) {
                response.getHeaders().add(HttpHeader.SET_COOKIE, c);
            }
        }
        reply.headers().forEach((k, v) -> response.getHeaders().put(k, v));
        if (reply.contentType() != null) {
            response.getHeaders().put(HttpHeader.CONTENT_TYPE, reply.contentType());
        }
        response.write(true, java.nio.ByteBuffer.wrap(reply.body()), callback);
        return true;
    }

    private ConsolePages.Frame errorFrame(Exchange x) {
        return x == null || x.session == null ? new ConsolePages.Frame("Refused", "", null, null, List.of())
                : new ConsolePages.Frame("Refused", "", x.session.role().label(), x.session.csrfToken(), List.of());
    }

    /** Headers on every /ui response, refusals and redirects included. */
    static void secureHeaders(Response response) {
        var h = response.getHeaders();
        h.put("Content-Security-Policy", CSP);
        h.put("Strict-Transport-Security", "max-age=31536000");
        h.put("X-Content-Type-Options", "nosniff");
        h.put("X-Frame-Options", "DENY");
        // same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with our own form posts
        // (Fetch, "append a request Origin header"), and the same-origin check below would refuse them. same-origin
        // still sends no referrer to any other site.
        h.put("Referrer-Policy", "same-origin");
        h.put("Cache-Control", "no-store");
        h.put("Cross-Origin-Opener-Policy", "same-origin");
        h.put("Cross-Origin-Resource-Policy", "same-origin");
        h.put("Permissions-Policy", "camera=(), microphone=(), geolocation=()");
    }

    private Reply route(Exchange x) throws Exception {
        String p = x.path;
        if (x.method.equals("POST")) {
            x.body = readBody(x, p.equals("/ui/policy") ? MAX_POLICY_FORM : MAX_FORM);
        }
        if (p.equals("/ui/static/console.css") && x.method.equals("GET")) {
            return new Reply(200, "text/css; charset=utf-8", css, Map.of());
        }
        // The offline verifier: static, holds no audit data (the user gives it an export), so no session needed.
        if ((p.equals("/ui/verify") || p.equals("/ui/static/verify.js")) && x.method.equals("GET")) {
            String name = p.equals("/ui/verify") ? io.tpmphone.server.audit.BrowserVerifier.PAGE : "static/verify.js";
            return new Reply(200, io.tpmphone.server.audit.BrowserVerifier.contentType(name), verifierFiles.get(name),
                    Map.of());
        }
        if (p.equals("/ui/csp-report")) {
            requireMethod(x, "POST");
            return cspReport(x);
        }
        if (p.equals("/ui/sign-in")) {
            if (x.method.equals("POST")) {
                return signIn(x);
            }
            requireMethod(x, "GET");
            if (x.session().isPresent()) {
                return Reply.redirect("/ui/fleet");
            }
            return Reply.html(200, page("console/sign-in.jte", new ConsolePages.Frame("Sign in", "", null, null,
                    List.of()), mapOf("error", null)));
        }
        if (x.session().isEmpty()) {
            if (x.method.equals("POST")) {
                throw new Refused(403, "no console session: sign in first (a session ends at sign-out and after"
                        + " its timeout)");
            }
            return Reply.redirect("/ui/sign-in");
        }
        if (p.equals("/ui/sign-out")) {
            requireMethod(x, "POST");
            return signOut(x);
        }
        if (p.equals("/ui/policy") && x.method.equals("POST")) {
            return changePolicy(x);
        }
        requireMethod(x, "GET");
        List<String> notices = new ArrayList<>();
        long behind = index.sync(2000);
        if (behind > 0) {
            notices.add("The console has not yet read the last " + behind + " records of the audit log; this page"
                    + " shows what it has read.");
        }
        return switch (p) {
            case "/ui", "/ui/" -> Reply.redirect("/ui/fleet");
            case "/ui/fleet" -> fleet(x, notices);
            case "/ui/host" -> host(x, notices);
            case "/ui/diff" -> diff(x, notices);
            case "/ui/calls" -> calls(x, notices);
            case "/ui/call" -> call(x, notices);
            case "/ui/policy" -> policy(x, notices);
            case "/ui/policy/edit" -> editPolicy(x, notices);
            case "/ui/audit" -> auditView(x, notices);
            case "/ui/csp-reports" -> cspReportsView(x, notices);
            default -> throw new Refused(404, "no such console page");
        };
    }

    private static void requireMethod(Exchange x, String method) throws Refused {
        if (!x.method.equals(method)) {
            throw new Refused(405, x.method + " is not allowed here");
        }
    }

    // ---- sign-in, sign-out, CSRF ---------------------------------------------------------------------------------

    /**
     * A state change must come from a page of ours: the browser's Origin is this server's, and (when the browser
     * says) the request is same-origin. Refuses with 403 otherwise.
     */
    private static void requireSameOrigin(Exchange x) throws Refused {
        String origin = x.request.getHeaders().get(HttpHeader.ORIGIN);
        String host = x.request.getHeaders().get(HttpHeader.HOST);
        if (origin == null || host == null || !origin.equals("https://" + host)) {
            throw new Refused(403, "cross-site request refused: a state change must come from this console's own"
                    + " pages (Origin " + (origin == null ? "missing" : "is another site") + ")");
        }
        String site = x.request.getHeaders().get("Sec-Fetch-Site");
        if (site != null && !site.equals("same-origin")) {
            throw new Refused(403, "cross-site request refused: Sec-Fetch-Site is not same-origin");
        }
    }

    private static String readBody(Exchange x, int max) throws Exception {
        long length = x.request.getLength();
        if (length < 0) {
            throw new Refused(411, "send a Content-Length", true);
        }
        if (length > max) {
            throw new Refused(413, "a body of " + length + " bytes exceeds " + max + " here", true);
        }
        try {
            return io.tpmphone.server.internal.RequestBodies.utf8(x.request);
        } catch (java.nio.charset.CharacterCodingException e) {
            // The client's error, like the API's: it was a 500 with a stack trace at ERROR, which any client could
            // have the server log. The whole body was read, so the connection can be reused.
            throw new Refused(400, "the form is not valid UTF-8");
        } catch (IOException e) {
            // The client went away or was cut off mid-body (RequestDeadlines): not the server's error to log.
            throw new Refused(400, "the form could not be read to its end", true);
        }
    }

    private static Map<String, String> readForm(Exchange x) throws Refused {
        return parseForm(x.body);
    }

    private Reply signIn(Exchange x) throws Exception {
        requireSameOrigin(x);
        ConsolePages.Frame frame = new ConsolePages.Frame("Sign in", "", null, null, List.of());
        if (!throttle.allowed(x.remote)) {
            Map<String, Object> detail = new LinkedHashMap<>();
            detail.put("remote", x.remote);
            detail.put("reason", "too many failed sign-ins");
            refusals.refuse("CONSOLE_SIGN_IN_REFUSED", x.remote, "too many failed sign-ins", detail, "console",
                    "console");
            return Reply.html(429, page("console/sign-in.jte", frame, mapOf("error", "Too many failed sign-ins:"
                    + " wait a minute, then try again.")));
        }
        Map<String, String> form = readForm(x);
        String credential = form.getOrDefault("credential", "").trim();
        byte[] presented = sha256(credential.getBytes(StandardCharsets.UTF_8));
        boolean admin = MessageDigest.isEqual(presented, settings.adminTokenSha256());
        boolean auditor = settings.auditorTokenSha256() != null
                && MessageDigest.isEqual(presented, settings.auditorTokenSha256());
        if (!admin && !auditor) {
            throttle.failed(x.remote);
            Map<String, Object> detail = new LinkedHashMap<>();
            detail.put("remote", x.remote);
            detail.put("reason", credential.isEmpty() ? "no credential" : "not the admin token or the auditor"
                    + " credential");
            audit.record(AuditEventType.REFUSAL.name(), "console", "CONSOLE_SIGN_IN_REFUSED", detail);
            return Reply.html(403, page("console/sign-in.jte", frame, mapOf("error", "That is neither the admin"
                    + " token nor the auditor credential.")));
        }
        ConsoleRole role = admin ? ConsoleRole.ADMIN : ConsoleRole.AUDITOR;
        ConsoleSessions.Started started;
        try {
            started = sessions.start(role).orElseThrow(() -> new Refused(503, "the console has as many sessions as"
                    + " it keeps (" + settings.maxSessions() + "): sign out elsewhere, or wait for idle sessions to"
                    + " end"));
        } catch (ConsoleSessions.Unavailable e) {
            throw unavailable(e);
        }
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("role", role.label());
        detail.put("session", started.session().reference());
        detail.put("remote", x.remote);
        try {
            audit.record(AuditEventType.ADMIN.name(), "console:" + role.label(), "CONSOLE_SIGN_IN", detail);
        } catch (ApiException e) {
            try {
                sessions.end(started.session()); // no session without its record
            } catch (ConsoleSessions.Unavailable u) {
                e.addSuppressed(u);
            }
            throw e;
        }
        x.setCookies.add(COOKIE + "=" + started.id() + "; Path=/; Secure; HttpOnly; SameSite=Strict");
        return Reply.redirect("/ui/fleet");
    }

    private Reply signOut(Exchange x) throws Exception {
        requireSameOrigin(x);
        Map<String, String> form = readForm(x);
        ConsoleSessions.Session s = x.session;
        if (!s.csrfMatches(form.get("csrf"))) {
            throw new Refused(403, "cross-site request refused: the form's token is not this session's");
        }
        try {
            sessions.end(s); // at every instance: the store is the cluster's
        } catch (ConsoleSessions.Unavailable e) {
            throw unavailable(e);
        }
        x.session = null;
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("session", s.reference());
        detail.put("remote", x.remote);
        audit.record(AuditEventType.ADMIN.name(), "console:" + s.role().label(), "CONSOLE_SIGN_OUT", detail);
        x.setCookies.add(COOKIE + "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
        return Reply.redirect("/ui/sign-in");
    }

    /** Every view of audit data is itself a record: who (role, session), what (view, its parameters), from where. */
    private void recordView(Exchange x, String view) throws ApiException {
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("view", view);
        detail.put("parameters", new LinkedHashMap<>(x.query));
        detail.put("session", x.session.reference());
        detail.put("remote", x.remote);
        audit.record(AuditEventType.ADMIN.name(), "console:" + x.session.role().label(), "CONSOLE_VIEW", detail);
    }

    // ---- CSP reports ---------------------------------------------------------------------------------------------

    private Reply cspReport(Exchange x) throws Exception {
        String body = x.body;
        long n = cspReports.incrementAndGet();
        String shown = UntrustedText.forTerminal(body, 500);
        synchronized (recentCspReports) {
            recentCspReports.addFirst(shown);
            while (recentCspReports.size() > 20) {
                recentCspReports.removeLast();
            }
        }
        Instant now = clock.instant();
        if (now.isAfter(lastCspLog.plusSeconds(10))) {
            lastCspLog = now;
            LOG.warn("Content-Security-Policy violation reported ({} so far): {}", n, shown);
        }
        return new Reply(204, null, new byte[0], Map.of());
    }

    /** Reports received since start (anyone can post one). */
    public long cspReportCount() {
        return cspReports.get();
    }

    private Reply cspReportsView(Exchange x, List<String> notices) throws Exception {
        List<String> recent;
        synchronized (recentCspReports) {
            recent = List.copyOf(recentCspReports);
        }
        return Reply.html(200, page("console/csp-reports.jte", x.frame("CSP reports", "", notices),
                mapOf("count", cspReports.get(), "recent", recent)));
    }

    // ---- fleet ---------------------------------------------------------------------------------------------------

    private Reply fleet(Exchange x, List<String> notices) throws Exception {
        String level = x.param("level", 16);
        if (level != null && !isLevel(level)) {
            throw new Refused(400, "level must be one of " + java.util.Arrays.toString(IntegrityLevel.values()));
        }
        String claim = x.param("claim", 32);
        if (claim != null && java.util.Arrays.stream(ClaimName.values()).noneMatch(c -> c.key().equals(claim))) {
            throw new Refused(400, "no such claim");
        }
        String status = x.param("status", 32);
        if (status != null && java.util.Arrays.stream(ClaimStatus.values()).noneMatch(c -> c.key().equals(status))) {
            throw new Refused(400, "no such claim status");
        }
        String release = x.param("release", 200);
        String policy = x.param("policy", 10);
        Integer policyVersion;
        try {
            policyVersion = policy == null ? null : Integer.valueOf(policy);
        } catch (NumberFormatException e) {
            throw new Refused(400, "policy version is not a number");
        }
        boolean staleOnly = "1".equals(x.query.get("stale"));
        String after = x.param("after", 300);
        recordView(x, "fleet");
        Instant now = clock.instant();
        long staleBefore = now.minus(settings.appraisalInterval().multipliedBy(5)).toEpochMilli();
        ConsoleIndex.FleetFilter filter = new ConsoleIndex.FleetFilter(level, claim == null || status == null ? null
                : claim, status, release, policyVersion, staleOnly ? staleBefore : null);
        List<ConsoleIndex.HostRow> hosts = index.fleet(filter, after, PAGE);
        List<ConsolePages.FleetRow> rows = new ArrayList<>();
        for (ConsoleIndex.HostRow h : hosts) {
            List<ConsolePages.ClaimCell> cells = new ArrayList<>();
            for (ClaimName c : ClaimName.values()) {
                String s = h.claims().getOrDefault(c.key(), "none");
                cells.add(new ConsolePages.ClaimCell(c.key(), s, c.key().substring(0, 1).toUpperCase(Locale.ROOT)));
            }
            rows.add(new ConsolePages.FleetRow(h.name(), "/ui/host?name=" + enc(h.name()),
                    h.appraised() ? h.level() : "NOT_APPRAISED", h.failedCheck(), cells,
                    h.appraised() ? time(h.lastMillis()) : "never", !h.appraised() || h.lastMillis() < staleBefore,
                    h.release() == null ? "—" : h.release(), h.policyVersion() == null ? "—"
                    : h.policyVersion().toString()));
        }
        String next = null;
        if (hosts.size() == PAGE) {
            Map<String, String> q = new LinkedHashMap<>(x.query);
            q.put("after", hosts.get(hosts.size() - 1).name());
            next = "/ui/fleet?" + query(q);
        }
        List<ConsolePages.Option> levels = new ArrayList<>();
        levels.add(new ConsolePages.Option("", "any", level == null));
        for (IntegrityLevel l : IntegrityLevel.values()) {
            levels.add(new ConsolePages.Option(l.name(), l.name(), l.name().equals(level)));
        }
        List<ConsolePages.Option> claims = new ArrayList<>();
        claims.add(new ConsolePages.Option("", "any", claim == null));
        for (ClaimName c : ClaimName.values()) {
            claims.add(new ConsolePages.Option(c.key(), c.key(), c.key().equals(claim)));
        }
        List<ConsolePages.Option> statuses = new ArrayList<>();
        statuses.add(new ConsolePages.Option("", "any", status == null));
        for (ClaimStatus s : ClaimStatus.values()) {
            statuses.add(new ConsolePages.Option(s.key(), s.key(), s.key().equals(status)));
        }
        ConsolePages.FleetPage model = new ConsolePages.FleetPage(rows, next, index.hostCount(),
                settings.appraisalInterval().multipliedBy(5).toString().substring(2).toLowerCase(Locale.ROOT),
                levels, claims, statuses, release == null ? "" : release, policy == null ? "" : policy, staleOnly);
        return Reply.html(200, page("console/fleet.jte", x.frame("Fleet", "fleet", notices), mapOf("page", model)));
    }

    private static boolean isLevel(String s) {
        return java.util.Arrays.stream(IntegrityLevel.values()).anyMatch(l -> l.name().equals(s));
    }

    // ---- host and what changed -----------------------------------------------------------------------------------

    private Reply host(Exchange x, List<String> notices) throws Exception {
        String name = x.param("name", 1024);
        if (name == null) {
            throw new Refused(400, "which host? (name=…)");
        }
        Long before = x.longParam("before");
        recordView(x, "host");
        ConsoleIndex.HostRow h = index.host(name).orElseThrow(() -> new Refused(404, "no host of that name has"
                + " enrolled or been appraised"));
        List<Long> seqs = index.bySubject(name, before == null ? Long.MAX_VALUE : before, PAGE);
        List<ConsolePages.TimelineEntry> entries = new ArrayList<>();
        for (long seq : seqs) {
            AuditRecord r = record(seq);
            JsonNode d = Json.MAPPER.readTree(r.detailJson());
            String callUrl = d.hasNonNull("callId") ? "/ui/call?id=" + enc(d.get("callId").asText()) : null;
            String diffUrl = null;
            boolean levelChanged = false;
            if (r.type() == AuditEventType.APPRAISAL) {
                List<Long> previous = index.bySubjectAndType(name, AuditEventType.APPRAISAL.name(), seq, 1);
                if (!previous.isEmpty()) {
                    diffUrl = "/ui/diff?host=" + enc(name) + "&from=" + previous.get(0) + "&to=" + seq;
                    levelChanged = !record(previous.get(0)).outcome().equals(r.outcome());
                }
            }
            entries.add(new ConsolePages.TimelineEntry(seq, time(r.timestamp()), r.type().name(), r.outcome(),
                    summary(r, d), callUrl, diffUrl, levelChanged));
        }
        String next = seqs.size() == PAGE ? "/ui/host?name=" + enc(name) + "&before=" + seqs.get(seqs.size() - 1)
                : null;
        ConsolePages.HostPage model = new ConsolePages.HostPage(name, h.appraised() ? h.level() : "NOT_APPRAISED",
                h.appraised() ? time(h.lastMillis()) : "never", h.release() == null ? "—" : h.release(),
                h.policyVersion() == null ? "—" : h.policyVersion().toString(), entries, next);
        return Reply.html(200, page("console/host.jte", x.frame("Host " + name, "fleet", notices),
                mapOf("page", model)));
    }

    private static String summary(AuditRecord r, JsonNode d) {
        StringBuilder s = new StringBuilder();
        switch (r.type()) {
            case APPRAISAL -> {
                if (d.hasNonNull("failedCheck")) {
                    s.append("failed check ").append(d.get("failedCheck").asText()).append(". ");
                }
                if (d.path("reasons").size() > 0) {
                    s.append(d.path("reasons").get(0).asText());
                    if (d.path("reasons").size() > 1) {
                        s.append(" (+").append(d.path("reasons").size() - 1).append(" more)");
                    }
                }
                if (d.hasNonNull("release")) {
                    s.append(s.length() > 0 ? " · " : "").append("release ").append(d.get("release").asText());
                }
            }
            case CALL_DECISION -> s.append(d.path("direction").asText()).append(" call with ")
                    .append(d.path("peer").asText()).append(": peer ").append(d.path("peerLevel").asText())
                    .append(", required ").append(d.path("requiredLevel").asText());
            case KEY_RELEASE -> {
                s.append(d.path("operation").asText(r.outcome()));
                if (d.hasNonNull("reason")) {
                    s.append(": ").append(d.get("reason").asText());
                }
                if (d.hasNonNull("message")) {
                    s.append(" — ").append(d.get("message").asText());
                }
            }
            default -> s.append(truncate(r.detailJson(), 160));
        }
        return truncate(s.toString(), 400);
    }

    private Reply diff(Exchange x, List<String> notices) throws Exception {
        String host = x.param("host", 1024);
        Long to = x.longParam("to");
        if (host == null || to == null) {
            throw new Refused(400, "which appraisals? (host=…&to=SEQ[&from=SEQ])");
        }
        Long from = x.longParam("from");
        recordView(x, "diff");
        if (from == null) {
            List<Long> previous = index.bySubjectAndType(host, AuditEventType.APPRAISAL.name(), to, 1);
            if (previous.isEmpty()) {
                throw new Refused(404, "appraisal #" + to + " is the host's first: nothing to compare it with");
            }
            from = previous.get(0);
        }
        AuditRecord a = appraisalOf(host, from);
        AuditRecord b = appraisalOf(host, to);
        JsonNode da = Json.MAPPER.readTree(a.detailJson());
        JsonNode db = Json.MAPPER.readTree(b.detailJson());
        WhatChanged diff = WhatChanged.between(a.seq(), a.outcome(), da, archivedLog(da), b.seq(), b.outcome(), db,
                archivedLog(db));
        return Reply.html(200, page("console/diff.jte", x.frame("What changed on " + host, "fleet", notices),
                mapOf("host", host, "hostUrl", "/ui/host?name=" + enc(host), "diff", diff)));
    }

    private AuditRecord appraisalOf(String host, long seq) throws Exception {
        if (seq < 1 || seq > log.size()) {
            throw new Refused(404, "no record #" + seq);
        }
        AuditRecord r = record(seq);
        if (r.type() != AuditEventType.APPRAISAL || !r.subject().equals(host)) {
            throw new Refused(400, "record #" + seq + " is not an appraisal of this host");
        }
        return r;
    }

    private Optional<byte[]> archivedLog(JsonNode detail) throws Exception {
        if (!detail.hasNonNull("eventLogSha256")) {
            return Optional.empty();
        }
        try {
            return index.eventLog(HexFormat.of().parseHex(detail.get("eventLogSha256").asText()));
        } catch (IllegalArgumentException e) {
            return Optional.empty();
        }
    }

    // ---- calls ---------------------------------------------------------------------------------------------------

    private Reply calls(Exchange x, List<String> notices) throws Exception {
        Long before = x.longParam("before");
        recordView(x, "calls");
        List<Long> seqs = index.byType(AuditEventType.CALL_DECISION.name(), before == null ? Long.MAX_VALUE : before,
                PAGE);
        List<ConsolePages.CallSide> rows = new ArrayList<>();
        for (long seq : seqs) {
            rows.add(callSide(record(seq)));
        }
        String next = seqs.size() == PAGE ? "/ui/calls?before=" + seqs.get(seqs.size() - 1) : null;
        return Reply.html(200, page("console/calls.jte", x.frame("Calls", "calls", notices),
                mapOf("rows", rows, "nextUrl", next)));
    }

    private Reply call(Exchange x, List<String> notices) throws Exception {
        String id = x.param("id", 256);
        if (id == null) {
            throw new Refused(400, "which call? (id=Call-ID)");
        }
        recordView(x, "call");
        List<Long> seqs = index.byCall(id, 20);
        if (seqs.isEmpty()) {
            throw new Refused(404, "no call decision names that Call-ID");
        }
        List<ConsolePages.CallSide> sides = new ArrayList<>();
        for (long seq : seqs) {
            sides.add(callSide(record(seq)));
        }
        List<String> callNotes = new ArrayList<>();
        if (sides.stream().map(ConsolePages.CallSide::host).distinct().count() < 2) {
            callNotes.add("Only one side reported a decision on this call: the other side is not one of this"
                    + " server's hosts, or has not reported yet.");
        }
        if (sides.stream().anyMatch(c -> !ConsolePages.CallSide.reported(c.established()))) {
            callNotes.add("A side marked \"not reported\" has an agent that does not report how the call was"
                    + " established or the result it relied on (agents before end-to-end attestation).");
        }
        return Reply.html(200, page("console/call.jte", x.frame("Call", "calls", notices),
                mapOf("callId", id, "sides", sides, "notes", callNotes)));
    }

    private static ConsolePages.CallSide callSide(AuditRecord r) throws IOException {
        JsonNode d = Json.MAPPER.readTree(r.detailJson());
        String callId = d.hasNonNull("callId") ? d.get("callId").asText() : null;
        return new ConsolePages.CallSide(r.seq(), time(r.timestamp()), r.subject(), "/ui/host?name="
                + enc(r.subject()), callId == null ? "" : callId, callId == null ? null : "/ui/call?id=" + enc(callId),
                d.path("direction").asText("—"), r.outcome(), d.path("peer").asText("—"),
                d.path("peerLevel").asText("—"), d.path("requiredLevel").asText("—"),
                reported(d, "established"), evidence(d), resultAge(d),
                d.path("hostTime").asText("—"), d.hasNonNull("count") ? d.get("count").asText() : null,
                d.hasNonNull("reason") ? d.get("reason").asText() : null,
                d.hasNonNull("message") ? d.get("message").asText() : null);
    }

    /** A text field of a call decision as the agent reported it (shown escaped), or "not reported". */
    private static String reported(JsonNode d, String field) {
        JsonNode v = d.get(field);
        return v != null && v.isTextual() && !v.asText().isBlank() ? truncate(v.asText(), 200)
                : ConsolePages.CallSide.NOT_REPORTED;
    }

    /** The digest of the evidence the side appraised: 64 hex digits, anything else is not a digest we show as one. */
    private static String evidence(JsonNode d) {
        String v = reported(d, "evidenceSha256");
        if (!ConsolePages.CallSide.reported(v)) {
            return v;
        }
        return v.matches("[0-9a-fA-F]{64}") ? v.toLowerCase(java.util.Locale.ROOT)
                : "malformed (" + truncate(v, 80) + ")";
    }

    /** How old the attestation result was that the side relied on, when it decided. */
    private static String resultAge(JsonNode d) {
        JsonNode v = d.get("resultAgeSeconds");
        if (v == null || v.isNull()) {
            return ConsolePages.CallSide.NOT_REPORTED;
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < 0) {
            return "malformed (" + truncate(v.toString(), 40) + ")";
        }
        long s = v.asLong();
        return s < 120 ? s + " s" : s + " s (" + Duration.ofSeconds(s).toString().substring(2).toLowerCase(
                java.util.Locale.ROOT) + ")";
    }

    // ---- policy --------------------------------------------------------------------------------------------------

    private Reply policy(Exchange x, List<String> notices) throws Exception {
        Long version = x.longParam("version");
        Long before = x.longParam("before");
        boolean diff = "1".equals(x.query.get("diff"));
        recordView(x, "policy");
        List<PolicyVersions.Version> versions = policies.page(before == null ? Integer.MAX_VALUE
                : (int) Math.min(Integer.MAX_VALUE, before), 20);
        String next = versions.size() == 20 ? "/ui/policy?before=" + versions.get(versions.size() - 1).version()
                : null;
        Integer shown = version != null ? Integer.valueOf((int) Math.min(Integer.MAX_VALUE, version))
                : versions.isEmpty() || before != null ? null : versions.get(0).version();
        String document = null;
        Integer diffFrom = null;
        List<TextDiff.Line> lines = null;
        if (shown != null) {
            document = pretty(policies.document(shown).orElseThrow(() -> new Refused(404, "no policy version "
                    + version)));
            if (diff) {
                Optional<Integer> previous = policies.previous(shown);
                if (previous.isEmpty()) {
                    notices.add("Version " + shown + " is the first: there is nothing to compare it with.");
                } else {
                    diffFrom = previous.get();
                    String old = pretty(policies.document(diffFrom).orElseThrow());
                    lines = TextDiff.lines(old.lines().toList(), document.lines().toList());
                }
            }
        }
        return Reply.html(200, page("console/policy.jte", x.frame("Policy", "policy", notices),
                mapOf("page", new ConsolePages.PolicyPage(versions, next, shown, document, diffFrom, lines,
                        x.session.role() == ConsoleRole.ADMIN))));
    }

    /** Policy changes: the admin role only. */
    private static void requireAdmin(Exchange x) throws Refused {
        if (x.session.role() != ConsoleRole.ADMIN) {
            throw new Refused(403, "changing the policy needs the admin role; you signed in as "
                    + x.session.role().label());
        }
    }

    private Reply editPolicy(Exchange x, List<String> notices) throws Exception {
        requireAdmin(x);
        List<PolicyVersions.Version> latest = policies.page(Integer.MAX_VALUE, 1);
        String current = latest.isEmpty() ? "" : pretty(policies.document(latest.get(0).version()).orElseThrow());
        return Reply.html(200, page("console/policy-edit.jte", x.frame("Change the policy", "policy", notices),
                mapOf("document", current, "error", null, "fresh", sessions.signedInWithin(x.session,
                        settings.freshSignIn()))));
    }

    /**
     * POST /ui/policy: the admin role, a sign-in within {@link Settings#freshSignIn()}, the session's CSRF token and
     * a same-origin request; then the same update as PUT /v1/policy, recorded as by {@code console:admin}.
     */
    private Reply changePolicy(Exchange x) throws Exception {
        requireSameOrigin(x);
        Map<String, String> form = readForm(x);
        if (!x.session.csrfMatches(form.get("csrf"))) {
            throw new Refused(403, "cross-site request refused: the form's token is not this session's");
        }
        requireAdmin(x);
        if (!sessions.signedInWithin(x.session, settings.freshSignIn())) {
            throw new Refused(403, "changing the policy needs a sign-in within the last "
                    + settings.freshSignIn().toMinutes() + " minutes: sign out and sign in again");
        }
        String document = form.getOrDefault("document", "");
        try {
            int version = policyUpdate.apply(document, "console:" + x.session.role().label());
            return Reply.redirect("/ui/policy?version=" + version + "&diff=1");
        } catch (ApiException e) {
            return Reply.html(e.status(), page("console/policy-edit.jte", x.frame("Change the policy", "policy",
                    List.of()), mapOf("document", document, "error", e.getMessage(), "fresh", true)));
        }
    }

    /** Sorted keys, one member per line: so that two versions diff line by line. */
    private static final com.fasterxml.jackson.databind.ObjectMapper SORTED = new com.fasterxml.jackson.databind
            .ObjectMapper().enable(com.fasterxml.jackson.databind.SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS)
            .enable(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT);

    private static String pretty(String json) throws IOException {
        return SORTED.writeValueAsString(SORTED.readValue(json, Object.class));
    }

    // ---- audit ---------------------------------------------------------------------------------------------------

    private Reply auditView(Exchange x, List<String> notices) throws Exception {
        String type = x.param("type", 32);
        if (type != null && java.util.Arrays.stream(AuditEventType.values()).noneMatch(t -> t.name().equals(type))) {
            throw new Refused(400, "no such record type");
        }
        String subject = x.param("subject", 1024);
        String q = x.param("q", 200);
        Long before = x.longParam("before");
        recordView(x, "audit");
        long size = log.size();
        long top = before == null ? size + 1 : Math.min(before, size + 1);
        List<AuditRecord> rows = new ArrayList<>();
        long scanned = 0;
        long lowest = top;
        String needle = q == null ? null : q.toLowerCase(Locale.ROOT);
        // Keyset over seq, newest first; a text search reads at most SEARCH_WINDOW records per page and says where
        // it stopped, so a search never scans a million records in one request.
        long cursor = top;
        while (rows.size() < PAGE && cursor > 1 && scanned < (needle == null ? Long.MAX_VALUE : SEARCH_WINDOW)) {
            List<Long> seqs;
            int chunk = needle == null ? PAGE - rows.size() : 500;
            if (type != null && subject != null) {
                seqs = index.bySubjectAndType(subject, type, cursor, chunk);
            } else if (subject != null) {
                seqs = index.bySubject(subject, cursor, chunk);
            } else if (type != null) {
                seqs = index.byType(type, cursor, chunk);
            } else {
                seqs = new ArrayList<>();
                for (long s = cursor - 1; s >= 1 && seqs.size() < chunk; s--) {
                    seqs.add(s);
                }
            }
            if (seqs.isEmpty()) {
                cursor = 1;
                break;
            }
            for (AuditRecord r : records(seqs)) {
                scanned++;
                lowest = r.seq();
                cursor = r.seq();
                if (needle == null || matches(r, needle)) {
                    rows.add(r);
                    if (rows.size() == PAGE) {
                        break;
                    }
                }
            }
        }
        String searchNote = null;
        if (needle != null) {
            searchNote = "Searched " + scanned + " records" + (scanned == 0 ? "" : " (#" + lowest + " to #"
                    + (top - 1) + ")") + ", " + rows.size() + " found." + (cursor > 1 ? " Older records are"
                    + " searched on the next page." : "");
        }
        String next = null;
        if (cursor > 1 && (rows.size() == PAGE || needle != null) && lowest > 1) {
            Map<String, String> nq = new LinkedHashMap<>(x.query);
            nq.put("before", Long.toString(lowest));
            next = "/ui/audit?" + query(nq);
        }
        List<ConsolePages.AuditRow> out = new ArrayList<>();
        for (AuditRecord r : rows) {
            out.add(new ConsolePages.AuditRow(r.seq(), time(r.timestamp()), r.type().name(), r.subject(),
                    r.outcome(), truncate(r.detailJson(), 600)));
        }
        List<ConsolePages.Option> types = new ArrayList<>();
        types.add(new ConsolePages.Option("", "any", type == null));
        for (AuditEventType t : AuditEventType.values()) {
            types.add(new ConsolePages.Option(t.name(), t.name(), t.name().equals(type)));
        }
        String headHash = size == 0 ? "—" : record(size).hashHex();
        List<AuditCheckpoint> checkpoints = log.checkpoints();
        AuditCheckpoint last = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);
        String checkpoint = last == null ? "none yet" : "record " + last.seq() + " at "
                + time(last.timestamp()) + " (v" + last.version() + (last.closed() ? ", closing" : "") + ", key "
                + last.keyId() + ")";
        String after = last == null ? Long.toString(size) : Long.toString(size - last.seq());
        Optional<AuditHead> head = log.signedHead();
        String signedHead = head.map(h -> "record " + h.seq() + " · " + h.hashHex() + " at " + time(h.timestamp())
                + (h.closed() ? " (closed)" : "")).orElse("none");
        ConsolePages.AuditPage model = new ConsolePages.AuditPage(size, headHash, checkpoint, after, signedHead,
                types, subject == null ? "" : subject, q == null ? "" : q, searchNote, out, next);
        return Reply.html(200, page("console/audit.jte", x.frame("Audit log", "audit", notices),
                mapOf("page", model)));
    }

    private static boolean matches(AuditRecord r, String needle) {
        return r.subject().toLowerCase(Locale.ROOT).contains(needle)
                || r.outcome().toLowerCase(Locale.ROOT).contains(needle)
                || r.type().name().toLowerCase(Locale.ROOT).contains(needle)
                || r.detailJson().toLowerCase(Locale.ROOT).contains(needle);
    }

    /** The records of {@code seqs} (descending), read as contiguous runs. */
    private List<AuditRecord> records(List<Long> seqs) throws Exception {
        List<AuditRecord> out = new ArrayList<>();
        int i = 0;
        while (i < seqs.size()) {
            int j = i;
            while (j + 1 < seqs.size() && seqs.get(j + 1) == seqs.get(j) - 1 && j - i < 999) {
                j++;
            }
            List<AuditRecord> run = log.records(seqs.get(j), j - i + 1);
            for (int k = run.size() - 1; k >= 0; k--) {
                out.add(run.get(k));
            }
            i = j + 1;
        }
        return out;
    }

    private AuditRecord record(long seq) throws Exception {
        List<AuditRecord> r = log.records(seq, 1);
        if (r.isEmpty()) {
            throw new Refused(404, "no record #" + seq);
        }
        return r.get(0);
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    private String page(String template, ConsolePages.Frame frame, Map<String, Object> params) {
        Map<String, Object> all = new LinkedHashMap<>(params);
        all.put("frame", frame);
        StringOutput out = new StringOutput();
        templates.render(template, all, out);
        return out.toString();
    }

    /** A map that allows null values (Map.of does not). */
    private static Map<String, Object> mapOf(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    private static String cookie(Request request) {
        for (String header : request.getHeaders().getValuesList(HttpHeader.COOKIE)) {
            for (String part : header.split(";")) {
                String p = part.trim();
                if (p.startsWith(COOKIE + "=")) {
                    return p.substring(COOKIE.length() + 1);
                }
            }
        }
        return null;
    }

    private static Map<String, String> parseForm(String text) throws Refused {
        Map<String, String> m = new LinkedHashMap<>();
        if (text == null || text.isEmpty()) {
            return m;
        }
        for (String pair : text.split("&")) {
            if (pair.isEmpty()) {
                continue;
            }
            int eq = pair.indexOf('=');
            try {
                String k = URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
                String v = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
                if (m.put(k, v) != null) {
                    throw new Refused(400, "parameter '" + truncate(k, 40) + "' given twice");
                }
            } catch (IllegalArgumentException e) {
                throw new Refused(400, "malformed query or form encoding");
            }
        }
        return m;
    }

    private static String query(Map<String, String> q) {
        StringBuilder s = new StringBuilder();
        q.forEach((k, v) -> {
            if (v != null && !v.isEmpty()) {
                s.append(s.length() == 0 ? "" : "&").append(enc(k)).append('=').append(enc(v));
            }
        });
        return s.toString();
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    private static String time(Instant t) {
        return t.truncatedTo(ChronoUnit.SECONDS).toString();
    }

    private static String time(long millis) {
        return time(Instant.ofEpochMilli(millis));
    }

    private static String truncate(String s, int max) {
        return s.length() <= max ? s : s.substring(0, max) + "…";
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JRE", e);
        }
    }
}
