package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The documentation does not drift from the code: every {@code tpmphone} command it shows parses (its subcommands and
 * options exist and take those values), and every test it names as evidence exists. The commands of the operator's
 * guide are also run, as written, by {@link OperatorFlowIT}.
 */
class DocsCommandsTest {
    /**
     * What the wrapper script runs itself, not this Java command line: {@code test} (Maven), and {@code bench},
     * {@code soak} and {@code crash-test}, which run on the benchmarks module's class path (their documented commands
     * are checked by the benchmarks' {@code BenchCommandTest}).
     */
    private static final List<String> SCRIPT_ONLY = List.of("test", "bench", "soak", "crash-test");

    @Test
    void everyDocumentedCommandParses() throws Exception {
        List<DocCommands.Command> all = DocCommands.all();
        assertTrue(all.size() >= 20, "the docs show commands: " + all.size());
        List<String> broken = new ArrayList<>();
        for (DocCommands.Command c : all) {
            if (c.args().isEmpty() || SCRIPT_ONLY.contains(c.args().get(0))) {
                continue;
            }
            try {
                new CommandLine(new Main()).parseArgs(c.args().toArray(String[]::new));
            } catch (CommandLine.ParameterException e) {
                broken.add(c + "\n    → " + e.getMessage());
            }
        }
        assertTrue(broken.isEmpty(), "documented commands that do not parse:\n" + String.join("\n", broken));
    }

    @Test
    void everyTestTheDocsCiteExists() throws Exception {
        Path root = Files.isDirectory(Path.of("..", "docs")) ? Path.of("..") : Path.of(".");
        List<String> tests;
        try (Stream<Path> files = Files.walk(root)) {
            tests = files.filter(p -> !p.toString().contains("/target/") && p.toString().contains("/src/test/")
                    && p.toString().endsWith(".java")).map(p -> p.getFileName().toString().replace(".java", ""))
                    .toList();
        }
        Pattern cited = Pattern.compile("`([A-Z][A-Za-z0-9]*(?:IT|Test))[`.#]");
        List<String> missing = new ArrayList<>();
        for (Path doc : DocCommands.documents()) {
            Matcher m = cited.matcher(Files.readString(doc));
            while (m.find()) {
                if (!tests.contains(m.group(1))) {
                    missing.add(doc.getFileName() + ": " + m.group(1));
                }
            }
        }
        assertTrue(missing.isEmpty(), "the docs cite tests that do not exist: " + missing);
    }
}
