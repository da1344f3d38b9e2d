package io.tpmphone.agent;

import java.util.Objects;
import java.util.Optional;

/**
 * The agent could not start ({@link Agent#start()}) or have this host appraised ({@link Agent#attestNow()}).
 * {@link #reason()} says what failed; the cause is the typed failure under it, chained: a
 * {@link io.tpmphone.tpm.TpmException} (with the TPM's response code), an {@link AttestationClientException} (with the
 * server's HTTP status and check, see {@link #serverRefusal()}), a {@link io.tpmphone.keystore.KeystoreException} (with
 * its reason) or an {@link java.io.IOException} (naming the file). The message says which step failed and includes
 * the cause's message; it never holds secret material, but it may quote the attestation server's words, so escape it
 * before it reaches a terminal or a log.
 */
public final class AgentException extends Exception {
    private static final long serialVersionUID = 1L;

    /** What failed. */
    public enum Reason {
        /** The state directory or a file in it (enrollment, measurement log) could not be read or written. */
        STATE,
        /** The TPM failed a command or could not be reached. */
        TPM,
        /**
         * The attestation server refused a request, answered something unreadable, or could not be reached:
         * {@link #serverRefusal()} has its status and check.
         */
        SERVER,
        /** The sealed keystore could not be opened or created (e.g. it is sealed to another server's authority). */
        KEYSTORE,
        /** The softphone core could not be staged or started (its files, its user account, its namespaces). */
        LAUNCH,
        /**
         * The softphone core exited and its end (TERMINATED) could not be measured: nothing is attested until it is,
         * and the agent retries on its next round.
         */
        TERMINATION_NOT_MEASURED
    }

    private final Reason reason;

    public AgentException(Reason reason, String message, Throwable cause) {
        super(Objects.requireNonNull(reason, "reason") + ": " + message, cause);
        this.reason = reason;
    }

    /** What failed. */
    public Reason reason() {
        return reason;
    }

    /** For {@link Reason#SERVER}: the server's refusal (status, error, check), or why it gave none. */
    public Optional<AttestationClientException> serverRefusal() {
        return getCause() instanceof AttestationClientException e ? Optional.of(e) : Optional.empty();
    }
}
