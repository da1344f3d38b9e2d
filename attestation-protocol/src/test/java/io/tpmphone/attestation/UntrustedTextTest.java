package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class UntrustedTextTest {
    @Test
    void anEscapeSequenceThatPaintsAFalseLevel_isShownNotObeyed() {
        String attack = "x\u001b[2K\r\u001b[32m MEASURED alice (verified";
        String shown = UntrustedText.forTerminal(attack);
        assertEquals("x\\x1b[2K\\x0d\\x1b[32m MEASURED alice (verified", shown);
        assertTrue(shown.chars().noneMatch(c -> c < 0x20), shown);
    }

    @Test
    void bidiOverridesAndInvisibleCharacters_becomeVisible() {
        assertEquals("sip:\\u{202E}moc.evil@bob", UntrustedText.forTerminal("sip:\u202emoc.evil@bob"));
        assertEquals("a\\u{2066}b\\u{200B}c\\u{FEFF}", UntrustedText.forTerminal("a\u2066b\u200bc\ufeff"));
        assertEquals("line\\u{2028}two", UntrustedText.forTerminal("line\u2028two"));
        assertEquals("no\\u{00A0}break\\u{2003}em\\u{3164}filler\\u{2800}", UntrustedText.forTerminal(
                "no\u00a0break\u2003em\u3164filler\u2800"));
        assertEquals("stack\\u{0336}\\u{0336}", UntrustedText.forTerminal("stack\u0336\u0336"),
                "combining marks that do not compose would draw over our text");
        assertEquals("c1 \\x9b31m", UntrustedText.forTerminal("c1 \u009b31m"));
        assertEquals("del\\x7f", UntrustedText.forTerminal("del\u007f"));
    }

    @Test
    void aBackslashFromThePeer_cannotPassForOurEscape() {
        assertEquals("\\\\x1b", UntrustedText.forTerminal("\\x1b"));
        assertEquals("\\\\u{202E}", UntrustedText.forTerminal("\\u{202E}"));
    }

    @Test
    void decomposedAccents_stayWithTheirLetter() {
        assertEquals("Zo\u00eb", UntrustedText.forTerminal("Zoe\u0308"), "NFC composes e + U+0308");
    }

    @Test
    void printableTextIncludingOtherScripts_staysAsItIs() {
        String text = "Zoë — Ünal → 山田 sips:bob@example.test;transport=tls";
        assertEquals(text, UntrustedText.forTerminal(text));
        assertTrue(UntrustedText.isPlain(text));
        assertFalse(UntrustedText.isPlain("a\nb"));
    }

    @Test
    void longTextIsCut_andNullIsNamed() {
        assertEquals("abc…", UntrustedText.forTerminal("abcdef", 3));
        assertEquals("abc", UntrustedText.forTerminal("abc", 3));
        assertEquals("😀😀…", UntrustedText.forTerminal("😀😀😀", 2), "code points, not chars");
        assertEquals("null", UntrustedText.forTerminal(null));
        assertThrows(IllegalArgumentException.class, () -> UntrustedText.forTerminal("x", 0));
    }
}
