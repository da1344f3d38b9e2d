package io.tpmphone.cli;

import io.tpmphone.attestation.UntrustedText;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The screenshots in docs/softphone.md are panes {@link RingScreenTmuxIT} captured with {@code tmux capture-pane}: each
 * is a fenced block right after a marker line {@code <!-- screenshot: NAME -->}, where {@code NAME} is the file the
 * test wrote under {@code cli/target/ring-screen/}. {@link #check} compares every marked block with the capture of its
 * name, after {@link #mask}; with {@code -Dscreenshots.update=true} it rewrites the blocks instead (the way to refresh
 * them). A marker whose capture the run did not make, or a block that is not fenced right after its marker, fails.
 */
final class Screenshots {
    /** Set to {@code true} to rewrite the docs' blocks from this run's captures instead of comparing. */
    static final String UPDATE_PROPERTY = "screenshots.update";

    private static final Pattern MARKER = Pattern.compile("^<!-- screenshot: ([A-Za-z0-9._-]+) -->$");
    private static final String FENCE = "```";
    private static final Pattern CLOCK = Pattern.compile("\\b\\d\\d:\\d\\d:\\d\\d UTC\\b");
    private static final Pattern AGE = Pattern.compile("\\b\\d+ s before it was verified\\b");
    private static final Pattern AK = Pattern.compile("\\bAK [0-9a-f]{12}…");

    private Screenshots() {
    }

    /**
     * What of a pane varies from run to run, masked so that a screenshot can be compared: clock times ({@code 06:09:28
     * UTC} → {@code hh:mm:ss UTC}), the age of an appraisal ({@code 6 s before it was verified} →
     * {@code N s before …})
     * and the AK id's prefix ({@code AK 000b7e29fa03…} → {@code AK xxxxxxxxxxxx…}: a fresh TPM each run). Nothing
     * else. Trailing blanks and blank lines at the end go; a control, bidirectional-formatting or other invisible
     * character, should one ever be captured, is shown escaped as {@link UntrustedText} does (a docs page is no place
     * for one); a line that is a {@code ```} fence is refused (it would end the block).
     */
    static String mask(String pane) {
        List<String> lines = new ArrayList<>();
        for (String line : pane.split("\n", -1)) {
            String l = CLOCK.matcher(line.stripTrailing()).replaceAll("hh:mm:ss UTC");
            l = AGE.matcher(l).replaceAll("N s before it was verified");
            l = AK.matcher(l).replaceAll("AK xxxxxxxxxxxx…");
            if (l.strip().startsWith(FENCE)) {
                // it would end the docs' block early (and a rewritten page would then fail its own check)
                throw new IllegalStateException("a captured pane line is a ``` fence, which the docs' block cannot"
                        + " hold: " + UntrustedText.forTerminal(l, 120));
            }
            StringBuilder out = new StringBuilder(l.length());
            l.codePoints().forEach(c -> {
                String one = new String(Character.toChars(c));
                // as UntrustedText renders it (controls, bidi and other format characters, invisible ones), except
                // the backslash: the screen already shows a peer's escapes with one, and the page shows them as is
                if (c == '\\' || UntrustedText.isPlain(one)) {
                    out.appendCodePoint(c);
                } else {
                    out.append(UntrustedText.forTerminal(one));
                }
            });
            lines.add(out.toString());
        }
        while (!lines.isEmpty() && lines.get(lines.size() - 1).isEmpty()) {
            lines.remove(lines.size() - 1);
        }
        return String.join("\n", lines);
    }

    /** The docs' marked blocks by name, in order. */
    static Map<String, String> blocks(String doc) {
        Map<String, String> blocks = new LinkedHashMap<>();
        String[] lines = doc.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            Matcher m = MARKER.matcher(lines[i]);
            if (!m.matches()) {
                continue;
            }
            int end = fenceEnd(lines, i, m.group(1));
            blocks.put(m.group(1), String.join("\n", java.util.Arrays.copyOfRange(lines, i + 2, end)));
            i = end;
        }
        return blocks;
    }

    /** {@code doc} with each marked block replaced by the masked capture of its name. */
    static String rewrite(String doc, Map<String, String> captures) {
        String[] lines = doc.split("\n", -1);
        List<String> out = new ArrayList<>();
        for (int i = 0; i < lines.length; i++) {
            out.add(lines[i]);
            Matcher m = MARKER.matcher(lines[i]);
            if (!m.matches()) {
                continue;
            }
            int end = fenceEnd(lines, i, m.group(1));
            String capture = captures.get(m.group(1));
            if (capture == null) {
                throw new IllegalStateException("docs screenshot " + m.group(1) + " was not captured by this run");
            }
            out.add(FENCE);
            out.add(mask(capture));
            out.add(FENCE);
            i = end;
        }
        return String.join("\n", out);
    }

    private static int fenceEnd(String[] lines, int marker, String name) {
        if (marker + 1 >= lines.length || !lines[marker + 1].equals(FENCE)) {
            throw new IllegalStateException("docs screenshot " + name + ": its marker (line " + (marker + 1)
                    + ") must be followed by a ``` line");
        }
        for (int j = marker + 2; j < lines.length; j++) {
            if (lines[j].equals(FENCE)) {
                return j;
            }
        }
        throw new IllegalStateException("docs screenshot " + name + ": its block (line " + (marker + 2)
                + ") is never closed");
    }

    /**
     * Compares every marked block of {@code doc} with the masked capture of its name (or, with
     * {@value #UPDATE_PROPERTY}, rewrites them). Returns what differs, one entry per block, empty when all match; a
     * marked block without a capture of this run is a difference.
     */
    static List<String> check(Path doc, Map<String, String> captures) throws IOException {
        return check(doc, captures, Boolean.getBoolean(UPDATE_PROPERTY));
    }

    /** As {@link #check(Path, Map)}, rewriting the blocks when {@code update}. */
    static List<String> check(Path doc, Map<String, String> captures, boolean update) throws IOException {
        String text = Files.readString(doc, StandardCharsets.UTF_8);
        if (update) {
            Files.writeString(doc, rewrite(text, captures), StandardCharsets.UTF_8);
            return List.of();
        }
        List<String> differences = new ArrayList<>();
        Map<String, String> blocks = blocks(text);
        if (blocks.isEmpty()) {
            differences.add(doc + " has no <!-- screenshot: NAME --> blocks");
        }
        for (Map.Entry<String, String> b : blocks.entrySet()) {
            String capture = captures.get(b.getKey());
            if (capture == null) {
                differences.add(b.getKey() + ": in " + doc.getFileName() + " but not captured by this run (captured: "
                        + captures.keySet() + ")");
            } else if (!mask(capture).equals(b.getValue())) {
                differences.add(b.getKey() + ": " + doc.getFileName() + " shows\n" + b.getValue()
                        + "\nbut the test captured (masked)\n" + mask(capture));
            }
        }
        return differences;
    }

    /** docs/softphone.md of this checkout, from the module directory (a reactor run) or the root. */
    static Path softphoneDoc() {
        Path root = Files.isDirectory(Path.of("..", "docs")) ? Path.of("..") : Path.of(".");
        return root.resolve("docs").resolve("softphone.md");
    }
}
