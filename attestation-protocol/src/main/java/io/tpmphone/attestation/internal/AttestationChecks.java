package io.tpmphone.attestation.internal;

import io.tpmphone.attestation.AttestType;
import io.tpmphone.attestation.EccCurve;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.KeyType;
import io.tpmphone.attestation.MalformedStructureException;
import io.tpmphone.attestation.ObjectAttribute;
import io.tpmphone.attestation.SchemeAlgorithm;
import io.tpmphone.attestation.TpmsAttest;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.attestation.TpmtSignature;
import io.tpmphone.attestation.VerificationException;
import io.tpmphone.attestation.VerificationException.Check;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PublicKey;
import java.security.Signature;
import java.security.SignatureException;
import java.security.interfaces.ECPublicKey;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Set;

/** The checks shared by the quote and certify verifiers, in the order they apply them. */
public final class AttestationChecks {
    private static final Set<HashAlgorithm> ECDSA_HASHES = Set.of(HashAlgorithm.SHA256, HashAlgorithm.SHA384);
    private static final Set<HashAlgorithm> RSA_HASHES =
            Set.of(HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512);
    private static final int MIN_RSA_BITS = 2048;

    private AttestationChecks() {
    }

    /**
     * Checks the signing key, the signature algorithm and the signature over {@code attest}.
     *
     * @return the signature, whose hash is also the hash of a quote's pcrDigest
     */
    public static TpmtSignature verifySignature(byte[] attest, byte[] signatureBytes, TpmtPublic key)
            throws VerificationException {
        PublicKey publicKey = checkKey(key);
        TpmtSignature signature;
        try {
            signature = TpmtSignature.parse(signatureBytes);
        } catch (MalformedStructureException e) {
            Check check = e.field().equals("sigAlg") || e.field().endsWith(".hash")
                    ? Check.SIGNATURE_ALGORITHM : Check.SIGNATURE;
            throw new VerificationException(check, "cannot parse the signature: " + e.getMessage(), e);
        }
        checkAlgorithm(signature, key);
        if (signature.algorithm() == SchemeAlgorithm.ECDSA) {
            verifyEcdsa(attest, signature, (ECPublicKey) publicKey, key.curve().orElseThrow());
        } else {
            verifyRsa(attest, signature, publicKey, key.rsaKeyBits());
        }
        return signature;
    }

