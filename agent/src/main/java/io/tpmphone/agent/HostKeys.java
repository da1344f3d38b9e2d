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
        void attestNow() throws Exception;

        /** Attests soon, on the agent's own thread, to report events. */
        void attestSoon();
    }

    private final SealedKeystore keystore;
    private final Path stateDirectory;
    private final Clock clock;
    private final Deque<Map<String, Object>> events = new ArrayDeque<>();
    private volatile Attester attester;
    private PolicyApproval approval;
    private String approvalRefused = "no attestation yet";
    private int dropped;

    private HostKeys(SealedKeystore keystore, Path stateDirectory, Clock clock) {
        this.keystore = keystore;
        this.stateDirectory = stateDirectory;
        this.clock = clock;
    }

    /**
     * Opens the keystore in {@code stateDirectory/keystore}, creating it sealed to {@code authority} over
     * {@code pcrs} on first use. A keystore sealed to another authority (the server's keys changed) is refused.
     */
    public static HostKeys open(TpmClient tpm, Path stateDirectory, PcrSelection pcrs, TpmtPublic authority,
                                Clock clock) throws KeystoreException {
        Path dir = stateDirectory.resolve("keystore");
        SealedKeystore ks = Files.exists(dir.resolve("keystore.properties")) ? SealedKeystore.open(tpm, dir)
                : SealedKeystore.create(tpm, dir, Protection.authorized(pcrs, authority), Optional.empty());
        Optional<TpmtPublic> sealedTo = ks.protection().authority();
        if (sealedTo.isEmpty() || !Arrays.equals(sealedTo.get().encoded(), authority.encoded())
                || !ks.protection().pcrs().equals(pcrs)) {
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

    /** Refuses SDES key material seen before (a replayed offer); records it otherwise. */
    public void checkOffered(SecretBytes key, SecretBytes salt, String callId) throws KeystoreException {
        try {
            keystore.checkOffered(key, salt);
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
        // The approval expired, or the state moved on since: one fresh attestation, then one more try.
        Attester a = attester;
        if (a == null) {
            throw first;
        }
        try {
            a.attestNow();
        } catch (Exception e) {
            LOG.warn("re-attesting for a fresh keystore approval failed: {}", e.toString());
            throw first;
        }
        return release.run(currentApproval());
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
            if (events.size() >= MAX_PENDING_EVENTS) {
                events.removeFirst();
                dropped++;
            }
            events.addLast(m);
        }
        Attester a = attester;
        if (e != null && a != null) {
            a.attestSoon();
        }
    }

    /** Events not yet reported, oldest first: the JSON array to send, and how many it holds. */
    public record Report(byte[] json, int count) {
    }

    /** The pending events as a report, or empty; {@link #reported} removes them once the server took them. */
    public synchronized Optional<Report> pendingReport() {
        if (events.isEmpty() && dropped == 0) {
            return Optional.empty();
        }
        List<Map<String, Object>> list = new ArrayList<>(events);
        if (dropped > 0) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("at", clock.instant().toString());
            m.put("operation", "SRTP_KEY");
            m.put("outcome", "REFUSED");
            m.put("reason", "EVENTS_DROPPED");
            m.put("message", dropped + " earlier key events were dropped while the server was unreachable");
            list.add(0, m);
        }
        try {
            return Optional.of(new Report(JSON.writeValueAsBytes(list), list.size()));
        } catch (IOException e) {
            throw new IllegalStateException("cannot serialize plain maps", e);
        }
    }

    /** The server accepted a report: forget its events. */
    public synchronized void reported(Report r) {
        int n = r.count();
        if (dropped > 0) {
            dropped = 0;
            n--;
        }
        for (int i = 0; i < n && !events.isEmpty(); i++) {
            events.removeFirst();
        }
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
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(tmp, pem, StandardCharsets.US_ASCII);
        Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
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
