package io.tpmphone.server.internal;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.NonceRequest;
import io.tpmphone.attestation.NonceRequestVerifier;
import io.tpmphone.attestation.PolicyException;
import io.tpmphone.attestation.VerificationException;
import io.tpmphone.server.audit.AuditLog;
import io.tpmphone.server.audit.AuditRecord;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The {@code /v1} routes: what each endpoint accepts, checks and answers. See {@code /v1/openapi.json}. */
public final class V1Routes {

    /** What the routes need. */
    public record Services(Registry registry, Registrar registrar, NonceService nonces, AuditLog auditLog,
                           ServerIdentity identity, AuditTrail audit, RefusalAggregator refusals, Clock clock,
                           String initialPolicy) {
    }

    private V1Routes() {
    }

    /**
     * Replaces the policy in force, as {@code PUT /v1/policy} does: the new version must be newer; it is stored and
     * recorded ({@code POLICY_CHANGE} by {@code by}) before it takes effect. Returns the new version.
     */
    @FunctionalInterface
    public interface PolicyUpdate {
        int apply(String json, String by) throws ApiException;
    }

    public static void install(HttpApi api, Services s) throws Exception {
        install(api, s, EventLogArchive.NONE);
    }

    /**
     * As {@link #install(HttpApi, Services)}, keeping every appraised measurement log in {@code archive}; returns the
     * policy update that {@code PUT /v1/policy} uses, for the console.
     */
    public static PolicyUpdate install(HttpApi api, Services s, EventLogArchive archive) throws Exception {
        return install(api, s, archive, new ServerMetrics());
    }

