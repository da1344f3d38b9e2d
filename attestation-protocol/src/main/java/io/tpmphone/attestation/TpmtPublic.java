package io.tpmphone.attestation;

import io.tpmphone.attestation.internal.EcCurves;
import io.tpmphone.attestation.internal.TpmReader;
import io.tpmphone.attestation.internal.TpmWriter;
import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.KeyFactory;
import java.security.NoSuchAlgorithmException;
import java.security.PublicKey;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.ECPublicKeySpec;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.RSAPublicKeySpec;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.bouncycastle.asn1.ASN1Encoding;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.asn1.x9.X9ObjectIdentifiers;
import org.bouncycastle.util.io.pem.PemObject;
import org.bouncycastle.util.io.pem.PemWriter;

/**
 * A strictly parsed {@code TPMT_PUBLIC} (TPM 2.0 Part 2 §12.2.4): the public area of an RSA, ECC, KEYEDHASH or
 * SYMCIPHER object, its TPM name, and its public key in JCA / X.509 / PEM form.
 *
 * <p>Accepted parameters: symmetric NULL or AES-128/192/256 in any mode; RSA schemes NULL, RSASSA, RSAPSS, OAEP,
 * RSAES with key sizes 1024..4096 bits; ECC schemes NULL, ECDSA, ECDH on NIST P-256 / P-384 with a NULL KDF;
 * KEYEDHASH schemes NULL, HMAC, XOR. Anything else, reserved attribute bits, truncation and trailing bytes are
 * rejected. An empty {@code unique} (a template) parses, but {@link #toPublicKey()} then fails.
 *
 * <p>Parsing does not prove anything about the key; whether the attributes can be trusted depends on how the
 * public area was obtained (e.g. bound by credential activation or certified). Immutable and thread-safe.
 */
public final class TpmtPublic {
    private static final String STRUCTURE = "TPMT_PUBLIC";
    private static final int ALG_NULL = 0x0010;
    private static final Set<Integer> KDF_IDS = Set.of(0x0007, 0x0020, 0x0021, 0x0022);
    private static final Set<Integer> RSA_KEY_BITS = Set.of(1024, 2048, 3072, 4096);

    private final byte[] encoded;
    private final byte[] name;
    private final KeyType type;
    private final HashAlgorithm nameAlg;
    private final int objectAttributes;
    private final byte[] authPolicy;
    private final SymmetricDefinition symmetric;
    private final SchemeAlgorithm scheme;
    private final HashAlgorithm schemeHash;
    private final int rsaKeyBits;
    private final long rsaExponent;
    private final EccCurve curve;
    private final byte[] unique;
    private final byte[] uniqueY;

    private TpmtPublic(byte[] encoded, KeyType type, HashAlgorithm nameAlg, int objectAttributes, byte[] authPolicy,
            SymmetricDefinition symmetric, SchemeAlgorithm scheme, HashAlgorithm schemeHash, int rsaKeyBits,
            long rsaExponent, EccCurve curve, byte[] unique, byte[] uniqueY) {
        this.encoded = encoded;
        this.type = type;
        this.nameAlg = nameAlg;
        this.objectAttributes = objectAttributes;
        this.authPolicy = authPolicy;
        this.symmetric = symmetric;
        this.scheme = scheme;
        this.schemeHash = schemeHash;
        this.rsaKeyBits = rsaKeyBits;
        this.rsaExponent = rsaExponent;
        this.curve = curve;
        this.unique = unique;
        this.uniqueY = uniqueY;
        this.name = TpmWriter.concat(TpmWriter.u16Bytes(nameAlg.tpmId()), nameAlg.digest(encoded));
    }

    /** Parses a complete marshalled {@code TPMT_PUBLIC} (no size prefix, no trailing bytes). */
    public static TpmtPublic parse(byte[] tpmtPublic) throws MalformedStructureException {
        byte[] copy = Objects.requireNonNull(tpmtPublic, "tpmtPublic").clone();
        return read(copy);
    }