    private static PublicKey checkKey(TpmtPublic key) throws VerificationException {
        if (key.type() != KeyType.ECC && key.type() != KeyType.RSA) {
            throw new VerificationException(Check.KEY, "the signing key is a " + key.type()
                    + " object; expected an ECC or RSA attestation key");
        }
        for (ObjectAttribute required : new ObjectAttribute[] {
            ObjectAttribute.RESTRICTED, ObjectAttribute.SIGN_ENCRYPT, ObjectAttribute.FIXED_TPM}) {
            if (!key.has(required)) {
                throw new VerificationException(Check.KEY, "the signing key lacks " + required
                        + "; expected a restricted, fixedTPM signing key (attributes: " + key.attributes()
                        + "). Only a restricted key proves the TPM produced the attested data");
            }
        }
        if (key.has(ObjectAttribute.DECRYPT)) {
            throw new VerificationException(Check.KEY,
                    "the signing key also has DECRYPT; expected a restricted signing-only key");
        }
        if (key.type() == KeyType.RSA && key.rsaKeyBits() < MIN_RSA_BITS) {
            throw new VerificationException(Check.KEY, "the RSA signing key has " + key.rsaKeyBits()
                    + " bits; expected at least " + MIN_RSA_BITS);
        }
        PublicKey cached = VERIFICATION_KEYS.get(key);
        if (cached != null) {
            return cached;
        }
        PublicKey publicKey;
        try {
            publicKey = key.toPublicKey(); // validates the point (or the modulus)
            if (key.type() == KeyType.ECC) {
                publicKey = java.security.KeyFactory.getInstance("EC", BOUNCY_CASTLE).generatePublic(
                        new java.security.spec.X509EncodedKeySpec(publicKey.getEncoded()));
            }
        } catch (InvalidKeyException | java.security.spec.InvalidKeySpecException e) {
            throw new VerificationException(Check.KEY, "the signing key is not a usable public key: "
                    + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("Bouncy Castle lacks the EC key factory", e);
        }
        VERIFICATION_KEYS.put(key, publicKey);
        return publicKey;
    }

    /**
     * Each signing key's JCA key, made (and its point validated) once per key: an ECC key as Bouncy Castle's own,
     * which keeps its precomputed multiples of the point with the key object, so a host's next signature verifies
     * in about 40% of the time (0.08 against 0.20 ms of CPU for P-256 on this project's machine), and no key
     * factory or point check runs per signature. Keyed by the (immutable) public area's encoding, weakly: an entry
     * lives as long as a caller keeps that public area (the server caches each enrolled AK's).
     */
    private static final java.util.Map<TpmtPublic, PublicKey> VERIFICATION_KEYS = java.util.Collections
            .synchronizedMap(new java.util.WeakHashMap<>());

    private static void checkAlgorithm(TpmtSignature signature, TpmtPublic key) throws VerificationException {
        SchemeAlgorithm alg = signature.algorithm();
        HashAlgorithm hash = signature.hash();
        if (key.type() == KeyType.ECC) {
            if (alg != SchemeAlgorithm.ECDSA) {
                throw new VerificationException(Check.SIGNATURE_ALGORITHM, "signature algorithm is " + alg
                        + " but the key is ECC; expected ECDSA");
            }
            if (!ECDSA_HASHES.contains(hash)) {
                throw new VerificationException(Check.SIGNATURE_ALGORITHM, "ECDSA hash is " + hash.tpmName()
                        + "; expected sha256 or sha384");
            }
        } else {
            if (alg != SchemeAlgorithm.RSASSA && alg != SchemeAlgorithm.RSAPSS) {
                throw new VerificationException(Check.SIGNATURE_ALGORITHM, "signature algorithm is " + alg
                        + " but the key is RSA; expected RSASSA or RSAPSS");
            }
            if (!RSA_HASHES.contains(hash)) {
                throw new VerificationException(Check.SIGNATURE_ALGORITHM, "RSA signature hash is "
                        + hash.tpmName() + "; expected sha256, sha384 or sha512");
            }
        }
        if (key.scheme() != SchemeAlgorithm.NULL) {
            HashAlgorithm keyHash = key.schemeHash().orElse(null);
            if (key.scheme() != alg || keyHash != hash) {
                throw new VerificationException(Check.SIGNATURE_ALGORITHM, "signature is " + alg + "-"
                        + hash.tpmName() + " but the key's scheme is " + key.scheme()
                        + (keyHash != null ? "-" + keyHash.tpmName() : ""));
            }
        }
    }

    private static void verifyEcdsa(byte[] attest, TpmtSignature signature, ECPublicKey publicKey, EccCurve curve)
            throws VerificationException {
        BigInteger n = publicKey.getParams().getOrder();
        BigInteger r = new BigInteger(1, signature.r());
        BigInteger s = new BigInteger(1, signature.s());
        if (r.signum() <= 0 || r.compareTo(n) >= 0 || s.signum() <= 0 || s.compareTo(n) >= 0) {
            throw new VerificationException(Check.SIGNATURE,
                    "ECDSA r or s is outside [1, n-1] for " + curve.jcaName() + "; the signature is invalid");
        }
        String jca = signature.hash().jcaName().replace("-", "") + "withECDSA";
        boolean ok = jcaVerify(jca, null, publicKey, attest, signature.toDer(), BOUNCY_CASTLE);
        if (!ok) {
            throw new VerificationException(Check.SIGNATURE, "the " + jca
                    + " signature does not verify over the attestation with the given key");
        }
    }

    private static void verifyRsa(byte[] attest, TpmtSignature signature, PublicKey publicKey, int keyBits)
            throws VerificationException {
        byte[] sig = signature.rsaSignature();
        if (sig.length != keyBits / 8) {
            throw new VerificationException(Check.SIGNATURE, "RSA signature is " + sig.length
                    + " bytes; expected " + keyBits / 8 + " for a " + keyBits + "-bit key");
        }
        HashAlgorithm h = signature.hash();
        boolean ok;
        if (signature.algorithm() == SchemeAlgorithm.RSASSA) {
            ok = jcaVerify(h.jcaName().replace("-", "") + "withRSA", null, publicKey, attest, sig);
        } else {
            // TPMs use a salt as long as the digest; some older ones use the largest salt the key allows.
            MGF1ParameterSpec mgf = new MGF1ParameterSpec(h.jcaName());
            int maxSalt = keyBits / 8 - h.digestLength() - 2;
            ok = jcaVerify("RSASSA-PSS", new PSSParameterSpec(h.jcaName(), "MGF1", mgf, h.digestLength(), 1),
                    publicKey, attest, sig)
                    || jcaVerify("RSASSA-PSS", new PSSParameterSpec(h.jcaName(), "MGF1", mgf, maxSalt, 1),
                    publicKey, attest, sig);
        }
        if (!ok) {
            throw new VerificationException(Check.SIGNATURE, "the " + signature.algorithm() + "-" + h.tpmName()
                    + " signature does not verify over the attestation with the given key");
        }
    }

    /**
     * ECDSA verification runs on Bouncy Castle: ~13x faster than the JDK's SunEC for P-256 on this project's
     * machine (benchmarks/EcdsaBenchmark), and verification handles only public data. One private instance, never
     * registered as a global JCA provider.
     */
    private static final java.security.Provider BOUNCY_CASTLE =
            new org.bouncycastle.jce.provider.BouncyCastleProvider();
    /** Provider look-up per call is measurable on the hot path: one Signature per thread and algorithm. */
    private static final ThreadLocal<java.util.Map<String, Signature>> BC_VERIFIERS =
            ThreadLocal.withInitial(java.util.HashMap::new);

    private static boolean jcaVerify(String algorithm, PSSParameterSpec pss, PublicKey key, byte[] data,
            byte[] sig) throws VerificationException {
        return jcaVerify(algorithm, pss, key, data, sig, null);
    }

    private static boolean jcaVerify(String algorithm, PSSParameterSpec pss, PublicKey key, byte[] data,
            byte[] sig, java.security.Provider provider) throws VerificationException {
        try {
            Signature verifier;
            if (provider == null) {
                verifier = Signature.getInstance(algorithm);
            } else {
                verifier = BC_VERIFIERS.get().get(algorithm);
                if (verifier == null) {
                    verifier = Signature.getInstance(algorithm, provider);
                    BC_VERIFIERS.get().put(algorithm, verifier);
                }
            }
            if (pss != null) {
                verifier.setParameter(pss);
            }
            verifier.initVerify(key);
            verifier.update(data);
            return verifier.verify(sig);
        } catch (SignatureException e) {
            return false;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK lacks " + algorithm, e);
        } catch (GeneralSecurityException e) {
            throw new VerificationException(Check.KEY, "the JCA refused the key for " + algorithm + ": "
                    + e.getMessage(), e);
        }
    }

    /** Parses the attestation, mapping failures to MAGIC, TYPE, PCR_SELECTION or STRUCTURE, and checks type. */
    public static TpmsAttest parse(byte[] attest, AttestType expectedType) throws VerificationException {
        TpmsAttest parsed;
        try {
            parsed = TpmsAttest.parse(attest);
        } catch (MalformedStructureException e) {
            Check check;
            if (e.field().equals("magic")) {
                check = Check.MAGIC;
            } else if (e.field().equals("type")) {
                check = Check.TYPE;
            } else if (e.field().startsWith("attested.quote.pcrSelect")) {
                check = Check.PCR_SELECTION;
            } else {
                check = Check.STRUCTURE;
            }
            throw new VerificationException(check, e.getMessage(), e);
        }
        if (parsed.type() != expectedType) {
            throw new VerificationException(Check.TYPE, "attestation type is " + parsed.type() + "; expected "
                    + expectedType);
        }
        return parsed;
    }

    /** Compares extraData with the expected qualifying data in constant time. */
    /** Shortest qualifying data a verifier may expect: shorter would make replay of old evidence guessable. */
    public static final int MIN_QUALIFYING_DATA = 16;

    /**
     * Refuses an expected nonce/binder shorter than 16 bytes: with an empty one, any quote without extraData would
     * verify. A programming error of the caller, hence unchecked.
     */
    public static void requireUsableNonce(byte[] expected) {
        if (expected.length < MIN_QUALIFYING_DATA) {
            throw new IllegalArgumentException("expected qualifying data must have at least " + MIN_QUALIFYING_DATA
                    + " bytes (a fresh nonce or a binder), got " + expected.length);
        }
    }

    public static void checkQualifyingData(TpmsAttest attest, byte[] expected) throws VerificationException {
        byte[] actual = attest.extraData();
        if (!MessageDigest.isEqual(actual, expected)) {
            // Lengths only: the value may be a TLS binder, which is not for logs.
            throw new VerificationException(Check.QUALIFYING_DATA, "extraData does not match the expected "
                    + "qualifying data (expected " + expected.length + " bytes, got " + actual.length
                    + " bytes): stale or replayed evidence, or evidence made for another verifier");
        }
    }
}
