package io.tpmphone.tpm;

/**
 * A policy authority's signed approval of one policy digest (TPM 2.0 Part 3 §23.16, PolicyAuthorize): the approved
 * policy (e.g. the PolicyPCR digest of one measured state), the policy reference, the authority's
 * {@code TPMT_SIGNATURE} over {@code H(approvedPolicy || policyRef)}, and the authority's {@code TPMT_PUBLIC}.
 */
public record PolicyApproval(byte[] approvedPolicy, byte[] policyRef, byte[] signature, byte[] authorityPublic) {
    public PolicyApproval {
        approvedPolicy = approvedPolicy.clone();
        policyRef = policyRef.clone();
        signature = signature.clone();
        authorityPublic = authorityPublic.clone();
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
