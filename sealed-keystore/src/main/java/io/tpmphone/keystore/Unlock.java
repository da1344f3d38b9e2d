package io.tpmphone.keystore;

import io.tpmphone.attestation.SecretBytes;
import io.tpmphone.tpm.PolicyApproval;
import java.util.Objects;
import java.util.Optional;

/**
 * What a key release presents to the TPM: the policy authority's approval of the current PCR state (AUTHORIZED
 * keystores) or nothing but the state itself (PCR_ONLY), and the user's PIN when the keystore has one. The PIN is
 * held by reference: the caller owns and destroys it. Immutable and thread-safe.
 */
public final class Unlock {
    private final PolicyApproval approval;
    private final SecretBytes pin;

    private Unlock(PolicyApproval approval, SecretBytes pin) {
        this.approval = approval;
        this.pin = pin;
    }

    /** For an AUTHORIZED keystore: the authority's approval of the current PolicyPCR digest. */
    public static Unlock approved(PolicyApproval approval) {
        return new Unlock(Objects.requireNonNull(approval, "approval"), null);
    }

    /** For a PCR_ONLY keystore: the current PCR values must be the sealed ones. */
    public static Unlock measuredState() {
        return new Unlock(null, null);
    }

    /** This unlock with the user's PIN (UTF-8, 1..32 bytes). */
    public Unlock withPin(SecretBytes pin) {
        return new Unlock(approval, Objects.requireNonNull(pin, "pin"));
    }

    public Optional<PolicyApproval> approval() {
        return Optional.ofNullable(approval);
    }

    public Optional<SecretBytes> pin() {
        return Optional.ofNullable(pin);
    }

    @Override
    public String toString() {
        return "Unlock[" + (approval != null ? "approval" : "measured state") + (pin != null ? ", PIN]" : "]");
    }
}
