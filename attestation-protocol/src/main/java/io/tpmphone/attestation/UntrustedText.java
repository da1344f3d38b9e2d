package io.tpmphone.attestation;

import java.util.Objects;

/**
 * Renders text that someone else controls (a peer's URI, display name or reason, a child process's log line, a claim)
 * so that it can be shown on a terminal or written to a log without acting on it. The text is first put in Unicode
 * normalization form C (so an accent stays with its letter); then every code point that a terminal would obey or that
 * would not show as itself becomes a visible escape, {@code \xHH} for C0 controls, DEL and C1 controls (so no escape
 * sequence can move the cursor, erase a line or change colours) and <code>&#92;u{HHHH}</code> for the rest: bidirectional
 * formatting (no right-to-left override can reorder what follows) and every other format character, combining marks
 * left after normalization (they would stack on our text), separators other than the plain space (NBSP, the
 * U+2000 spaces, line and paragraph separators), unassigned, private-use and surrogate code points, and the
 * "filler" letters that draw nothing (U+115F, U+1160, U+2800, U+3164, U+FFA0). A backslash becomes {@code \\}, so
 * an escape written by the peer cannot pass for one of ours. Printable text, including non-ASCII letters, stays as it
 * is. Stateless and thread-safe.
 */
public final class UntrustedText {
    /** What {@link #forTerminal(String, int)} keeps at most by default, in code points. */
    public static final int DEFAULT_MAX = 1000;

    private UntrustedText() {
    }

    /** {@code text} made safe to print, at most {@link #DEFAULT_MAX} code points (then "…"); "null" for null. */
    public static String forTerminal(String text) {
        return forTerminal(text, DEFAULT_MAX);
    }

    /** {@code text} made safe to print, at most {@code max} code points of it (then "…"); "null" for null. */
    public static String forTerminal(String text, int max) {
        if (max < 1) {
            throw new IllegalArgumentException("max must be positive: " + max);
        }
        if (text == null) {
            return "null";
        }
        String normalized = java.text.Normalizer.normalize(text, java.text.Normalizer.Form.NFC);
        StringBuilder out = new StringBuilder(Math.min(normalized.length(), max) + 8);
        int kept = 0;
        for (int i = 0; i < normalized.length(); ) {
            if (kept == max) {
                out.append('…');
                break;
            }
            int c = normalized.codePointAt(i);
            i += Character.charCount(c);
            kept++;
            if (c == '\\') {
                out.append("\\\\");
            } else if (control(c)) {
                out.append(String.format("\\x%02x", c));
            } else if (invisible(c)) {
                out.append(String.format("\\u{%04X}", c));
            } else {
                out.appendCodePoint(c);
            }
        }
        return out.toString();
    }

    /** Whether {@code text} would be shown unchanged by {@link #forTerminal(String, int)} with no length limit. */
    public static boolean isPlain(String text) {
        Objects.requireNonNull(text, "text");
        return java.text.Normalizer.isNormalized(text, java.text.Normalizer.Form.NFC)
                && text.codePoints().noneMatch(c -> c == '\\' || control(c) || invisible(c));
    }

    private static boolean control(int c) {
        return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0);
    }

    private static boolean invisible(int c) {
        switch (Character.getType(c)) {
            case Character.FORMAT, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR, Character.UNASSIGNED,
                 Character.PRIVATE_USE, Character.SURROGATE, Character.NON_SPACING_MARK, Character.ENCLOSING_MARK:
                return true;
            case Character.SPACE_SEPARATOR:
                return c != ' ';
            default:
                return c == 0x115f || c == 0x1160 || c == 0x2800 || c == 0x3164 || c == 0xffa0;
        }
    }
}
