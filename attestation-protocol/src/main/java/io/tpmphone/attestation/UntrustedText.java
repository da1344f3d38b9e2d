package io.tpmphone.attestation;

import java.util.Objects;

/**
 * Renders text that someone else controls (a peer's URI, display name or reason, a child process's log line, a claim)
 * so that it can be shown on a terminal or written to a log without acting on it: every control character (C0, DEL,
 * C1 — so no escape sequence can move the cursor, erase a line or change colours), every bidirectional formatting
 * character (so no right-to-left override can reorder what follows) and every other invisible format character
 * becomes a visible escape, {@code \xHH} or {@code <U+HHHH>}, and a backslash becomes {@code \\} so an escape written
 * by the peer cannot pass for one of ours. Printable text, including non-ASCII letters, stays as it is. Stateless and
 * thread-safe.
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
        StringBuilder out = new StringBuilder(Math.min(text.length(), max) + 8);
        int kept = 0;
        for (int i = 0; i < text.length(); ) {
            if (kept == max) {
                out.append('…');
                break;
            }
            int c = text.codePointAt(i);
            i += Character.charCount(c);
            kept++;
            if (c == '\\') {
                out.append("\\\\");
            } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
                out.append(String.format("\\x%02x", c));
            } else if (invisible(c)) {
                out.append(String.format("<U+%04X>", c));
            } else {
                out.appendCodePoint(c);
            }
        }
        return out.toString();
    }

    /** Whether {@code text} would be shown unchanged by {@link #forTerminal(String, int)} with no length limit. */
    public static boolean isPlain(String text) {
        Objects.requireNonNull(text, "text");
        return text.codePoints().noneMatch(c -> c == '\\' || c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
                || invisible(c));
    }

    private static boolean invisible(int c) {
        int type = Character.getType(c);
        // FORMAT covers the bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069), LRM/RLM, zero-width
        // joiners and the BOM; the rest are separators other than the plain space, unassigned and private-use code
        // points, and lone surrogates (which a terminal may draw as anything).
        return type == Character.FORMAT || type == Character.LINE_SEPARATOR || type == Character.PARAGRAPH_SEPARATOR
                || type == Character.UNASSIGNED || type == Character.PRIVATE_USE || type == Character.SURROGATE;
    }
}
