package io.tpmphone.keystore;

import java.util.Objects;
import java.util.Optional;

/**
 * The keystore refused or could not release key material. {@link #reason()} is machine-readable; the message says
 * what failed and what to do next, and never contains key material, PINs or unsealed data.
 */
public final class KeystoreException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Why a key was not released. */
    public enum Reason {
        /** The current PCR values are not the sealed state (PCR_ONLY) or not the approved state ({@code POLICY_FAIL}). */
        POLICY_FAIL,
        /** The approval is for another PCR state than the current one ({@code TPM_RC_VALUE}): ask for a new approval. */
        NOT_APPROVED,
        /**
         * The approval's lifetime is over: the TPM's clock passed its limit ({@code TPM_RC_POLICY} in
         * {@code TPM2_PolicyCounterTimer}). Re-attest to get a fresh approval; a revoked host or release gets none.
         */
        APPROVAL_EXPIRED,
        /** The approval is not the keystore authority's: wrong key, bad signature ({@code SIGNATURE}) or malformed. */
        BAD_APPROVAL,
        /** The keystore has a PIN and none was given. */
        PIN_REQUIRED,
        /** The PIN is wrong ({@code AUTH_FAIL} / {@code BAD_AUTH}); the TPM counted one dictionary-attack failure. */
        PIN_WRONG,
        /** The lockout authorization given to {@code resetLockout} is wrong. */
        LOCKOUT_AUTH_WRONG,
        /** The TPM is in dictionary-attack lockout ({@code LOCKOUT}): wait, or reset with the lockout authorization. */
        LOCKED_OUT,
        /** The key material was issued or offered before: a replay. */
        SEEN_BEFORE,
        /** The TPM could not be reached or did not answer in time. */
        TPM_UNAVAILABLE,
        /** The TPM answered with another error; {@link #tpmResponseCode()} names it. */
        TPM_ERROR,
        /** The keystore directory is missing, unreadable, corrupt, or could not be written. */
        STORAGE
    }

    private final Reason reason;
    private final String tpmResponseCode;

    public KeystoreException(Reason reason, String message) {
        this(reason, message, null, null);
    }

    public KeystoreException(Reason reason, String message, Throwable cause) {
        this(reason, message, null, cause);
    }

    public KeystoreException(Reason reason, String message, String tpmResponseCode, Throwable cause) {
        super(Objects.requireNonNull(reason, "reason") + ": " + message, cause);
        this.reason = reason;
        this.tpmResponseCode = tpmResponseCode;
    }

    public Reason reason() {
        return reason;
    }

    /** The TPM response code name ({@code POLICY_FAIL}, {@code VALUE}, ...) when the TPM refused. */
    public Optional<String> tpmResponseCode() {
        return Optional.ofNullable(tpmResponseCode);
    }
}
