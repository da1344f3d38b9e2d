package io.tpmphone.attestation;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The byte-exact policy contract of the sealed keystore, version {@value #VERSION} (docs/keystore.md). Every party
 * composes these digests here and nowhere else: the keystore seals its root secret and its TLS identity key to
 * {@link #sealingPolicy}, the attestation server signs {@link #approvalDigest} of {@link #approvedPolicy}, the
 * server's device CA checks a TIK's authPolicy against {@link #sealingPolicy}, and the TPM client replays
 * {@link #approvedPolicySteps} in the policy session. Every keystore on every host is sealed to these bytes:
 * changing any of them orphans all of them, which is why {@code KeystorePolicyTest} pins them to known answers
 * computed with tpm2-tools.
 *
 * <p>Version 1:
 * <pre>
 * policyRef      = SHA-256("tpmphone-keystore-v1" || EK name)                          (per host; the bare label
 *                                                                                        for keystores not bound
 *                                                                                        to one host)
 * sealingPolicy  = PolicyAuthorize(authority name, policyRef)                            (the objects' authPolicy)
 * approvedPolicy = PolicyPCR(selection, values)
 *                  [ then PolicyCounterTimer(resetCount, offset 16, EQ)
 *                    then PolicyCounterTimer(clockBefore, offset 8, UNSIGNED_LT) ]        (what the authority signs)
 * aHash          = SHA-256(approvedPolicy || policyRef)                                  (the signed digest)
 * </pre>
 * A new version changes the label (and so every policyRef), so a keystore of one version never opens with an
 * approval of another. Stateless and thread-safe.
 */
public final class KeystorePolicy {
    /** The version of this contract. */
    public static final int VERSION = 1;
    /** The label, and the policyRef of keystores not bound to one host (library use, tests). */
    public static final String POLICY_REF = "tpmphone-keystore-v1";
    /** The policy hash of every keystore policy. */
    public static final HashAlgorithm HASH = HashAlgorithm.SHA256;
    /** The longest policyRef TPM2_PolicyAuthorize takes with a SHA-256 name ({@code TPM2B_NONCE}). */
    public static final int MAX_POLICY_REF = 32;

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
        return HASH.digest(genericPolicyRef(), ekName);
    }

    /**
     * The authPolicy a keystore's sealed root and its TLS identity key carry: {@code PolicyAuthorize(authorityName,
     * policyRef)}. Opens with any approval the authority signed for that policyRef.
     *
     * @param authorityName the TPM name of the authority's public area ({@link TpmtPublic#name()})
     * @param policyRef     {@link #hostPolicyRef} or {@link #genericPolicyRef}; at most 32 bytes
     */
    public static PolicyDigest sealingPolicy(byte[] authorityName, byte[] policyRef) {
        Objects.requireNonNull(authorityName, "authorityName");
        checkPolicyRef(policyRef);
        return PolicyDigest.initial(HASH).policyAuthorize(authorityName, policyRef);
    }

    /**
     * The steps of an approved state's policy session, in order: {@code PolicyPCR(selection)}, then, for an approval
     * with a lifetime, the reset-count and clock limits. The TPM client runs them; {@link #approvedPolicy} folds the
     * same list into the digest the authority signs.
     */
    public static List<PolicyStep> approvedPolicySteps(PcrSelection selection) {
        Objects.requireNonNull(selection, "selection");
        return List.of(new PolicyStep.Pcr(selection));
    }

    /**
     * As {@link #approvedPolicySteps(PcrSelection)}, valid while the TPM's {@code TPMS_TIME_INFO.clockInfo.resetCount}
     * equals {@code resetCount} and its clock is below {@code clockBefore} (ms).
     */
    public static List<PolicyStep> approvedPolicySteps(PcrSelection selection, long resetCount, long clockBefore) {
        Objects.requireNonNull(selection, "selection");
        List<PolicyStep> steps = new ArrayList<>();
        steps.add(new PolicyStep.Pcr(selection));
        steps.addAll(lifetimeSteps(resetCount, clockBefore));
        return List.copyOf(steps);
    }

    /**
     * The lifetime of an approval: {@code PolicyCounterTimer(resetCount as 4 bytes big-endian, offset 16, EQ)}, then
     * {@code PolicyCounterTimer(clockBefore as 8 bytes big-endian, offset 8, UNSIGNED_LT)}. The reset count pins the
     * TPM's reset cycle, within which its clock never goes back.
     */
    private static List<PolicyStep> lifetimeSteps(long resetCount, long clockBefore) {
        return List.of(new PolicyStep.CounterTimer(PolicyDigest.resetCountOperand(resetCount),
                        PolicyDigest.TIME_INFO_RESET_COUNT_OFFSET, PolicyDigest.TPM_EO_EQ),
                new PolicyStep.CounterTimer(PolicyDigest.clockOperand(clockBefore),
                        PolicyDigest.TIME_INFO_CLOCK_OFFSET, PolicyDigest.TPM_EO_UNSIGNED_LT));
    }

    /** The digest an authority approves for the state {@code state}, without a lifetime. */
    public static PolicyDigest approvedPolicy(PcrValues state) {
        Objects.requireNonNull(state, "state");
        return fold(PolicyDigest.initial(HASH), approvedPolicySteps(state.selection()), state);
    }

    /**
     * The digest an authority approves for the state {@code state}, valid within one TPM reset cycle and below a
     * TPM clock value: what a keystore approval's {@code approvedPolicy} holds.
     */
    public static PolicyDigest approvedPolicy(PcrValues state, long resetCount, long clockBefore) {
        Objects.requireNonNull(state, "state");
        return fold(PolicyDigest.initial(HASH), approvedPolicySteps(state.selection(), resetCount, clockBefore),
                state);
    }

    /**
     * {@link #approvedPolicy(PcrValues, long, long)} from an already computed {@code PolicyPCR} digest (as a
     * keystore approval carries it).
     */
    public static PolicyDigest approvedPolicy(PolicyDigest pcrPolicy, long resetCount, long clockBefore) {
        Objects.requireNonNull(pcrPolicy, "pcrPolicy");
        if (pcrPolicy.algorithm() != HASH) {
            throw new IllegalArgumentException("a keystore policy is " + HASH.tpmName() + ", not "
                    + pcrPolicy.algorithm().tpmName());
        }
        return fold(pcrPolicy, lifetimeSteps(resetCount, clockBefore), null);
    }

    /** {@code aHash = SHA-256(approvedPolicy || policyRef)}: the digest the authority signs. */
    public static byte[] approvalDigest(PolicyDigest approvedPolicy, byte[] policyRef) {
        Objects.requireNonNull(approvedPolicy, "approvedPolicy");
        checkPolicyRef(policyRef);
        return PolicyDigest.approvalDigest(HASH, approvedPolicy.value(), policyRef);
    }

    /** Runs {@code steps} from {@code start} in software; a PolicyPCR step takes its values from {@code state}. */
    private static PolicyDigest fold(PolicyDigest start, List<PolicyStep> steps, PcrValues state) {
        PolicyDigest d = start;
        for (PolicyStep step : steps) {
            if (step instanceof PolicyStep.Pcr p) {
                if (state == null || !p.selection().equals(state.selection())) {
                    throw new IllegalArgumentException("a PolicyPCR of " + p.selection() + " needs the values of"
                            + " exactly those PCRs");
                }
                d = d.policyPcr(state);
            } else if (step instanceof PolicyStep.CounterTimer c) {
                d = d.policyCounterTimer(c.operandB(), c.offset(), c.operation());
            } else {
                throw new IllegalStateException("unknown policy step " + step);
            }
        }
        return d;
    }

    private static void checkPolicyRef(byte[] policyRef) {
        Objects.requireNonNull(policyRef, "policyRef");
        if (policyRef.length > MAX_POLICY_REF) {
            throw new IllegalArgumentException("a policyRef is at most " + MAX_POLICY_REF + " bytes, got "
                    + policyRef.length);
        }
    }
}
