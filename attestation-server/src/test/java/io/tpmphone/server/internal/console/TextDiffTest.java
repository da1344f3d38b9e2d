package io.tpmphone.server.internal.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class TextDiffTest {
    private static String render(List<TextDiff.Line> diff) {
        StringBuilder s = new StringBuilder();
        diff.forEach(l -> s.append(l.kind()).append(l.text()).append('\n'));
        return s.toString();
    }

    @Test
    void aChangedLine_isOneRemovalAndOneAddition_betweenCommonLines() {
        List<TextDiff.Line> d = TextDiff.lines(List.of("a", "b", "c"), List.of("a", "B", "c"));
        assertEquals(" a\n-b\n+B\n c\n", render(d));
        assertTrue(TextDiff.changed(d));
    }

    @Test
    void additionsAndRemovalsAtTheEnds() {
        assertEquals("+x\n a\n-b\n", render(TextDiff.lines(List.of("a", "b"), List.of("x", "a"))));
        assertEquals("+a\n", render(TextDiff.lines(List.of(), List.of("a"))));
        assertEquals("-a\n", render(TextDiff.lines(List.of("a"), List.of())));
    }

    @Test
    void equalTexts_haveNoChange() {
        assertFalse(TextDiff.changed(TextDiff.lines(List.of("a", "b"), List.of("a", "b"))));
    }

    @Test
    void tooLongTexts_areRefused_notComparedQuadratically() {
        List<String> big = Collections.nCopies(TextDiff.MAX_LINES + 1, "x");
        assertThrows(IllegalArgumentException.class, () -> TextDiff.lines(big, List.of("x")));
    }
}
