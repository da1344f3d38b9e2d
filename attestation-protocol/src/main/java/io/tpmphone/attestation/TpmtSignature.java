package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.EcCurves;
import io.tpmphone.attestation.internal.TpmReader;
import io.tpmphone.attestation.internal.TpmWriter;
import java.io.IOException;
import java.math.BigInteger;
import java.util.Arrays;
import java.util.Objects;
import org.bouncycastle.asn1.ASN1Encoding;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.ASN1Primitive;
import org.bouncycastle.asn1.ASN1Sequence;
import org.bouncycastle.asn1.DERSequence;

/**
 * A strictly parsed {@code TPMT_SIGNATURE} (TPM 2.0 Part 2 §11.3.4) of algorithm ECDSA, RSASSA or RSAPSS; other
 * algorithms (including NULL, ECDAA, SM2, ECSCHNORR and HMAC) are rejected. Parsing checks structure only; the
 * verifiers check the signature. Immutable and thread-safe.
 */
public final class TpmtSignature {
    private static final String STRUCTURE = "TPMT_SIGNATURE";
    private static final int MAX_ECC_PARAMETER = 66;
    private static final int MAX_RSA = 512;

    private final byte[] encoded;
    private final SchemeAlgorithm algorithm;
    private final HashAlgorithm hash;
    private final byte[] first;
    private final byte[] second;

    private TpmtSignature(byte[] encoded, SchemeAlgorithm algorithm, HashAlgorithm hash, byte[] first,
            byte[] second) {
        this.encoded = encoded;
        this.algorithm = algorithm;
        this.hash = hash;
        this.first = first;
        this.second = second;
    }

    /** Parses a complete marshalled {@code TPMT_SIGNATURE} (no trailing bytes). */
    public static TpmtSignature parse(byte[] signature) throws MalformedStructureException {
        byte[] copy = Objects.requireNonNull(signature, "signature").clone();
        TpmReader r = new TpmReader(copy, STRUCTURE);
        int algAt = r.offset();
        int alg = r.u16("sigAlg");
        SchemeAlgorithm algorithm;
        byte[] first;
        byte[] second = null;
        HashAlgorithm hash;
        if (alg == SchemeAlgorithm.ECDSA.tpmId()) {
            algorithm = SchemeAlgorithm.ECDSA;
            hash = r.hashAlg("signature.ecdsa.hash");
            first = r.tpm2b("signature.ecdsa.signatureR", MAX_ECC_PARAMETER);
            second = r.tpm2b("signature.ecdsa.signatureS", MAX_ECC_PARAMETER);
        } else if (alg == SchemeAlgorithm.RSASSA.tpmId() || alg == SchemeAlgorithm.RSAPSS.tpmId()) {
            algorithm = alg == SchemeAlgorithm.RSASSA.tpmId() ? SchemeAlgorithm.RSASSA : SchemeAlgorithm.RSAPSS;
            hash = r.hashAlg("signature.rsa.hash");
            first = r.tpm2b("signature.rsa.sig", MAX_RSA);
        } else {
            throw r.error("sigAlg", algAt, String.format("unsupported signature algorithm 0x%04X; expected "
                    + "ECDSA (0x0018), RSASSA (0x0014) or RSAPSS (0x0016)", alg));
        }
        r.requireEnd();
        return new TpmtSignature(copy, algorithm, hash, first, second);
    }

    /** An ECDSA signature from its r and s byte strings (unsigned big-endian). */
    public static TpmtSignature ecdsa(HashAlgorithm hash, byte[] r, byte[] s) {
        return build(new TpmWriter().u16(SchemeAlgorithm.ECDSA.tpmId()).u16(hash.tpmId()).tpm2b(r).tpm2b(s));
    }

