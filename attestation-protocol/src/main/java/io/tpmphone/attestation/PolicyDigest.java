package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.TpmWriter;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;

/**
 * A policy digest computed in software, as a trial policy session would (TPM 2.0 Part 1 §19.7, Part 3 §23).
 * Each method returns a new digest; immutable and thread-safe.
 *
 * <pre>
 * PolicyDigest p = PolicyDigest.initial(SHA256).policyPcr(pcrValues);   // == tpm2_createpolicy --policy-pcr
 * </pre>
 */
public final class PolicyDigest {
    /** {@code TPM_CC_PolicySecret}. */
    public static final int TPM_CC_POLICY_SECRET = 0x00000151;
    /** {@code TPM_CC_PolicyAuthorize}. */
    public static final int TPM_CC_POLICY_AUTHORIZE = 0x0000016A;
    /** {@code TPM_CC_PolicyAuthValue} (TPM2_PolicyPassword extends the same value). */
    public static final int TPM_CC_POLICY_AUTH_VALUE = 0x0000016B;
    /** {@code TPM_CC_PolicyCommandCode}. */
    public static final int TPM_CC_POLICY_COMMAND_CODE = 0x0000016C;
    /** {@code TPM_CC_PolicyCounterTimer}. */
    public static final int TPM_CC_POLICY_COUNTER_TIMER = 0x0000016D;
    /** {@code TPM_EO_UNSIGNED_LT}: operand A (the TPM's value) below operand B. */
    public static final int TPM_EO_UNSIGNED_LT = 0x0005;
    /** {@code TPM_EO_EQ}: operand A (the TPM's value) equals operand B. */
    public static final int TPM_EO_EQ = 0x0000;
    /** Offset of {@code clockInfo.clock} in a marshalled {@code TPMS_TIME_INFO} (after the 8-byte {@code time}). */
    public static final int TIME_INFO_CLOCK_OFFSET = 8;
    /** Offset of {@code clockInfo.resetCount} in a marshalled {@code TPMS_TIME_INFO}. */
    public static final int TIME_INFO_RESET_COUNT_OFFSET = 16;
    /** {@code TPM_CC_PolicyOR}. */
    public static final int TPM_CC_POLICY_OR = 0x00000171;
    /** {@code TPM_CC_PolicyPCR}. */
    public static final int TPM_CC_POLICY_PCR = 0x0000017F;

    private final HashAlgorithm algorithm;
    private final byte[] value;

    private PolicyDigest(HashAlgorithm algorithm, byte[] value) {
        this.algorithm = algorithm;
        this.value = value;
    }

    /** The digest of a fresh policy session: all zeros. */
    public static PolicyDigest initial(HashAlgorithm algorithm) {
        Objects.requireNonNull(algorithm, "algorithm");
        return new PolicyDigest(algorithm, new byte[algorithm.digestLength()]);
    }

    /** A digest with a known value (e.g. read from a TPM or a file). */
    public static PolicyDigest of(HashAlgorithm algorithm, byte[] value) {
        Objects.requireNonNull(algorithm, "algorithm");
        Objects.requireNonNull(value, "value");
        checkLength(algorithm, value, "policy digest");
        return new PolicyDigest(algorithm, value.clone());
    }

    /**
     * TPM2_PolicyPCR: {@code H(old || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || pcrDigest)}.
     *
     * @param pcrCompositeDigest the policy hash over the selected PCR values concatenated in ascending order
     */
    public PolicyDigest policyPcr(PcrSelection selection, byte[] pcrCompositeDigest) {
        Objects.requireNonNull(selection, "selection");
        Objects.requireNonNull(pcrCompositeDigest, "pcrCompositeDigest");
        checkLength(algorithm, pcrCompositeDigest, "PCR composite digest");
        return extend(u32(TPM_CC_POLICY_PCR), selection.toTpml(), pcrCompositeDigest);
    }