    /** As {@link #install(HttpApi, Services, EventLogArchive)}, counting appraisals into {@code metrics}. */
    public static PolicyUpdate install(HttpApi api, Services s, EventLogArchive archive, ServerMetrics metrics)
            throws Exception {
        PolicyStore policy = initialPolicy(s);
        ResultSigner signer = new ResultSigner(s.identity().resultKeyPair());
        KeyApprover approver = new KeyApprover(s.identity().keystoreAuthorityKeyPair());
        Appraisals appraisals = new Appraisals(s.registry(), s.nonces(), signer, approver, s.audit(), s.clock(),
                policy::current).withRefusals(s.refusals()).withEventLogArchive(archive).withMetrics(metrics);
        DeviceCertificates certificates = new DeviceCertificates(s.registry(), s.nonces(), s.identity(), approver,
                s.audit(), s.clock(), appraisals::last).withRefusals(s.refusals());
        String openApi = resource("/openapi.json");

        api.route("GET", "/v1/openapi\\.json", false, call -> openApi);

        api.route("GET", "/v1/server", false, call -> {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("resultKeyId", signer.keyId());
            m.put("resultSigningKey", ServerIdentity.pem(s.identity().resultCertificate().getPublicKey()));
            m.put("tlsCertificate", ServerIdentity.pem(s.identity().tlsCertificate()));
            m.put("keystoreAuthority", Base64.getEncoder().encodeToString(approver.publicArea().encoded()));
            m.put("keystoreAuthorityName", HexFormat.of().formatHex(approver.publicArea().name()));
            m.put("deviceCaCertificate", ServerIdentity.pem(s.identity().deviceCaCertificate()));
            AttestationPolicy inForce = policy.current();
            m.put("policyVersion", inForce == null ? null : inForce.version());
            return m;
        });

        api.route("POST", "/v1/enrollments", false, call -> {
            ObjectNode req = Json.object(call.body(), Set.of("host", "ekPublic", "ekCertificate", "akPublic"),
                    Set.of("enrollmentToken"));
            Registrar.Challenge c = s.registrar().enroll(Json.text(req, "host", 253),
                    Json.base64(req, "ekPublic", 1024), Json.base64(req, "ekCertificate", 8192),
                    Json.base64(req, "akPublic", 1024),
                    req.hasNonNull("enrollmentToken") ? Json.text(req, "enrollmentToken", 200) : null,
                    call.remoteAddress());
            Base64.Encoder b64 = Base64.getEncoder();
            Map<String, Object> credential = new LinkedHashMap<>();
            credential.put("integrityHmac", b64.encodeToString(c.credential().integrityHmac()));
            credential.put("encIdentity", b64.encodeToString(c.credential().encIdentity()));
            credential.put("encryptedSecret", b64.encodeToString(c.credential().encryptedSecret()));
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("enrollmentId", c.enrollmentId());
            m.put("credential", credential);
            m.put("expiresAt", c.expiresAt().toString());
            return m;
        });

        api.route("POST", "/v1/enrollments/([0-9a-f]{32})/activation", false, call -> {
            ObjectNode req = Json.object(call.body(), Set.of("secret"), Set.of());
            Registry.Host h = s.registrar().activate(call.pathParameters().get(0), Json.base64(req, "secret", 64),
                    call.remoteAddress());
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("host", h.host());
            m.put("akId", h.akId());
            m.put("enrolledAt", h.enrolledAt());
            return m;
        });

        api.route("POST", "/v1/enrollment-tokens", true, call -> {
            ObjectNode req = Json.object(call.body(), Set.of("host"), Set.of("ttlSeconds"));
            int ttl = req.has("ttlSeconds") ? req.get("ttlSeconds").asInt(-1) : 86_400;
            if (ttl < 60 || ttl > 7 * 86_400) {
                throw ApiException.badRequest("ttlSeconds must be 60..604800");
            }
            String host = Json.text(req, "host", 253);
            String token = s.registrar().issueToken(host, java.time.Duration.ofSeconds(ttl), call.adminUser());
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("host", host);
            m.put("enrollmentToken", token);
            m.put("expiresAt", s.clock().instant().plusSeconds(ttl).toString());
            return m;
        });

        api.route("POST", "/v1/nonces", false, call -> {
            ObjectNode req = Json.object(call.body(), Set.of("akId"), Set.of("requestedAt", "signature"));
            String akId = Json.text(req, "akId", NonceRequest.MAX_AK_ID_LENGTH);
            java.util.Optional<Registry.Host> owner = s.registry().hostByAkId(akId);
            if (owner.isEmpty()) {
                throw nonceRefused(s, call.remoteAddress(), akId, false, 404, "unknown_ak", "AK_ENROLLED",
                        "no host is enrolled with AK " + akId);
            }
            // Only the AK's holder may have a nonce issued, because issuing replaces the AK's outstanding one: an
            // unauthenticated request must not evict anything (finding 5), so it is refused before any state changes.
            if (!req.hasNonNull("requestedAt") || !req.hasNonNull("signature")) {
                throw nonceRefused(s, call.remoteAddress(), akId, true, 401, "nonce_request_unsigned",
                        "NONCE_REQUEST_SIGNED", "nonce requests must be signed by the AK: send requestedAt (ms"
                        + " since the epoch) and signature (base64 TPMT_SIGNATURE over the request's canonical"
                        + " encoding, docs/api.md); upgrade the agent");
            }
            if (!req.get("requestedAt").canConvertToLong() || !req.get("requestedAt").isIntegralNumber()
                    || req.get("requestedAt").asLong() < 0) {
                throw ApiException.badRequest("requestedAt must be a non-negative integer (ms since the epoch)");
            }
            NonceRequest request = new NonceRequest(akId, req.get("requestedAt").asLong());
            byte[] signature = Json.base64(req, "signature", 1024);
            try {
                NonceRequestVerifier.verify(request, signature, appraisals.akPublic(owner.get()));
            } catch (VerificationException e) {
                throw nonceRefused(s, call.remoteAddress(), akId, true, 403, "nonce_request_refused",
                        "NONCE_REQUEST_SIGNATURE",
                        "the nonce request is not signed by the enrolled AK: " + e.getMessage());
            } catch (MalformedStructureException e) {
                throw nonceRefused(s, call.remoteAddress(), akId, true, 403, "nonce_request_refused",
                        "NONCE_REQUEST_SIGNATURE", "the enrolled AK cannot be parsed: " + e.getMessage());
            }
            AttestationPolicy p = requirePolicy(policy);
            NonceService.Grant grant;
            try {
                grant = s.nonces().issueForVerifiedRequest(akId, request.requestedAt(), p.nonceTtl());
            } catch (NonceService.RequestRefusedException e) {
                // The server's time, so that a host whose clock is off can correct and retry at once (its AK signs
                // the corrected request too) instead of being refused until its clock is set. Only the AK's holder
                // gets this far.
                Map<String, Object> fields = e.refusal() == NonceService.RequestRefusal.TIME
                        ? Map.of("serverTime", e.serverTime().toEpochMilli()) : Map.of();
                throw nonceRefused(s, call.remoteAddress(), akId, true, 403, "nonce_request_refused",
                        "NONCE_REQUEST_" + e.refusal().name(), e.getMessage(), fields);
            }
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("nonce", HexFormat.of().formatHex(grant.nonce()));
            m.put("expiresAt", grant.expiresAt().toString());
            m.put("pcrSelection", p.requiredPcrSelection().toString());
            return m;
        });

        api.route("POST", "/v1/appraisals", false, call -> {
            requirePolicy(policy);
            return appraisals.appraise(call.body(), call.remoteAddress());
        });

        api.route("POST", "/v1/device-certificates", false, call -> certificates.issue(call.body(),
                call.remoteAddress()));

        api.route("GET", "/v1/hosts", true, call -> {
            List<Map<String, Object>> hosts = new ArrayList<>();
            for (Registry.Host h : s.registry().hosts()) {
                hosts.add(hostView(h, appraisals));
            }
            return Map.of("hosts", hosts);
        });

        api.route("GET", "/v1/hosts/([A-Za-z0-9.-]{1,253})", true, call -> {
            Registry.Host h = s.registry().hostByName(call.pathParameters().get(0)).orElseThrow(
                    () -> new ApiException(404, "not_found", "no host " + call.pathParameters().get(0)));
            return hostView(h, appraisals);
        });

        api.route("GET", "/v1/policy", true, call -> {
            AttestationPolicy p = requirePolicy(policy);
            return p.toJson();
        });

        PolicyUpdate update = (json, by) -> {
            AttestationPolicy next;
            try {
                next = AttestationPolicy.parse(json);
            } catch (PolicyException e) {
                Map<String, Object> detail = new LinkedHashMap<>();
                detail.put("reason", e.getMessage());
                s.audit().record("REFUSAL", by, "POLICY_REFUSED", detail);
                throw new ApiException(400, "invalid_policy", "POLICY", e.getMessage());
            }
            AttestationPolicy inForce = policy.current();
            if (inForce != null && next.version() <= inForce.version()) {
                throw new ApiException(409, "stale_policy", "POLICY", "policy version " + next.version()
                        + " is not newer than the current " + inForce.version());
            }
            // Recorded before it takes effect: if the audit log cannot take the record, nothing changes.
            Map<String, Object> detail = new LinkedHashMap<>();
            detail.put("version", next.version());
            detail.put("sha256", HexFormat.of().formatHex(HttpApi.sha256(
                    next.toJson().getBytes(StandardCharsets.UTF_8))));
            s.audit().record("POLICY_CHANGE", by, "ACCEPTED", detail);
            boolean replaced;
            boolean stale = false;
            String failure = null;
            try {
                replaced = policy.replace(next, by);
                if (!replaced) {
                    stale = true;
                    failure = "a version at least as new was stored meanwhile (another instance)";
                }
            } catch (java.sql.SQLException e) {
                replaced = false;
                failure = "the policy could not be stored";
            }
            if (!replaced) {
                // The record above said ACCEPTED; this one says it did not take effect.
                Map<String, Object> undone = new LinkedHashMap<>();
                undone.put("version", next.version());
                undone.put("reason", "not in force: " + failure);
                s.audit().record("REFUSAL", by, "POLICY_REFUSED", undone);
                AttestationPolicy current = policy.current();
                if (stale) {
                    throw new ApiException(409, "stale_policy", "POLICY", "policy version " + next.version()
                            + " is not newer than the current " + (current == null ? "one" : current.version()));
                }
                throw new ApiException(503, "storage_unavailable", failure + ", so it was not changed");
            }
            return next.version();
        };

        api.route("PUT", "/v1/policy", true, call -> Map.of("version", update.apply(call.body(),
                call.adminUser())));

        api.route("GET", "/v1/audit", true, call -> {
            long from = call.intParameter("from", 1, 1, Integer.MAX_VALUE);
            int limit = call.intParameter("limit", 100, 1, 1000);
            List<Map<String, Object>> records = new ArrayList<>();
            int views = 0;
            long last = 0;
            for (AuditRecord r : s.auditLog().records(from, limit)) {
                if (r.type() == io.tpmphone.server.audit.AuditEventType.ADMIN && r.outcome().equals("AUDIT_VIEW")) {
                    views++;
                }
                last = r.seq();
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("seq", r.seq());
                m.put("timestamp", r.timestamp().toString());
                m.put("type", r.type().name());
                m.put("subject", r.subject());
                m.put("outcome", r.outcome());
                m.put("detail", Json.MAPPER.readTree(r.detailJson()));
                m.put("hash", r.hashHex());
                records.add(m);
            }
            // Every view of audit data is a record naming who read which range, written before the records are sent
            // (if it cannot be written the call fails); as with the SIEM export, a page that holds nothing but such
            // records of earlier reads is not recorded again, so a poller does not feed itself.
            if (records.size() > views) {
                Map<String, Object> detail = new LinkedHashMap<>();
                detail.put("view", "GET /v1/audit");
                detail.put("from", from);
                detail.put("limit", limit);
                detail.put("records", records.size());
                detail.put("lastSeq", last);
                detail.put("remote", call.remoteAddress());
                s.audit().record("ADMIN", call.adminUser(), "AUDIT_VIEW", detail);
            }
            return Map.of("records", records);
        });
        // The SIEM's feed: the auditor credential reads it too (docs/audit.md, "SIEM export"), and every export that
        // found something is itself a record naming who read it.
        api.route("GET", "/v1/audit/ocsf", HttpApi.Access.AUDIT_READER, call -> {
            long after = call.longParameter("after", 0, 0, Long.MAX_VALUE);
            long checkpointsAfter = call.longParameter("checkpoints_after", -1, -1, Integer.MAX_VALUE);
            int limit = call.intParameter("limit", 1000, 1, io.tpmphone.server.audit.OcsfExport.MAX_PAGE);
            java.io.StringWriter lines = new java.io.StringWriter();
            io.tpmphone.server.audit.OcsfExport.Result r = io.tpmphone.server.audit.OcsfExport.write(
                    io.tpmphone.server.audit.OcsfExport.of(s.auditLog()), after, checkpointsAfter, limit, lines);
            // Every export is a record, except one that found nothing new but earlier exports' own records: a SIEM
            // polling a quiet log must not feed itself one record per poll.
            if (r.records() > r.exportRecords()) {
                Map<String, Object> detail = new LinkedHashMap<>();
                detail.put("format", "ocsf-jsonl");
                detail.put("after", after);
                detail.put("records", r.records());
                detail.put("lastSeq", r.nextAfter());
                detail.put("remote", call.remoteAddress());
                s.audit().record("ADMIN", call.adminUser(), "AUDIT_EXPORT", detail);
            }
            return new HttpApi.RawBody("application/x-ndjson", lines.toString());
        });
        return update;
    }

