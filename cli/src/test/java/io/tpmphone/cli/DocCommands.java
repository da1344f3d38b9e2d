package io.tpmphone.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The {@code tpmphone} commands written in the project's documentation: every line of a fenced code block that starts
 * with {@code ./tpmphone} or {@code tpmphone} (backslash continuations joined, a trailing {@code # comment} dropped),
 * split into arguments as a shell would for these simple lines (whitespace, '…' and "…" quoting). Tests run these very
 * commands, with the documentation's example paths and ports replaced by their own.
 */
final class DocCommands {
    /** One documented command: where it is, its text, and its arguments after the program name. */
    record Command(Path file, int line, String text, List<String> args) {
        boolean startsWith(String words) {
            return String.join(" ", args).startsWith(words);
        }

        /** The arguments with {@code whole} arguments replaced, then {@code parts} replaced inside arguments. */
        String[] substitute(Map<String, String> whole, Map<String, String> parts) {
            List<String> out = new ArrayList<>();
            for (String a : args) {
                String s = whole.getOrDefault(a, a);
                for (Map.Entry<String, String> e : parts.entrySet()) {
                    s = s.replace(e.getKey(), e.getValue());
                }
                out.add(s);
            }
            return out.toArray(String[]::new);
        }

        @Override
        public String toString() {
            return file.getFileName() + ":" + line + ": " + text;
        }
    }

    private DocCommands() {
    }

    /** The repository's documentation: README.md and docs/*.md (tests run in a module directory). */
    static List<Path> documents() throws IOException {
        Path root = Files.isDirectory(Path.of("..", "docs")) ? Path.of("..") : Path.of(".");
        List<Path> docs = new ArrayList<>();
        docs.add(root.resolve("README.md"));
        try (var s = Files.list(root.resolve("docs"))) {
            s.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        return docs;
    }

    static List<Command> in(Path markdown) throws IOException {
        List<String> lines = Files.readAllLines(markdown, StandardCharsets.UTF_8);
        List<Command> out = new ArrayList<>();
        boolean fenced = false;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.startsWith("```")) {
                fenced = !fenced;
                continue;
            }
            String t = line.strip();
            if (!fenced || !(t.startsWith("./tpmphone ") || t.startsWith("tpmphone "))) {
                continue;
            }
            int first = i;
            StringBuilder text = new StringBuilder();
            while (true) {
                String part = lines.get(i).strip();
                boolean more = part.endsWith("\\");
                text.append(more ? part.substring(0, part.length() - 1) : part).append(' ');
                if (!more || i + 1 >= lines.size()) {
                    break;
                }
                i++;
            }
            String joined = dropComment(text.toString()).strip();
            List<String> words = split(joined);
            out.add(new Command(markdown, first + 1, joined, words.subList(1, words.size())));
        }
        return out;
    }

    static List<Command> all() throws IOException {
        List<Command> out = new ArrayList<>();
        for (Path d : documents()) {
            out.addAll(in(d));
        }
        return out;
    }

    /** The one command in {@code markdown} whose arguments start with {@code words}. */
    static Command find(Path markdown, String words) throws IOException {
        List<Command> found = in(markdown).stream().filter(c -> c.startsWith(words)).toList();
        if (found.size() != 1) {
            throw new IllegalStateException(markdown + " should show exactly one `tpmphone " + words + " …`, found "
                    + found);
        }
        return found.get(0);
    }

    private static String dropComment(String s) {
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == quote) {
                    quote = 0;
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '#' && (i == 0 || Character.isWhitespace(s.charAt(i - 1)))) {
                return s.substring(0, i);
            }
        }
        return s;
    }

    private static List<String> split(String s) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        char quote = 0;
        boolean any = false;
        for (char c : s.toCharArray()) {
            if (quote != 0) {
                if (c == quote) {
                    quote = 0;
                } else {
                    cur.append(c);
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
                any = true;
            } else if (Character.isWhitespace(c)) {
                if (any || cur.length() > 0) {
                    out.add(cur.toString());
                    cur.setLength(0);
                    any = false;
                }
            } else {
                cur.append(c);
            }
        }
        if (any || cur.length() > 0) {
            out.add(cur.toString());
        }
        return out;
    }
}
