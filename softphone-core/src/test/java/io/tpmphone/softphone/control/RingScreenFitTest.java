package io.tpmphone.softphone.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.UntrustedText;
import org.junit.jupiter.api.Test;

/**
 * {@link RingScreen#fit} measures what a terminal shows: a caller's wide characters (CJK, two columns each) must not
 * push a line past the window's width, where the terminal would wrap its tail onto a row of its own at column 0 — a
 * row that could read like one of ours ({@code [ MEASURED ] ESTABLISHED}, {@code Level:}).
 */
class RingScreenFitTest {
    /** The columns a terminal gives {@code s}, counted here independently: CJK ideographs 2, SGR none, others 1. */
    private static int shown(String s) {
        int n = 0;
        String plain = s.replaceAll("\u001b\\[[0-9;]*m", "");
        for (int i = 0; i < plain.length(); ) {
            int c = plain.codePointAt(i);
            n += (c >= 0x4e00 && c <= 0x9fff) ? 2 : (c == 0x0301 ? 0 : 1);
            i += Character.charCount(c);
        }
        return n;
    }

    @Test
    void aReasonOfWideCharacters_neverMakesALineWiderThanTheWindow() {
        String hostile = "漢".repeat(27) + "x   [ MEASURED ] ESTABLISHED";
        String listed = "   [ UNATTESTED ] REFUSED IN \"sip:caller@phone.test\"  why " + RingScreen.quoted(hostile, 60);
        String from = "   From:        " + UntrustedText.forTerminal("sip:" + "漢".repeat(60) + "Level:       [ MEASURED ]"
                + "@x", 120) + "   (the caller's own text)";
        for (int width : new int[] {100, 40}) {
            for (String line : new String[] {listed, from, "\u001b[1m" + listed + "\u001b[0m"}) {
                String fitted = RingScreen.fit(line, width);
                assertTrue(shown(fitted) <= width, "at " + width + " columns the line takes " + shown(fitted)
                        + ": '" + fitted + "'");
                assertEquals(shown(fitted), RingScreen.columns(fitted), "columns() counts as the terminal does");
            }
        }
        assertTrue(RingScreen.fit(listed, 40).startsWith("   [ UNATTESTED ] REFUSED IN"), "our level slot is kept");
        assertEquals(0, RingScreen.columns("e\u0301") - 1, "a combining accent takes no column");
    }
}
