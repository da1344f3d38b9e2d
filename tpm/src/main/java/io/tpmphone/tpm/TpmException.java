package io.tpmphone.tpm;

/**
 * A TPM operation failed. Checked: callers at module boundaries decide what a TPM failure means for them.
 * Subtypes say whether the TPM answered with an error ({@link TpmResponseException}) or could not be reached
 * ({@link TpmTransportException}). Messages never contain secret material.
 */
public class TpmException extends Exception {
    private static final long serialVersionUID = 1L;

    public TpmException(String message) {
        super(message);
    }

    public TpmException(String message, Throwable cause) {
        super(message, cause);
    }
}
