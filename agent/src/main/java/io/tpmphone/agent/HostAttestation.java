package io.tpmphone.agent;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.attestation.KeystoreApproval;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.MeasurementLog;
import io.tpmphone.attestation.NonceRequest;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmException;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmCertification;
import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.SealedKeystore;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.util.Optional;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The host side of enrollment and attestation: EK (RSA-2048, TCG L-1, with its certificate from NV) → AK under the
 * EK → credential activation with the server; then nonce → quote over the server's PCR selection → appraisal with
 * the measurement log. Thread-safe if its collaborators are (TpmClient and AttestationClient are).
 */
public final class HostAttestation {
    /** The AK this agent uses. */
    public static final PersistentHandle AK = PersistentHandle.AK;

    private static final Logger LOG = LoggerFactory.getLogger(HostAttestation.class);

    private final TpmClient tpm;
    private final AttestationClient server;
    private final Clock clock;
    /**
     * The requestedAt of this process's last nonce request: the server refuses one that is not after the AK's last
     * (replay). Per process, not per instance: one process owns the TPM, and tests make several instances.
     */
    private static final AtomicLong LAST_REQUESTED_AT = new AtomicLong();
    /**
     * How far the server's clock is ahead of {@link #clock} (ms; negative if behind), as the server stated it when it
     * last refused a nonce request for its time; nonce requests carry our time plus this. 0 until such a refusal.
     */
    private final AtomicLong serverClockOffset = new AtomicLong();
    /** Test seam: runs with the attempt number (1, 2) after the quote, before the appraisal is posted. */
    private volatile java.util.function.IntConsumer beforeAppraisal = attempt -> { };

    public HostAttestation(TpmClient tpm, AttestationClient server) {
        this(tpm, server, Clock.systemUTC());
    }

