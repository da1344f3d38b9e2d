package io.tpmphone.server.internal;

import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.KeystoreApproval;
import io.tpmphone.attestation.KeystorePolicy;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.Signature;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The keystore authority: approves one host's measured state for its sealed keystore
 * ({@code PolicyAuthorize(authority, policyRef)}, see docs/keystore.md and {@link KeystorePolicy}).
 *
 * <p>An approval ({@link KeystoreApproval}) is the authority's ECDSA P-256 signature, in the TPM's
 * {@code TPMT_SIGNATURE} form, over {@link KeystorePolicy#approvalDigest} of
 * {@link KeystorePolicy#approvedPolicy(PcrValues, long, long)} of the quoted values of the requested PCRs, with
 * {@code clockBefore = quoted TPM clock + ttl} and the quoted host's {@link KeystorePolicy#hostPolicyRef}, so the
 * approval opens nothing on another TPM and dies with a TPM Reset (after which the clock may have gone back). The
 * lifetime is counted in the host TPM's own clock, read from the signed quote, so neither the server's wall clock nor
 * the host's matters, and the TPM enforces it. Thread-safe.
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
     * requires, and nothing the quote did not cover. Returns why not; empty if it may.
     */
    public static Optional<String> refusal(PcrSelection requested, PcrSelection quoted, PcrSelection required) {
        if (requested.bank() != quoted.bank()) {
            return Optional.of("the keystore's PCR bank " + requested.bank().tpmName() + " is not the quoted "
                    + quoted.bank().tpmName());
        }
        if (!requested.pcrs().containsAll(required.pcrs())) {
            return Optional.of("the keystore's PCRs " + requested + " do not cover the policy's " + required
                    + " (an approval must bind the measured softphone and the boot chain)");
        }
        if (!quoted.pcrs().containsAll(requested.pcrs())) {
            return Optional.of("the keystore's PCRs " + requested + " are not all in the quote " + quoted);
        }
        return Optional.empty();
    }

    /**
     * An approval, for the host whose EK has TPM name {@code ekName}, of the quoted state over {@code requested} PCRs,
     * valid while the TPM's reset count is the quoted one and its clock below {@code quoteClock + ttl}.
     */
    public KeystoreApproval approve(PcrValues quoted, PcrSelection requested, long quoteResetCount, long quoteClock,
                                    Duration ttl, byte[] ekName) throws GeneralSecurityException {
        List<byte[]> values = new ArrayList<>();
        for (int pcr : requested.pcrs()) {
            values.add(quoted.value(pcr));
        }
        PcrValues state = PcrValues.of(requested, values);
        long clockBefore = quoteClock + ttl.toMillis();
        byte[] ref = KeystorePolicy.hostPolicyRef(ekName);
        Signature ecdsa = Signature.getInstance("NONEwithECDSA");
        ecdsa.initSign(authority.getPrivate());
        ecdsa.update(KeystorePolicy.approvalDigest(KeystorePolicy.approvedPolicy(state, quoteResetCount, clockBefore),
                ref));
        TpmtSignature signature = TpmtSignature.ecdsaFromDer(KeystorePolicy.HASH, ecdsa.sign(), EccCurve.NIST_P256);
        return KeystoreApproval.of(requested, KeystorePolicy.approvedPolicy(state), quoteResetCount, clockBefore, ref,
                signature, publicArea);
    }
}