    /**
     * A refused nonce request. Anyone can send one for any AK id (they are not secret), so the record is
     * rate-limited per client and check (docs/audit.md): the first of a kind in a window in full, the rest counted.
     * An enrolled AK is a key of its own (there are as many as enrolled hosts); every AK id nobody enrolled is one
     * subject, "(unenrolled)", since the client chooses it: a client rotating made-up ids must not fill the table.
     */
    private static ApiException nonceRefused(Services s, String remote, String akId, boolean enrolled, int status,
                                             String error, String check, String reason) throws ApiException {
        return nonceRefused(s, remote, akId, enrolled, status, error, check, reason, Map.of());
    }

    private static ApiException nonceRefused(Services s, String remote, String akId, boolean enrolled, int status,
                                             String error, String check, String reason, Map<String, Object> fields)
            throws ApiException {
        String ak = akId.length() > 20 ? akId.substring(0, 20) + "…" : akId;
        String keyed = enrolled ? ak : "(unenrolled)";
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("check", check);
        detail.put("akId", akId.length() > 80 ? akId.substring(0, 80) + "…" : akId);
        detail.put("detail", reason); // "reason" is the aggregation key's
        detail.put("remote", remote);
        s.refusals().refuse("NONCE_REFUSED", remote, check + " ak:" + keyed, detail, "ak:" + ak, "ak:" + keyed);
        return new ApiException(status, error, check, reason, fields);
    }

