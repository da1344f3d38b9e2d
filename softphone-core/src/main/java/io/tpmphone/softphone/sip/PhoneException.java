package io.tpmphone.softphone.sip;

import java.util.Objects;

/**
 * What {@link SipPhone} could not do, with a machine-readable {@link #code()}: the phone could not start
 * ({@link Code#CANNOT_START}: a port taken, an address not ours), a request needs a call in another state
 * ({@link Code#WRONG_STATE}), or a request could not be sent ({@link Code#CANNOT_SEND}). The cause, when there is one,
 * is chained; the message says what failed and never carries key material.
 */
public final class PhoneException extends Exception {
    private static final long serialVersionUID = 1L;

    /** The kind of failure. */
    public enum Code {
        /** The SIP stack could not be created or could not listen on a configured port. */
        CANNOT_START,
        /** The call is not in a state that allows the request (e.g. hold before it is established). */
        WRONG_STATE,
        /** The request could not be built or sent (the dialog ended meanwhile, the transport failed). */
        CANNOT_SEND
    }

    private final Code code;

    PhoneException(Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = Objects.requireNonNull(code, "code");
    }

    PhoneException(Code code, String message) {
        this(code, message, null);
    }

    public Code code() {
        return code;
    }
}
