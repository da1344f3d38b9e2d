package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** What {@code tpmphone phone} passes from the softphone to the person's terminal: drawing, never programming. */
class TerminalFilterTest {
    private static final String E = "\u001b";

    private static String onTerminal(String s) {
        return new TerminalFilter(true).filter(s);
    }

    @Test
    void theRingScreensOwnSequences_passUnchanged() {
        String frame = E + "[H" + E + "[2J Phone sips:a@b\r\n   Level:       " + E + "[1;30;42m MEASURED " + E
                + "[0m\r\n" + E + "[1m[a] answer" + E + "[0m\t" + E + "[12;1H" + E + "[K" + E + "[3A" + E + "[2C"
                + E + "[f" + E + "[m";
        assertEquals(frame, onTerminal(frame));
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "\u001b]0;MEASURED call from your bank\u0007", // OSC title (BEL)
        "\u001b]2;evil\u001b\\", // OSC title (ST)
        "\u001b]52;c;ZWNobyBwd25lZAo=\u0007", // OSC 52: write the clipboard
        "\u001b]8;;https://evil.example/\u001b\\", // OSC 8 hyperlink
        "\u001bP+q544e\u001b\\", // DCS request (answer back)
        "\u001b_APC payload\u001b\\", "\u001bXsos\u001b\\", "\u001b^pm\u001b\\",
        "\u001b[?1049l", "\u001b[?1000h", // private modes: leave the alternate screen, mouse reporting
        "\u001b[21t", "\u001b[8;1;1t", // window reports and resize
        "\u001b[6n", "\u001b[c", "\u001b[>c", // cursor position and device attribute reports: answer back
        "\u001b[4h", "\u001b[1;2r", "\u001b[2 q", "\u001b[!p", // insert mode, scroll region, cursor style, reset
        "\u001bc", "\u001b7", "\u001b8", "\u001b(0", "\u001b#8", "\u001bN", // two-byte and charset escapes
        "\u009b6n", "\u009d0;title\u0007", "\u0090q\u009c", // 8-bit CSI, OSC, DCS
        "\u0007\u0008\u007f\u0000\u000e\u000f\u0085", // BEL, BS, DEL, NUL, shift-out/in, NEL
        "\u001b[99999;1H", "\u001b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17m" // huge counts, too many numbers
    })
    void anythingElse_isDroppedWhole(String hostile) {
        String out = onTerminal("before" + hostile + "after");
        assertEquals("beforeafter", out, "dropped whole: " + hostile.replace(E, "ESC"));
    }

    @Test
    void aSequenceSplitAcrossReads_isJudgedWhole() {
        TerminalFilter f = new TerminalFilter(true);
        String out = f.filter("a" + E) + f.filter("]0;ti") + f.filter("tle" + E) + f.filter("\\b" + E + "[1;3")
                + f.filter("2m") + f.filter("c");
        assertEquals("ab" + E + "[1;32mc", out);
    }

    @Test
    void anEndlessString_isSkippedWithoutBufferingIt() {
        TerminalFilter f = new TerminalFilter(true);
        f.filter(E + "]0;");
        String chunk = "x".repeat(1 << 16);
        for (int i = 0; i < 256; i++) { // 16 MiB of title
            assertEquals("", f.filter(chunk), "nothing of an unterminated OSC string reaches the terminal");
        }
        assertEquals("ok", f.filter("\u0007ok"));
    }

    @Test
    void piped_noSequenceAtAll() {
        String out = new TerminalFilter(false).filter(E + "[1;30;42m MEASURED " + E + "[0m\r\n" + E + "[H");
        assertEquals(" MEASURED \r\n", out);
        assertFalse(out.contains(E));
    }

    @Test
    void unicodeText_passes() {
        String text = "Your phrase: «purple élephant» — 紫色 🐘\r\n";
        assertEquals(text, onTerminal(text));
        assertTrue(onTerminal("\u001b").isEmpty(), "a lone ESC waits for what follows");
    }
}
