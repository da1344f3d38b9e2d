package io.tpmphone.tls;

/**
 * A TLS attestation extension's bytes do not follow the documented layout. {@link #illegalParameter()} tells which
 * alert ends the handshake: {@code illegal_parameter} for well-formed but unacceptable values, {@code decode_error}
 * for bytes that cannot be parsed.
 */
public final class MalformedExtensionException extends Exception {
    private static final long serialVersionUID = 1L;
    private final boolean illegalParameter;

    public MalformedExtensionException(String message) {
        this(message, false);
    }

    public MalformedExtensionException(String message, boolean illegalParameter) {
        super(message);
        this.illegalParameter = illegalParameter;
    }

    public boolean illegalParameter() {
        return illegalParameter;
    }
}
