package io.tpmphone.attestation;

import java.security.InvalidKeyException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;
import java.util.stream.Collectors;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * TPM hash algorithms ({@code TPM_ALG_ID}, TPM 2.0 Part 2 §6.3) with their JCA names. Thread-safe.
 */
public enum HashAlgorithm {
    SHA1(0x0004, 20, "SHA-1"),
    SHA256(0x000B, 32, "SHA-256"),
    SHA384(0x000C, 48, "SHA-384"),
    SHA512(0x000D, 64, "SHA-512");

    private final int tpmId;
    private final int digestLength;
    private final String jcaName;

    HashAlgorithm(int tpmId, int digestLength, String jcaName) {
        this.tpmId = tpmId;
        this.digestLength = digestLength;
        this.jcaName = jcaName;
    }

    /** The {@code TPM_ALG_ID}, e.g. {@code 0x000B} for SHA-256. */
    public int tpmId() {
        return tpmId;
    }

    /** Digest size in bytes. */
    public int digestLength() {
        return digestLength;
    }

    /** The JCA {@link MessageDigest} name, e.g. {@code SHA-256}. */
    public String jcaName() {
        return jcaName;
    }

    /** The JCA {@link Mac} name, e.g. {@code HmacSHA256}. */
    public String hmacJcaName() {
        return "Hmac" + jcaName.replace("-", "");
    }

    /** The tpm2-tools style lower-case name, e.g. {@code sha256}. */
    public String tpmName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** A fresh {@link MessageDigest} for this algorithm. */
    public MessageDigest newMessageDigest() {
        try {
            return MessageDigest.getInstance(jcaName);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK lacks the mandatory digest " + jcaName, e);
        }
    }

    /** The digest of the concatenation of {@code parts}. */
    public byte[] digest(byte[]... parts) {
        MessageDigest md = newMessageDigest();
        for (byte[] part : parts) {
            md.update(Objects.requireNonNull(part, "part"));
        }
        return md.digest();
    }

    /**
     * HMAC with this hash over the concatenation of {@code parts}.
     *
     * @throws IllegalArgumentException if {@code key} is empty (JCA cannot represent an empty HMAC key)
     */
    public byte[] hmac(byte[] key, byte[]... parts) {
        Objects.requireNonNull(key, "key");
        if (key.length == 0) {
            throw new IllegalArgumentException("HMAC key must not be empty");
        }
        try {
            Mac mac = Mac.getInstance(hmacJcaName());
            mac.init(new SecretKeySpec(key, hmacJcaName()));
            for (byte[] part : parts) {
                mac.update(Objects.requireNonNull(part, "part"));
            }
            return mac.doFinal();
        } catch (NoSuchAlgorithmException | InvalidKeyException e) {
            throw new IllegalStateException("the JDK cannot compute " + hmacJcaName(), e);
        }
    }

    /**
     * The algorithm with the given {@code TPM_ALG_ID}.
     *
     * @throws MalformedStructureException if the id is not one of the supported hash algorithms
     */
    public static HashAlgorithm fromTpmId(int tpmId) throws MalformedStructureException {
        for (HashAlgorithm h : values()) {
            if (h.tpmId == tpmId) {
                return h;
            }
        }
        throw new MalformedStructureException("TPMI_ALG_HASH", "hashAlg", MalformedStructureException.NO_OFFSET,
                String.format("unsupported hash algorithm 0x%04X; expected one of %s", tpmId, describeAll()));
    }

    /**
     * The algorithm named {@code name}: {@code sha1}, {@code sha256}, {@code sha384} or {@code sha512}
     * (case-insensitive; {@code SHA-256} also accepted).
     *
     * @throws IllegalArgumentException naming the valid names
     */
    public static HashAlgorithm fromName(String name) {
        Objects.requireNonNull(name, "name");
        String n = name.trim().toLowerCase(Locale.ROOT).replace("-", "");
        for (HashAlgorithm h : values()) {
            if (h.tpmName().equals(n)) {
                return h;
            }
        }
        throw new IllegalArgumentException("unknown hash algorithm '" + name + "'; valid names: "
                + Arrays.stream(values()).map(HashAlgorithm::tpmName).collect(Collectors.joining(", ")));
    }

    static String describeAll() {
        return Arrays.stream(values())
                .map(h -> String.format("%s(0x%04X)", h.tpmName(), h.tpmId))
                .collect(Collectors.joining(", "));
    }
}
