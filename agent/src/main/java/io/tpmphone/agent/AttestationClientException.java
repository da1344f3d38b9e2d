package io.tpmphone.agent;

import java.time.Instant;
import java.util.Optional;

/**
 * The attestation server refused a request or could not be reached. {@link #status()} is the HTTP status (0 when
 * no answer arrived), {@link #check()} the verification check the server named, if any, and {@link #serverTime()}
 * the server's clock if the refusal carried it (a nonce request refused for its time).
 */
public final class AttestationClientException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String error;
    private final String check;
    private final Instant serverTime;

    public AttestationClientException(int status, String error, String check, String message, Throwable cause) {
        this(status, error, check, null, message, cause);
    }

    /** @param serverTime the server's clock as the refusal stated it, or null */
    public AttestationClientException(int status, String error, String check, Instant serverTime, String message,
                                      Throwable cause) {
        super(message, cause);
        this.status = status;
        this.error = error;
        this.check = check;
        this.serverTime = serverTime;
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

    /** The server's clock when it refused the request, if the refusal said (NONCE_REQUEST_TIME). */
    public Optional<Instant> serverTime() {
        return Optional.ofNullable(serverTime);
    }
}
