package io.tpmphone.attestation;

import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * The policyRef values of sealed-keystore approvals (TPM2_PolicyAuthorize, docs/keystore.md). A host's keystore and
 * TLS identity key are sealed to {@code PolicyAuthorize(authority, hostPolicyRef(EK name))}, so an approval the
 * authority signs for one host's TPM is useless on every other TPM, even one in the same PCR state.
 */
public final class KeystorePolicy {
    /** The label, and the policyRef of keystores not bound to one host (library use, tests). */
    public static final String POLICY_REF = "tpmphone-keystore-v1";

    private KeystorePolicy() {
    }

    /** {@link #POLICY_REF} as bytes. */
    public static byte[] genericPolicyRef() {
        return POLICY_REF.getBytes(StandardCharsets.US_ASCII);
    }

    /** {@code SHA-256("tpmphone-keystore-v1" || ekName)}: the policyRef of the host whose EK has that TPM name. */
    public static byte[] hostPolicyRef(byte[] ekName) {
        Objects.requireNonNull(ekName, "ekName");
        if (ekName.length < 2) {
            throw new IllegalArgumentException("a TPM name is nameAlg || digest");
        }
        return HashAlgorithm.SHA256.digest(genericPolicyRef(), ekName);
    }
}