    /** Parses a {@code TPM2B_PUBLIC}: u16 size then exactly that many bytes of {@code TPMT_PUBLIC}. */
    public static TpmtPublic parseTpm2b(byte[] tpm2bPublic) throws MalformedStructureException {
        TpmReader r = new TpmReader(Objects.requireNonNull(tpm2bPublic, "tpm2bPublic"), "TPM2B_PUBLIC");
        int size = r.u16("size");
        if (size != r.remaining()) {
            throw r.error("size", 0, "size is " + size + " but " + r.remaining() + " byte(s) follow");
        }
        return read(r.bytes(size, "publicArea"));
    }

    private static TpmtPublic read(byte[] copy) throws MalformedStructureException {
        TpmReader r = new TpmReader(copy, STRUCTURE);
        int typeAt = r.offset();
        int typeId = r.u16("type");
        KeyType type = Arrays.stream(KeyType.values()).filter(k -> k.tpmId() == typeId).findFirst()
                .orElseThrow(() -> r.error("type", typeAt, String.format("unsupported object type 0x%04X; "
                        + "expected RSA (0x0001), KEYEDHASH (0x0008), ECC (0x0023) or SYMCIPHER (0x0025)", typeId)));
        HashAlgorithm nameAlg = r.hashAlg("nameAlg");
        int attrsAt = r.offset();
        int attrs = (int) r.u32("objectAttributes");
        int reserved = attrs & ~ObjectAttribute.allMasks();
        if (reserved != 0) {
            throw r.error("objectAttributes", attrsAt, String.format(
                    "reserved bits 0x%08X are set; expected 0", reserved));
        }
        int policyAt = r.offset();
        byte[] authPolicy = r.tpm2b("authPolicy", 64);
        if (authPolicy.length != 0 && authPolicy.length != nameAlg.digestLength()) {
            throw r.error("authPolicy", policyAt, "authPolicy is " + authPolicy.length + " bytes; expected 0 or "
                    + nameAlg.digestLength() + " (the " + nameAlg.tpmName() + " digest size)");
        }
        SymmetricDefinition symmetric = null;
        SchemeAlgorithm scheme = SchemeAlgorithm.NULL;
        HashAlgorithm schemeHash = null;
        int rsaKeyBits = 0;
        long rsaExponent = 0;
        EccCurve curve = null;
        byte[] unique;
        byte[] uniqueY = new byte[0];
        switch (type) {
            case KEYEDHASH: {
                int at = r.offset();
                int s = r.u16("parameters.keyedHashDetail.scheme");
                if (s == ALG_NULL) {
                    scheme = SchemeAlgorithm.NULL;
                } else if (s == SchemeAlgorithm.HMAC.tpmId()) {
                    scheme = SchemeAlgorithm.HMAC;
                    schemeHash = r.hashAlg("parameters.keyedHashDetail.details.hashAlg");
                } else if (s == SchemeAlgorithm.XOR.tpmId()) {
                    scheme = SchemeAlgorithm.XOR;
                    schemeHash = r.hashAlg("parameters.keyedHashDetail.details.hashAlg");
                    int kdfAt = r.offset();
                    int kdf = r.u16("parameters.keyedHashDetail.details.kdf");
                    if (!KDF_IDS.contains(kdf)) {
                        throw r.error("parameters.keyedHashDetail.details.kdf", kdfAt,
                                String.format("unsupported KDF 0x%04X for XOR", kdf));
                    }
                } else {
                    throw r.error("parameters.keyedHashDetail.scheme", at, String.format(
                            "unsupported keyed-hash scheme 0x%04X; expected NULL, HMAC or XOR", s));
                }
                unique = r.tpm2b("unique.keyedHash", 64);
                break;
            }
            case SYMCIPHER: {
                int at = r.offset();
                symmetric = readSymmetric(r, "parameters.symDetail.sym");
                if (symmetric == null) {
                    throw r.error("parameters.symDetail.sym", at, "a SYMCIPHER object needs a symmetric algorithm");
                }
                unique = r.tpm2b("unique.sym", 64);
                break;
            }
            case RSA: {
                symmetric = readSymmetric(r, "parameters.rsaDetail.symmetric");
                int at = r.offset();
                int s = r.u16("parameters.rsaDetail.scheme.scheme");
                if (s == ALG_NULL) {
                    scheme = SchemeAlgorithm.NULL;
                } else if (s == SchemeAlgorithm.RSAES.tpmId()) {
                    scheme = SchemeAlgorithm.RSAES;
                } else if (s == SchemeAlgorithm.RSASSA.tpmId() || s == SchemeAlgorithm.RSAPSS.tpmId()
                        || s == SchemeAlgorithm.OAEP.tpmId()) {
                    scheme = schemeById(s);
                    schemeHash = r.hashAlg("parameters.rsaDetail.scheme.details.hashAlg");
                } else {
                    throw r.error("parameters.rsaDetail.scheme.scheme", at, String.format(
                            "unsupported RSA scheme 0x%04X; expected NULL, RSASSA, RSAPSS, OAEP or RSAES", s));
                }
                int bitsAt = r.offset();
                rsaKeyBits = r.u16("parameters.rsaDetail.keyBits");
                if (!RSA_KEY_BITS.contains(rsaKeyBits)) {
                    throw r.error("parameters.rsaDetail.keyBits", bitsAt, "keyBits is " + rsaKeyBits
                            + "; expected 1024, 2048, 3072 or 4096");
                }
                rsaExponent = r.u32("parameters.rsaDetail.exponent");
                int nAt = r.offset();
                unique = r.tpm2b("unique.rsa", 512);
                if (unique.length != 0 && unique.length != rsaKeyBits / 8) {
                    throw r.error("unique.rsa", nAt, "modulus is " + unique.length + " bytes; expected "
                            + rsaKeyBits / 8 + " for keyBits " + rsaKeyBits + " (or 0 in a template)");
                }
                break;
            }
            case ECC: {
                symmetric = readSymmetric(r, "parameters.eccDetail.symmetric");
                int at = r.offset();
                int s = r.u16("parameters.eccDetail.scheme.scheme");
                if (s == ALG_NULL) {
                    scheme = SchemeAlgorithm.NULL;
                } else if (s == SchemeAlgorithm.ECDSA.tpmId() || s == SchemeAlgorithm.ECDH.tpmId()) {
                    scheme = schemeById(s);
                    schemeHash = r.hashAlg("parameters.eccDetail.scheme.details.hashAlg");
                } else {
                    throw r.error("parameters.eccDetail.scheme.scheme", at, String.format(
                            "unsupported ECC scheme 0x%04X; expected NULL, ECDSA or ECDH", s));
                }
                int curveAt = r.offset();
                int curveId = r.u16("parameters.eccDetail.curveID");
                curve = Arrays.stream(EccCurve.values()).filter(c -> c.tpmId() == curveId).findFirst()
                        .orElseThrow(() -> r.error("parameters.eccDetail.curveID", curveAt, String.format(
                                "unsupported curve 0x%04X; expected NIST_P256 (0x0003) or NIST_P384 (0x0004)",
                                curveId)));
                int kdfAt = r.offset();
                int kdf = r.u16("parameters.eccDetail.kdf.scheme");
                if (kdf != ALG_NULL) {
                    throw r.error("parameters.eccDetail.kdf.scheme", kdfAt,
                            String.format("kdf is 0x%04X; expected TPM_ALG_NULL (0x0010)", kdf));
                }
                int xAt = r.offset();
                unique = r.tpm2b("unique.ecc.x", curve.coordinateLength());
                uniqueY = r.tpm2b("unique.ecc.y", curve.coordinateLength());
                if ((unique.length == 0) != (uniqueY.length == 0)) {
                    throw r.error("unique.ecc", xAt, "one coordinate is empty and the other is not");
                }
                break;
            }
            default:
                throw new AssertionError(type);
        }
        r.requireEnd();
        return new TpmtPublic(copy, type, nameAlg, attrs, authPolicy, symmetric, scheme, schemeHash, rsaKeyBits,
                rsaExponent, curve, unique, uniqueY);
    }