    private static AttestationPolicy requirePolicy(PolicyStore policy) throws ApiException {
        AttestationPolicy p = policy.current();
        if (p == null) {
            throw new ApiException(503, "no_policy", "no attestation policy is loaded: PUT /v1/policy (admin) or"
                    + " start the server with --policy FILE");
        }
        return p;
    }

    private static Map<String, Object> hostView(Registry.Host h, Appraisals appraisals) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("host", h.host());
        m.put("akId", h.akId());
        m.put("ekName", HexFormat.of().formatHex(h.ekName()));
        m.put("enrolledAt", h.enrolledAt());
        appraisals.last(h.host()).ifPresent(a -> {
            Map<String, Object> last = new LinkedHashMap<>();
            last.put("level", a.level().name());
            if (a.failedCheck() != null) {
                last.put("failedCheck", a.failedCheck());
            }
            last.put("at", a.at().toString());
            last.put("expiresAt", a.expiresAt().toString());
            m.put("lastAppraisal", last);
        });
        return m;
    }

    private static PolicyStore initialPolicy(Services s) throws Exception {
        PolicyStore store = new PolicyStore(s.registry());
        AttestationPolicy configured = s.initialPolicy() == null ? null : AttestationPolicy.parse(s.initialPolicy());
        if (store.load(configured, "configuration")) {
            Map<String, Object> detail = new LinkedHashMap<>();
            detail.put("version", configured.version());
            s.audit().record("POLICY_CHANGE", "configuration", "ACCEPTED", detail);
        }
        return store;
    }

    private static String resource(String name) throws IOException {
        try (InputStream in = V1Routes.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IOException("resource " + name + " is missing from the server jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
