package io.tpmphone.server.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.Appraisal;
import io.tpmphone.attestation.AppraisalContext;
import io.tpmphone.attestation.Appraiser;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.Claim;
import io.tpmphone.attestation.ClaimName;
import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.QuoteVerifier;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.VerificationException;
import io.tpmphone.attestation.VerifiedQuote;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * The verifier. Checks, in this order, stopping at the first failure (docs/attestation.md):
 * <ol>
 *   <li>REQUEST — well-formed JSON, encodings and sizes;</li>
 *   <li>PCR_SELECTION — the quoted bank is the policy's (SHA-256) and the selection holds the measurement PCR and
 *       the policy's boot PCRs;</li>
 *   <li>AK_ENROLLED — the AK is registered to a host;</li>
 *   <li>NONCE — the nonce was issued by this server for this AK, is unused and unexpired (it is used up now);</li>
 *   <li>KEY, SIGNATURE_ALGORITHM, SIGNATURE, STRUCTURE, MAGIC, TYPE, QUALIFYING_DATA, PCR_DIGEST — the quote
 *       ({@link QuoteVerifier}): signed by the enrolled AK, a TPM-generated quote, over this nonce and these PCR
 *       values;</li>
 *   <li>CLOCK — the TPM's (resetCount, restartCount, clock) never goes back for this AK;</li>
 *   <li>EVENT_LOG — the measurement log parses, replays to the quoted measurement PCR; then each event against the
 *       policy, the claim vector and the level ({@link Appraiser}).</li>
 * </ol>
 * Every appraisal, passed or failed, yields a signed result and one audit record with the evidence hash.
 */
public final class Appraisals {
    private static final Set<String> FIELDS = Set.of("akId", "nonce", "attest", "signature", "pcrSelection",
            "pcrValues", "eventLog");

    /** The last appraisal of a host, for operators. */
    public record LastAppraisal(String host, IntegrityLevel level, String failedCheck, Instant at, Instant expiresAt) {
    }

    private final Registry registry;
    private final NonceService nonces;
    private final ResultSigner signer;
    private final AuditTrail audit;
    private final Clock clock;
    private final Supplier<AttestationPolicy> policy;
    private final Map<String, LastAppraisal> lastByHost = new ConcurrentHashMap<>();

    /** The last log per AK that replayed to a verified quote, with the boot it belongs to. */
    private record Accepted(long resetCount, long restartCount, MeasurementLog log) {
    }

    private final Map<String, Accepted> acceptedByAk = new ConcurrentHashMap<>();

    public Appraisals(Registry registry, NonceService nonces, ResultSigner signer, AuditTrail audit, Clock clock,
                      Supplier<AttestationPolicy> policy) {
        this.registry = registry;
        this.nonces = nonces;
        this.signer = signer;
        this.audit = audit;
        this.clock = clock;
        this.policy = policy;
    }

    public Optional<LastAppraisal> last(String host) {
        return Optional.ofNullable(lastByHost.get(host));
    }

