package io.tpmphone.tpm;

/**
 * The TPM's dictionary-attack protection state (TPM 2.0 Part 1 §19.8): failures counted so far, the failures that
 * trigger a lockout, the seconds after which one failure is forgotten, the seconds the lockout hierarchy waits after
 * its own failed authorization, and whether the TPM is locked out now.
 */
public record DictionaryAttackState(long failedTries, long maxTries, long recoveryTimeSeconds,
                                    long lockoutRecoverySeconds, boolean inLockout) {
}
