package io.tpmphone.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;
import picocli.CommandLine.Help.Ansi;

/**
 * {@code ./tpmphone bench …}, {@code soak} and {@code crash-test} run {@link BenchMain} from this module's class path,
 * not the CLI: so the checks the
 * CLI's tests make of its own commands (help with an example that parses; every command the documentation shows
 * parses) are made here for the bench commands. Nothing here runs a benchmark.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class BenchCommandTest {

    private static List<CommandLine> allCommands(CommandLine root) {
        List<CommandLine> all = new ArrayList<>();
        all.add(root);
        for (CommandLine sub : root.getSubcommands().values()) {
            all.addAll(allCommands(sub));
        }
        return all;
    }

    @Test
    void everyBenchCommand_hasHelpADescriptionAndAnExampleThatParses() {
        CommandLine root = BenchMain.commandLine(Map.of());
        List<CommandLine> commands = new ArrayList<>(allCommands(root.getSubcommands().get("bench")));
        assertEquals(11, commands.size(), "bench and its ten benchmarks");
        commands.addAll(allCommands(root.getSubcommands().get("soak")));
        commands.addAll(allCommands(root.getSubcommands().get("crash-test")));
        assertEquals(14, commands.size(), "bench, its benchmarks, soak, crash-test and crash-test server: "
                + commands.stream().map(c -> c.getCommandSpec().qualifiedName()).toList());
        for (CommandLine c : commands) {
            String name = c.getCommandSpec().qualifiedName();
            assertTrue(c.getCommandSpec().mixinStandardHelpOptions(), name + ": --help");
            assertFalse(c.getCommandSpec().usageMessage().description()[0].isBlank(), name + ": a description");
            List<String> examples = new ArrayList<>();
            boolean in = false;
            for (String line : c.getUsageMessage(Ansi.OFF).lines().toList()) {
                if (line.matches("Examples?:\\s*")) {
                    in = true;
                } else if (in && line.startsWith("  ./tpmphone ")) {
                    examples.add(line.strip());
                }
            }
            assertFalse(examples.isEmpty(), name + " shows an example");
            assertTrue(examples.stream().anyMatch(e -> e.startsWith("./" + name)), name + ": " + examples);
            for (String e : examples) {
                List<String> words = words(e.replace("\\", ""));
                parse(words.subList(1, words.size()), name + " example " + e);
            }
        }
    }

    @Test
    void everyDocumentedBenchCommand_parses() throws IOException {
        Path root = Files.isDirectory(Path.of("..", "docs")) ? Path.of("..") : Path.of(".");
        List<Path> docs = new ArrayList<>(List.of(root.resolve("README.md"), root.resolve("benchmarks/README.md")));
        try (Stream<Path> s = Files.list(root.resolve("docs"))) {
            s.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        int parsed = 0;
        for (Path doc : docs) {
            List<String> lines = Files.readAllLines(doc, StandardCharsets.UTF_8);
            boolean fenced = false;
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i);
                if (line.startsWith("```")) {
                    fenced = !fenced;
                    continue;
                }
                String t = line.strip();
                if (!t.matches("(\\./)?tpmphone (bench|soak|crash-test)\\b.*") || !(t.startsWith("./") || fenced)) {
                    continue;
                }
                int first = i;
                StringBuilder text = new StringBuilder();
                while (true) {
                    String part = lines.get(i).strip();
                    boolean more = part.endsWith("\\") && i + 1 < lines.size();
                    text.append(more ? part.substring(0, part.length() - 1) : part).append(' ');
                    if (!more) {
                        break;
                    }
                    i++;
                }
                List<String> words = words(text.toString());
                parse(words.subList(1, words.size()), doc.getFileName() + ":" + (first + 1) + ": " + text);
                parsed++;
            }
        }
        assertTrue(parsed >= 15, "the docs show bench commands: " + parsed);
    }

    @Test
    void noArguments_printsTheBenchCommandInTheUsage() {
        StringWriter out = new StringWriter();
        CommandLine cli = BenchMain.commandLine(Map.of());
        cli.setOut(new PrintWriter(out));
        assertEquals(0, cli.execute());
        assertTrue(out.toString().contains("bench"), out.toString());
    }

    @Test
    void benchCallViaProxy_parses_andAnImpossibleSizeIsRefusedBeforeAnythingStarts() {
        CommandLine.ParseResult r = BenchMain.commandLine(Map.of()).parseArgs("bench", "call", "--via-proxy",
                "--rounds", "2", "--calls", "3", "--warmup", "0");
        BenchCommand.CallSetup call = (BenchCommand.CallSetup) r.subcommand().subcommand().commandSpec().userObject();
        assertTrue(call.viaProxy, "--via-proxy is set");
        assertEquals(2, call.rounds);
        assertEquals(3, call.calls);
        assertFalse(((BenchCommand.CallSetup) BenchMain.commandLine(Map.of()).parseArgs("bench", "call")
                .subcommand().subcommand().commandSpec().userObject()).viaProxy, "off unless asked for");
        StringWriter err = new StringWriter();
        CommandLine cli = BenchMain.commandLine(Map.of());
        cli.setErr(new PrintWriter(err));
        assertEquals(2, cli.execute("bench", "call", "--via-proxy", "--calls", "0"), err::toString);
        assertTrue(err.toString().contains("--calls must be at least 1"), err::toString);
    }

    private static void parse(List<String> args, String where) {
        try {
            BenchMain.commandLine(Map.of()).parseArgs(args.toArray(String[]::new));
        } catch (CommandLine.ParameterException e) {
            throw new AssertionError(where + " does not parse: " + e.getMessage(), e);
        }
    }

    /** A shell line's words: quotes removed, up to a comment ("#") or a redirection. */
    private static List<String> words(String line) {
        List<String> words = new ArrayList<>();
        StringBuilder word = null;
        char quote = 0;
        for (char ch : line.toCharArray()) {
            if (quote != 0) {
                if (ch == quote) {
                    quote = 0;
                } else {
                    word.append(ch);
                }
            } else if (ch == '\'' || ch == '"') {
                quote = ch;
                word = word == null ? new StringBuilder() : word;
            } else if (Character.isWhitespace(ch)) {
                if (word != null) {
                    words.add(word.toString());
                    word = null;
                }
            } else if (word == null && (ch == '#' || ch == '>' || ch == '|')) {
                break;
            } else {
                word = word == null ? new StringBuilder() : word;
                word.append(ch);
            }
        }
        if (word != null) {
            words.add(word.toString());
        }
        return words;
    }
}
