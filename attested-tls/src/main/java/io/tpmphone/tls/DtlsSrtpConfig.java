package io.tpmphone.tls;

import java.time.Duration;
import java.util.Objects;

/**
 * One side of one DTLS-SRTP association: how it attests and verifies ({@link AttestedTlsConfig}: its identity, the
 * passport verifier, whether it attests at all), the far end's certificate fingerprint from the SDP, and how long the
 * handshake and the evidence exchange may take. Immutable.
 */
public record DtlsSrtpConfig(AttestedTlsConfig tls, DtlsFingerprint remoteFingerprint, Duration handshakeTimeout,
                             Duration evidenceTimeout) {
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_EVIDENCE_TIMEOUT = Duration.ofSeconds(5);

    public DtlsSrtpConfig {
        Objects.requireNonNull(tls, "tls");
        Objects.requireNonNull(remoteFingerprint, "remoteFingerprint");
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
        return new DtlsSrtpConfig(tls, remoteFingerprint, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_EVIDENCE_TIMEOUT);
    }

    public DtlsSrtpConfig withTimeouts(Duration handshake, Duration evidence) {
        return new DtlsSrtpConfig(tls, remoteFingerprint, handshake, evidence);
    }
}
