package io.tpmphone.server.internal.console;

import java.util.ArrayList;
import java.util.List;

/**
 * A line diff (longest common subsequence) of two short texts, such as two policy versions or two argument vectors.
 * Inputs longer than {@value #MAX_LINES} lines are refused rather than compared in quadratic time. Stateless.
 */
public final class TextDiff {
    /** Most lines on either side. */
    public static final int MAX_LINES = 2000;

    /** One line of the diff: {@code ' '} in both, {@code '-'} only in the old text, {@code '+'} only in the new. */
    public record Line(char kind, String text) {
        public boolean added() {
            return kind == '+';
        }

        public boolean removed() {
            return kind == '-';
        }

        /** The kind as a word, for CSS classes and screen readers. */
        public String kindName() {
            return switch (kind) {
                case '+' -> "added";
                case '-' -> "removed";
                default -> "same";
            };
        }
    }

    private TextDiff() {
    }

    /**
     * The diff from {@code before} to {@code after}.
     *
     * @throws IllegalArgumentException if either has more than {@value #MAX_LINES} lines
     */
    public static List<Line> lines(List<String> before, List<String> after) {
        if (before.size() > MAX_LINES || after.size() > MAX_LINES) {
            throw new IllegalArgumentException("too long to compare line by line: " + before.size() + " and "
                    + after.size() + " lines, at most " + MAX_LINES);
        }
        int n = before.size();
        int m = after.size();
        int[][] lcs = new int[n + 1][m + 1];
        for (int i = n - 1; i >= 0; i--) {
            for (int j = m - 1; j >= 0; j--) {
                lcs[i][j] = before.get(i).equals(after.get(j)) ? lcs[i + 1][j + 1] + 1
                        : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
            }
        }
        List<Line> out = new ArrayList<>();
        int i = 0;
        int j = 0;
        while (i < n && j < m) {
            if (before.get(i).equals(after.get(j))) {
                out.add(new Line(' ', before.get(i)));
                i++;
                j++;
            } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
                out.add(new Line('-', before.get(i++)));
            } else {
                out.add(new Line('+', after.get(j++)));
            }
        }
        while (i < n) {
            out.add(new Line('-', before.get(i++)));
        }
        while (j < m) {
            out.add(new Line('+', after.get(j++)));
        }
        return out;
    }

    /** Whether the diff has any added or removed line. */
    public static boolean changed(List<Line> diff) {
        return diff.stream().anyMatch(l -> l.kind() != ' ');
    }
}