    private static SchemeAlgorithm schemeById(int id) {
        for (SchemeAlgorithm s : SchemeAlgorithm.values()) {
            if (s.tpmId() == id) {
                return s;
            }
        }
        throw new AssertionError(id);
    }

    private static SymmetricDefinition readSymmetric(TpmReader r, String field) throws MalformedStructureException {
        int at = r.offset();
        int alg = r.u16(field + ".algorithm");
        if (alg == ALG_NULL) {
            return null;
        }
        if (alg != SymmetricDefinition.TPM_ALG_AES) {
            throw r.error(field + ".algorithm", at, String.format(
                    "unsupported symmetric algorithm 0x%04X; expected NULL (0x0010) or AES (0x0006)", alg));
        }
        int bitsAt = r.offset();
        int keyBits = r.u16(field + ".keyBits");
        if (keyBits != 128 && keyBits != 192 && keyBits != 256) {
            throw r.error(field + ".keyBits", bitsAt, "AES keyBits is " + keyBits + "; expected 128, 192 or 256");
        }
        int modeAt = r.offset();
        int modeId = r.u16(field + ".mode");
        SymmetricMode mode = Arrays.stream(SymmetricMode.values()).filter(m -> m.tpmId() == modeId).findFirst()
                .orElseThrow(() -> r.error(field + ".mode", modeAt, String.format(
                        "unsupported symmetric mode 0x%04X; expected CTR, OFB, CBC, CFB or ECB", modeId)));
        return new SymmetricDefinition(keyBits, mode);
    }

