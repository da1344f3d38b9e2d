package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.Hex;
import io.tpmphone.attestation.internal.StrictJson;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A keystore approval, wire format version {@value #VERSION}: the keystore authority's signed approval of one host's
 * measured state, valid within one TPM reset cycle and below a TPM clock value (docs/keystore.md). The attestation
 * server encodes it ({@link #toJsonMap()}, the {@code keyApproval} member of an appraisal response); the agent decodes
 * it ({@link #decode}) and hands it to the TPM, which checks the signature and the policy.
 *
 * <p>JSON members, in this order, all required:
 * <pre>
 * version         1
 * pcrSelection    the keystore's PCRs, e.g. "sha256:0,1,2,3,4,5,6,7,14"
 * pcrPolicy       PolicyPCR of the quoted values of those PCRs (64 lower-case hex digits)
 * resetCount      the quoted TPM reset count the approval is pinned to (0..2^32-1)
 * clockBefore     the TPM clock (ms) it expires at: the quoted clock + the policy's keyApprovalTtlSeconds (0..2^63-1)
 * approvedPolicy  KeystorePolicy.approvedPolicy(pcrPolicy, resetCount, clockBefore) (64 lower-case hex digits)
 * policyRef       KeystorePolicy.hostPolicyRef(the host's EK name) (lower-case hex, at most 32 bytes)
 * signature       base64 TPMT_SIGNATURE (ECDSA) by the authority over KeystorePolicy.approvalDigest
 * authorityPublic base64 TPMT_PUBLIC of the authority
 * </pre>
 * {@link #decode} refuses unknown, missing and mistyped members, another version, an {@code approvedPolicy} that is not
 * the composition of {@code pcrPolicy}, {@code resetCount} and {@code clockBefore}, and a signature or public area
 * that does not parse. It does not verify the signature: the TPM does ({@code TPM2_VerifySignature}). Immutable and
 * thread-safe.
 */
public final class KeystoreApproval {
    /** The wire format's version. */
    public static final int VERSION = 1;
    /** The longest encoding {@link #decode} reads. */
    public static final int MAX_ENCODED_LENGTH = 16 * 1024;

    private static final String STRUCTURE = "KeystoreApproval";
    private static final Set<String> MEMBERS = Set.of("version", "pcrSelection", "pcrPolicy", "resetCount",
            "clockBefore", "approvedPolicy", "policyRef", "signature", "authorityPublic");
    private static final int MAX_PUBLIC = 1024;
    private static final int MAX_SIGNATURE = 1024;

    private final PcrSelection pcrSelection;
    private final PolicyDigest pcrPolicy;
    private final long resetCount;
    private final long clockBefore;
    private final PolicyDigest approvedPolicy;
    private final byte[] policyRef;
    private final TpmtSignature signature;
    private final TpmtPublic authority;

    private KeystoreApproval(PcrSelection pcrSelection, PolicyDigest pcrPolicy, long resetCount, long clockBefore,
                             byte[] policyRef, TpmtSignature signature, TpmtPublic authority) {
        this.pcrSelection = pcrSelection;
        this.pcrPolicy = pcrPolicy;
        this.resetCount = resetCount;
        this.clockBefore = clockBefore;
        this.approvedPolicy = KeystorePolicy.approvedPolicy(pcrPolicy, resetCount, clockBefore);
        this.policyRef = policyRef;
        this.signature = signature;
        this.authority = authority;
    }

    /**
     * An approval of {@code pcrPolicy} (the PolicyPCR digest of a state over {@code pcrSelection}) within the
     * lifetime {@code resetCount}/{@code clockBefore}, for {@code policyRef}, signed by {@code authority}.
     *
     * @throws IllegalArgumentException if a value is out of range
     */
    public static KeystoreApproval of(PcrSelection pcrSelection, PolicyDigest pcrPolicy, long resetCount,
                                      long clockBefore, byte[] policyRef, TpmtSignature signature,
                                      TpmtPublic authority) {
        Objects.requireNonNull(pcrSelection, "pcrSelection");
        Objects.requireNonNull(pcrPolicy, "pcrPolicy");
        Objects.requireNonNull(policyRef, "policyRef");
        Objects.requireNonNull(signature, "signature");
        Objects.requireNonNull(authority, "authority");
        if (resetCount < 0 || resetCount > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("resetCount " + resetCount + " is not a UINT32");
        }
        if (clockBefore < 0) {
            throw new IllegalArgumentException("clockBefore " + clockBefore + " is negative");
        }
        if (policyRef.length > KeystorePolicy.MAX_POLICY_REF) {
            throw new IllegalArgumentException("a policyRef is at most " + KeystorePolicy.MAX_POLICY_REF + " bytes");
        }
        if (pcrPolicy.algorithm() != KeystorePolicy.HASH) {
            throw new IllegalArgumentException("the PCR policy is " + pcrPolicy.algorithm().tpmName() + ", not "
                    + KeystorePolicy.HASH.tpmName());
        }
        return new KeystoreApproval(pcrSelection, pcrPolicy, resetCount, clockBefore, policyRef.clone(), signature,
                authority);
    }

    /** The PCRs whose state is approved. */
    public PcrSelection pcrSelection() {
        return pcrSelection;
    }

    /** The PolicyPCR digest of the approved state. */
    public PolicyDigest pcrPolicy() {
        return pcrPolicy;
    }

    /** The TPM reset count the approval is pinned to. */
    public long resetCount() {
        return resetCount;
    }

    /** The TPM clock value (ms) from which on the approval no longer holds. */
    public long clockBefore() {
        return clockBefore;
    }

    /** What the authority approved: {@link KeystorePolicy#approvedPolicy(PolicyDigest, long, long)}. */
    public PolicyDigest approvedPolicy() {
        return approvedPolicy;
    }

    /** The policyRef the approval is for (a copy). */
    public byte[] policyRef() {
        return policyRef.clone();
    }

    /** The authority's signature over {@link #signedDigest()}. */
    public TpmtSignature signature() {
        return signature;
    }

    /** The authority's public area. */
    public TpmtPublic authority() {
        return authority;
    }

    /** The digest the authority signed: {@link KeystorePolicy#approvalDigest}. */
    public byte[] signedDigest() {
        return KeystorePolicy.approvalDigest(approvedPolicy, policyRef);
    }

    /** The JSON object (see the class documentation): members in order, numbers as {@link Long}/{@link Integer}. */
    public Map<String, Object> toJsonMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("version", VERSION);
        m.put("pcrSelection", pcrSelection.toString());
        m.put("pcrPolicy", Hex.of(pcrPolicy.value()));
        m.put("resetCount", resetCount);
        m.put("clockBefore", clockBefore);
        m.put("approvedPolicy", Hex.of(approvedPolicy.value()));
        m.put("policyRef", Hex.of(policyRef));
        m.put("signature", Base64.getEncoder().encodeToString(signature.encoded()));
        m.put("authorityPublic", Base64.getEncoder().encodeToString(authority.encoded()));
        return m;
    }

    /** The UTF-8 JSON of {@link #toJsonMap()}. */
    public byte[] encode() {
        return StrictJson.write(toJsonMap());
    }

    /** {@link #decode(byte[])} of UTF-8 text. */
    public static KeystoreApproval decode(String json) throws MalformedStructureException {
        return decode(Objects.requireNonNull(json, "json").getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Reads an approval strictly (see the class documentation).
     *
     * @throws MalformedStructureException naming the member that is unknown, missing, mistyped or inconsistent
     */
    public static KeystoreApproval decode(byte[] json) throws MalformedStructureException {
        StrictJson.Reader r = StrictJson.read(json, MAX_ENCODED_LENGTH, STRUCTURE);
        long version = r.integer("version", Integer.MIN_VALUE, Integer.MAX_VALUE);
        if (version != VERSION) {
            throw r.bad("version", "version " + version + " is not supported; this reader knows version " + VERSION);
        }
        r.members(MEMBERS, Set.of());
        PcrSelection selection;
        try {
            selection = PcrSelection.parse(r.text("pcrSelection"));
        } catch (IllegalArgumentException e) {
            throw r.bad("pcrSelection", e.getMessage(), e);
        }
        int digestLength = KeystorePolicy.HASH.digestLength();
        PolicyDigest pcrPolicy = PolicyDigest.of(KeystorePolicy.HASH, r.hex("pcrPolicy", digestLength,
                digestLength));
        long resetCount = r.integer("resetCount", 0, 0xFFFF_FFFFL);
        long clockBefore = r.integer("clockBefore", 0, Long.MAX_VALUE);
        byte[] approved = r.hex("approvedPolicy", digestLength, digestLength);
        byte[] policyRef = r.hex("policyRef", 0, KeystorePolicy.MAX_POLICY_REF);
        TpmtSignature signature;
        try {
            signature = TpmtSignature.parse(r.base64("signature", MAX_SIGNATURE));
        } catch (MalformedStructureException e) {
            throw r.bad("signature", "not a TPMT_SIGNATURE: " + e.getMessage(), e);
        }
        if (signature.algorithm() != SchemeAlgorithm.ECDSA) {
            throw r.bad("signature", "an approval is signed with ECDSA, not " + signature.algorithm());
        }
        TpmtPublic authority;
        try {
            authority = TpmtPublic.parse(r.base64("authorityPublic", MAX_PUBLIC));
        } catch (MalformedStructureException e) {
            throw r.bad("authorityPublic", "not a TPMT_PUBLIC: " + e.getMessage(), e);
        }
        KeystoreApproval a = new KeystoreApproval(selection, pcrPolicy, resetCount, clockBefore, policyRef, signature,
                authority);
        if (!Arrays.equals(approved, a.approvedPolicy.value())) {
            throw r.bad("approvedPolicy", "is not the approved policy of pcrPolicy, resetCount and clockBefore ("
                    + Hex.abbreviate(a.approvedPolicy.value()) + ")");
        }
        return a;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof KeystoreApproval a && pcrSelection.equals(a.pcrSelection) && pcrPolicy.equals(a.pcrPolicy)
                && resetCount == a.resetCount && clockBefore == a.clockBefore && Arrays.equals(policyRef, a.policyRef)
                && Arrays.equals(signature.encoded(), a.signature.encoded())
                && Arrays.equals(authority.encoded(), a.authority.encoded());
    }

    @Override
    public int hashCode() {
        return Objects.hash(pcrSelection, pcrPolicy, resetCount, clockBefore, Arrays.hashCode(policyRef));
    }

    @Override
    public String toString() {
        return "KeystoreApproval[v" + VERSION + ", " + pcrSelection + ", " + approvedPolicy + ", reset " + resetCount
                + ", clock < " + clockBefore + "]";
    }
}
