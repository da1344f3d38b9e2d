package io.tpmphone.tls;

import java.util.Objects;

/**
 * A DTLS-SRTP association that did not come about, with a typed {@link #reason()} a call can end with. The message
 * never contains key material or peer-supplied text.
 */
public final class DtlsSrtpException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Why the association failed. */
    public enum Reason {
        /** The peer's DTLS certificate is not the one its SDP {@code a=fingerprint} names. */
        FINGERPRINT_MISMATCH,
        /** The peer presented no certificate. */
        NO_CERTIFICATE,
        /** No SRTP protection profile in common, or a broken {@code use_srtp} answer. */
        SRTP_NEGOTIATION,
        /** The handshake did not finish in time. */
        HANDSHAKE_TIMEOUT,
        /** The handshake failed otherwise (an alert, a protocol error). */
        HANDSHAKE_FAILED,
        /** The peer announced attestation but its evidence did not arrive in time (stripped or lost). */
        EVIDENCE_MISSING,
        /** The peer's evidence records or evidence broke their layout. */
        EVIDENCE_MALFORMED,
        /** This side could not produce its own evidence (its TPM or broker failed). */
        LOCAL_EVIDENCE,
        /**
         * This side's TIK did not sign its handshake (its TPM or broker refused: the host's state is not one the
         * attestation server approved, or the approval lapsed).
         */
        LOCAL_SIGNATURE,
    }

    private final Reason reason;

    public DtlsSrtpException(Reason reason, String message) {
        super(reason + ": " + message);
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    public DtlsSrtpException(Reason reason, String message, Throwable cause) {
        super(reason + ": " + message, cause);
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    public Reason reason() {
        return reason;
    }
}
