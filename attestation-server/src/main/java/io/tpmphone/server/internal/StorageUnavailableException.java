package io.tpmphone.server.internal;

/**
 * The server's database could not be read or written (connection lost, pool exhausted, a statement failed). Nothing
 * was decided: the HTTP API answers 503 and the client retries. The message names the operation and the database's
 * own error, never a credential or a request's secret.
 */
public final class StorageUnavailableException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public StorageUnavailableException(String what, Throwable cause) {
        super(what + ": " + (cause == null ? "unknown error" : cause.getMessage()), cause);
    }
}