    /** TPM2_PolicyPCR with the digest of {@code values} computed with this policy's hash. */
    public PolicyDigest policyPcr(PcrValues values) {
        Objects.requireNonNull(values, "values");
        return policyPcr(values.selection(), values.compositeDigest(algorithm));
    }

    /**
     * TPM2_PolicyAuthorize: resets to zeros, then {@code H(zeros || TPM_CC_PolicyAuthorize || keyName)} and
     * {@code H(that || policyRef)}.
     */
    public PolicyDigest policyAuthorize(byte[] authorityKeyName, byte[] policyRef) {
        Objects.requireNonNull(authorityKeyName, "authorityKeyName");
        Objects.requireNonNull(policyRef, "policyRef");
        PolicyDigest first = initial(algorithm).extend(u32(TPM_CC_POLICY_AUTHORIZE), authorityKeyName);
        return first.extend(policyRef);
    }

    /** TPM2_PolicySecret: {@code H(old || TPM_CC_PolicySecret || authObjectName)} then {@code H(that || policyRef)}. */
    public PolicyDigest policySecret(byte[] authObjectName, byte[] policyRef) {
        Objects.requireNonNull(authObjectName, "authObjectName");
        Objects.requireNonNull(policyRef, "policyRef");
        return extend(u32(TPM_CC_POLICY_SECRET), authObjectName).extend(policyRef);
    }

    /** TPM2_PolicyAuthValue (and TPM2_PolicyPassword): {@code H(old || TPM_CC_PolicyAuthValue)}. */
    public PolicyDigest policyAuthValue() {
        return extend(u32(TPM_CC_POLICY_AUTH_VALUE));
    }

    /**
     * TPM2_PolicyCounterTimer: {@code H(old || TPM_CC_PolicyCounterTimer || args)} with
     * {@code args = H(operandB || offset (UINT16) || operation (UINT16))} (TPM 2.0 Part 3 §23.10).
     */
    public PolicyDigest policyCounterTimer(byte[] operandB, int offset, int operation) {
        Objects.requireNonNull(operandB, "operandB");
        if (offset < 0 || offset > 0xFFFF || operation < 0 || operation > 0xFFFF) {
            throw new IllegalArgumentException("offset and operation are UINT16");
        }
        byte[] args = algorithm.digest(operandB, u16(offset), u16(operation));
        return extend(u32(TPM_CC_POLICY_COUNTER_TIMER), args);
    }

    /**
     * {@link #policyCounterTimer} for "the TPM's clock is below {@code clockLimit}": {@code TPMS_TIME_INFO.clockInfo
     * .clock} (milliseconds the TPM has been powered since its last TPM2_Clear, never going back) UNSIGNED_LT the
     * 8-byte big-endian limit. A policy with this step expires in the TPM's own time.
     */
    public PolicyDigest policyClockBefore(long clockLimit) {
        return policyCounterTimer(clockOperand(clockLimit), TIME_INFO_CLOCK_OFFSET, TPM_EO_UNSIGNED_LT);
    }

    /**
     * {@link #policyCounterTimer} for "the TPM has not been reset since": {@code clockInfo.resetCount} EQ the 4-byte
     * big-endian value. After a TPM Reset without an orderly shutdown the clock may go back (by up to the TPM's NV
     * save interval; on swtpm to almost zero), so a clock limit alone could be used again; the reset count only grows.
     */
    public PolicyDigest policyResetCountIs(long resetCount) {
        return policyCounterTimer(resetCountOperand(resetCount), TIME_INFO_RESET_COUNT_OFFSET, TPM_EO_EQ);
    }

    /** The 4-byte big-endian operand of {@link #policyResetCountIs}. */
    public static byte[] resetCountOperand(long resetCount) {
        if (resetCount < 0 || resetCount > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("resetCount is a UINT32");
        }
        return new byte[] {(byte) (resetCount >>> 24), (byte) (resetCount >>> 16), (byte) (resetCount >>> 8),
            (byte) resetCount};
    }

