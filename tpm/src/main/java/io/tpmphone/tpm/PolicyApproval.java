package io.tpmphone.tpm;

import io.tpmphone.attestation.KeystoreApproval;
import java.util.Objects;
import java.util.Optional;

/**
 * A policy authority's signed approval of one policy digest (TPM 2.0 Part 3 §23.16, PolicyAuthorize): the approved
 * policy, the policy reference, the authority's {@code TPMT_SIGNATURE} over {@code H(approvedPolicy || policyRef)},
 * and the authority's {@code TPMT_PUBLIC}.
 *
 * <p>The approved policy is {@code PolicyPCR} of one measured state, followed — when {@link #limit()} is present — by
 * {@code PolicyCounterTimer(resetCount EQ limit.resetCount)} and {@code PolicyCounterTimer(clock UNSIGNED_LT
 * limit.clockBefore)}: the approval then expires in the TPM's own clock and with any TPM Reset, so an authority that
 * stops approving revokes within one approval lifetime.
 */
public record PolicyApproval(byte[] approvedPolicy, byte[] policyRef, byte[] signature, byte[] authorityPublic,
                             Optional<Limit> limit) {
    /** Valid while the TPM's reset count is {@code resetCount} and its clock below {@code clockBefore} (ms). */
    public record Limit(long resetCount, long clockBefore) {
        public Limit {
            if (resetCount < 0 || resetCount > 0xFFFF_FFFFL) {
                throw new IllegalArgumentException("resetCount is a UINT32");
            }
        }
    }

    public PolicyApproval {
        approvedPolicy = approvedPolicy.clone();
        policyRef = policyRef.clone();
        signature = signature.clone();
        authorityPublic = authorityPublic.clone();
        Objects.requireNonNull(limit, "limit");
    }

    /** The approval a keystore authority sent ({@link KeystoreApproval}, decoded strictly), for the TPM. */
    public static PolicyApproval of(KeystoreApproval approval) {
        Objects.requireNonNull(approval, "approval");
        return new PolicyApproval(approval.approvedPolicy().value(), approval.policyRef(),
                approval.signature().encoded(), approval.authority().encoded(),
                Optional.of(new Limit(approval.resetCount(), approval.clockBefore())));
    }

    /** An approval of a PolicyPCR digest alone, which never expires by itself. */
    public PolicyApproval(byte[] approvedPolicy, byte[] policyRef, byte[] signature, byte[] authorityPublic) {
        this(approvedPolicy, policyRef, signature, authorityPublic, Optional.empty());
    }

    @Override
    public byte[] approvedPolicy() {
        return approvedPolicy.clone();
    }

    @Override
    public byte[] policyRef() {
        return policyRef.clone();
    }

    @Override
    public byte[] signature() {
        return signature.clone();
    }

    @Override
    public byte[] authorityPublic() {
        return authorityPublic.clone();
    }
}