    /** Exactly the parsed {@code TPMT_PUBLIC} bytes (a copy). */
    public byte[] encoded() {
        return encoded.clone();
    }

    /** {@code u16 size || TPMT_PUBLIC}: the marshalled {@code TPM2B_PUBLIC}. */
    public byte[] encodedTpm2b() {
        return new TpmWriter().tpm2b(encoded).toByteArray();
    }

    /** The TPM name: {@code u16 nameAlg || H_nameAlg(TPMT_PUBLIC)} (TPM 2.0 Part 1 §16). */
    public byte[] name() {
        return name.clone();
    }

    public KeyType type() {
        return type;
    }

    public HashAlgorithm nameAlg() {
        return nameAlg;
    }

    /** The raw {@code TPMA_OBJECT} value. */
    public int objectAttributes() {
        return objectAttributes;
    }

    public boolean has(ObjectAttribute attribute) {
        return (objectAttributes & attribute.mask()) != 0;
    }

    /** The set attribute bits (an unmodifiable copy). */
    public Set<ObjectAttribute> attributes() {
        EnumSet<ObjectAttribute> set = EnumSet.noneOf(ObjectAttribute.class);
        for (ObjectAttribute a : ObjectAttribute.values()) {
            if (has(a)) {
                set.add(a);
            }
        }
        return Collections.unmodifiableSet(set);
    }

    public byte[] authPolicy() {
        return authPolicy.clone();
    }

    /** The AES definition of a storage / decryption key or SYMCIPHER object; empty if NULL. */
    public Optional<SymmetricDefinition> symmetric() {
        return Optional.ofNullable(symmetric);
    }

    /** The scheme fixed by the key, {@link SchemeAlgorithm#NULL} if none. */
    public SchemeAlgorithm scheme() {
        return scheme;
    }

    /** The hash of {@link #scheme()}, if the scheme has one. */
    public Optional<HashAlgorithm> schemeHash() {
        return Optional.ofNullable(schemeHash);
    }

    /** The curve of an ECC key; empty for other types. */
    public Optional<EccCurve> curve() {
        return Optional.ofNullable(curve);
    }

    /** {@code keyBits} of an RSA key; {@link IllegalStateException} for other types. */
    public int rsaKeyBits() {
        requireType(KeyType.RSA);
        return rsaKeyBits;
    }

    /** The effective RSA public exponent (the wire value 0 means 65537). */
    public BigInteger rsaExponent() {
        requireType(KeyType.RSA);
        return rsaExponent == 0 ? BigInteger.valueOf(65537) : BigInteger.valueOf(rsaExponent);
    }

    /** The RSA modulus bytes ({@code unique.rsa}); empty for a template. */
    public byte[] rsaModulus() {
        requireType(KeyType.RSA);
        return unique.clone();
    }

    /** The x coordinate bytes ({@code unique.ecc.x}); empty for a template. */
    public byte[] eccX() {
        requireType(KeyType.ECC);
        return unique.clone();
    }

