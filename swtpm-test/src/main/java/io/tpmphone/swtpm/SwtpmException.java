package io.tpmphone.swtpm;

/**
 * An swtpm instance could not be set up, started or stopped as asked.
 *
 * <p>Unchecked: in tests a broken TPM simulator is an environment failure that should fail the test, not something
 * a caller recovers from. The message says what failed and ends with the tail of swtpm's own log (and of
 * {@code swtpm_setup}'s, where it ran), so a CI log shows the cause without the state directory, which is deleted.
 */
public class SwtpmException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Creates an exception with a message that says what failed and what to do next. */
    public SwtpmException(String message) {
        super(message);
    }

    /** Creates an exception with a message and the underlying cause. */
    public SwtpmException(String message, Throwable cause) {
        super(message, cause);
    }
}
