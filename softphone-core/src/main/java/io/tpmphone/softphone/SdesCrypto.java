package io.tpmphone.softphone;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One SDES {@code a=crypto} attribute (RFC 4568 §9.1) with an inline key:
 * {@code a=crypto:<tag> <suite> inline:<base64(master key || master salt)>[|<lifetime>][|<MKI>:<length>]}.
 *
 * <p>Parsing is strict: a tag of 1..9 digits, a known suite, exactly one inline key of the suite's length, a lifetime
 * ({@code 2^n} or a decimal) and an MKI are accepted only in their RFC form, and session parameters are refused (we
 * support none, and RFC 4568 says an offer with unsupported parameters must not be accepted). The key bytes are held
 * in an array the caller wipes with {@link #destroy()}; {@link #toString()} never shows them. Not thread-safe.
 */
public final class SdesCrypto {
    /** The suites we offer and accept, with their master key and salt lengths. */
    public enum Suite {
        AES_CM_128_HMAC_SHA1_80(16, 14),
        AES_CM_128_HMAC_SHA1_32(16, 14);

        private final int keyLength;
        private final int saltLength;

        Suite(int keyLength, int saltLength) {
            this.keyLength = keyLength;
            this.saltLength = saltLength;
        }

        public int keyLength() {
            return keyLength;
        }

        public int saltLength() {
            return saltLength;
        }
    }

    private static final Pattern ATTRIBUTE = Pattern.compile(
            "(?:a=)?crypto:([0-9]{1,9}) ([A-Z0-9_]+) inline:([A-Za-z0-9+/=]+)((?:\\|[^|\\s]+){0,2})");
    private static final Pattern LIFETIME = Pattern.compile("2\\^[0-9]{1,2}|[0-9]{1,20}");
    private static final Pattern MKI = Pattern.compile("[0-9]{1,9}:[0-9]{1,3}");
    private static final Set<String> SUITES = Set.of("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32");

    private final int tag;
    private final Suite suite;
    private final byte[] keyAndSalt;
    private final String lifetime;
    private final String mki;

    private SdesCrypto(int tag, Suite suite, byte[] keyAndSalt, String lifetime, String mki) {
        this.tag = tag;
        this.suite = suite;
        this.keyAndSalt = keyAndSalt;
        this.lifetime = lifetime;
        this.mki = mki;
    }

    /** An attribute for our own key (copied). */
    public static SdesCrypto of(int tag, Suite suite, byte[] masterKey, byte[] masterSalt) {
        Objects.requireNonNull(suite, "suite");
        if (tag < 1 || tag > 999_999_999) {
            throw new IllegalArgumentException("a crypto tag is 1..999999999");
        }
        if (masterKey.length != suite.keyLength() || masterSalt.length != suite.saltLength()) {
            throw new IllegalArgumentException(suite + " needs a " + suite.keyLength() + "-byte key and a "
                    + suite.saltLength() + "-byte salt");
        }
        byte[] both = new byte[masterKey.length + masterSalt.length];
        System.arraycopy(masterKey, 0, both, 0, masterKey.length);
        System.arraycopy(masterSalt, 0, both, masterKey.length, masterSalt.length);
        return new SdesCrypto(tag, suite, both, null, null);
    }

    /**
     * Parses one attribute value (with or without the leading {@code a=}).
     *
     * @throws IllegalArgumentException naming what is wrong (never echoing the key)
     */
    public static SdesCrypto parse(String attribute) {
        Objects.requireNonNull(attribute, "attribute");
        Matcher m = ATTRIBUTE.matcher(attribute.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("not an RFC 4568 crypto attribute with one inline key and no session"
                    + " parameters");
        }
        int tag = Integer.parseInt(m.group(1));
        if (tag < 1) {
            throw new IllegalArgumentException("crypto tag 0 is not allowed");
        }
        if (!SUITES.contains(m.group(2))) {
            throw new IllegalArgumentException("crypto suite " + m.group(2) + " is not supported (we accept "
                    + SUITES + ")");
        }
        Suite suite = Suite.valueOf(m.group(2));
        byte[] keyAndSalt;
        try {
            keyAndSalt = Base64.getDecoder().decode(m.group(3).getBytes(StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the inline key is not base64");
        }
        if (keyAndSalt.length != suite.keyLength() + suite.saltLength()) {
            int n = keyAndSalt.length;
            Arrays.fill(keyAndSalt, (byte) 0);
            throw new IllegalArgumentException("the inline key is " + n + " bytes; " + suite + " needs "
                    + (suite.keyLength() + suite.saltLength()));
        }
        String lifetime = null;
        String mki = null;
        for (String p : m.group(4).split("\\|")) {
            if (p.isEmpty()) {
                continue;
            }
            if (MKI.matcher(p).matches() && mki == null) {
                mki = p;
            } else if (LIFETIME.matcher(p).matches() && lifetime == null && mki == null) {
                lifetime = p;
            } else {
                Arrays.fill(keyAndSalt, (byte) 0);
                throw new IllegalArgumentException("unexpected key parameter \"" + p + "\" (lifetime, then MKI)");
            }
        }
        return new SdesCrypto(tag, suite, keyAndSalt, lifetime, mki);
    }

    public int tag() {
        return tag;
    }

    public Suite suite() {
        return suite;
    }

    /** The master key (a copy; wipe it). */
    public byte[] masterKey() {
        return Arrays.copyOfRange(keyAndSalt, 0, suite.keyLength());
    }

    /** The master salt (a copy; wipe it). */
    public byte[] masterSalt() {
        return Arrays.copyOfRange(keyAndSalt, suite.keyLength(), keyAndSalt.length);
    }

    public Optional<String> lifetime() {
        return Optional.ofNullable(lifetime);
    }

    public Optional<String> mki() {
        return Optional.ofNullable(mki);
    }

    /** The attribute value without {@code a=}: {@code crypto:1 AES_CM_128_HMAC_SHA1_80 inline:...}. */
    public String format() {
        return "crypto:" + tag + " " + suite.name() + " inline:" + Base64.getEncoder().encodeToString(keyAndSalt)
                + (lifetime != null ? "|" + lifetime : "") + (mki != null ? "|" + mki : "");
    }

    /** Wipes the key material. */
    public void destroy() {
        Arrays.fill(keyAndSalt, (byte) 0);
    }

    @Override
    public String toString() {
        return "SdesCrypto[" + tag + " " + suite.name().toLowerCase(Locale.ROOT) + ", key hidden]";
    }
}