    /** Appraises one evidence request; the response body of POST /v1/appraisals. */
    public Map<String, Object> appraise(String body) throws Exception {
        AttestationPolicy p = policy.get();
        ObjectNode req = Json.object(body, FIELDS, Set.of());
        String akId = Json.text(req, "akId", 200);
        byte[] nonce = Json.hex(req, "nonce", 64);
        byte[] attest = Json.base64(req, "attest", 4096);
        byte[] signature = Json.base64(req, "signature", 4096);
        byte[] logBytes = Json.base64(req, "eventLog", 8 << 20);
        PcrValues pcrs = pcrValues(req);
        byte[] evidenceHash = HttpApi.sha256(concat(attest, signature, pcrs, logBytes));

        Optional<Registry.Host> host = registry.hostByAkId(akId);
        String subject = host.map(Registry.Host::host).orElse("ak:" + abbreviate(akId));
        Evaluation e = evaluate(p, akId, host, nonce, attest, signature, pcrs, logBytes);
        Appraisal a = e.appraisal();

        Instant now = clock.instant();
        Instant expires = now.plus(p.resultTtl());
        Map<String, Object> claims = new LinkedHashMap<>();
        claims.put("iss", "tpmphone-attestation-server");
        claims.put("sub", subject);
        claims.put("iat", now.getEpochSecond());
        claims.put("exp", expires.getEpochSecond());
        claims.put("eat_nonce", HexFormat.of().formatHex(nonce));
        claims.put("level", a.level().name());
        claims.put("claims", claimMap(a));
        claims.put("akId", akId);
        e.pcrDigest().ifPresent(d -> claims.put("pcrDigest", HexFormat.of().formatHex(d)));
        claims.put("policyVersion", p.version());
        a.matchedRelease().ifPresent(r -> claims.put("release", r));
        a.failedCheck().ifPresent(c -> claims.put("failedCheck", c));
        claims.put("reasons", a.reasons());
        String jws = signer.sign(claims);

        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", akId);
        detail.put("evidenceSha256", HexFormat.of().formatHex(evidenceHash));
        detail.put("level", a.level().name());
        a.failedCheck().ifPresent(c -> detail.put("failedCheck", c));
        detail.put("reasons", a.reasons());
        detail.put("policyVersion", p.version());
        audit.record("APPRAISAL", subject, a.level().name(), detail);
        host.ifPresent(h -> lastByHost.put(h.host(), new LastAppraisal(h.host(), a.level(),
                a.failedCheck().orElse(null), now, expires)));

        Map<String, Object> response = new LinkedHashMap<>();
        response.put("host", subject);
        response.put("level", a.level().name());
        a.failedCheck().ifPresent(c -> response.put("failedCheck", c));
        response.put("reasons", a.reasons());
        response.put("claims", claimMap(a));
        response.put("policyVersion", p.version());
        response.put("expiresAt", expires.toString());
        response.put("result", jws);
        return response;
    }

    private record Evaluation(Appraisal appraisal, Optional<byte[]> pcrDigest) {
    }

    private Evaluation evaluate(AttestationPolicy p, String akId, Optional<Registry.Host> host, byte[] nonce,
                                byte[] attest, byte[] signature, PcrValues pcrs, byte[] logBytes) {
        int v = p.version();
        PcrSelection required = p.requiredPcrSelection();
        if (pcrs.selection().bank() != p.pcrBank()) {
            return failed(ClaimName.HARDWARE, "PCR_SELECTION", "PCR bank " + pcrs.selection().bank()
                    + " is not the policy's " + p.pcrBank(), v);
        }
        if (!pcrs.selection().pcrs().containsAll(required.pcrs())) {
            return failed(ClaimName.HARDWARE, "PCR_SELECTION", "the quote covers " + pcrs.selection()
                    + " but the policy needs " + required, v);
        }
        if (host.isEmpty()) {
            return failed(ClaimName.INSTANCE_IDENTITY, "AK_ENROLLED", "AK " + abbreviate(akId)
                    + " is not enrolled: enroll the host first", v);
        }
        NonceService.Refusal refusal = nonces.consume(nonce, akId);
        if (refusal != null) {
            String why = switch (refusal) {
                case UNKNOWN -> "not issued by this server, or already used (replay)";
                case EXPIRED -> "expired (nonces live at most " + p.nonceTtl().toSeconds() + " s)";
                case OTHER_KEY -> "issued for another AK";
            };
            return failed(ClaimName.INSTANCE_IDENTITY, "NONCE", "the nonce is " + why, v);
        }
        TpmtPublic ak;
        VerifiedQuote quote;
        try {
            ak = TpmtPublic.parse(host.get().akPublic());
            quote = QuoteVerifier.verify(attest, signature, ak, nonce, pcrs);
        } catch (VerificationException e) {
            return failed(ClaimName.INSTANCE_IDENTITY, e.check().name(), e.getMessage(), v);
        } catch (MalformedStructureException e) {
            return failed(ClaimName.INSTANCE_IDENTITY, "AK_ENROLLED", "the enrolled AK cannot be parsed: "
                    + e.getMessage(), v);
        }
        byte[] pcrDigest = quote.attest().quoteInfo().orElseThrow().pcrDigest();
        ClockInfo ci = quote.attest().clockInfo();
        Registry.ClockState now = new Registry.ClockState(ci.resetCount(), ci.restartCount(), ci.clock());
        Optional<Registry.ClockState> before = registry.clockState(akId);
        if (before.isPresent() && goesBack(before.get(), now)) {
            return new Evaluation(Appraisal.failed(ClaimName.HARDWARE, "CLOCK", "the TPM clock went back: reset "
                    + before.get().resetCount() + "→" + now.resetCount() + ", restart " + before.get().restartCount()
                    + "→" + now.restartCount() + ", clock " + before.get().clock() + "→" + now.clock()
                    + " (replayed or rolled-back TPM state)", v), Optional.of(pcrDigest));
        }
        registry.updateClock(akId, now);
        MeasurementLog log;
        try {
            log = MeasurementLog.parse(logBytes);
        } catch (MalformedStructureException e) {
            return new Evaluation(Appraisal.failed(ClaimName.EXECUTABLES, "EVENT_LOG", "the event log is malformed: "
                    + e.getMessage(), v), Optional.of(pcrDigest));
        }
        // A log must only grow within one boot: comparing with the last accepted one names a modified event.
        AppraisalContext.Builder ctx = AppraisalContext.builder().quoteVerified(true);
        Accepted previous = acceptedByAk.get(akId);
        if (previous != null && previous.resetCount() == ci.resetCount()
                && previous.restartCount() == ci.restartCount()) {
            ctx.previouslyAcceptedLog(previous.log());
        }
        Appraisal a = Appraiser.appraise(p, log, pcrs, ctx.build());
        if (java.util.Arrays.equals(log.replay(p.measurementPcr()).value(), pcrs.value(p.measurementPcr()))
                && !a.failedCheck().map(c -> c.contains("event-log") || c.contains("EVENT_LOG")).orElse(false)) {
            acceptedByAk.put(akId, new Accepted(ci.resetCount(), ci.restartCount(), log));
        }
        return new Evaluation(a, Optional.of(pcrDigest));
    }

