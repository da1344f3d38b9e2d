package io.tpmphone.cli;

/**
 * What {@code tpmphone phone} lets through from the softphone to the person's terminal: text, {@code CR}, {@code LF}
 * and {@code TAB}, and — when {@code escapes} is on — only the control sequences the ring screen draws with: cursor
 * position and moves ({@code CSI n;m H}, {@code f}, {@code A}–{@code D}), erase display or line ({@code CSI n J},
 * {@code K}) and SGR colours ({@code CSI ... m}), with at most 16 numeric parameters. Everything else is dropped
 * whole: OSC (titles, hyperlinks, clipboard), DCS, SOS, PM and APC strings up to their terminator, other CSI sequences
 * (private modes, mouse and keyboard reporting, window operations), two-byte escapes, C1 controls and other C0
 * controls (BEL, BS, ...). So even a compromised softphone cannot program the person's terminal (set its title,
 * write its clipboard, make it answer back, remap keys): it can only draw. Piped ({@code escapes} off), every escape
 * sequence is dropped.
 *
 * <p>Sequences may be split across {@link #filter} calls; the state between calls is a few fields, and dropped
 * strings are skipped without being buffered, so memory stays bounded whatever arrives. Not thread-safe (one relay).
 */
final class TerminalFilter {
    private static final char ESC = 0x1b;
    private static final char BEL = 0x07;
    /** Longest CSI parameter string kept: the ring screen's longest is a few characters ({@code 1;37;41}). */
    private static final int MAX_PARAMETERS = 48;
    private static final int MAX_NUMBERS = 16;

    private enum State { TEXT, ESCAPE, ESCAPE_INTERMEDIATE, CSI, CSI_DROP, STRING, STRING_ESCAPE }

    private final boolean escapes;
    private State state = State.TEXT;
    private final StringBuilder parameters = new StringBuilder();

    /** @param escapes whether the allowed drawing sequences pass (on a terminal) or every sequence is dropped */
    TerminalFilter(boolean escapes) {
        this.escapes = escapes;
    }

    /** The part of {@code s} the terminal may see, given what came before. */
    String filter(CharSequence s) {
        StringBuilder out = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            step(s.charAt(i), out);
        }
        return out.toString();
    }

    /** As {@link #filter(CharSequence)} for {@code buf[off, off + len)}. */
    String filter(char[] buf, int off, int len) {
        return filter(java.nio.CharBuffer.wrap(buf, off, len));
    }

    private void step(char c, StringBuilder out) {
        switch (state) {
            case TEXT -> text(c, out);
            case ESCAPE -> {
                if (c == '[') {
                    parameters.setLength(0);
                    state = State.CSI;
                } else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
                    state = State.STRING; // OSC, DCS, SOS, PM, APC: dropped up to their terminator
                } else if (c == ESC) {
                    state = State.ESCAPE;
                } else if (c >= 0x20 && c <= 0x2f) {
                    state = State.ESCAPE_INTERMEDIATE; // ESC ( B, ESC # 8 and such: dropped with their final byte
                } else {
                    state = State.TEXT; // a two-byte escape (ESC c resets the terminal, ESC 7 saves...): dropped
                }
            }
            case ESCAPE_INTERMEDIATE -> {
                if (c >= 0x30 && c <= 0x7e) {
                    state = State.TEXT;
                } else if (c < 0x20 || c > 0x7e) {
                    state = State.TEXT;
                    text(c, out);
                }
            }
            case CSI -> {
                if (c >= 0x40 && c <= 0x7e) {
                    if (escapes && allowed(c)) {
                        out.append(ESC).append('[').append(parameters).append(c);
                    }
                    state = State.TEXT;
                } else if ((c >= '0' && c <= '9' || c == ';') && parameters.length() < MAX_PARAMETERS) {
                    parameters.append(c);
                } else if (c >= 0x20 && c <= 0x3f) {
                    state = State.CSI_DROP; // private markers (?, >, =), intermediates, too long: not ours
                } else {
                    state = State.TEXT; // a control in the middle cancels the sequence (as a terminal does)
                    text(c, out);
                }
            }
            case CSI_DROP -> {
                if (c >= 0x40 && c <= 0x7e) {
                    state = State.TEXT;
                } else if (c < 0x20 || c > 0x7e) {
                    state = State.TEXT;
                    text(c, out);
                }
            }
            case STRING -> {
                if (c == BEL || c == 0x9c) {
                    state = State.TEXT;
                } else if (c == ESC) {
                    state = State.STRING_ESCAPE;
                }
            }
            case STRING_ESCAPE -> state = c == '\\' ? State.TEXT : c == ESC ? State.STRING_ESCAPE : State.STRING;
            default -> throw new IllegalStateException(state.name());
        }
    }

    private void text(char c, StringBuilder out) {
        if (c == ESC) {
            state = State.ESCAPE;
        } else if (c == 0x9b) {
            parameters.setLength(0);
            state = State.CSI_DROP; // an 8-bit CSI: never ours
        } else if (c == 0x90 || c == 0x9d || c == 0x98 || c == 0x9e || c == 0x9f) {
            state = State.STRING; // 8-bit DCS, OSC, SOS, PM, APC
        } else if (c == '\r' || c == '\n' || c == '\t' || c >= 0x20 && c != 0x7f && !(c >= 0x80 && c <= 0x9f)) {
            out.append(c);
        }
        // other C0 and C1 controls and DEL: dropped
    }

    private boolean allowed(char finalByte) {
        boolean kind = switch (finalByte) {
            case 'm', 'H', 'f', 'J', 'K', 'A', 'B', 'C', 'D' -> true;
            default -> false;
        };
        if (!kind) {
            return false;
        }
        String p = parameters.toString();
        if (p.length() >= MAX_PARAMETERS || p.chars().filter(ch -> ch == ';').count() >= MAX_NUMBERS) {
            return false;
        }
        for (String n : p.split(";", -1)) {
            if (n.length() > 4) {
                return false; // 9999 rows or columns at most: a huge count is a way to make a terminal work hard
            }
        }
        return true;
    }
}
