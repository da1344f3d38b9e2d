package io.tpmphone.server.internal;

/**
 * A request the API refuses: an HTTP status, a machine-readable error code, the check that failed (when a
 * verification check did) and a message that says what to do next. Never carries secret material.
 */
public final class ApiException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String error;
    private final String check;

    public ApiException(int status, String error, String check, String message) {
        super(message);
        this.status = status;
        this.error = error;
        this.check = check;
    }

    public ApiException(int status, String error, String message) {
        this(status, error, null, message);
    }

    public static ApiException badRequest(String message) {
        return new ApiException(400, "bad_request", message);
    }

    public int status() {
        return status;
    }

    public String error() {
        return error;
    }

    /** The failed check, or null. */
    public String check() {
        return check;
    }
}