    /**
     * An ECDSA signature from a DER {@code SEQUENCE {r, s}} (as JCA produces), with r and s padded to the
     * curve's coordinate length as a TPM writes them.
     *
     * @throws IllegalArgumentException if {@code der} is not such a sequence or a value does not fit the curve
     */
    public static TpmtSignature ecdsaFromDer(HashAlgorithm hash, byte[] der, EccCurve curve) {
        Objects.requireNonNull(der, "der");
        Objects.requireNonNull(curve, "curve");
        try {
            ASN1Sequence seq = ASN1Sequence.getInstance(ASN1Primitive.fromByteArray(der));
            if (seq.size() != 2) {
                throw new IllegalArgumentException("ECDSA DER sequence has " + seq.size() + " elements; expected 2");
            }
            BigInteger r = ASN1Integer.getInstance(seq.getObjectAt(0)).getPositiveValue();
            BigInteger s = ASN1Integer.getInstance(seq.getObjectAt(1)).getPositiveValue();
            int len = curve.coordinateLength();
            return ecdsa(hash, EcCurves.fixedLength(r, len), EcCurves.fixedLength(s, len));
        } catch (IOException | IllegalStateException e) {
            throw new IllegalArgumentException("not a DER ECDSA signature: " + e.getMessage(), e);
        }
    }

    /** An RSASSA-PKCS1-v1_5 signature. */
    public static TpmtSignature rsassa(HashAlgorithm hash, byte[] signature) {
        return build(new TpmWriter().u16(SchemeAlgorithm.RSASSA.tpmId()).u16(hash.tpmId()).tpm2b(signature));
    }

    /** An RSASSA-PSS signature. */
    public static TpmtSignature rsapss(HashAlgorithm hash, byte[] signature) {
        return build(new TpmWriter().u16(SchemeAlgorithm.RSAPSS.tpmId()).u16(hash.tpmId()).tpm2b(signature));
    }

    private static TpmtSignature build(TpmWriter w) {
        try {
            return parse(w.toByteArray());
        } catch (MalformedStructureException e) {
            throw new IllegalArgumentException("invalid signature: " + e.getMessage(), e);
        }
    }

    /** Exactly the parsed bytes (a copy). */
    public byte[] encoded() {
        return encoded.clone();
    }

    /** {@link SchemeAlgorithm#ECDSA}, {@link SchemeAlgorithm#RSASSA} or {@link SchemeAlgorithm#RSAPSS}. */
    public SchemeAlgorithm algorithm() {
        return algorithm;
    }

    /** The hash the signer used. */
    public HashAlgorithm hash() {
        return hash;
    }

    /** ECDSA r bytes; {@link IllegalStateException} for RSA signatures. */
    public byte[] r() {
        requireEcdsa();
        return first.clone();
    }

    /** ECDSA s bytes; {@link IllegalStateException} for RSA signatures. */
    public byte[] s() {
        requireEcdsa();
        return second.clone();
    }

    /** The RSA signature bytes; {@link IllegalStateException} for ECDSA. */
    public byte[] rsaSignature() {
        if (algorithm == SchemeAlgorithm.ECDSA) {
            throw new IllegalStateException("an ECDSA signature has no RSA signature bytes");
        }
        return first.clone();
    }

    /** The ECDSA signature as DER {@code SEQUENCE {INTEGER r, INTEGER s}} for JCA. */
    public byte[] toDer() {
        requireEcdsa();
        try {
            return new DERSequence(new ASN1Integer[] {
                new ASN1Integer(new BigInteger(1, first)), new ASN1Integer(new BigInteger(1, second))})
                    .getEncoded(ASN1Encoding.DER);
        } catch (IOException e) {
            throw new IllegalStateException("DER encoding failed", e);
        }
    }

    private void requireEcdsa() {
        if (algorithm != SchemeAlgorithm.ECDSA) {
            throw new IllegalStateException("a " + algorithm + " signature has no r/s");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TpmtSignature other && Arrays.equals(encoded, other.encoded);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encoded);
    }

    @Override
    public String toString() {
        return "TpmtSignature[" + algorithm + "-" + hash.tpmName() + ", " + encoded.length + " bytes]";
    }
}