    /** The y coordinate bytes ({@code unique.ecc.y}); empty for a template. */
    public byte[] eccY() {
        requireType(KeyType.ECC);
        return uniqueY.clone();
    }

    /** The {@code unique} digest of a KEYEDHASH or SYMCIPHER object. */
    public byte[] uniqueDigest() {
        if (type != KeyType.KEYEDHASH && type != KeyType.SYMCIPHER) {
            throw new IllegalStateException("a " + type + " object has no unique digest");
        }
        return unique.clone();
    }

    private void requireType(KeyType expected) {
        if (type != expected) {
            throw new IllegalStateException("this is a " + type + " object, not " + expected);
        }
    }

    /**
     * The JCA public key: an {@link RSAPublicKey}, or an {@link ECPublicKey} on the named curve after checking
     * that the point lies on the curve.
     *
     * @throws InvalidKeyException for a template (empty unique), an invalid point or modulus, or an object type
     *     without a public key
     */
    public PublicKey toPublicKey() throws InvalidKeyException {
        try {
            switch (type) {
                case RSA: {
                    if (unique.length == 0) {
                        throw new InvalidKeyException("the RSA public area is a template: unique.rsa is empty");
                    }
                    BigInteger n = new BigInteger(1, unique);
                    if (n.bitLength() != rsaKeyBits || !n.testBit(0)) {
                        throw new InvalidKeyException("the RSA modulus is not an odd " + rsaKeyBits + "-bit number");
                    }
                    BigInteger e = rsaExponent();
                    if (!e.testBit(0) || e.compareTo(BigInteger.valueOf(3)) < 0) {
                        throw new InvalidKeyException("the RSA exponent " + e + " is not an odd number >= 3");
                    }
                    return KeyFactory.getInstance("RSA").generatePublic(new RSAPublicKeySpec(n, e));
                }
                case ECC: {
                    if (unique.length == 0) {
                        throw new InvalidKeyException("the ECC public area is a template: unique.ecc is empty");
                    }
                    ECParameterSpec params = EcCurves.parameters(curve);
                    ECPoint w = EcCurves.validatedPoint(curve, params, new BigInteger(1, unique),
                            new BigInteger(1, uniqueY));
                    return KeyFactory.getInstance("EC").generatePublic(new ECPublicKeySpec(w, params));
                }
                default:
                    throw new InvalidKeyException("a " + type + " object has no asymmetric public key");
            }
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK lacks a mandatory key factory", e);
        } catch (InvalidKeySpecException e) {
            throw new InvalidKeyException("the JCA rejected the " + type + " public key: " + e.getMessage(), e);
        }
    }

    /**
     * The DER X.509 {@code SubjectPublicKeyInfo}: {@code rsaEncryption}, or {@code id-ecPublicKey} with the
     * named-curve OID and an uncompressed point.
     */
    public byte[] subjectPublicKeyInfo() throws InvalidKeyException {
        PublicKey key = toPublicKey();
        try {
            SubjectPublicKeyInfo spki;
            if (key instanceof RSAPublicKey rsa) {
                spki = new SubjectPublicKeyInfo(new AlgorithmIdentifier(PKCSObjectIdentifiers.rsaEncryption,
                        DERNull.INSTANCE), new org.bouncycastle.asn1.pkcs.RSAPublicKey(rsa.getModulus(),
                        rsa.getPublicExponent()));
            } else {
                ECPoint w = ((ECPublicKey) key).getW();
                int len = curve.coordinateLength();
                byte[] point = TpmWriter.concat(new byte[] {4}, EcCurves.fixedLength(w.getAffineX(), len),
                        EcCurves.fixedLength(w.getAffineY(), len));
                spki = new SubjectPublicKeyInfo(new AlgorithmIdentifier(X9ObjectIdentifiers.id_ecPublicKey,
                        new ASN1ObjectIdentifier(curve.oid())), point);
            }
            return spki.getEncoded(ASN1Encoding.DER);
        } catch (IOException e) {
            throw new IllegalStateException("DER encoding of SubjectPublicKeyInfo failed", e);
        }
    }

