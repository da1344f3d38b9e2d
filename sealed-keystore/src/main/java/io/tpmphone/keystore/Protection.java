package io.tpmphone.keystore;

import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.TpmtPublic;
import java.util.Objects;
import java.util.Optional;

/**
 * How a keystore's root secret is sealed. {@link Mode#AUTHORIZED}: {@code PolicyAuthorize(authority, policyRef)}, so
 * the root opens in any PCR state the authority has signed an approval for — approving a new release needs no
 * re-sealing. {@link Mode#PCR_ONLY}: {@code PolicyPCR} of the PCR values at creation, for a single host without an
 * attestation server. Immutable and thread-safe.
 */
public final class Protection {
    /** The policyRef every approval for a keystore carries (and the authority signs): {@code tpmphone-keystore-v1}. */
    public static final String POLICY_REF = KeystorePolicy.POLICY_REF;

    /** The default PCRs: the boot chain (0-7) and the softphone measurement PCR 14. */
    public static final PcrSelection DEFAULT_PCRS = PcrSelection.parse("sha256:0,1,2,3,4,5,6,7,14");

    /** The two sealing modes. */
    public enum Mode { AUTHORIZED, PCR_ONLY }

    private final Mode mode;
    private final PcrSelection pcrs;
    private final TpmtPublic authority;
    private final byte[] approvalPolicyRef;

    private Protection(Mode mode, PcrSelection pcrs, TpmtPublic authority, byte[] approvalPolicyRef) {
        this.mode = mode;
        this.pcrs = Objects.requireNonNull(pcrs, "pcrs");
        this.authority = authority;
        this.approvalPolicyRef = approvalPolicyRef;
    }

    /**
     * Sealed to {@code PolicyAuthorize(authority, POLICY_REF)}; approvals are PolicyPCR digests over {@code pcrs}.
     * Any TPM in an approved state accepts such an approval: use {@link #authorizedForHost} on hosts.
     */
    public static Protection authorized(PcrSelection pcrs, TpmtPublic authority) {
        return authorized(pcrs, authority, policyRef());
    }

    /**
     * Sealed to {@code PolicyAuthorize(authority, hostPolicyRef(ekName))}: only approvals the authority signed for
     * this host's EK open it ({@link KeystorePolicy#hostPolicyRef}).
     */
    public static Protection authorizedForHost(PcrSelection pcrs, TpmtPublic authority, byte[] ekName) {
        return authorized(pcrs, authority, KeystorePolicy.hostPolicyRef(ekName));
    }

    /** Sealed to {@code PolicyAuthorize(authority, policyRef)} (at most 32 bytes). */
    public static Protection authorized(PcrSelection pcrs, TpmtPublic authority, byte[] policyRef) {
        if (policyRef.length > KeystorePolicy.MAX_POLICY_REF) {
            throw new IllegalArgumentException("a policyRef is at most " + KeystorePolicy.MAX_POLICY_REF + " bytes");
        }
        return new Protection(Mode.AUTHORIZED, pcrs, Objects.requireNonNull(authority, "authority"),
                policyRef.clone());
    }

    /** Sealed to {@code PolicyPCR(pcrs)} of the values at creation. */
    public static Protection pcrOnly(PcrSelection pcrs) {
        return new Protection(Mode.PCR_ONLY, pcrs, null, null);
    }

    /** The policyRef approvals for this keystore carry (AUTHORIZED mode). */
    public Optional<byte[]> approvalPolicyRef() {
        return Optional.ofNullable(approvalPolicyRef).map(byte[]::clone);
    }

    public Mode mode() {
        return mode;
    }

    public PcrSelection pcrs() {
        return pcrs;
    }

    /** The policy authority's public area (AUTHORIZED mode). */
    public Optional<TpmtPublic> authority() {
        return Optional.ofNullable(authority);
    }

    /** {@link #POLICY_REF} as bytes. */
    public static byte[] policyRef() {
        return KeystorePolicy.genericPolicyRef();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Protection p && mode == p.mode && pcrs.equals(p.pcrs)
                && Objects.equals(authority, p.authority) && java.util.Arrays.equals(approvalPolicyRef,
                p.approvalPolicyRef);
    }

    @Override
    public int hashCode() {
        return Objects.hash(mode, pcrs, authority, java.util.Arrays.hashCode(approvalPolicyRef));
    }

    @Override
    public String toString() {
        return "Protection[" + mode + ", " + pcrs + "]";
    }
}