    /** (resetCount, restartCount, clock) compared in that order; a TPM reset may restart the clock. */
    static boolean goesBack(Registry.ClockState before, Registry.ClockState now) {
        if (now.resetCount() != before.resetCount()) {
            return now.resetCount() < before.resetCount();
        }
        if (now.restartCount() != before.restartCount()) {
            return now.restartCount() < before.restartCount();
        }
        return now.clock() < before.clock();
    }

    private static Evaluation failed(ClaimName claim, String check, String reason, int policyVersion) {
        return new Evaluation(Appraisal.failed(claim, check, reason, policyVersion), Optional.empty());
    }

    private static PcrValues pcrValues(JsonNode req) throws ApiException {
        PcrSelection selection;
        try {
            selection = PcrSelection.parse(Json.text(req, "pcrSelection", 200));
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("pcrSelection: " + e.getMessage());
        }
        JsonNode values = req.get("pcrValues");
        if (values == null || !values.isArray() || values.size() != selection.pcrs().size()) {
            throw ApiException.badRequest("pcrValues must be an array of " + selection.pcrs().size()
                    + " hex digests, one per selected PCR in ascending order");
        }
        List<byte[]> list = new ArrayList<>();
        for (JsonNode v : values) {
            if (!v.isTextual()) {
                throw ApiException.badRequest("pcrValues holds a non-string");
            }
            try {
                list.add(HexFormat.of().parseHex(v.textValue()));
            } catch (IllegalArgumentException e) {
                throw ApiException.badRequest("pcrValues: not hex: " + e.getMessage());
            }
        }
        try {
            return PcrValues.of(selection, list);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("pcrValues: " + e.getMessage());
        }
    }

    private static Map<String, Object> claimMap(Appraisal a) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Map.Entry<ClaimName, Claim> c : a.claims().asMap().entrySet()) {
            Map<String, Object> claim = new LinkedHashMap<>();
            claim.put("status", c.getValue().status().name());
            if (c.getValue().reason() != null && !c.getValue().reason().isEmpty()) {
                claim.put("reason", c.getValue().reason());
            }
            m.put(c.getKey().name(), claim);
        }
        return m;
    }

    private static byte[] concat(byte[] attest, byte[] signature, PcrValues pcrs, byte[] log) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        out.writeBytes(attest);
        out.writeBytes(signature);
        out.writeBytes(pcrs.selection().toString().getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        for (byte[] v : pcrs.values()) {
            out.writeBytes(v);
        }
        out.writeBytes(log);
        return out.toByteArray();
    }

    private static String abbreviate(String akId) {
        return akId.length() > 20 ? akId.substring(0, 20) + "…" : akId;
    }

}
