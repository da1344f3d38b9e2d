package io.tpmphone.attestation.internal;

import java.util.HexFormat;
import java.util.Objects;
import java.util.regex.Pattern;

/** Lower-case hexadecimal text for digests in messages, policies and results. Thread-safe. */
public final class Hex {
    private static final HexFormat LOWER = HexFormat.of();
    private static final Pattern SHA256_HEX = Pattern.compile("[0-9a-fA-F]{64}");

    private Hex() {
    }

    public static String of(byte[] bytes) {
        return LOWER.formatHex(Objects.requireNonNull(bytes, "bytes"));
    }

    /** Whether {@code s} is exactly 64 hexadecimal digits (either case). */
    public static boolean isSha256(String s) {
        return s != null && SHA256_HEX.matcher(s).matches();
    }

    /** Whether {@code s} is a non-empty, even-length run of lower-case hexadecimal digits. */
    public static boolean isLowerEven(String s) {
        if (s == null || s.isEmpty() || (s.length() & 1) != 0) {
            return false;
        }
        // A loop, not a regular expression: results and approvals check several digests on the appraisal path.
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if ((c < '0' || c > '9') && (c < 'a' || c > 'f')) {
                return false;
            }
        }
        return true;
    }

    /** Parses hexadecimal digits (either case); {@link IllegalArgumentException} otherwise. */
    public static byte[] parse(String s) {
        return LOWER.parseHex(Objects.requireNonNull(s, "s"));
    }

    /** The first 12 hex digits and an ellipsis, for messages that must stay readable. */
    public static String abbreviate(String hex) {
        return hex.length() <= 12 ? hex : hex.substring(0, 12) + "\u2026";
    }

    /** {@link #abbreviate(String)} of {@link #of(byte[])}. */
    public static String abbreviate(byte[] bytes) {
        return abbreviate(of(bytes));
    }
}
