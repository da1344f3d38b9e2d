package io.tpmphone.softphone;

import io.tpmphone.softphone.internal.BrokerClient;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The softphone's connection to its agent's broker (docs/softphone.md, docs/keystore.md): the one channel through which
 * the measured softphone gets quotes, TLS signatures by its TPM-resident identity key, SRTP keys from the sealed
 * keystore and replay checks of peers' keys, the device certificate and the server's result key, and through which it
 * hands its call decisions to the audit log. Open one with {@link #connect}; what uses it: {@link BrokerHostIdentity}
 * (attested TLS), {@code SipPhone.Keys.fromBroker} (media keys) and {@code AuditedDecisions} (the audit log).
 *
 * <p>Thread-safe: requests from any thread are serialized on the one connection. Every request is answered within
 * the timeout given to {@link #connect} ({@link #DEFAULT_TIMEOUT}) or fails with an {@link IOException}; a broker that
 * did not answer in time has its connection closed, and every later request fails at once (the agent launches a new
 * softphone; a late answer must never be read as the answer to another request). A refusal by the broker is a
 * {@link BrokerRefusedException} carrying its reason. Nothing secret appears in a message or in {@link #toString()}.
 */
public final class AgentBroker implements AutoCloseable {
    /**
     * How long a request may wait for its answer by default: the broker answers from the TPM in milliseconds, but a
     * key release may wait for the agent's appraisal by the attestation server (an HTTPS round trip).
     */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

    private final BrokerClient client;
    private final Path socket;

    private AgentBroker(BrokerClient client, Path socket) {
        this.client = client;
        this.socket = socket;
    }

    /** Connects to the broker at {@code socket} and presents the one-time {@code token} the agent gave us. */
    public static AgentBroker connect(Path socket, String token) throws IOException {
        return connect(socket, token, DEFAULT_TIMEOUT);
    }

    /** As above; every request must be answered within {@code timeout}. */
    public static AgentBroker connect(Path socket, String token, Duration timeout) throws IOException {
        Objects.requireNonNull(socket, "socket");
        Objects.requireNonNull(token, "token");
        Objects.requireNonNull(timeout, "timeout");
        return new AgentBroker(BrokerClient.connect(socket, token, timeout), socket);
    }

    /** A quote of the measured state over {@code binder}: fields akId, ak, attest, signature, pcrs, values, log. */
    public synchronized Map<String, String> quote(byte[] binder) throws IOException {
        return client.quote(binder);
    }

    /** A fresh SRTP master key and salt for {@code callId} (one word) from the sealed keystore; close it to wipe it. */
    public synchronized SrtpKeyMaterial srtpKey(String suite, String callId) throws IOException {
        return client.srtpKey(suite, callId);
    }

    /**
     * Asks the keystore whether a peer's SDES key was seen before; a replay is a {@link BrokerRefusedException} with
     * reason {@code SEEN_BEFORE}. Only a fingerprint of the key crosses the socket.
     */
    public synchronized void checkOffered(byte[] key, byte[] salt, String callId) throws IOException {
        client.checkOffered(key, salt, callId);
    }

    /** An ECDSA signature (DER) of a SHA-256 digest by the TPM-resident TLS identity key. */
    public synchronized byte[] sign(byte[] digest) throws IOException {
        return client.sign(digest);
    }

    /** The device certificate and its CA, DER each ({@code NO_CERTIFICATE} until the server issued one). */
    public synchronized List<byte[]> certificates() throws IOException {
        return client.certificates();
    }

    /** The host's latest signed attestation result (compact JWS): its passport for attested TLS. */
    public synchronized String passport() throws IOException {
        return client.passport();
    }

    /** The attestation server's result-signing key (SubjectPublicKeyInfo, DER), to verify peers' passports. */
    public synchronized byte[] resultVerificationKey() throws IOException {
        return client.resultVerificationKey();
    }

    /** Reports a call decision for the attestation server's audit log (the agent binds it to its next quote). */
    public synchronized void reportDecision(String direction, String action, String peerLevel, String requiredLevel,
                                            String callId, String peerUri, String reason) throws IOException {
        client.reportDecision(direction, action, peerLevel, requiredLevel, callId, peerUri, reason);
    }

    /**
     * Reports a call decision with its structured fields (how the level was established, the evidence digest or
     * empty, the result's age in seconds or negative when unknown).
     */
    public synchronized void reportDecision(String direction, String action, String peerLevel, String requiredLevel,
                                            String callId, String peerUri, boolean endToEnd, String evidenceSha256,
                                            long resultAgeSeconds, String reason) throws IOException {
        client.reportDecision(direction, action, peerLevel, requiredLevel, callId, peerUri, endToEnd, evidenceSha256,
                resultAgeSeconds, reason);
    }

    /** Tells the agent that the softphone serves as {@code uri} (its SIP transports and control socket are up). */
    public synchronized void ready(String uri) throws IOException {
        client.ready(uri);
    }

    /** The person's phrase for the ring screen (unsealed for this measured softphone only); empty if none. */
    public synchronized java.util.Optional<String> phrase() throws IOException {
        return client.phrase();
    }

    /**
     * A call's audio starts ({@code open}: the agent grants a socket into the sound server, which exists only while
     * some call holds it) or ended ({@code open} false: withdrawn once no call holds it).
     */
    public synchronized void sound(boolean open, String callId) throws IOException {
        client.sound(open, callId.replace(' ', '_'));
    }

    @Override
    public void close() throws IOException {
        client.close();
    }

    @Override
    public String toString() {
        return "AgentBroker[" + socket + "]";
    }
}
