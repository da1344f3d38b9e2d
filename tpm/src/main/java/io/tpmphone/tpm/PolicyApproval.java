package io.tpmphone.tpm;

import java.util.Objects;
import java.util.OptionalLong;

/**
 * A policy authority's signed approval of one policy digest (TPM 2.0 Part 3 §23.16, PolicyAuthorize): the approved
 * policy, the policy reference, the authority's {@code TPMT_SIGNATURE} over {@code H(approvedPolicy || policyRef)},
 * and the authority's {@code TPMT_PUBLIC}.
 *
 * <p>The approved policy is {@code PolicyPCR} of one measured state, followed — when {@link #clockBefore()} is
 * present — by {@code PolicyCounterTimer(TPMS_TIME_INFO.clockInfo.clock UNSIGNED_LT clockBefore)}: the approval then
 * expires in the TPM's own clock, which never goes back (not across reboots either), so an authority that stops
 * approving revokes within one approval lifetime.
 */
public record PolicyApproval(byte[] approvedPolicy, byte[] policyRef, byte[] signature, byte[] authorityPublic,
                             OptionalLong clockBefore) {
    public PolicyApproval {
        approvedPolicy = approvedPolicy.clone();
        policyRef = policyRef.clone();
        signature = signature.clone();
        authorityPublic = authorityPublic.clone();
        Objects.requireNonNull(clockBefore, "clockBefore");
    }

    /** An approval of a PolicyPCR digest alone, which never expires by itself. */
    public PolicyApproval(byte[] approvedPolicy, byte[] policyRef, byte[] signature, byte[] authorityPublic) {
        this(approvedPolicy, policyRef, signature, authorityPublic, OptionalLong.empty());
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