    /**
     * The approved policy of a time-limited keystore approval: {@code PolicyPCR} (this digest), then
     * {@link #policyResetCountIs}, then {@link #policyClockBefore}.
     */
    public PolicyDigest policyValidWithin(long resetCount, long clockBefore) {
        return policyResetCountIs(resetCount).policyClockBefore(clockBefore);
    }

    /** The 8-byte big-endian operand of {@link #policyClockBefore}. */
    public static byte[] clockOperand(long clockLimit) {
        return java.nio.ByteBuffer.allocate(8).putLong(clockLimit).array();
    }

    /** TPM2_PolicyCommandCode: {@code H(old || TPM_CC_PolicyCommandCode || code)}. */
    public PolicyDigest policyCommandCode(int commandCode) {
        return extend(u32(TPM_CC_POLICY_COMMAND_CODE), u32(commandCode));
    }

    /** TPM2_PolicyOR: resets to zeros, then {@code H(zeros || TPM_CC_PolicyOR || digest1 || ... )}, 2..8 branches. */
    public PolicyDigest policyOr(List<PolicyDigest> branches) {
        Objects.requireNonNull(branches, "branches");
        if (branches.size() < 2 || branches.size() > 8) {
            throw new IllegalArgumentException("PolicyOR takes 2..8 branches, got " + branches.size());
        }
        byte[][] parts = new byte[branches.size() + 1][];
        parts[0] = u32(TPM_CC_POLICY_OR);
        for (int i = 0; i < branches.size(); i++) {
            PolicyDigest b = branches.get(i);
            if (b.algorithm != algorithm) {
                throw new IllegalArgumentException("PolicyOR branch " + i + " uses " + b.algorithm.tpmName()
                        + "; expected " + algorithm.tpmName());
            }
            parts[i + 1] = b.value;
        }
        return initial(algorithm).extend(parts);
    }

    /**
     * {@code aHash = H(approvedPolicy || policyRef)}: the digest a policy authority signs to approve a policy for
     * TPM2_PolicyAuthorize (verified by TPM2_VerifySignature into a ticket).
     */
    public static byte[] approvalDigest(HashAlgorithm h, byte[] approvedPolicy, byte[] policyRef) {
        Objects.requireNonNull(h, "h");
        Objects.requireNonNull(approvedPolicy, "approvedPolicy");
        Objects.requireNonNull(policyRef, "policyRef");
        return h.digest(approvedPolicy, policyRef);
    }

    private PolicyDigest extend(byte[]... parts) {
        byte[][] all = new byte[parts.length + 1][];
        all[0] = value;
        System.arraycopy(parts, 0, all, 1, parts.length);
        return new PolicyDigest(algorithm, algorithm.digest(all));
    }

    private static byte[] u16(int v) {
        return new byte[] {(byte) (v >>> 8), (byte) v};
    }

    private static byte[] u32(int v) {
        return TpmWriter.u32Bytes(v & 0xFFFF_FFFFL);
    }

    private static void checkLength(HashAlgorithm h, byte[] v, String what) {
        if (v.length != h.digestLength()) {
            throw new IllegalArgumentException(what + " is " + v.length + " bytes; " + h.tpmName() + " needs "
                    + h.digestLength());
        }
    }

    /** The digest bytes (a copy). */
    public byte[] value() {
        return value.clone();
    }

    public HashAlgorithm algorithm() {
        return algorithm;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PolicyDigest other && algorithm == other.algorithm && Arrays.equals(value, other.value);
    }

    @Override
    public int hashCode() {
        return 31 * algorithm.hashCode() + Arrays.hashCode(value);
    }

    /** {@code sha256:<hex>}. */
    @Override
    public String toString() {
        return algorithm.tpmName() + ":" + HexFormat.of().formatHex(value);
    }
}
