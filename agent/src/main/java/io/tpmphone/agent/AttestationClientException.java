package io.tpmphone.agent;

import java.util.Optional;

/**
 * The attestation server refused a request or could not be reached. {@link #status()} is the HTTP status (0 when
 * no answer arrived), {@link #check()} the verification check the server named, if any.
 */
public final class AttestationClientException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String error;
    private final String check;

    public AttestationClientException(int status, String error, String check, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.error = error;
        this.check = check;
    }

    public int status() {
        return status;
    }

    public String error() {
        return error;
    }

    public Optional<String> check() {
        return Optional.ofNullable(check);
    }
}
