package io.tpmphone.attestation;

import java.security.GeneralSecurityException;
import java.util.Objects;

/**
 * An {@link AttestationPolicy} document was refused. {@link #pointer()} is the JSON Pointer (RFC 6901) of the
 * offending field ({@code ""} for the document as a whole); the message is {@code pointer: why}, e.g.
 * {@code /releases/0/jars/softphone-core.jar: not a 64-hex-digit SHA-256 digest}.
 */
public class PolicyException extends GeneralSecurityException {
    private static final long serialVersionUID = 1L;

    private final String pointer;

    public PolicyException(String pointer, String reason) {
        this(pointer, reason, null);
    }

    public PolicyException(String pointer, String reason, Throwable cause) {
        super((Objects.requireNonNull(pointer, "pointer").isEmpty() ? "(policy document)" : pointer) + ": "
                + Objects.requireNonNull(reason, "reason"), cause);
        this.pointer = pointer;
    }

    /** The JSON Pointer of the offending field; {@code ""} for the whole document. */
    public String pointer() {
        return pointer;
    }
}
