package io.tpmphone.swtpm;

/**
 * A program of swtpm ({@code swtpm}, {@code swtpm_setup} or {@code swtpm_localca}) was not found.
 *
 * <p>Tests that need swtpm fail with this exception rather than being skipped, so a machine without swtpm cannot
 * report a green build that ran none of the TPM tests. The message says how to install it.
 */
public final class SwtpmNotInstalledException extends SwtpmException {
    private static final long serialVersionUID = 1L;

    /** What to do about it; the tail of every message. */
    static final String INSTALL_HINT = "run `./tpmphone test` (installs it when root) or "
            + "`apt-get install -y swtpm swtpm-tools tpm2-tools`";

    /**
     * Creates the exception for a program that was looked for and not found.
     *
     * @param program the program's name, e.g. {@code swtpm}
     * @param lookedAt where it was looked for, for the message
     */
    public SwtpmNotInstalledException(String program, String lookedAt) {
        super(("swtpm".equals(program) ? "swtpm is not installed" : "swtpm is not fully installed (" + program
                + " is missing)") + ": " + INSTALL_HINT + ". Looked for " + program + " at: " + lookedAt);
    }
}