    /**
     * @param clock the time nonce requests carry. The server refuses one more than 5 min behind or 30 s ahead of its
     *              own clock, stating its time; then this instance corrects by the difference from then on
     */
    public HostAttestation(TpmClient tpm, AttestationClient server, Clock clock) {
        this.tpm = Objects.requireNonNull(tpm, "tpm");
        this.server = Objects.requireNonNull(server, "server");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /** An enrolled host. */
    public record Enrollment(String host, String akId) {
    }

    /**
     * The server's verdict: the level it gave, the check that failed first (or null), its reasons, the signed result
     * (compact JWS) and when it expires. {@code approval}: the keystore approval the server signed with it, decoded
     * strictly ({@link KeystoreApproval}); {@code approvalRefused}: why there is none, if the agent asked for one (the
     * server's reason, or why its approval could not be read).
     */
    public record Verdict(IntegrityLevel level, String failedCheck, List<String> reasons, String result,
                          String expiresAt, JsonNode raw, Optional<KeystoreApproval> approval,
                          Optional<String> approvalRefused) {
        /** The keystore approval the server signed with this verdict, if it was asked for one and granted it. */
        public Optional<PolicyApproval> keyApproval() {
            return approval.map(PolicyApproval::of);
        }

        /** Why the server did not approve the keystore state, if it was asked to. */
        public Optional<String> keyApprovalRefused() {
            return approvalRefused;
        }
    }

    /** A device-identity certificate and its CA, PEM. */
    public record DeviceCertificate(String certificatePem, String caCertificatePem) {
    }

    /** Enrolls without a token: only a host already enrolled with this TPM's EK (AK replacement) is accepted. */
    public Enrollment enroll(String host) throws TpmException, AttestationClientException {
        return enroll(host, null);
    }

    /**
     * Enrolls {@code host}: creates the AK if this TPM has none, proves it lives with the EK by activating the
     * server's credential. A new host name needs the operator's {@code enrollmentToken} for it.
     */
    public Enrollment enroll(String host, String enrollmentToken) throws TpmException, AttestationClientException {
        TpmtPublic ek = tpm.ensureEndorsementKey(EkType.RSA_2048);
        byte[] certificate = tpm.readEndorsementCertificate(EkType.RSA_2048).orElseThrow(() -> new TpmException(
                "this TPM has no RSA EK certificate at NV 0x01C00002; the server needs it to trust the EK"));
        TpmtPublic ak = tpm.readPublic(AK).isPresent() ? tpm.readPublic(AK).get()
                : tpm.createAttestationKey(EkType.RSA_2048.defaultHandle(), AK);
        return enrollWith(host, ek.encoded(), certificate, ak.encoded(), enrollmentToken);
    }

    /** Enrollment with explicit public areas (tests use it to offer keys the server must refuse). */
    public Enrollment enrollWith(String host, byte[] ekPublic, byte[] ekCertificate, byte[] akPublic,
                                 String enrollmentToken) throws TpmException, AttestationClientException {
        Base64.Encoder b64 = Base64.getEncoder();
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("host", host);
        request.put("ekPublic", b64.encodeToString(ekPublic));
        request.put("ekCertificate", b64.encodeToString(ekCertificate));
        request.put("akPublic", b64.encodeToString(akPublic));
        if (enrollmentToken != null) {
            request.put("enrollmentToken", enrollmentToken);
        }
        JsonNode challenge = server.postOnce("/v1/enrollments", request, null);
        JsonNode credential = challenge.get("credential");
        Base64.Decoder d = Base64.getDecoder();
        SecretBytes secret = tpm.activateCredential(AK, EkType.RSA_2048.defaultHandle(),
                d.decode(credential.get("integrityHmac").asText()), d.decode(credential.get("encIdentity").asText()),
                d.decode(credential.get("encryptedSecret").asText()));
        JsonNode done;
        try {
            byte[] s = secret.reveal();
            try {
                done = server.postOnce("/v1/enrollments/" + challenge.get("enrollmentId").asText() + "/activation",
                        Map.of("secret", b64.encodeToString(s)), null);
            } finally {
                java.util.Arrays.fill(s, (byte) 0);
            }
        } finally {
            secret.destroy();
        }
        return new Enrollment(done.get("host").asText(), done.get("akId").asText());
    }

    /** A fresh nonce from the server, then a quote and the log, appraised. */
    public Verdict attest(String akId, MeasurementLog log) throws TpmException, AttestationClientException {
        return attest(akId, log, Optional.empty(), null);
    }

    /**
     * As {@link #attest(String, MeasurementLog)}, asking the server to approve the current state of the keystore's
     * {@code keystorePcrs} and reporting {@code keyEvents} (UTF-8 JSON array, or null), which the quote's qualifying
     * data binds: {@code SHA256("tpmphone-key-events-v1" || nonce || SHA256(keyEvents))}.
     */
    public Verdict attest(String akId, MeasurementLog log, Optional<PcrSelection> keystorePcrs, byte[] keyEvents)
            throws TpmException, AttestationClientException {
        return attest(akId, new Object(), () -> log, keystorePcrs, keyEvents);
    }

    /**
     * As {@link #attest(String, MeasurementLog)} with the log of {@code store}, read together with the quote under the
     * store's lock: a measurement that lands meanwhile (the child exiting: TERMINATED) falls either before both or
     * after both, never between them, where it would make the log disagree with the quoted PCR (a false FAILED).
     */
    public Verdict attest(String akId, MeasurementLogStore store) throws TpmException, AttestationClientException {
        return attest(akId, store, Optional.empty(), null);
    }

    /** As {@link #attest(String, MeasurementLogStore)}, with a keystore approval request and key events. */
    public Verdict attest(String akId, MeasurementLogStore store, Optional<PcrSelection> keystorePcrs,
                          byte[] keyEvents) throws TpmException, AttestationClientException {
        return attest(akId, store, store::log, keystorePcrs, keyEvents);
    }

    private Verdict attest(String akId, Object logLock, java.util.function.Supplier<MeasurementLog> log,
                           Optional<PcrSelection> keystorePcrs, byte[] keyEvents)
            throws TpmException, AttestationClientException {
        try {
            return attestOnce(akId, logLock, log, keystorePcrs, keyEvents, 1);
        } catch (AttestationClientException e) {
            if (!nonceRefused(e)) {
                throw e;
            }
            // Our nonce was replaced, had expired or is unknown to the server (e.g. it restarted): a fresh one now,
            // rather than a whole interval without an appraisal. Once: a second refusal is not a race.
            LOG.info("the server refused the nonce ({}); retrying at once with a fresh one", e.getMessage());
            return attestOnce(akId, logLock, log, keystorePcrs, keyEvents, 2);
        }
    }

    /** Tests only: {@code hook} runs between the quote and the appraisal of each attempt (1, then 2 on a retry). */
    void beforeAppraisal(java.util.function.IntConsumer hook) {
        beforeAppraisal = Objects.requireNonNull(hook, "hook");
    }

    /** An appraisal or device-certificate request refused at its nonce: 403 with check NONCE. */
    static boolean nonceRefused(AttestationClientException e) {
        return e.status() == 403 && e.check().map("NONCE"::equals).orElse(false);
    }

    /** The check of the server's 400 for a malformed key-event report (docs/api.md). */
    static final String KEY_EVENTS = "KEY_EVENTS";

    /**
     * An appraisal refused for its key-event report alone: 400 with check {@code KEY_EVENTS}, given before the server
     * looks at the nonce or the quote. The status and the check decide, never the message's words: any other 400 is
     * not this, whatever it says.
     */
    static boolean keyEventsRefused(AttestationClientException e) {
        return e.status() == 400 && e.check().map(KEY_EVENTS::equals).orElse(false);
    }

    private Verdict attestOnce(String akId, Object logLock, java.util.function.Supplier<MeasurementLog> logSource,
                               Optional<PcrSelection> keystorePcrs, byte[] keyEvents, int attempt)
            throws TpmException, AttestationClientException {
        Grant grant = requestNonce(akId);
        byte[] nonce = grant.nonce();
        PcrSelection selection = grant.pcrSelection();
        byte[] qualifying = keyEvents == null ? nonce : HashAlgorithm.SHA256.digest(
                "tpmphone-key-events-v1".getBytes(StandardCharsets.US_ASCII), nonce,
                HashAlgorithm.SHA256.digest(keyEvents));
        MeasurementLog log;
        TpmQuote quote;
        synchronized (logLock) {
            log = logSource.get();
            quote = tpm.quote(AK, selection, qualifying);
        }
        Map<String, Object> request = appraisalRequest(akId, nonce, quote, log);
        keystorePcrs.ifPresent(p -> request.put("keyApprovalPcrs", p.toString()));
        if (keyEvents != null) {
            request.put("keyEvents", Base64.getEncoder().encodeToString(keyEvents));
        }
        beforeAppraisal.accept(attempt);
        return appraise(request);
    }

    /** A nonce the server issued, and the PCR selection to quote. */
    public record Grant(byte[] nonce, PcrSelection pcrSelection) {
        public Grant {
            nonce = nonce.clone();
        }

        @Override
        public byte[] nonce() {
            return nonce.clone();
        }
    }

    /**
     * Asks the server for a nonce with a request signed by the AK ({@link #signedNonceRequest}); it replaces any
     * nonce the server still holds for this AK.
     */
    public Grant requestNonce(String akId) throws TpmException, AttestationClientException {
        JsonNode grant;
        try {
            grant = server.post("/v1/nonces", signedNonceRequest(akId), null);
        } catch (AttestationClientException e) {
            Optional<java.time.Instant> serverTime = e.serverTime();
            if (e.status() != 403 || !e.check().map("NONCE_REQUEST_TIME"::equals).orElse(false)
                    || serverTime.isEmpty()) {
                throw e;
            }
            // Our clock is off the server's by more than it accepts. Retrying with the same clock would be refused
            // for as long as the clock stays off, and the host would go unappraised: correct by the server's time
            // from now on, and retry once. The AK signs the corrected request as any other.
            long serverMillis = serverTime.get().toEpochMilli();
            long offset = serverMillis - clock.millis();
            serverClockOffset.set(offset);
            // The refused time was never accepted, so later requests need not come after it (it may be minutes ahead).
            LAST_REQUESTED_AT.accumulateAndGet(serverMillis, Math::min);
            LOG.warn("the server refused a nonce request for its time: this host's clock is {} s {} the server's."
                    + " Nonce requests now carry the server's time; set the host's clock (NTP)",
                    Math.abs(offset) / 1000, offset < 0 ? "ahead of" : "behind");
            grant = server.post("/v1/nonces", signedNonceRequest(akId), null);
        }
        return new Grant(HexFormat.of().parseHex(grant.get("nonce").asText()),
                PcrSelection.parse(grant.get("pcrSelection").asText()));
    }

    /**
     * The body of POST /v1/nonces: the request's time (our clock, corrected by the server's if it stated it in a
     * refusal, and strictly after the previous request of this process, so two requests in one millisecond or a clock
     * step back do not look like a replay) and the AK's signature over it. Public so that tests can replay and alter
     * it.
     */
    public Map<String, Object> signedNonceRequest(String akId) throws TpmException {
        long now = clock.millis() + serverClockOffset.get();
        long requestedAt = LAST_REQUESTED_AT.updateAndGet(last -> Math.max(now, last + 1));
        return nonceRequest(tpm, AK, akId, requestedAt);
    }

    /**
     * The body of POST /v1/nonces for {@code akId} at {@code requestedAt} (ms since the epoch), signed by the AK at
     * {@code ak}: {@code TPMT_SIGNATURE} over SHA-256 of {@link NonceRequest#encoded()} (docs/api.md).
     */
    public static Map<String, Object> nonceRequest(TpmClient tpm, PersistentHandle ak, String akId, long requestedAt)
            throws TpmException {
        NonceRequest request = new NonceRequest(akId, requestedAt);
        byte[] signature = tpm.signWithRestrictedKey(ak, request.encoded());
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("akId", akId);
        body.put("requestedAt", requestedAt);
        body.put("signature", Base64.getEncoder().encodeToString(signature));
        return body;
    }

    /**
     * Has the server's device CA certify the keystore's TLS identity key: a fresh nonce, {@code TPM2_Certify} of the
     * TIK by the AK over it, then the request. The server issues only for an unexpired MEASURED appraisal.
     */
    public DeviceCertificate requestDeviceCertificate(String akId, SealedKeystore keystore)
            throws TpmException, AttestationClientException, KeystoreException {
        try {
            return requestDeviceCertificateOnce(akId, keystore);
        } catch (AttestationClientException e) {
            if (!nonceRefused(e)) {
                throw e;
            }
            LOG.info("the server refused the nonce ({}); retrying at once with a fresh one", e.getMessage());
            return requestDeviceCertificateOnce(akId, keystore);
        }
    }

    private DeviceCertificate requestDeviceCertificateOnce(String akId, SealedKeystore keystore)
            throws TpmException, AttestationClientException, KeystoreException {
        TpmtPublic tik = keystore.identityKey();
        byte[] nonce = requestNonce(akId).nonce();
        TpmCertification c = keystore.certifyIdentityKey(AK, nonce);
        Base64.Encoder b64 = Base64.getEncoder();
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("akId", akId);
        request.put("nonce", HexFormat.of().formatHex(nonce));
        request.put("tikPublic", b64.encodeToString(tik.encoded()));
        request.put("certifyInfo", b64.encodeToString(c.attest()));
        request.put("signature", b64.encodeToString(c.signature()));
        JsonNode r = server.post("/v1/device-certificates", request, null);
        return new DeviceCertificate(r.get("certificate").asText(), r.get("caCertificate").asText());
    }

    /** The server's keystore authority ({@code GET /v1/server}; the connection is pinned to the server). */
    public TpmtPublic keystoreAuthority() throws AttestationClientException {
        JsonNode info = server.get("/v1/server", null);
        try {
            return TpmtPublic.parse(Base64.getDecoder().decode(info.get("keystoreAuthority").asText()));
        } catch (io.tpmphone.attestation.MalformedStructureException | RuntimeException e) {
            throw new AttestationClientException(200, "bad_response", null, "the server's keystoreAuthority is"
                    + " unusable: " + e.getMessage(), e);
        }
    }

    /** The body of POST /v1/appraisals for a quote (tests alter it to play attacker). */
    public static Map<String, Object> appraisalRequest(String akId, byte[] nonce, TpmQuote quote, MeasurementLog log) {
        Base64.Encoder b64 = Base64.getEncoder();
        List<String> values = new ArrayList<>();
        for (byte[] v : quote.pcrValues().values()) {
            values.add(HexFormat.of().formatHex(v));
        }
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("akId", akId);
        request.put("nonce", HexFormat.of().formatHex(nonce));
        request.put("attest", b64.encodeToString(quote.attest()));
        request.put("signature", b64.encodeToString(quote.signature()));
        request.put("pcrSelection", quote.pcrValues().selection().toString());
        request.put("pcrValues", values);
        request.put("eventLog", b64.encodeToString(log.encode()));
        return request;
    }

    /**
     * Posts an appraisal request and reads the verdict.
     *
     * @throws AttestationClientException if the server refused it, or answered 200 without a known {@code level}, a
     *                                    {@code result} or an {@code expiresAt} ({@code bad_response})
     */
    public Verdict appraise(Map<String, Object> request) throws AttestationClientException {
        JsonNode r = server.post("/v1/appraisals", request, null);
        IntegrityLevel level = level(r);
        for (String field : List.of("result", "expiresAt")) {
            if (!r.path(field).isTextual()) {
                throw new AttestationClientException(200, "bad_response", null, "the server's appraisal has no "
                        + field + " text", null);
            }
        }
        List<String> reasons = new ArrayList<>();
        r.path("reasons").forEach(n -> reasons.add(n.asText()));
        Optional<KeystoreApproval> approval = Optional.empty();
        Optional<String> refused = r.hasNonNull("keyApprovalRefused")
                ? Optional.of(r.get("keyApprovalRefused").asText()) : Optional.empty();
        JsonNode a = r.get("keyApproval");
        if (a != null) {
            try {
                approval = Optional.of(KeystoreApproval.decode(a.toString()));
            } catch (MalformedStructureException e) {
                // Keep the verdict (the level and the passport are good), but release no key with this approval.
                LOG.warn("the server's keystore approval is not readable, so none is used: {}", e.getMessage());
                refused = Optional.of("the server's keystore approval is not readable: " + e.getMessage());
            }
        }
        return new Verdict(level, r.hasNonNull("failedCheck") ? r.get("failedCheck").asText() : null,
                reasons, r.get("result").asText(), r.get("expiresAt").asText(), r, approval, refused);
    }

    /** The appraisal's {@code level}: one of the {@link IntegrityLevel} names, or the answer is refused. */
    static IntegrityLevel level(JsonNode appraisal) throws AttestationClientException {
        JsonNode level = appraisal.path("level");
        for (IntegrityLevel l : IntegrityLevel.values()) {
            if (level.isTextual() && l.name().equals(level.textValue())) {
                return l;
            }
        }
        throw new AttestationClientException(200, "bad_response", null, "the server's appraisal has no known level: "
                + io.tpmphone.attestation.UntrustedText.forTerminal(level.toString(), 40), null);
    }
}
