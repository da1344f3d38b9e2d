package io.tpmphone.tls;

import java.time.Duration;
import java.util.Objects;

/**
 * One side of one DTLS-SRTP association: how it attests and verifies ({@link AttestedTlsConfig}: its identity, the
 * passport verifier, whether it attests at all), the far end's certificate fingerprints from the SDP (all of them:
 * the handshake's certificate is checked against them as RFC 8122 §5 says, {@link DtlsFingerprint#matchesAny}), and
 * how long the handshake and the evidence exchange may take. Immutable.
 */
public record DtlsSrtpConfig(AttestedTlsConfig tls, java.util.List<DtlsFingerprint> remoteFingerprints,
                             Duration handshakeTimeout, Duration evidenceTimeout) {
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_EVIDENCE_TIMEOUT = Duration.ofSeconds(5);

    public DtlsSrtpConfig {
        Objects.requireNonNull(tls, "tls");
        remoteFingerprints = java.util.List.copyOf(remoteFingerprints);
        if (remoteFingerprints.isEmpty()) {
            throw new IllegalArgumentException("the far end announced no fingerprint");
        }
        DtlsFingerprint.preferredFunction(remoteFingerprints); // at least one we can check
        Objects.requireNonNull(handshakeTimeout, "handshakeTimeout");
        Objects.requireNonNull(evidenceTimeout, "evidenceTimeout");
        if (tls.identity().isEmpty()) {
            throw new IllegalArgumentException("DTLS-SRTP needs this side's certificate (its device certificate)");
        }
        if (handshakeTimeout.isNegative() || handshakeTimeout.isZero() || evidenceTimeout.isNegative()
                || evidenceTimeout.isZero()) {
            throw new IllegalArgumentException("timeouts must be positive");
        }
    }

    public static DtlsSrtpConfig of(AttestedTlsConfig tls, DtlsFingerprint remoteFingerprint) {
        return of(tls, java.util.List.of(remoteFingerprint));
    }

    /** With all of the far end's fingerprints (its SDP's {@code a=fingerprint} attributes). */
    public static DtlsSrtpConfig of(AttestedTlsConfig tls, java.util.List<DtlsFingerprint> remoteFingerprints) {
        return new DtlsSrtpConfig(tls, remoteFingerprints, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_EVIDENCE_TIMEOUT);
    }

    public DtlsSrtpConfig withTimeouts(Duration handshake, Duration evidence) {
        return new DtlsSrtpConfig(tls, remoteFingerprints, handshake, evidence);
    }
}
