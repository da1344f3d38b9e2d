package io.tpmphone.attestation;

import java.security.GeneralSecurityException;
import java.util.Objects;

/**
 * Attestation evidence did not verify. {@link #check()} says which check failed; the message says what was
 * expected and what was found. Never carries secret material.
 */
public class VerificationException extends GeneralSecurityException {
    private static final long serialVersionUID = 1L;

    /** The verifier check that failed, in the order the verifiers apply them. */
    public enum Check {
        /** The signing key is unsuitable: not a restricted, fixedTPM signing key, too small, or invalid point. */
        KEY,
        /** The signature algorithm or hash is not allowed, or does not match the key type or the key's scheme. */
        SIGNATURE_ALGORITHM,
        /** The signature does not verify over the attestation bytes (or is malformed / out of range). */
        SIGNATURE,
        /** The attestation structure cannot be parsed (truncated, trailing bytes, bad field). */
        STRUCTURE,
        /** The attestation does not start with TPM_GENERATED_VALUE: the TPM did not produce it. */
        MAGIC,
        /** The attestation has the wrong TPM_ST type (e.g. a certify where a quote was expected). */
        TYPE,
        /** extraData does not equal the expected qualifying data (nonce). */
        QUALIFYING_DATA,
        /** The quoted PCR selection differs from the selection of the PCR values offered. */
        PCR_SELECTION,
        /** The quoted PCR digest differs from the digest of the PCR values offered. */
        PCR_DIGEST,
        /** The certified object's name differs from the name in the certify information. */
        CERTIFIED_NAME
    }

    private final Check check;

    public VerificationException(Check check, String message) {
        this(check, message, null);
    }

    public VerificationException(Check check, String message, Throwable cause) {
        super(Objects.requireNonNull(check, "check") + ": " + message, cause);
        this.check = check;
    }

    /** The check that failed. */
    public Check check() {
        return check;
    }
}
