package io.tpmphone.server.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.attestation.Appraisal;
import io.tpmphone.attestation.AppraisalContext;
import io.tpmphone.attestation.Appraiser;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.attestation.AttestationResult;
import io.tpmphone.attestation.Claim;
import io.tpmphone.attestation.ClaimName;
import io.tpmphone.attestation.ClockInfo;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.KeystoreApproval;
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

    /** How often an appraisal re-reads a TPM's state that another appraisal changed before it gives up (fails). */
    static final int STATE_ATTEMPTS = 3;

    private final Registry registry;
    private final NonceService nonces;
    private final ResultSigner signer;
    private final KeyApprover approver;
    private volatile RefusalAggregator refusals;
    private volatile EventLogArchive archive = EventLogArchive.NONE;
    private volatile ServerMetrics metrics;
    private final AuditTrail audit;
    private final Clock clock;
    private final Supplier<AttestationPolicy> policy;
    /** Parsed AK public areas (immutable), so the hot path does not parse and validate the point every time. */
    private final Map<String, TpmtPublic> akCache = new ConcurrentHashMap<>();
    /**
     * Appraisals of one TPM run one at a time: striped by the enrolled host's EK name, looked up from the AK id, never
     * by the AK id the client sent (an id nobody enrolled takes no lock, and an AK replaced by a new enrollment locks
     * the same TPM as its successor). A fixed number of stripes, so no client can make the server hold more locks.
     */
    private final Object[] tpmLocks = new Object[TPM_LOCK_STRIPES];
    private static final int TPM_LOCK_STRIPES = 256;


    public Appraisals(Registry registry, NonceService nonces, ResultSigner signer, KeyApprover approver,
                      AuditTrail audit, Clock clock, Supplier<AttestationPolicy> policy) {
        this.registry = registry;
        this.nonces = nonces;
        this.signer = signer;
        this.approver = approver;
        this.audit = audit;
        this.clock = clock;
        this.policy = policy;
        for (int i = 0; i < tpmLocks.length; i++) {
            tpmLocks[i] = new Object();
        }
    }

    /** The enrolled AK's parsed public area (cached: parsing validates the point). */
    TpmtPublic akPublic(Registry.Host host) throws MalformedStructureException {
        TpmtPublic ak = akCache.get(host.akId());
        if (ak == null || !java.util.Arrays.equals(ak.encoded(), host.akPublic())) {
            ak = TpmtPublic.parse(host.akPublic());
            akCache.put(host.akId(), ak);
        }
        return ak;
    }

    /** The last appraisal of {@code host}, as the registry holds it (shared by every instance on PostgreSQL). */
    public Optional<Registry.LastAppraisal> last(String host) {
        return registry.lastAppraisal(host);
    }

    /**
     * Appraises one evidence request; the response body of POST /v1/appraisals. Until the quote is authenticated
     * (a fresh nonce of ours, signed by an enrolled AK) nothing is attributed to a host: such failures are refused
     * with 403 naming the check and audited under the AK, without a signed result — otherwise anyone could have a
     * host marked FAILED. After that, every outcome is a signed result for the host.
     */
    public Map<String, Object> appraise(String body) throws Exception {
        return appraise(body, null);
    }

    /**
     * Rate-limits the records of refusals before the quote authenticated (anyone can provoke those: AK ids are
     * public) through {@code refusals}, per client source, check and, for an enrolled AK, that AK. Call once, before
     * serving.
     */
    public Appraisals withRefusals(RefusalAggregator refusals) {
        this.refusals = refusals;
        return this;
    }

    /** Counts appraisals, their latency, rollbacks and refusals into {@code metrics}. Call once, before serving. */
    public Appraisals withMetrics(ServerMetrics metrics) {
        this.metrics = java.util.Objects.requireNonNull(metrics, "metrics");
        return this;
    }

    /**
     * Keeps every appraised measurement log in {@code archive} (by the SHA-256 the APPRAISAL record names), for the
     * console's "what changed". Call once, before serving.
     */
    public Appraisals withEventLogArchive(EventLogArchive archive) {
        this.archive = java.util.Objects.requireNonNull(archive, "archive");
        return this;
    }

    /** As {@link #appraise(String)}, for a client at {@code remote} (null: unknown, every refusal recorded). */
    public Map<String, Object> appraise(String body, String remote) throws Exception {
        long started = System.nanoTime();
        AttestationPolicy p = policy.get();
        ObjectNode req = Json.object(body, FIELDS, Set.of("keyApprovalPcrs", "keyEvents"));
        byte[] keyEventBytes = req.has("keyEvents") ? KeyEvents.bytes(req) : null;
        List<KeyEvents.Event> keyEvents = keyEventBytes == null ? List.of() : KeyEvents.parse(keyEventBytes);
        PcrSelection keystorePcrs = null;
        if (req.has("keyApprovalPcrs")) {
            try {
                keystorePcrs = PcrSelection.parse(Json.text(req, "keyApprovalPcrs", 200));
            } catch (IllegalArgumentException e) {
                throw ApiException.badRequest("keyApprovalPcrs: " + e.getMessage());
            }
        }
        String akId = Json.text(req, "akId", 200);
        byte[] nonce = Json.hex(req, "nonce", 64);
        byte[] attest = Json.base64(req, "attest", 4096);
        byte[] signature = Json.base64(req, "signature", 4096);
        byte[] logBytes = Json.base64(req, "eventLog", HttpApi.MAX_BODY);
        PcrValues pcrs = pcrValues(req);
        byte[] evidenceHash = HttpApi.sha256(concat(attest, signature, pcrs, logBytes));
        // Key events ride on the quote: its qualifying data binds them to this nonce, so only the host's TPM can
        // have reported them.
        byte[] qualifyingData = keyEventBytes == null ? nonce : KeyEvents.qualifyingData(nonce, keyEventBytes);

        Registry.Host enrolled = enrolledHost(p, akId, pcrs, evidenceHash, remote);
        Decided decided;
        // One appraisal of a TPM at a time, from consuming its nonce to recording its clock: a nonce for the next
        // quote can only be issued after this one's was consumed (one outstanding nonce per AK), so the next
        // appraisal of this TPM always sees this one's clock (see CLOCK in appraiseAuthenticated).
        synchronized (tpmLock(enrolled.ekName())) {
            Authenticated authenticated = null;
            NotAuthenticated refused = null;
            try {
                // The nonce's redemption commits on its own, at once: the AK's next nonce (at any instance) never
                // waits for this appraisal's transaction, which would hold the AK's nonce row.
                authenticated = authenticate(p, enrolled, akId, nonce, qualifyingData, attest, signature, pcrs);
            } catch (NotAuthenticated e) {
                refused = e;
            }
            Authenticated auth = authenticated;
            // On PostgreSQL the TPM state's compare-and-set and the host's last appraisal are one transaction (one
            // commit, one WAL flush, instead of one each).
            decided = refused != null ? new Decided(null, null, null, refused) : registry.inOneTransaction(() -> {
                Judged judged = appraiseAuthenticated(p, auth.host(), auth, pcrs, logBytes);
                Instant at = clock.instant();
                Registry.LastAppraisal last = new Registry.LastAppraisal(auth.host().host(), judged.appraisal().level(),
                        judged.appraisal().failedCheck().orElse(null), at, at.plus(p.resultTtl()));
                if (registry.shared()) {
                    registry.recordAppraisal(last);
                }
                return new Decided(auth, judged, last, null);
            });
        }
        if (decided.refused() != null) {
            // Recorded once the TPM's lock is released: an audit write (an fsync, or a slow disk) must not hold up
            // the TPM's other appraisals, and anyone can provoke these refusals with the host's public AK id.
            NotAuthenticated e = decided.refused();
            throw refuse(akId, e.check, e.getMessage(), evidenceHash, remote, true);
        }
        Authenticated auth = decided.auth();
        Judged judged = decided.judged();
        Registry.Host host = auth.host();
        Appraisal a = judged.appraisal();

        Instant now = decided.last().at();
        Instant expires = decided.last().expiresAt();
        byte[] pcrDigest = auth.quote().attest().quoteInfo().orElseThrow().pcrDigest();
        String jws = signer.sign(AttestationResult.builder(a).host(host.host()).issuedAt(now).expiresAt(expires)
                .nonce(nonce).akId(host.akId()).pcrDigest(pcrDigest).build());

        KeystoreApproval keyApproval = null;
        String keyApprovalRefused = null;
        if (keystorePcrs != null) {
            if (!a.level().atLeast(IntegrityLevel.MEASURED)) {
                keyApprovalRefused = "the host's level is " + a.level()
                        + a.failedCheck().map(c -> " (failed check " + c + ")").orElse("")
                        + (a.reasons().isEmpty() ? "" : ": " + a.reasons().get(0))
                        + "; keystore approvals need MEASURED or above";
            } else {
                keyApprovalRefused = KeyApprover.refusal(keystorePcrs, pcrs.selection(), p.requiredPcrSelection())
                        .orElse(null);
                if (keyApprovalRefused == null) {
                    ClockInfo quoted = auth.quote().attest().clockInfo();
                    keyApproval = approver.approve(pcrs, keystorePcrs, quoted.resetCount(), quoted.clock(),
                            p.keyApprovalTtl(), host.ekName());
                }
            }
        }

        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", akId);
        detail.put("evidenceSha256", HexFormat.of().formatHex(evidenceHash));
        detail.put("level", a.level().name());
        a.failedCheck().ifPresent(c -> detail.put("failedCheck", c));
        detail.put("reasons", a.reasons());
        detail.put("policyVersion", p.version());
        if (judged.stateConflicts() > 0) {
            // Another appraisal of this TPM (at another instance, or a replay raced) changed its state between our
            // read and our compare-and-set: we re-read and decided against the newer state.
            detail.put("stateConflicts", judged.stateConflicts());
        }
        // The claim vector, the release and the log's hash: what the console compares two appraisals by.
        Map<String, Object> claimStatus = new LinkedHashMap<>();
        a.claims().asMap().forEach((name, claim) -> claimStatus.put(name.key(), claim.status().key()));
        detail.put("claims", claimStatus);
        a.matchedRelease().ifPresent(r -> detail.put("release", r));
        byte[] logSha256 = HttpApi.sha256(logBytes);
        detail.put("eventLogSha256", HexFormat.of().formatHex(logSha256));
        if (keyApproval != null) {
            Map<String, Object> approvalAudit = new LinkedHashMap<>();
            approvalAudit.put("pcrSelection", keyApproval.pcrSelection().toString());
            approvalAudit.put("approvedPolicy", HexFormat.of().formatHex(keyApproval.approvedPolicy().value()));
            approvalAudit.put("resetCount", keyApproval.resetCount());
            approvalAudit.put("clockBefore", keyApproval.clockBefore());
            detail.put("keyApproval", approvalAudit);
        } else if (keyApprovalRefused != null) {
            detail.put("keyApprovalRefused", keyApprovalRefused);
        }
        audit.record("APPRAISAL", host.host(), a.level().name(), detail);
        archive.archive(logSha256, logBytes);
        for (KeyEvents.Event e : keyEvents) {
            audit.record(e.auditType(), host.host(), e.outcome(), e.auditDetail(akId));
        }
        if (!registry.shared()) {
            // In memory in the SQLite mode, once the audit record is durable; on PostgreSQL committed above.
            registry.recordAppraisal(decided.last());
        }

        Map<String, Object> response = new LinkedHashMap<>();
        response.put("host", host.host());
        response.put("level", a.level().name());
        a.failedCheck().ifPresent(c -> response.put("failedCheck", c));
        response.put("reasons", a.reasons());
        response.put("claims", claimMap(a));
        response.put("policyVersion", p.version());
        response.put("expiresAt", expires.toString());
        response.put("result", jws);
        ServerMetrics m = metrics;
        if (m != null) {
            m.appraised(a.level(), a.failedCheck(), System.nanoTime() - started);
        }
        if (keyApproval != null) {
            response.put("keyApproval", keyApproval.toJsonMap());
        } else if (keyApprovalRefused != null) {
            response.put("keyApprovalRefused", keyApprovalRefused);
        }
        return response;
    }

    /** What the TPM's lock decided: authenticated, judged and recorded; or refused before the quote authenticated. */
    private record Decided(Authenticated auth, Judged judged, Registry.LastAppraisal last, NotAuthenticated refused) {
    }

    /** An appraisal, and how often the TPM's state changed under it (compare-and-set conflicts). */
    private record Judged(Appraisal appraisal, int stateConflicts) {
    }

    /** Evidence from an enrolled host's TPM, fresh for our nonce. */
    private record Authenticated(Registry.Host host, VerifiedQuote quote) {
    }

    /** Evidence that did not authenticate, found under the TPM's lock: refused and recorded after it is released. */
    private static final class NotAuthenticated extends Exception {
        private static final long serialVersionUID = 1L;
        final String check;

        NotAuthenticated(String check, String reason, Throwable cause) {
            super(reason, cause, false, false);
            this.check = check;
        }
    }


    /** The lock of the TPM with EK name {@code ekName}: one of a fixed set of stripes. */
    private Object tpmLock(byte[] ekName) {
        return tpmLocks[Math.floorMod(java.util.Arrays.hashCode(ekName), tpmLocks.length)];
    }

    /**
     * PCR_SELECTION, then AK_ENROLLED: the host the AK is enrolled to, before any lock is taken (so an AK id nobody
     * enrolled, which anyone can send, contends for nothing); throws a 403 refusal naming the failed check.
     */
    private Registry.Host enrolledHost(AttestationPolicy p, String akId, PcrValues pcrs, byte[] evidenceHash,
                                       String remote) throws ApiException {
        PcrSelection required = p.requiredPcrSelection();
        Optional<Registry.Host> host = registry.hostByAkId(akId);
        // Nothing is authenticated before the quote's signature verifies: anyone can provoke these refusals (AK ids
        // are not secret), so they are rate-limited per source, check and AK (docs/audit.md).
        boolean enrolled = host.isPresent();
        if (pcrs.selection().bank() != p.pcrBank()) {
            throw refuse(akId, "PCR_SELECTION", "PCR bank " + pcrs.selection().bank() + " is not the policy's "
                    + p.pcrBank(), evidenceHash, remote, enrolled);
        }
        if (!pcrs.selection().pcrs().containsAll(required.pcrs())) {
            throw refuse(akId, "PCR_SELECTION", "the quote covers " + pcrs.selection() + " but the policy needs "
                    + required, evidenceHash, remote, enrolled);
        }
        if (host.isEmpty()) {
            throw refuse(akId, "AK_ENROLLED", "AK " + abbreviate(akId) + " is not enrolled: enroll the host first",
                    evidenceHash, remote, enrolled);
        }
        return host.get();
    }

    /**
     * Under the TPM's lock: the AK is still enrolled to that TPM (an enrollment may have replaced it since the
     * lookup), NONCE, then the quote. Writes nothing: a failure is thrown as {@link NotAuthenticated} naming the check,
     * for the caller to record once the lock is released.
     */
    private Authenticated authenticate(AttestationPolicy p, Registry.Host enrolled, String akId, byte[] nonce,
                                       byte[] qualifyingData, byte[] attest, byte[] signature, PcrValues pcrs)
            throws NotAuthenticated {
        Optional<Registry.Host> host = registry.hostByAkId(akId)
                .filter(h -> java.util.Arrays.equals(h.ekName(), enrolled.ekName()));
        if (host.isEmpty()) {
            throw new NotAuthenticated("AK_ENROLLED", "AK " + abbreviate(akId) + " was replaced by a new enrollment"
                    + " of its host: attest with the new AK", null);
        }
        NonceService.Consumed consumed = nonces.consume(nonce, akId);
        NonceService.Refusal refusal = consumed.refusal();
        if (refusal != null) {
            String why = switch (refusal) {
                case UNKNOWN -> "not issued by this server, or already used (replay)";
                case EXPIRED -> "expired (nonces live at most " + p.nonceTtl().toSeconds() + " s)";
                case OTHER_KEY -> "issued for another AK";
            };
            throw new NotAuthenticated("NONCE", "the nonce is " + why, null);
        }
        try {
            TpmtPublic ak = akPublic(host.get());
            return new Authenticated(host.get(), QuoteVerifier.verify(attest, signature, ak, qualifyingData, pcrs));
        } catch (VerificationException e) {
            throw new NotAuthenticated(e.check().name(), e.getMessage(), e);
        } catch (MalformedStructureException e) {
            throw new NotAuthenticated("AK_ENROLLED", "the enrolled AK cannot be parsed: " + e.getMessage(), e);
        }
    }

    /**
     * A refusal before the quote authenticated. {@code from}: the client's address; with a refusal aggregator the
     * record is rate-limited per source, check and (for an enrolled AK) AK: the first one in a window is recorded in
     * full, the rest are counted (docs/audit.md).
     */
    private ApiException refuse(String akId, String check, String reason, byte[] evidenceHash, String from,
                                boolean enrolled) throws ApiException {
        ServerMetrics m = metrics;
        if (m != null) {
            m.refused(check);
        }
        Map<String, Object> detail = new LinkedHashMap<>();
        detail.put("akId", akId);
        detail.put("check", check);
        detail.put("evidenceSha256", HexFormat.of().formatHex(evidenceHash));
        RefusalAggregator aggregator = refusals;
        if (from != null && aggregator != null) {
            detail.put("akId", abbreviate(akId));
            detail.put("detail", reason);
            detail.put("remote", from);
            aggregator.refuse("APPRAISAL_REFUSED", from, enrolled ? check + " ak:" + abbreviate(akId) : check,
                    detail, "ak:" + abbreviate(akId), enrolled ? "ak:" + abbreviate(akId) : "ak:(unenrolled)");
        } else {
            detail.put("reason", reason);
            audit.record("REFUSAL", "ak:" + abbreviate(akId), "APPRAISAL_REFUSED", detail);
        }
        return new ApiException(403, "appraisal_refused", check, reason);
    }

    /**
     * CLOCK, the history of this boot, then the log against the policy; then the TPM's new state is recorded by
     * compare-and-set. If another appraisal changed the state since it was read (another instance, on a shared
     * database), the state is read again and the evidence judged against that — a quote now behind it fails CLOCK —
     * at most {@link #STATE_ATTEMPTS} times; then it fails closed.
     */
    private Judged appraiseAuthenticated(AttestationPolicy p, Registry.Host host, Authenticated auth,
                                         PcrValues pcrs, byte[] logBytes) {
        int v = p.version();
        ClockInfo ci = auth.quote().attest().clockInfo();
        MeasurementLog log;
        String malformed = null;
        try {
            log = MeasurementLog.parse(logBytes);
        } catch (MalformedStructureException e) {
            log = null;
            malformed = e.getMessage();
        }
        boolean replays = log != null && java.util.Arrays.equals(log.replay(p.measurementPcr()).value(),
                pcrs.value(p.measurementPcr()));
        for (int attempt = 0; attempt < STATE_ATTEMPTS; attempt++) {
            // The quote was made after its nonce was issued. Nonce requests are signed by the AK and each replaces the
            // AK's outstanding nonce, so this nonce was issued after every earlier nonce of this AK was consumed, and
            // every appraisal that consumed one has recorded its clock or failed: every quote the server ever
            // accepted from this TPM was made before this one. So the quote cannot be behind the newest state the
            // server holds, and is compared with that — a TPM rolled back to any earlier snapshot is caught. The
            // state only moves by compare-and-set from the state this appraisal judged against, so two appraisals
            // of one TPM at once (on two instances) cannot both move it, and the later clock wins.
            Registry.TpmState before = registry.tpmState(host.ekName()).orElse(null);
            if (before != null && before.isAfter(ci.resetCount(), ci.restartCount(), ci.clock())) {
                Registry.TpmState b = before;
                return new Judged(Appraisal.failed(ClaimName.HARDWARE, "CLOCK", "the TPM clock went back: reset "
                        + b.resetCount() + "→" + ci.resetCount() + ", restart " + b.restartCount() + "→"
                        + ci.restartCount() + ", clock " + b.clock() + "→" + ci.clock()
                        + (attempt > 0 ? " (a concurrent appraisal of this TPM recorded the newer state)"
                        : " (replayed or rolled-back TPM state)"), v), attempt);
            }
            // The log accepted before counts only within the quote's boot: a new boot starts a new log.
            byte[] acceptedThisBoot = before != null && before.sameBoot(ci.resetCount(), ci.restartCount())
                    ? before.acceptedLog() : null;
            Appraisal a = log == null ? Appraisal.failed(ClaimName.EXECUTABLES, "EVENT_LOG",
                    "the event log is malformed: " + malformed, v) : judge(p, acceptedThisBoot, log, pcrs, v);
            Registry.TpmState next = Registry.TpmState.next(before, ci.resetCount(), ci.restartCount(), ci.clock(),
                    replays ? logBytes : null);
            if (registry.compareAndSetTpmState(host.ekName(), before, next)) {
                return new Judged(a, attempt);
            }
        }
        return new Judged(Appraisal.failed(ClaimName.HARDWARE, "CLOCK", "the TPM's state changed under this"
                + " appraisal " + STATE_ATTEMPTS + " times (concurrent appraisals of one TPM); not accepted", v),
                STATE_ATTEMPTS);
    }

    /** The log against the one accepted before in this boot (null: none), then against the policy. */
    private static Appraisal judge(AttestationPolicy p, byte[] acceptedLog, MeasurementLog log, PcrValues pcrs,
                                   int v) {
        // Within one boot the log only grows: a log that does not extend the one accepted before was rewritten
        // (e.g. deleted and started anew after an unapproved launch), even if it replays.
        AppraisalContext.Builder ctx = AppraisalContext.builder().quoteVerified(true);
        if (acceptedLog != null) {
            try {
                MeasurementLog accepted = MeasurementLog.parse(acceptedLog);
                ctx.previouslyAcceptedLog(accepted);
                int differs = firstDifference(accepted, log);
                if (differs >= 0 && java.util.Arrays.equals(log.replay(p.measurementPcr()).value(),
                        pcrs.value(p.measurementPcr()))) {
                    return Appraisal.failed(ClaimName.EXECUTABLES, "EVENT_LOG", "the log of this boot was rewritten:"
                            + (differs < log.size() ? " event " + differs + " differs from" : " it is shorter than")
                            + " the log accepted before (" + accepted.size() + " events)", v);
                }
            } catch (MalformedStructureException e) {
                throw new IllegalStateException("the registry holds an unparseable accepted log", e);
            }
        }
        return Appraiser.appraise(p, log, pcrs, ctx.build());
    }

    /** The first index where {@code log} does not continue {@code accepted}, or -1 if it extends it. */
    private static int firstDifference(MeasurementLog accepted, MeasurementLog log) {
        int n = Math.min(accepted.size(), log.size());
        for (int i = 0; i < n; i++) {
            if (!accepted.event(i).equals(log.event(i))) {
                return i;
            }
        }
        return log.size() < accepted.size() ? log.size() : -1;
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
