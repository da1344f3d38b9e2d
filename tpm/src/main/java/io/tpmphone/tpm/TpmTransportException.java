package io.tpmphone.tpm;

/**
 * The TPM could not be reached or did not answer in time: connection refused or reset, a timeout, a truncated or
 * malformed response frame. The command may or may not have run; the connection is closed and the next command
 * reconnects.
 */
public final class TpmTransportException extends TpmException {
    private static final long serialVersionUID = 1L;

    public TpmTransportException(String message) {
        super(message);
    }

    public TpmTransportException(String message, Throwable cause) {
        super(message, cause);
    }
}
