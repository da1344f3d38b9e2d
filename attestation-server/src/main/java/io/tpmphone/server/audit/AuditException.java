package io.tpmphone.server.audit;

import java.util.Objects;

/**
 * An audit operation failed. {@link #code()} says what kind of failure it was; the message says what failed and
 * what to do next. Never carries audit detail or key material in its message.
 */
public final class AuditException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Machine-readable failure kinds. */
    public enum Code {
        /** The append was not acknowledged within {@code Options.appendTimeout}. */
        TIMEOUT,
        /** The waiting thread was interrupted (its interrupt flag is restored). */
        INTERRUPTED,
        /** The log is closed or closing. */
        CLOSED,
        /** Another {@link AuditLog} (this or another process) already writes this database. */
        ALREADY_OPEN,
        /** The database could not be read or written (I/O, SQLite error, migration). */
        STORAGE,
        /** The stored chain is not consistent (tampering or corruption); run {@code tpmphone audit verify}. */
        CORRUPT,
        /** The checkpoint signer failed. */
        SIGNING,
        /** An export document is not a well-formed tpmphone audit export. */
        MALFORMED_EXPORT,
        /** A verification found a broken record or checkpoint ({@link VerificationReport#requireIntact()}). */
        NOT_INTACT,
        /** A public key given for the log is not the key that signed it. */
        KEY_MISMATCH
    }

    private final Code code;

    public AuditException(Code code, String message) {
        super(message);
        this.code = Objects.requireNonNull(code, "code");
    }

    public AuditException(Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = Objects.requireNonNull(code, "code");
    }

    /** The kind of failure. */
    public Code code() {
        return code;
    }
}
