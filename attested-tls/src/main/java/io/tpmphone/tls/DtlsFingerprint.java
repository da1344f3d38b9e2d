package io.tpmphone.tls;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Objects;

/**
 * The SDP {@code a=fingerprint} of a DTLS certificate (RFC 8122 §5): a hash function name and the hash of the
 * certificate's DER encoding, written as upper-case hex pairs separated by colons. Only SHA-256, SHA-384 and SHA-512
 * are accepted (RFC 8122 forbids MD2 and MD5; SHA-1 is refused here as a collision-prone choice an attacker could
 * pick). Parsing is strict and bounded: the value comes from the far end through any proxy. Immutable.
 */
public record DtlsFingerprint(String hashFunction, byte[] digest) {
    /** Longest attribute value accepted: "sha-512 " and 64 hex pairs with colons. */
    public static final int MAX_LENGTH = 8 + 64 * 3;

    public DtlsFingerprint {
        Objects.requireNonNull(hashFunction, "hashFunction");
        digest = digest.clone();
        if (digest.length != digestLength(hashFunction)) {
            throw new IllegalArgumentException("a " + hashFunction + " fingerprint is " + digestLength(hashFunction)
                    + " bytes");
        }
    }

    @Override
    public byte[] digest() {
        return digest.clone();
    }

    /** The SHA-256 fingerprint of a certificate's DER encoding (what we put in our SDP). */
    public static DtlsFingerprint sha256(byte[] certificateDer) {
        return new DtlsFingerprint("sha-256", hash("sha-256", certificateDer));
    }

    /**
     * Parses the value of an {@code a=fingerprint} attribute ({@code "sha-256 AB:CD:…"}).
     *
     * @throws MalformedExtensionException naming what is wrong, without echoing the value
     */
    public static DtlsFingerprint parse(String value) throws MalformedExtensionException {
        if (value == null) {
            throw new MalformedExtensionException("a=fingerprint is missing");
        }
        if (value.length() > MAX_LENGTH) {
            throw new MalformedExtensionException("a=fingerprint is longer than " + MAX_LENGTH + " characters");
        }
        int space = value.indexOf(' ');
        if (space <= 0 || space != value.lastIndexOf(' ')) {
            throw new MalformedExtensionException("a=fingerprint is not 'hash-function fingerprint'");
        }
        String function = value.substring(0, space).toLowerCase(Locale.ROOT);
        int length;
        try {
            length = digestLength(function);
        } catch (IllegalArgumentException e) {
            throw new MalformedExtensionException("a=fingerprint hash function is not one of sha-256, sha-384, "
                    + "sha-512", true);
        }
        String hex = value.substring(space + 1);
        if (hex.length() != length * 3 - 1) {
            throw new MalformedExtensionException("a=fingerprint of " + function + " has the wrong length", true);
        }
        byte[] digest = new byte[length];
        for (int i = 0; i < length; i++) {
            int at = i * 3;
            if (i > 0 && hex.charAt(at - 1) != ':') {
                throw new MalformedExtensionException("a=fingerprint is not colon-separated hex pairs", true);
            }
            int hi = Character.digit(hex.charAt(at), 16);
            int lo = Character.digit(hex.charAt(at + 1), 16);
            if (hi < 0 || lo < 0 || hex.charAt(at) > 'f' || hex.charAt(at + 1) > 'f') {
                throw new MalformedExtensionException("a=fingerprint is not colon-separated hex pairs", true);
            }
            digest[i] = (byte) (hi << 4 | lo);
        }
        return new DtlsFingerprint(function, digest);
    }

