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
        assertEquals("sip:<U+202E>moc.evil@bob", UntrustedText.forTerminal("sip:\u202emoc.evil@bob"));
        assertEquals("a<U+2066>b<U+200B>c<U+FEFF>", UntrustedText.forTerminal("a\u2066b\u200bc\ufeff"));
        assertEquals("line<U+2028>two", UntrustedText.forTerminal("line\u2028two"));
        assertEquals("c1 \\x9b31m", UntrustedText.forTerminal("c1 \u009b31m"));
        assertEquals("del\\x7f", UntrustedText.forTerminal("del\u007f"));
    }

    @Test
    void aBackslashFromThePeer_cannotPassForOurEscape() {
        assertEquals("\\\\x1b", UntrustedText.forTerminal("\\x1b"));
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
