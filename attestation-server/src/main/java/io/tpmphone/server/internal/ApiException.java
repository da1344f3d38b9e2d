package io.tpmphone.server.internal;

import java.util.Map;

/**
 * A request the API refuses: an HTTP status, a machine-readable error code, the check that failed (when a
 * verification check did), a message that says what to do next, and any further fields of the refusal's JSON body
 * (e.g. the server's time for a client to correct its clock by). Never carries secret material.
 */
public final class ApiException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String error;
    private final String check;
    private final transient Map<String, Object> fields;

    public ApiException(int status, String error, String check, String message) {
        this(status, error, check, message, Map.of());
    }

    /** @param fields further fields of the refusal's body, besides error, check and message (values JSON-able) */
    public ApiException(int status, String error, String check, String message, Map<String, Object> fields) {
        super(message);
        this.status = status;
        this.error = error;
        this.check = check;
        this.fields = Map.copyOf(fields);
        if (this.fields.keySet().stream().anyMatch(java.util.Set.of("error", "check", "message")::contains)) {
            throw new IllegalArgumentException("fields must not replace error, check or message: " + fields.keySet());
        }
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

    /** Further fields of the refusal's body (immutable; empty for most refusals). */
    public Map<String, Object> fields() {
        return fields == null ? Map.of() : fields;
    }
}
