package io.tpmphone.keystore.internal;

import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** HKDF-SHA256 (RFC 5869). Stateless and thread-safe; intermediate keys are wiped. */
public final class Hkdf {
    private static final int HASH_LENGTH = 32;

    private Hkdf() {
    }

    /** HKDF-Extract: {@code PRK = HMAC-SHA256(salt, ikm)}; an empty salt means 32 zero bytes (RFC 5869 §2.2). */
    public static byte[] extract(byte[] salt, byte[] ikm) {
        byte[] key = salt.length == 0 ? new byte[HASH_LENGTH] : salt;
        Mac mac = hmac(key);
        try {
            return mac.doFinal(ikm);
        } finally {
            scrub(mac);
        }
    }

    /** HKDF-Expand to {@code length} bytes (at most 255 * 32). */
    public static byte[] expand(byte[] prk, byte[] info, int length) {
        if (length < 1 || length > 255 * HASH_LENGTH) {
            throw new IllegalArgumentException("HKDF-SHA256 output is 1..8160 bytes, got " + length);
        }
        Mac mac = hmac(prk);
        byte[] out = new byte[length];
        byte[] t = new byte[0];
        try {
            for (int i = 1, done = 0; done < length; i++) {
                mac.update(t);
                mac.update(info);
                mac.update((byte) i);
                Arrays.fill(t, (byte) 0);
                t = mac.doFinal();
                int n = Math.min(t.length, length - done);
                System.arraycopy(t, 0, out, done, n);
                done += n;
            }
            return out;
        } finally {
            Arrays.fill(t, (byte) 0);
            scrub(mac);
        }
    }

    /** Extract then expand; the PRK is wiped. */
    public static byte[] derive(byte[] salt, byte[] ikm, byte[] info, int length) {
        byte[] prk = extract(salt, ikm);
        try {
            return expand(prk, info, length);
        } finally {
            Arrays.fill(prk, (byte) 0);
        }
    }

    private static Mac hmac(byte[] key) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is a required JCA algorithm", e);
        }
    }

    // The JDK's HMAC keeps the padded key; re-keying with zeros overwrites it (SecretKeySpec cannot be destroyed).
    private static void scrub(Mac mac) {
        try {
            mac.init(new SecretKeySpec(new byte[HASH_LENGTH], "HmacSHA256"));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cannot re-key HmacSHA256", e);
        }
    }
}
