package io.tpmphone.softphone;

import java.io.IOException;
import java.util.Objects;

/**
 * The agent broker understood a request and refused it: {@link #reason()} is its machine-readable REASON word — a
 * keystore reason ({@code NOT_APPROVED}, {@code POLICY_FAIL}, {@code SEEN_BEFORE}, ...), {@code NO_CERTIFICATE},
 * {@code BAD_REQUEST}, {@code UNAVAILABLE} or {@code FAILED} — and the message says why. Anything else that goes wrong
 * with the broker (no answer, a closed connection, a malformed reply) is a plain {@link IOException}.
 */
public final class BrokerRefusedException extends IOException {
    private static final long serialVersionUID = 1L;
    private final String reason;

    public BrokerRefusedException(String reason, String message) {
        super(Objects.requireNonNull(reason, "reason") + (message == null || message.isEmpty() ? "" : ": " + message));
        this.reason = reason;
    }

    /** The broker's REASON word. */
    public String reason() {
        return reason;
    }
}
