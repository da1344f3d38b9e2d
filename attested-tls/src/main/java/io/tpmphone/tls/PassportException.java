package io.tpmphone.tls;

import io.tpmphone.attestation.VerificationException;
import java.security.GeneralSecurityException;
import java.util.Objects;
import java.util.Optional;

/**
 * A peer's evidence did not verify against its passport ({@link PassportVerifier#verify}): {@link #check()} names the
 * check that failed, {@link #quoteCheck()} the quote's own check when that was {@link Check#QUOTE}, and the message
 * says what was expected and what was found. Messages hold no secrets (evidence and passports are public).
 */
public final class PassportException extends GeneralSecurityException {
    private static final long serialVersionUID = 1L;

    /** The checks of {@link PassportVerifier}, in the order it makes them. */
    public enum Check {
        /**
         * The end-entity certificate is missing, not issued by a trusted device CA, not valid now, a CA certificate,
         * or has no CN.
         */
        CERTIFICATE,
        /** No attestation result is attached, or it is not a compact JWS. */
        PASSPORT,
        /** The JWS is not signed with ES256. */
        ALGORITHM,
        /** The JWS signature is not the trusted attestation server's (another key signed it, or it was altered). */
        SIGNATURE,
        /**
         * The payload is not a version-1 attestation result: another version, or an unknown, missing or mistyped
         * member ({@link #getCause()} is the {@link io.tpmphone.attestation.MalformedStructureException} naming it).
         */
        RESULT,
        /** The result has expired. */
        EXPIRED,
        /** The result was issued in the future, beyond the tolerated clock difference. */
        NOT_YET_VALID,
        /** The result is for another host than the device certificate names. */
        HOST,
        /** The evidence's AK public area is malformed, or it is not the AK the result names. */
        AK,
        /**
         * The quote does not verify: not signed by that AK, not TPM-generated, over another binder (another
         * handshake, another TIK), or another PCR digest than the server appraised ({@link #quoteCheck()}).
         */
        QUOTE
    }

    private final Check check;
    private final VerificationException.Check quoteCheck;

    PassportException(Check check, String message) {
        this(check, message, null);
    }

    PassportException(Check check, String message, Throwable cause) {
        super(Objects.requireNonNull(check, "check") + ": " + message, cause);
        this.check = check;
        this.quoteCheck = cause instanceof VerificationException v && check == Check.QUOTE ? v.check() : null;
    }

    /** The check that failed. */
    public Check check() {
        return check;
    }

    /** For {@link Check#QUOTE}: the quote verifier's check (e.g. {@code QUALIFYING_DATA}, {@code PCR_DIGEST}). */
    public Optional<VerificationException.Check> quoteCheck() {
        return Optional.ofNullable(quoteCheck);
    }
}