    /**
     * Reads any {@code a=fingerprint} value the far end may send (RFC 8122 §5, IANA "Hash Function Textual Names"):
     * one of ours ({@link #parse}); a registered function we do not check (sha-1, sha-224) is empty — it may stand
     * beside ours — but must still be well formed for its function; md2 and md5 (forbidden by RFC 8122), names not in
     * the registry, and malformed values are refused, each with its reason and without echoing the value.
     *
     * @throws MalformedExtensionException naming what is wrong
     */
    public static java.util.Optional<DtlsFingerprint> parseAny(String value) throws MalformedExtensionException {
        if (value == null) {
            throw new MalformedExtensionException("a=fingerprint is missing");
        }
        if (value.length() > MAX_LENGTH) {
            throw new MalformedExtensionException("a=fingerprint is longer than " + MAX_LENGTH + " characters");
        }
        int space = value.indexOf(' ');
        String function = (space < 0 ? value : value.substring(0, space)).toLowerCase(Locale.ROOT);
        int length;
        switch (function) {
            case "sha-256", "sha-384", "sha-512":
                return java.util.Optional.of(parse(value));
            case "sha-1":
                length = 20;
                break;
            case "sha-224":
                length = 28;
                break;
            case "md2", "md5":
                throw new MalformedExtensionException("a=fingerprint uses " + function + ", which RFC 8122 forbids",
                        true);
            default:
                throw new MalformedExtensionException("a=fingerprint names a hash function that is not in the IANA "
                        + "registry (RFC 8122 §5)", true);
        }
        String hex = space < 0 ? "" : value.substring(space + 1);
        if (!hex.matches("[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){" + (length - 1) + "}")) {
            throw new MalformedExtensionException("a=fingerprint of " + function + " is not " + length
                    + " colon-separated hex pairs", true);
        }
        return java.util.Optional.empty();
    }

    /** Whether an attribute value names a hash function we check (sha-256, sha-384, sha-512), whatever follows. */
    public static boolean supportsHashFunctionOf(String value) {
        if (value == null) {
            return false;
        }
        int space = value.indexOf(' ');
        String function = (space < 0 ? value : value.substring(0, space)).toLowerCase(Locale.ROOT);
        return function.equals("sha-256") || function.equals("sha-384") || function.equals("sha-512");
    }

    /** Our preference among the hash functions we check, most preferred first (RFC 8122 §5: the strongest). */
    public static final java.util.List<String> PREFERENCE = java.util.List.of("sha-512", "sha-384", "sha-256");

    /**
     * RFC 8122 §5's check of a certificate against all of the far end's fingerprints: the set that uses our most
     * preferred hash function among those offered ({@link #PREFERENCE}) is selected, and the certificate must match
     * one fingerprint of that set. A match under a weaker function offered beside a stronger one does not count, so
     * an attacker who can add a fingerprint cannot downgrade the check to the weaker function.
     *
     * @return whether the certificate is one the far end announced
     * @throws IllegalArgumentException when {@code fingerprints} is empty
     */
    public static boolean matchesAny(java.util.List<DtlsFingerprint> fingerprints, byte[] certificateDer) {
        if (fingerprints.isEmpty()) {
            throw new IllegalArgumentException("no fingerprint to check against");
        }
        String preferred = preferredFunction(fingerprints);
        boolean match = false;
        for (DtlsFingerprint f : fingerprints) {
            // every fingerprint of the selected set is compared (no early exit), in constant time each
            match |= f.hashFunction.equals(preferred) && f.matches(certificateDer);
        }
        return match;
    }

    /** The hash function {@link #matchesAny} selects from {@code fingerprints}. */
    public static String preferredFunction(java.util.List<DtlsFingerprint> fingerprints) {
        for (String function : PREFERENCE) {
            for (DtlsFingerprint f : fingerprints) {
                if (f.hashFunction.equals(function)) {
                    return function;
                }
            }
        }
        throw new IllegalArgumentException("no fingerprint with a hash function we check");
    }

    /** Whether this is the fingerprint of {@code certificateDer} (constant time over the digest). */
    public boolean matches(byte[] certificateDer) {
        return MessageDigest.isEqual(digest, hash(hashFunction, certificateDer));
    }

    /** The attribute value, e.g. {@code "sha-256 AB:CD:…"}. */
    public String toSdp() {
        StringBuilder b = new StringBuilder(hashFunction.length() + 1 + digest.length * 3);
        b.append(hashFunction).append(' ');
        HexFormat hex = HexFormat.ofDelimiter(":").withUpperCase();
        return b.append(hex.formatHex(digest)).toString();
    }

    @Override
    public String toString() {
        return toSdp();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DtlsFingerprint f && f.hashFunction.equals(hashFunction)
                && MessageDigest.isEqual(f.digest, digest);
    }

    @Override
    public int hashCode() {
        return hashFunction.hashCode() * 31 + java.util.Arrays.hashCode(digest);
    }

    private static int digestLength(String function) {
        return switch (function) {
            case "sha-256" -> 32;
            case "sha-384" -> 48;
            case "sha-512" -> 64;
            default -> throw new IllegalArgumentException("unsupported fingerprint hash function");
        };
    }

    private static byte[] hash(String function, byte[] data) {
        try {
            return MessageDigest.getInstance(function.toUpperCase(Locale.ROOT)).digest(data);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no " + function, e);
        }
    }
}
