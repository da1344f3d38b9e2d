package io.tpmphone.attestation.internal;

import io.tpmphone.attestation.HashAlgorithm;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Objects;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The TPM key derivation functions. Labels are given without their terminating zero byte; it is appended here
 * as the specification requires. Results of a bit count that is not a multiple of 8 have the unused high bits of
 * the first byte cleared (as the reference implementation does).
 */
public final class Kdf {
    private Kdf() {
    }

    /**
     * KDFa (TPM 2.0 Part 1 §11.4.10.2): SP 800-108 HMAC counter mode; each block is
     * {@code HMAC(key, u32 counter || label || 0x00 || contextU || contextV || u32 bits)}.
     */
    public static byte[] kdfa(HashAlgorithm hash, byte[] key, String label, byte[] contextU, byte[] contextV,
            int bits) {
        Objects.requireNonNull(hash, "hash");
        Objects.requireNonNull(key, "key");
        byte[] labelBytes = label(label);
        Objects.requireNonNull(contextU, "contextU");
        Objects.requireNonNull(contextV, "contextV");
        checkBits(bits);
        if (key.length == 0) {
            throw new IllegalArgumentException("KDFa key must not be empty");
        }
        byte[] out = new byte[(bits + 7) / 8];
        try {
            Mac mac = Mac.getInstance(hash.hmacJcaName());
            mac.init(new SecretKeySpec(key, hash.hmacJcaName()));
            byte[] bitsBytes = TpmWriter.u32Bytes(bits);
            int done = 0;
            for (int counter = 1; done < out.length; counter++) {
                mac.update(TpmWriter.u32Bytes(counter));
                mac.update(labelBytes);
                mac.update(contextU);
                mac.update(contextV);
                mac.update(bitsBytes);
                byte[] block = mac.doFinal();
                int n = Math.min(block.length, out.length - done);
                System.arraycopy(block, 0, out, done, n);
                Arrays.fill(block, (byte) 0);
                done += n;
            }
        } catch (NoSuchAlgorithmException | InvalidKeyException e) {
            throw new IllegalStateException("the JDK cannot compute " + hash.hmacJcaName(), e);
        }
        mask(out, bits);
        return out;
    }

    /**
     * KDFe (TPM 2.0 Part 1 §11.4.10.3): SP 800-56A concatenation KDF; each block is
     * {@code H(u32 counter || Z || label || 0x00 || partyUInfo || partyVInfo)}.
     */
    public static byte[] kdfe(HashAlgorithm hash, byte[] z, String label, byte[] partyUInfo, byte[] partyVInfo,
            int bits) {
        Objects.requireNonNull(hash, "hash");
        Objects.requireNonNull(z, "z");
        byte[] labelBytes = label(label);
        Objects.requireNonNull(partyUInfo, "partyUInfo");
        Objects.requireNonNull(partyVInfo, "partyVInfo");
        checkBits(bits);
        byte[] out = new byte[(bits + 7) / 8];
        int done = 0;
        for (int counter = 1; done < out.length; counter++) {
            MessageDigest md = hash.newMessageDigest();
            md.update(TpmWriter.u32Bytes(counter));
            md.update(z);
            md.update(labelBytes);
            md.update(partyUInfo);
            md.update(partyVInfo);
            byte[] block = md.digest();
            int n = Math.min(block.length, out.length - done);
            System.arraycopy(block, 0, out, done, n);
            Arrays.fill(block, (byte) 0);
            done += n;
        }
        mask(out, bits);
        return out;
    }

    private static byte[] label(String label) {
        Objects.requireNonNull(label, "label");
        if (label.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("label must not contain a zero character; it is appended");
        }
        byte[] ascii = label.getBytes(StandardCharsets.US_ASCII);
        return Arrays.copyOf(ascii, ascii.length + 1);
    }

    private static void checkBits(int bits) {
        if (bits <= 0 || bits > 8 * 0xFFFF) {
            throw new IllegalArgumentException("bits must be in 1.." + 8 * 0xFFFF + ", got " + bits);
        }
    }

    private static void mask(byte[] out, int bits) {
        if (bits % 8 != 0) {
            out[0] &= (byte) ((1 << (bits % 8)) - 1);
        }
    }
}
