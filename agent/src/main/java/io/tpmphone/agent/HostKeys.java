package io.tpmphone.agent;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.Protection;
import io.tpmphone.keystore.SealedKeystore;
import io.tpmphone.keystore.SrtpKeys;
import io.tpmphone.keystore.SrtpSuite;
import io.tpmphone.keystore.Unlock;
import io.tpmphone.tpm.PolicyApproval;
import io.tpmphone.tpm.TpmClient;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Deque;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's keys: the host's sealed keystore (AUTHORIZED by the attestation server's keystore authority), the
 * server's latest approval of the measured state, the TLS identity key and its device certificate, and the key events
 * not yet reported to the server. What the broker gives the measured child comes from here.
 *
 * <p>A release that the TPM refuses because the approval expired or names another state is retried once after a
 * fresh attestation ({@link Attester}); a refusal that remains is a {@link KeystoreException} naming the policy
 * failure, and is reported to the server (which records a {@code KEY_RELEASE} audit record) right away. Releases are
 * reported with the next attestation. Thread-safe.
 */
public final class HostKeys implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HostKeys.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Events kept for the server while it is unreachable; older ones are dropped (and the drop is reported). */
    static final int MAX_PENDING_EVENTS = 1000;

    /** Re-attests now, or soon; the agent implements it. */
    public interface Attester {
        /** Attests now (the caller waits); afterwards {@link #approvalReceived} has run. */
        void attestNow() throws AgentException;

        /** Attests soon, on the agent's own thread, to report events. */
        void attestSoon();

        /** Attests after {@code delay} (soon if it is zero), on the agent's own thread, to report events. */
        default void attestAfter(java.time.Duration delay) {
            attestSoon();
        }
    }

    private final SealedKeystore keystore;
    private final Path stateDirectory;
    private final Clock clock;
    private final Deque<PendingEvent> events = new ArrayDeque<>();
    private long sequence;
    private Instant lastApprovalCheck = Instant.EPOCH;
    private volatile Attester attester;
    private PolicyApproval approval;
    private String approvalRefused = "no attestation yet";
    private int dropped;
    /** Guarded by this. */
    private final RejectedCalls rejected;

    private HostKeys(SealedKeystore keystore, Path stateDirectory, Clock clock) {
        this.keystore = keystore;
        this.stateDirectory = stateDirectory;
        this.clock = clock;
        this.rejected = new RejectedCalls(clock);
    }

    /**
     * Opens the keystore in {@code stateDirectory/keystore}, creating it sealed to {@code authority} over
     * {@code pcrs}, for this host's EK ({@code ekName}), on first use. A keystore sealed to another authority (the server's keys changed) is refused.
     */
    public static HostKeys open(TpmClient tpm, Path stateDirectory, PcrSelection pcrs, TpmtPublic authority,
                                byte[] ekName, Clock clock) throws KeystoreException {
        Path dir = stateDirectory.resolve("keystore");
        Protection wanted = Protection.authorizedForHost(pcrs, authority, ekName);
        SealedKeystore ks = Files.exists(dir.resolve("keystore.properties")) ? SealedKeystore.open(tpm, dir)
                : SealedKeystore.create(tpm, dir, wanted, Optional.empty());
        if (!ks.protection().equals(wanted)) {
            ks.close();
            throw new KeystoreException(KeystoreException.Reason.STORAGE, "the keystore in " + dir + " is sealed to"
                    + " another authority or PCR set than the server's (" + HexFormat.of().formatHex(authority.name())
                    + ", " + pcrs + "); the server's keys changed: move " + dir + " away to create a new keystore");
        }
        return new HostKeys(ks, stateDirectory, clock);
    }

    void attester(Attester a) {
        this.attester = a;
    }

    public SealedKeystore keystore() {
        return keystore;
    }

    /** The PCRs the keystore is sealed over: what the server is asked to approve. */
    public PcrSelection pcrs() {
        return keystore.protection().pcrs();
    }

    /** Takes the outcome of an attestation: the server's approval, or why it gave none. */
    public synchronized void approvalReceived(Optional<PolicyApproval> granted, Optional<String> refused) {
        approval = granted.orElse(null);
        lastApprovalCheck = clock.instant();
        approvalRefused = granted.isPresent() ? null : refused.orElse("the server returned no approval");
    }

    /** Whether the latest attestation brought an approval. */
    public synchronized boolean approved() {
        return approval != null;
    }

    // ---------------------------------------------------------------------------------------------- releases

    /** A fresh SRTP master key and salt for {@code callId}; the caller destroys them. */
    public SrtpKeys srtpKey(String callId, SrtpSuite suite) throws KeystoreException {
        try {
            SrtpKeys keys = withApproval(a -> keystore.srtpKey(callId, suite, Unlock.approved(a)));
            record("SRTP_KEY", "RELEASED", null, callId);
            return keys;
        } catch (KeystoreException e) {
            record("SRTP_KEY", "REFUSED", e, callId);
            throw e;
        }
    }

    /**
     * The person's ring-screen phrase, unsealed under the current approval of the measured state (empty if none was
     * set); for the measured child's screen only.
     */
    public Optional<String> phrase() throws KeystoreException {
        return withApproval(a -> keystore.unsealPhrase(Unlock.approved(a)));
    }

    /** Refuses SDES key material seen before (a replayed offer); records it otherwise. */
    public void checkOffered(SecretBytes key, SecretBytes salt, String callId) throws KeystoreException {
        try {
            keystore.checkOffered(key, salt);
        } catch (KeystoreException e) {
            record("OFFERED_KEY", "REFUSED", e, callId);
            throw e;
        }
    }

    /** As {@link #checkOffered(SecretBytes, SecretBytes, String)} by the fingerprint {@code SHA-256(key || salt)}. */
    public void checkOffered(byte[] fingerprint, String callId) throws KeystoreException {
        try {
            keystore.checkOfferedFingerprint(fingerprint);
        } catch (KeystoreException e) {
            record("OFFERED_KEY", "REFUSED", e, callId);
            throw e;
        }
    }

    /** An ECDSA signature (DER) of a SHA-256 digest by the TLS identity key, inside the TPM. */
    public byte[] sign(byte[] digest) throws KeystoreException {
        try {
            byte[] tpmt = withApproval(a -> keystore.sign(digest, Unlock.approved(a)));
            return TpmtSignature.parse(tpmt).toDer();
        } catch (io.tpmphone.attestation.MalformedStructureException e) {
            throw new KeystoreException(KeystoreException.Reason.TPM_ERROR, "the TPM returned a signature we cannot"
                    + " parse: " + e.getMessage(), e);
        } catch (KeystoreException e) {
            record("SIGN", "REFUSED", e, null);
            throw e;
        }
    }

    @FunctionalInterface
    private interface Release<T> {
        T run(PolicyApproval approval) throws KeystoreException;
    }

    private <T> T withApproval(Release<T> release) throws KeystoreException {
        KeystoreException first;
        try {
            return release.run(currentApproval());
        } catch (KeystoreException e) {
            if (!retryable(e.reason())) {
                throw e;
            }
            first = e;
        }
        // The approval expired, or the state moved on since: one fresh attestation, then one more try — but not
        // more often than RETRY_INTERVAL when the server gave none, so a child looping on refusals cannot flood it.
        Attester a = attester;
        if (a == null || !retryAllowed()) {
            throw first;
        }
        try {
            a.attestNow();
        } catch (AgentException | RuntimeException e) {
            LOG.warn("re-attesting for a fresh keystore approval failed: {}",
                    io.tpmphone.attestation.UntrustedText.forTerminal(e.getMessage()));
            throw first;
        }
        return release.run(currentApproval());
    }

    /** How long after an attestation that brought no approval a refused release does not attest again. */
    static final Duration RETRY_INTERVAL = Duration.ofSeconds(5);

    private synchronized boolean retryAllowed() {
        Instant now = clock.instant();
        if (approval == null && now.isBefore(lastApprovalCheck.plus(RETRY_INTERVAL))) {
            return false;
        }
        return true;
    }

    private static boolean retryable(KeystoreException.Reason r) {
        return r == KeystoreException.Reason.APPROVAL_EXPIRED || r == KeystoreException.Reason.NOT_APPROVED;
    }

    private synchronized PolicyApproval currentApproval() throws KeystoreException {
        if (approval == null) {
            throw new KeystoreException(KeystoreException.Reason.NOT_APPROVED, "the attestation server did not"
                    + " approve this host's measured state: " + approvalRefused);
        }
        return approval;
    }

    // ---------------------------------------------------------------------------------------------- events

    private void record(String operation, String outcome, KeystoreException e, String callId) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("at", clock.instant().toString());
        m.put("operation", operation);
        m.put("outcome", outcome);
        if (e != null) {
            m.put("reason", e.reason().name());
            e.tpmResponseCode().ifPresent(c -> m.put("tpmCode", c));
            String msg = e.getMessage();
            m.put("message", msg.length() > 500 ? msg.substring(0, 500) : msg);
        }
        if (callId != null) {
            m.put("callId", callId.length() > 256 ? callId.substring(0, 256) : callId);
        }
        synchronized (this) {
            enqueue(m);
        }
        Attester a = attester;
        if (e != null && a != null) {
            a.attestSoon();
        }
    }

    private record PendingEvent(long sequence, Map<String, Object> event) {
    }

    /**
     * Records the softphone's call decision for the server's audit log (a {@code CALL_DECISION} record). The others
     * go with the next attestation; a rejection is reported sooner (at most one attestation per 10 s for it), and
     * rejections alike (direction, levels) within a minute of one reported in full are only counted, then reported
     * as one event with their {@code count}: a peer sending INVITEs cannot grow the audit log or the TPM's work per
     * INVITE ({@link RejectedCalls}).
     */
    public void recordCallDecision(String direction, String action, String peerUri, String peerLevel,
                                   String requiredLevel, String callId, String reason) {
        recordCallDecision(direction, action, peerUri, peerLevel, requiredLevel, callId, reason, null);
    }

    /**
     * As {@link #recordCallDecision(String, String, String, String, String, String, String)}, with the decision's
     * structured fields ({@code established}, {@code evidenceSha256}, {@code resultAgeSeconds} of the server's
     * {@code CALL_DECISION} record: what the console's call view shows); {@code fields} may be null.
     */
    public void recordCallDecision(String direction, String action, String peerUri, String peerLevel,
                                   String requiredLevel, String callId, String reason, Broker.DecisionFields fields) {
        boolean reject = action.equals("REJECT");
        if (reject) {
            synchronized (this) {
                if (!rejected.admit(direction, peerLevel, requiredLevel)) {
                    return;
                }
            }
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("at", clock.instant().toString());
        m.put("operation", "CALL_DECISION");
        m.put("outcome", action);
        m.put("direction", direction);
        m.put("peer", peerUri.length() > 256 ? peerUri.substring(0, 256) : peerUri);
        m.put("peerLevel", peerLevel);
        m.put("requiredLevel", requiredLevel);
        m.put("callId", callId.length() > 256 ? callId.substring(0, 256) : callId);
        m.put("message", reason.length() > 500 ? reason.substring(0, 500) : reason);
        if (fields != null) {
            m.put("established", fields.established());
            fields.evidenceSha256().ifPresent(e -> m.put("evidenceSha256", e));
            fields.resultAgeSeconds().ifPresent(a -> m.put("resultAgeSeconds", a));
        }
        synchronized (this) {
            enqueue(m);
        }
        Attester a = attester;
        if (a != null && reject) {
            nextAttestation().ifPresent(a::attestAfter);
        }
    }

    /** Queues an event for the server; the caller holds this lock. Beyond the bound the oldest is dropped, counted. */
    private void enqueue(Map<String, Object> m) {
        if (events.size() >= MAX_PENDING_EVENTS) {
            events.removeFirst();
            dropped++;
        }
        events.addLast(new PendingEvent(++sequence, m));
    }

    /** When to attest for a rejection or a backlog: now, at the end of the gap, or not (one is already set). */
    private synchronized Optional<java.time.Duration> nextAttestation() {
        return rejected.nextAttestation();
    }

    /**
     * Events not yet reported, oldest first: the JSON array to send, the last event's sequence number, whether it
     * carries the count of dropped events, and whether more are waiting (reports stay within the server's limits:
     * {@link #MAX_REPORT_EVENTS} events, {@link #MAX_REPORT_BYTES} bytes).
     */
    public record Report(byte[] json, long lastSequence, int droppedReported, boolean more) {
    }

    /** At most this many events in one report (the server takes 256). */
    static final int MAX_REPORT_EVENTS = 200;
    /** At most this many bytes in one report (the server takes 64 KiB). */
    static final int MAX_REPORT_BYTES = 48 * 1024;

    /** The oldest pending events as a report, or empty; {@link #reported} forgets them once the server took them. */
    public synchronized Optional<Report> pendingReport() {
        for (Map<String, Object> summary : rejected.drainSummaries()) {
            enqueue(summary);
        }
        if (events.isEmpty() && dropped == 0) {
            return Optional.empty();
        }
        List<Map<String, Object>> list = new ArrayList<>();
        int droppedNow = dropped;
        int bytes = 2;
        if (droppedNow > 0) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("at", clock.instant().toString());
            m.put("operation", "SRTP_KEY");
            m.put("outcome", "REFUSED");
            m.put("reason", "EVENTS_DROPPED");
            m.put("message", droppedNow + " earlier key events were dropped (server unreachable or refusing them)");
            list.add(m);
            bytes += 300;
        }
        long last = 0;
        boolean more = false;
        for (PendingEvent e : events) {
            int size = encode(e.event()).length + 1;
            if (list.size() >= MAX_REPORT_EVENTS || bytes + size > MAX_REPORT_BYTES) {
                more = true;
                break;
            }
            list.add(e.event());
            bytes += size;
            last = e.sequence();
        }
        return Optional.of(new Report(encode(list), last, droppedNow, more));
    }

    private static byte[] encode(Object value) {
        try {
            return JSON.writeValueAsBytes(value);
        } catch (IOException e) {
            throw new IllegalStateException("cannot serialize plain maps", e);
        }
    }

    /** The server accepted a report: forget its events; ask for another round if more are waiting. */
    public void reported(Report r) {
        synchronized (this) {
            dropped = Math.max(0, dropped - r.droppedReported());
            while (!events.isEmpty() && events.peekFirst().sequence() <= r.lastSequence()) {
                events.removeFirst();
            }
        }
        Attester a = attester;
        if (r.more() && a != null) {
            nextAttestation().ifPresent(a::attestAfter);
        }
    }

    /** The server refused a report as malformed: drop its events, counted, so attestation goes on. */
    public synchronized void refused(Report r) {
        int n = 0;
        while (!events.isEmpty() && events.peekFirst().sequence() <= r.lastSequence()) {
            events.removeFirst();
            n++;
        }
        dropped += n;
        LOG.warn("the attestation server refused a key-event report; {} events are reported as dropped", n);
    }

    // ---------------------------------------------------------------------------------------------- certificate

    /** Where the device certificate and its CA are kept. */
    public Path certificateFile() {
        return stateDirectory.resolve("device-cert.pem");
    }

    public Path caCertificateFile() {
        return stateDirectory.resolve("device-ca.pem");
    }

    /**
     * Whether the device certificate must be (re)requested: missing, unreadable, for another key than the TIK, or
     * in the last third of its validity.
     */
    public boolean certificateDue() {
        try {
            Optional<X509Certificate> c = certificate();
            if (c.isEmpty()) {
                return true;
            }
            TpmtPublic tik = keystore.identityKey();
            if (!Arrays.equals(c.get().getPublicKey().getEncoded(), tik.subjectPublicKeyInfo())) {
                return true;
            }
            Instant from = c.get().getNotBefore().toInstant();
            Instant to = c.get().getNotAfter().toInstant();
            Duration third = Duration.between(from, to).dividedBy(3);
            return clock.instant().isAfter(to.minus(third));
        } catch (IOException | GeneralSecurityException | KeystoreException e) {
            LOG.warn("the device certificate is unusable ({}); requesting a new one", e.toString());
            return true;
        }
    }

    /** The device certificate, if one was issued. */
    public Optional<X509Certificate> certificate() throws IOException, GeneralSecurityException {
        List<X509Certificate> chain = read(certificateFile());
        return chain.isEmpty() ? Optional.empty() : Optional.of(chain.get(0));
    }

    /** The device certificate followed by its CA, DER each; empty if none was issued. */
    public List<byte[]> certificateChain() throws IOException, GeneralSecurityException {
        List<byte[]> chain = new ArrayList<>();
        for (X509Certificate c : read(certificateFile())) {
            chain.add(c.getEncoded());
        }
        for (X509Certificate c : read(caCertificateFile())) {
            chain.add(c.getEncoded());
        }
        return chain;
    }

    /** Stores an issued certificate (atomically). */
    public void storeCertificate(HostAttestation.DeviceCertificate c) throws IOException, GeneralSecurityException {
        if (read(c.certificatePem()).isEmpty() || read(c.caCertificatePem()).isEmpty()) {
            throw new GeneralSecurityException("the server's device certificate response holds no certificate");
        }
        write(caCertificateFile(), c.caCertificatePem());
        write(certificateFile(), c.certificatePem());
    }

    private static void write(Path file, String pem) throws IOException {
        io.tpmphone.attestation.OwnerOnlyFiles.replace(file, pem.getBytes(StandardCharsets.US_ASCII));
    }

    private static List<X509Certificate> read(Path file) throws IOException, GeneralSecurityException {
        if (!Files.exists(file)) {
            return List.of();
        }
        return read(Files.readString(file, StandardCharsets.US_ASCII));
    }

    private static List<X509Certificate> read(String pem) throws GeneralSecurityException {
        Collection<? extends java.security.cert.Certificate> all = CertificateFactory.getInstance("X.509")
                .generateCertificates(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
        List<X509Certificate> out = new ArrayList<>();
        for (java.security.cert.Certificate c : all) {
            out.add((X509Certificate) c);
        }
        return out;
    }

    @Override
    public void close() {
        keystore.close();
    }

    @Override
    public String toString() {
        return "HostKeys[" + keystore + "]";
    }
}
