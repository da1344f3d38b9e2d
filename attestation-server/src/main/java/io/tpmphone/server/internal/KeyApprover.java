package io.tpmphone.server.internal;

import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.PolicyDigest;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.Signature;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The keystore authority: approves one host's measured state for its sealed keystore
 * ({@code PolicyAuthorize(authority, "tpmphone-keystore-v1")}, see docs/keystore.md).
 *
 * <p>An approval is the authority's ECDSA P-256 signature, in the TPM's {@code TPMT_SIGNATURE} form, over
 * {@code aHash = SHA256(approvedPolicy || policyRef)} with {@code approvedPolicy = PolicyCounterTimer(clock
 * UNSIGNED_LT clockBefore)} after {@code PolicyCounterTimer(resetCount EQ quoted resetCount)} after {@code PolicyPCR}
 * of the quoted values of the requested PCRs, {@code clockBefore = quoted TPM clock + ttl}, and {@code policyRef =
 * SHA256("tpmphone-keystore-v1" || EK name)} of the quoted host, so the approval opens nothing on another TPM and
 * dies with a TPM Reset (after which the clock may have gone back). The lifetime is counted in the host TPM's own clock, read from the
 * signed quote, so neither the server's wall clock nor the host's matters, and the TPM enforces it. Thread-safe.
 */
public final class KeyApprover {

    private final KeyPair authority;
    private final TpmtPublic publicArea;

    public KeyApprover(KeyPair authority) {
        this.authority = authority;
        this.publicArea = TpmtPublic.builder(KeyType.ECC).nameAlg(HashAlgorithm.SHA256)
                .attributes(ObjectAttribute.SIGN_ENCRYPT, ObjectAttribute.USER_WITH_AUTH)
                .scheme(SchemeAlgorithm.ECDSA, HashAlgorithm.SHA256).publicKey(authority.getPublic()).build();
    }

    /** The authority's {@code TPMT_PUBLIC}: what a keystore is sealed to (by its name). */
    public TpmtPublic publicArea() {
        return publicArea;
    }

    /**
     * Checks that {@code requested} may be approved from a quote of {@code quoted}: same bank, every PCR the policy
     * requires, and nothing the quote did not cover. Returns why not, or null.
     */
    public static String refusal(PcrSelection requested, PcrSelection quoted, PcrSelection required) {
        if (requested.bank() != quoted.bank()) {
            return "the keystore's PCR bank " + requested.bank().tpmName() + " is not the quoted "
                    + quoted.bank().tpmName();
        }
        if (!requested.pcrs().containsAll(required.pcrs())) {
            return "the keystore's PCRs " + requested + " do not cover the policy's " + required
                    + " (an approval must bind the measured softphone and the boot chain)";
        }
        if (!quoted.pcrs().containsAll(requested.pcrs())) {
            return "the keystore's PCRs " + requested + " are not all in the quote " + quoted;
        }
        return null;
    }

    /**
     * An approval, for the host whose EK has TPM name {@code ekName}, of the quoted state over {@code requested} PCRs,
     * valid while the TPM's reset count is the quoted one and its clock below {@code quoteClock + ttl}; the JSON form.
     */
    public Map<String, Object> approve(PcrValues quoted, PcrSelection requested, long quoteResetCount,
                                       long quoteClock, Duration ttl, byte[] ekName) throws GeneralSecurityException {
        List<byte[]> values = new ArrayList<>();
        for (int pcr : requested.pcrs()) {
            values.add(quoted.value(pcr));
        }
        PcrValues subset = PcrValues.of(requested, values);
        PolicyDigest pcrPolicy = KeystorePolicy.approvedPolicy(subset);
        long clockBefore = quoteClock + ttl.toMillis();
        byte[] approved = KeystorePolicy.approvedPolicy(subset, quoteResetCount, clockBefore).value();
        byte[] ref = KeystorePolicy.hostPolicyRef(ekName);
        Signature ecdsa = Signature.getInstance("NONEwithECDSA");
        ecdsa.initSign(authority.getPrivate());
        ecdsa.update(KeystorePolicy.approvalDigest(PolicyDigest.of(KeystorePolicy.HASH, approved), ref));
        byte[] signature = TpmtSignature.ecdsaFromDer(HashAlgorithm.SHA256, ecdsa.sign(), EccCurve.NIST_P256)
                .encoded();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("pcrSelection", requested.toString());
        m.put("pcrPolicy", HexFormat.of().formatHex(pcrPolicy.value()));
        m.put("resetCount", quoteResetCount);
        m.put("clockBefore", clockBefore);
        m.put("approvedPolicy", HexFormat.of().formatHex(approved));
        m.put("policyRef", HexFormat.of().formatHex(ref));
        m.put("signature", Base64.getEncoder().encodeToString(signature));
        m.put("authorityPublic", Base64.getEncoder().encodeToString(publicArea.encoded()));
        return m;
    }
}