    /**
     * {@link #subjectPublicKeyInfo()} as PEM ({@code -----BEGIN PUBLIC KEY-----}, RFC 7468 §13), e.g. for
     * tpm2_checkquote; written by Bouncy Castle's {@link PemWriter}.
     */
    public String toPem() throws InvalidKeyException {
        StringWriter out = new StringWriter();
        try (PemWriter w = new PemWriter(out)) {
            w.writeObject(new PemObject("PUBLIC KEY", subjectPublicKeyInfo()));
        } catch (IOException e) {
            throw new IllegalStateException("writing PEM to a string failed", e);
        }
        return out.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TpmtPublic other && Arrays.equals(encoded, other.encoded);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encoded);
    }

    @Override
    public String toString() {
        return "TpmtPublic[" + type + (curve != null ? " " + curve : "") + (type == KeyType.RSA ? " " + rsaKeyBits : "")
                + ", nameAlg=" + nameAlg.tpmName() + ", attributes=" + attributes() + ", scheme=" + scheme
                + (schemeHash != null ? "-" + schemeHash.tpmName() : "") + ", name=" + HexFormat.of().formatHex(name)
                + "]";
    }

    /** A builder of a public area of {@code type}, e.g. for tests or for templates. */
    public static Builder builder(KeyType type) {
        return new Builder(type);
    }

    /**
     * Builds a marshalled {@code TPMT_PUBLIC}. Defaults: nameAlg SHA-256, no attributes, empty authPolicy,
     * symmetric NULL, scheme NULL, RSA 2048 with exponent 0, curve P-256, empty unique. Not thread-safe.
     */
    public static final class Builder {
        private final KeyType type;
        private HashAlgorithm nameAlg = HashAlgorithm.SHA256;
        private int attributes;
        private byte[] authPolicy = new byte[0];
        private SymmetricDefinition symmetric;
        private SchemeAlgorithm scheme = SchemeAlgorithm.NULL;
        private HashAlgorithm schemeHash;
        private int xorKdf = 0x0022;
        private int rsaKeyBits = 2048;
        private long rsaExponent;
        private EccCurve curve = EccCurve.NIST_P256;
        private byte[] unique = new byte[0];
        private byte[] uniqueY = new byte[0];

        private Builder(KeyType type) {
            this.type = Objects.requireNonNull(type, "type");
        }

        public Builder nameAlg(HashAlgorithm nameAlg) {
            this.nameAlg = Objects.requireNonNull(nameAlg, "nameAlg");
            return this;
        }

        public Builder attributes(ObjectAttribute... attributes) {
            return attributes(Set.of(attributes));
        }

        public Builder attributes(Set<ObjectAttribute> attributes) {
            int bits = 0;
            for (ObjectAttribute a : attributes) {
                bits |= a.mask();
            }
            this.attributes = bits;
            return this;
        }

        /** Raw {@code TPMA_OBJECT} bits, including reserved ones (for negative tests; parse rejects them). */
        public Builder attributeBits(int bits) {
            this.attributes = bits;
            return this;
        }

        public Builder authPolicy(byte[] authPolicy) {
            this.authPolicy = Objects.requireNonNull(authPolicy, "authPolicy").clone();
            return this;
        }

        /** AES parameters, or {@code null} for TPM_ALG_NULL. */
        public Builder symmetric(SymmetricDefinition symmetric) {
            this.symmetric = symmetric;
            return this;
        }

        /** The key's scheme; {@code hash} must be given iff {@link SchemeAlgorithm#hasHash()}. */
        public Builder scheme(SchemeAlgorithm scheme, HashAlgorithm hash) {
            Objects.requireNonNull(scheme, "scheme");
            if (scheme.hasHash() != (hash != null)) {
                throw new IllegalArgumentException(scheme + (scheme.hasHash() ? " needs" : " takes no") + " hash");
            }
            this.scheme = scheme;
            this.schemeHash = hash;
            return this;
        }

        /** RSA parameters and modulus ({@code exponent} 0 means 65537; modulus may be empty for a template). */
        public Builder rsa(int keyBits, long exponent, byte[] modulus) {
            this.rsaKeyBits = keyBits;
            this.rsaExponent = exponent;
            this.unique = Objects.requireNonNull(modulus, "modulus").clone();
            return this;
        }

        /** Curve and point coordinates (may be empty for a template). */
        public Builder ecc(EccCurve curve, byte[] x, byte[] y) {
            this.curve = Objects.requireNonNull(curve, "curve");
            this.unique = Objects.requireNonNull(x, "x").clone();
            this.uniqueY = Objects.requireNonNull(y, "y").clone();
            return this;
        }

        /** The {@code unique} digest of a KEYEDHASH or SYMCIPHER object. */
        public Builder unique(byte[] unique) {
            this.unique = Objects.requireNonNull(unique, "unique").clone();
            return this;
        }

        /** Sets the RSA or ECC public key from a JCA key (exponent 65537 is written as 0, as a TPM does). */
        public Builder publicKey(PublicKey key) {
            Objects.requireNonNull(key, "key");
            if (key instanceof RSAPublicKey rsa) {
                if (type != KeyType.RSA) {
                    throw new IllegalArgumentException("an RSA key for a " + type + " public area");
                }
                int bits = rsa.getModulus().bitLength();
                BigInteger e = rsa.getPublicExponent();
                long exp = e.equals(BigInteger.valueOf(65537)) ? 0 : e.longValueExact();
                return rsa(bits, exp, EcCurves.fixedLength(rsa.getModulus(), (bits + 7) / 8));
            }
            if (key instanceof ECPublicKey ec) {
                if (type != KeyType.ECC) {
                    throw new IllegalArgumentException("an EC key for a " + type + " public area");
                }
                int fieldBits = ec.getParams().getCurve().getField().getFieldSize();
                EccCurve c = Arrays.stream(EccCurve.values()).filter(k -> k.coordinateLength() * 8 == fieldBits)
                        .findFirst().orElseThrow(() -> new IllegalArgumentException("unsupported curve size "
                                + fieldBits));
                int len = c.coordinateLength();
                return ecc(c, EcCurves.fixedLength(ec.getW().getAffineX(), len),
                        EcCurves.fixedLength(ec.getW().getAffineY(), len));
            }
            throw new IllegalArgumentException("unsupported key type " + key.getAlgorithm());
        }

        /** The marshalled bytes, without validation (for negative tests). */
        public byte[] encode() {
            TpmWriter w = new TpmWriter().u16(type.tpmId()).u16(nameAlg.tpmId()).u32(attributes & 0xFFFF_FFFFL)
                    .tpm2b(authPolicy);
            switch (type) {
                case KEYEDHASH:
                    w.u16(scheme.tpmId());
                    if (schemeHash != null) {
                        w.u16(schemeHash.tpmId());
                    }
                    if (scheme == SchemeAlgorithm.XOR) {
                        w.u16(xorKdf);
                    }
                    w.tpm2b(unique);
                    break;
                case SYMCIPHER:
                    writeSymmetric(w);
                    w.tpm2b(unique);
                    break;
                case RSA:
                    writeSymmetric(w);
                    writeScheme(w);
                    w.u16(rsaKeyBits).u32(rsaExponent).tpm2b(unique);
                    break;
                case ECC:
                    writeSymmetric(w);
                    writeScheme(w);
                    w.u16(curve.tpmId()).u16(ALG_NULL).tpm2b(unique).tpm2b(uniqueY);
                    break;
                default:
                    throw new AssertionError(type);
            }
            return w.toByteArray();
        }

        private void writeSymmetric(TpmWriter w) {
            if (symmetric == null) {
                w.u16(ALG_NULL);
            } else {
                w.u16(SymmetricDefinition.TPM_ALG_AES).u16(symmetric.keyBits()).u16(symmetric.mode().tpmId());
            }
        }

        private void writeScheme(TpmWriter w) {
            w.u16(scheme.tpmId());
            if (schemeHash != null) {
                w.u16(schemeHash.tpmId());
            }
        }

        /**
         * Encodes and parses the public area.
         *
         * @throws IllegalArgumentException with the parser's message if the result is not a valid public area
         */
        public TpmtPublic build() {
            try {
                return parse(encode());
            } catch (GeneralSecurityException e) {
                throw new IllegalArgumentException("invalid public area: " + e.getMessage(), e);
            }
        }
    }
}
