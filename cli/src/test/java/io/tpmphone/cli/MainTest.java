package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.tpmphone.swtpm.testing.FreePorts;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Help.Ansi;

/**
 * The command line as a person meets it, in process: every command's help has an example that parses, usage errors
 * and failures end with what to do next, and colours only where they belong.
 */
class MainTest {

    private record Run(int exit, String out, String err) {
        List<String> errLines() {
            return err.lines().toList();
        }

        String lastErrLine() {
            List<String> lines = errLines();
            return lines.isEmpty() ? "" : lines.get(lines.size() - 1);
        }
    }

    private static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(new PrintWriter(out), new PrintWriter(err), args);
        return new Run(exit, out.toString(), err.toString());
    }

    private static Run run(CommandLine cli, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int exit = cli.execute(args);
        cli.getOut().flush();
        cli.getErr().flush();
        return new Run(exit, out.toString(), err.toString());
    }

    private static List<CommandLine> allCommands(CommandLine root) {
        List<CommandLine> all = new ArrayList<>();
        all.add(root);
        for (CommandLine sub : root.getSubcommands().values()) {
            all.addAll(allCommands(sub));
        }
        return all;
    }

    // ------------------------------------------------------------------------------------------------ help

    @Test
    void everyCommand_hasStandardHelpADescriptionAndAnExampleOfItself() {
        List<CommandLine> commands = allCommands(new CommandLine(new Main()));
        // 25 since the bench commands (7) left for the benchmarks module, which checks them (BenchCommandTest).
        assertTrue(commands.size() >= 25, "the whole tree: " + commands.size());
        for (CommandLine c : commands) {
            String name = c.getCommandSpec().qualifiedName();
            String usage = c.getUsageMessage(Ansi.OFF);
            assertTrue(c.getCommandSpec().mixinStandardHelpOptions(), name + ": mixinStandardHelpOptions");
            assertTrue(c.getCommandSpec().usageMessage().description().length > 0
                    && !c.getCommandSpec().usageMessage().description()[0].isBlank(), name + ": a description");
            assertTrue(usage.contains("--help"), name + " usage shows --help:\n" + usage);
            List<String> examples = exampleLines(usage);
            assertFalse(examples.isEmpty(), name + " usage has an Example section:\n" + usage);
            assertTrue(examples.stream().anyMatch(e -> e.matches("(\\./)?tpmphone\\b.*")), name + ": " + examples);
            assertTrue(examples.stream().anyMatch(e -> commandOf(e).startsWith(name)),
                    name + " shows an example of itself: " + examples);
        }
    }

    /**
     * The help names the TPM URI a swtpm has now ({@code swtpm:socket=PATH}, what {@code swtpm start} prints), not the
     * loopback-TCP form ({@code swtpm:host=H,port=P}, {@code swtpm:port=2321}) that any local user can clone a TPM
     * through; that form is only in docs/tpm.md, marked insecure.
     */
    @Test
    @org.junit.jupiter.api.Timeout(30)
    void theHelp_showsTheSocketFormOfASwtpmUri_neverTheTcpForm() {
        int tpmOptions = 0;
        for (CommandLine c : allCommands(new CommandLine(new Main()))) {
            String usage = c.getUsageMessage(Ansi.OFF);
            String name = c.getCommandSpec().qualifiedName();
            assertFalse(usage.contains("swtpm:host=") || usage.contains("swtpm:port="),
                    () -> name + "'s help shows the TCP form of a swtpm URI:\n" + usage);
            picocli.CommandLine.Model.OptionSpec tpm = c.getCommandSpec().findOption("--tpm");
            if (tpm != null) {
                tpmOptions++;
                String description = String.join(" ", tpm.description());
                assertTrue(description.contains("swtpm:socket=PATH") && description.contains("device:/dev/tpmrm0"),
                        () -> name + " --tpm names both forms: " + description);
            }
        }
        assertTrue(tpmOptions >= 5, "commands with --tpm: " + tpmOptions);
    }

    @Test
    void footers_fitTheHelpWidth_soExamplesCanBeCopied() {
        for (CommandLine c : allCommands(new CommandLine(new Main()))) {
            int width = c.getCommandSpec().usageMessage().width();
            for (String line : c.getCommandSpec().usageMessage().footer()) {
                // picocli wraps a longer line anywhere, also inside a URL; a trailing shell comment may wrap.
                String command = String.format(line).replaceFirst("\\s+#.*$", "");
                assertTrue(command.length() <= width, c.getCommandSpec().qualifiedName() + ": footer line of "
                        + command.length() + " > " + width + " characters: " + line);
            }
        }
    }

    @Test
    void everyExample_parses() {
        int parsed = 0;
        for (CommandLine c : allCommands(new CommandLine(new Main()))) {
            for (String example : exampleLines(c.getUsageMessage(Ansi.OFF))) {
                List<String> words = words(example);
                if (words.isEmpty() || !words.get(0).matches("(\\./)?tpmphone")) {
                    continue; // e.g. tpm2_checkquote after tpm quote
                }
                try {
                    Main.commandLine(Map.of()).parseArgs(words.subList(1, words.size()).toArray(new String[0]));
                    parsed++;
                } catch (CommandLine.ParameterException e) {
                    fail(c.getCommandSpec().qualifiedName() + " example does not parse: " + example + "\n  "
                            + e.getMessage());
                }
            }
        }
        assertTrue(parsed > 40, "examples parsed: " + parsed);
    }

    @Test
    void helpCommand_showsNestedCommands() {
        Run r = run("help", "tpm", "quote");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("Usage: tpmphone tpm quote"), r.out());

        Run unknown = run("help", "tpm", "nope");
        assertEquals(2, unknown.exit());
        assertTrue(unknown.err().contains("tpmphone tpm has no command 'nope'"), unknown.err());
        assertTrue(unknown.err().contains("pcrread"), "lists the commands there: " + unknown.err());
        assertEquals("see: tpmphone tpm --help", unknown.lastErrLine());
    }

    // ------------------------------------------------------------------------------------------------ usage errors

    @Test
    void unknownOption_isAUsageError_thatSaysWhereTheHelpIs() {
        Run r = run("tpm", "info", "--bogus");
        assertEquals(2, r.exit());
        assertEquals("", r.out());
        assertEquals("error: Unknown option: '--bogus'", r.errLines().get(0));
        assertTrue(r.err().contains("usage: tpmphone tpm info"), "the synopsis, not the whole help: " + r.err());
        assertFalse(r.err().contains("Show this help message"), r.err());
        assertEquals("see: tpmphone tpm info --help", r.lastErrLine());
    }

    @Test
    void badValue_isAUsageError_thatNamesTheOption() {
        Run r = run("tpm", "extend", "--pcr", "abc", "--digest", "00");
        assertEquals(2, r.exit());
        assertTrue(r.errLines().get(0).startsWith("error: Invalid value for option '--pcr': 'abc'"), r.err());
        assertEquals("see: tpmphone tpm extend --help", r.lastErrLine());
    }

    @Test
    void badTpmUri_isAUsageError_beforeAnyTpmIsReached() {
        Run r = run("tpm", "info", "--tpm", "bogus");
        assertEquals(2, r.exit());
        assertTrue(r.errLines().get(0).startsWith("error: invalid TPM URI 'bogus'"), r.err());
        assertTrue(r.err().contains("expected swtpm:socket=/path/to/server.sock, swtpm:host=127.0.0.1,port=2321 or "
                + "device:/dev/tpmrm0"), r.err());
        assertEquals("see: tpmphone tpm info --help", r.lastErrLine());
    }

    @Test
    void errorFromInsideACommand_namesThatCommand() {
        Run r = run("tpm", "extend", "--pcr", "16");
        assertEquals(2, r.exit());
        assertEquals("error: give exactly one of --digest or --file", r.errLines().get(0));
        assertEquals("see: tpmphone tpm extend --help", r.lastErrLine());
    }

    @Test
    void missingSubcommand_listsTheCommands() {
        Run r = run("tpm");
        assertEquals(2, r.exit());
        assertEquals("error: Missing required subcommand", r.errLines().get(0));
        assertTrue(r.err().contains("pcrread") && r.err().contains("quote"), r.err());
        assertEquals("see: tpmphone tpm --help", r.lastErrLine());
    }

    @Test
    void serverUrlWithoutHttps_isAUsageError() {
        Run r = run("policy", "show", "--server", "http://127.0.0.1:8443", "--server-cert", "c.pem",
                "--admin-token-file", "t");
        assertEquals(2, r.exit());
        assertTrue(r.errLines().get(0).startsWith("error: --server must be an https://HOST:PORT URL"), r.err());
        assertEquals("see: tpmphone policy show --help", r.lastErrLine());
    }

    @Test
    void serverConnectionBounds_outOfRange_areRefusedBeforeAnythingStarts() {
        String[][] cases = {
            {"--max-connections", "0", "error: --max-connections must be 1 to 1000000, got 0"},
            {"--max-connections-per-address", "20000",
                "error: --max-connections-per-address must be 1 to --max-connections (15000), got 20000"},
            {"--accept-queue", "70000", "error: --accept-queue must be 1 to 65535, got 70000"},
            {"--request-timeout", "0", "error: --request-timeout must be 1 to 600 seconds, got 0"},
        };
        for (String[] c : cases) {
            Run r = run("server", "--state", "s", "--admin-token-file", "t", c[0], c[1]);
            assertEquals(2, r.exit(), c[0] + " " + c[1] + ": a usage error; stderr: " + r.err());
            assertEquals(c[2], r.errLines().get(0), c[0] + " " + c[1]);
            assertEquals("see: tpmphone server --help", r.lastErrLine(), c[0] + " " + c[1]);
        }
        assertFalse(java.nio.file.Files.exists(Path.of("s")), "no state directory was made");
    }

    @Test
    void serverAuditLeases_outOfRangeOrWithoutADatabase_areRefusedBeforeAnythingStarts() {
        String db = "jdbc:postgresql://127.0.0.1:1/tpmphone?user=tpmphone";
        Run r = run("server", "--state", "s", "--admin-token-file", "t", "--audit-writer-lease", "4");
        assertEquals(2, r.exit(), "a usage error; stderr: " + r.err());
        assertEquals("see: tpmphone server --help", r.lastErrLine());
        assertEquals("error: --audit-signer-lease and --audit-writer-lease need --database (a SQLite audit log has one"
                + " writer and no leases)", r.errLines().get(0));
        r = run("server", "--state", "s", "--admin-token-file", "t", "--database", db, "--audit-writer-lease", "3");
        assertEquals(2, r.exit(), "a usage error; stderr: " + r.err());
        assertEquals("error: --audit-writer-lease must be 4 to 300 seconds, got 3", r.errLines().get(0));
        r = run("server", "--state", "s", "--admin-token-file", "t", "--database", db, "--audit-signer-lease", "1");
        assertEquals("error: --audit-signer-lease must be 2 to 300 seconds, got 1", r.errLines().get(0));
        r = run("server", "--state", "s", "--admin-token-file", "t", "--database", db, "--audit-signer-lease", "10");
        assertEquals("error: --audit-writer-lease (default 10) must be longer than --audit-signer-lease (default 3)",
                r.errLines().get(0));
        assertFalse(java.nio.file.Files.exists(Path.of("s")), "no state directory was made");
    }

    // ------------------------------------------------------------------------------------------------ failures

    @Test
    void auditVerify_expectHead_refusesALogThatNoLongerHoldsTheKeptHead(@TempDir Path dir) throws Exception {
        java.security.KeyPairGenerator generator = java.security.KeyPairGenerator.getInstance("EC");
        generator.initialize(new java.security.spec.ECGenParameterSpec("secp256r1"));
        java.security.KeyPair keys = generator.generateKeyPair();
        Path db = dir.resolve("audit.db");
        Path pem = dir.resolve("audit-key.pem");
        Files.writeString(pem, io.tpmphone.server.audit.AuditVerifier.publicKeyPem(keys.getPublic()));
        try (io.tpmphone.server.audit.AuditLog log = io.tpmphone.server.audit.AuditLog.open(db,
                io.tpmphone.server.audit.AuditSigner.ecdsa(keys), io.tpmphone.server.audit.AuditLog.Options.defaults())) {
            for (int i = 0; i < 3; i++) {
                log.append(new io.tpmphone.server.audit.AuditEntry(io.tpmphone.server.audit.AuditEventType.ADMIN,
                        "admin", "ACCEPTED", "{\"i\":" + i + "}"));
            }
        }
        Run first = run("audit", "verify", "--db", db.toString(), "--public-key", pem.toString());
        assertEquals(0, first.exit(), first.out() + first.err());
        java.util.regex.Matcher head = java.util.regex.Pattern.compile("head (\\d+) ([0-9a-f]{64})").matcher(first.out());
        assertTrue(head.find(), "verify prints the head to keep: " + first.out());
        String kept = head.group(1) + ":" + head.group(2);
        Run same = run("audit", "verify", "--db", db.toString(), "--public-key", pem.toString(), "--expect-head", kept);
        assertEquals(0, same.exit(), "the log still holds " + kept + ": " + same.out() + same.err());
        String other = "2:" + head.group(2);
        Run moved = run("audit", "verify", "--db", db.toString(), "--public-key", pem.toString(), "--expect-head",
                other);
        assertEquals(1, moved.exit(), moved.out() + moved.err());
        assertTrue(moved.out().contains("ANCHOR_MISMATCH at 2"), moved.out());
        Run bad = run("audit", "verify", "--db", db.toString(), "--public-key", pem.toString(), "--expect-head",
                "3:\u001b[32mzz");
        assertEquals(2, bad.exit(), bad.out() + bad.err());
        assertTrue(bad.err().contains("--expect-head must be SEQ:HASH"), bad.err());
        assertFalse(bad.err().contains("\u001b[32m"), "the bad value is shown escaped: " + bad.err());
    }

    @Test
    void missingFile_namesTheOptionThatGaveIt(@TempDir Path dir) {
        Path missing = dir.resolve("audit.json");
        Run r = run("audit", "verify", "--export", missing.toString(), "--unsigned");
        assertEquals(1, r.exit());
        assertEquals("error: no such file: " + missing, r.errLines().get(0));
        assertTrue(r.lastErrLine().startsWith("next: --export " + missing + " does not exist: write one with"
                + " `tpmphone audit export"), r.err());
    }

    @Test
    void missingFileOfAnyOption_isNamedWithItsOption(@TempDir Path dir) {
        Path jar = dir.resolve("app.jar");
        Run r = run("tpm", "extend", "--tpm", "swtpm:port=1", "--pcr", "16", "--file", jar.toString());
        assertEquals(1, r.exit());
        assertEquals(List.of("error: no such file: " + jar, "next: check --file: " + jar + " does not exist"),
                r.errLines());
    }

    @Test
    void missingServerCertificate_saysWhereTheServerKeepsIt(@TempDir Path dir) {
        Run r = run("policy", "show", "--server", "https://127.0.0.1:8443", "--server-cert",
                dir.resolve("tls-cert.pem").toString(), "--admin-token-file", dir.resolve("admin.token").toString());
        assertEquals(1, r.exit());
        assertTrue(r.lastErrLine().startsWith("next: --server-cert " + dir.resolve("tls-cert.pem")), r.err());
        assertTrue(r.lastErrLine().contains("STATE/keys/tls-cert.pem"), r.err());
    }

    @Test
    void missingAdminToken_pointsAtTheServersTokenNotAtGeneratingOne(@TempDir Path dir) throws Exception {
        Path cert = testCertificate(dir);
        Path token = dir.resolve("admin.token");
        Run r = run("policy", "show", "--server", "https://127.0.0.1:8443", "--server-cert", cert.toString(),
                "--admin-token-file", token.toString());
        assertEquals(1, r.exit());
        assertEquals("next: --admin-token-file " + token + " does not exist: give the admin token file the server"
                + " was started with (`tpmphone server --admin-token-file`)", r.lastErrLine());
    }

    @Test
    @Timeout(60) // the server used to take the link's target as its token and serve until this timeout
    void serverWithAnAdminTokenLinkOthersCouldHaveMade_refusesToStart_sayingWhatToDo(@TempDir Path dir)
            throws Exception {
        Path chosen = Files.writeString(dir.resolve("chosen.token"), "a-token-someone-else-chose-0123456789\n");
        Files.setPosixFilePermissions(chosen, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        Path shared = Files.createDirectory(dir.resolve("shared"));
        Files.setAttribute(shared, "unix:mode", 01777); // like /tmp: anyone may put a link there
        Path token = Files.createSymbolicLink(shared.resolve("admin.token"), chosen);
        Run r = run("server", "--state", dir.resolve("state").toString(), "--listen", "127.0.0.1:" + FreePorts.tcp(),
                "--admin-token-file", token.toString(), "--generate-admin-token");
        assertEquals(1, r.exit(), "exit code; stderr: " + r.err());
        assertTrue(r.errLines().get(0).startsWith("error: " + token + " leads through the symbolic link " + token
                + " (to " + chosen + ")") && r.err().contains("Put the file itself at " + token), "stderr: " + r.err());
        assertFalse(r.err().contains("someone-else-chose"), "the token is not shown: " + r.err());
    }

    @Test
    void serverNotListening_asksWhetherItRuns(@TempDir Path dir) throws Exception {
        Path cert = testCertificate(dir);
        Path token = Files.writeString(dir.resolve("admin.token"), "a".repeat(32));
        int closedPort = FreePorts.tcp();
        Run r = run("policy", "show", "--server", "https://127.0.0.1:" + closedPort, "--server-cert",
                cert.toString(), "--admin-token-file", token.toString());
        assertEquals(1, r.exit());
        assertEquals("error: attestation server https://127.0.0.1:" + closedPort + " unreachable for /v1/policy:"
                + " connection refused", r.errLines().get(0));
        assertEquals("next: is the server running? check --server (`tpmphone server` prints the URL it serves)",
                r.lastErrLine());
    }

    @Test
    void stoppingASwtpmThatIsNotRunning_saysSo(@TempDir Path home) {
        String before = System.getProperty("tpmphone.home");
        System.setProperty("tpmphone.home", home.toString());
        try {
            Run r = run("swtpm", "stop", "--name", "ci");
            assertEquals(1, r.exit());
            assertTrue(r.errLines().get(0).startsWith("error: no swtpm 'ci' is running"), r.err());
            assertEquals("next: nothing to stop: no swtpm started with `tpmphone swtpm start` is running",
                    r.lastErrLine());
        } finally {
            if (before == null) {
                System.clearProperty("tpmphone.home");
            } else {
                System.setProperty("tpmphone.home", before);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ colours

    @Test
    void notATerminal_errorsHaveNoEscapeSequences(@TempDir Path dir) {
        // What AUTO decides here: surefire's JVM has no console (and nothing forces colours on).
        assumeTrue(System.console() == null && System.getenv("CLICOLOR_FORCE") == null
                && System.getProperty("picocli.ansi") == null);
        for (Run r : List.of(run("tpm", "info", "--bogus"), run("tpm", "info", "--tpm", "bogus"),
                run("audit", "tail", "--db", dir.resolve("none.db").toString()), run("tpm"))) {
            assertTrue(r.err().startsWith("error: "), r.err());
            assertFalse(r.err().contains("\u001B"), "no ESC when not a terminal: " + r.err());
        }
        Run help = run("tpm", "--help");
        assertFalse(help.out().contains("\u001B"), help.out());
    }

    @Test
    void onATerminal_errorIsRed() {
        CommandLine cli = Main.commandLine(Map.of());
        cli.setColorScheme(CommandLine.Help.defaultColorScheme(Ansi.ON));
        for (Run r : List.of(run(cli, "tpm", "info", "--bogus"), run(cli, "tpm", "info", "--tpm", "bogus"))) {
            String beforeLabel = r.err().substring(0, Math.max(0, r.err().indexOf("error:")));
            assertTrue(beforeLabel.startsWith("\u001B[") && beforeLabel.contains("31"), "red: " + r.err());
            assertTrue(r.lastErrLine().startsWith("see: "), "the rest stays plain: " + r.err());
        }
    }

    @Test
    void noColor_turnsColoursOff_whenSetAndNotEmpty() {
        assertSame(Ansi.OFF, Main.ansi(Map.of("NO_COLOR", "1")));
        assertSame(Ansi.AUTO, Main.ansi(Map.of("NO_COLOR", "")));
        assertSame(Ansi.AUTO, Main.ansi(Map.of()));
        CommandLine cli = Main.commandLine(Map.of("NO_COLOR", "yes"));
        for (CommandLine c : allCommands(cli)) {
            assertSame(Ansi.OFF, c.getColorScheme().ansi(), c.getCommandSpec().qualifiedName());
        }
    }

    @Test
    void stackTraces_onlyWithDebugLogging() {
        Run quiet = run(Main.commandLine(Map.of()), "tpm", "info", "--tpm", "bogus");
        assertFalse(quiet.err().contains("\tat "), quiet.err());
        Run debug = run(Main.commandLine(Map.of("TPMPHONE_LOG", "debug")), "tpm", "info", "--tpm", "bogus");
        assertTrue(debug.err().contains("\tat io.tpmphone.tpm.TpmUri"), debug.err());
        assertEquals("see: tpmphone tpm info --help", debug.lastErrLine(), "what to do next still comes last");
    }

    // ------------------------------------------------------------------------------------------------ helpers

    /** A certificate that parses but that no server presents. */
    private static Path testCertificate(Path dir) throws Exception {
        try (InputStream in = MainTest.class.getResourceAsStream("test-server-cert.pem")) {
            Path cert = dir.resolve("tls-cert.pem");
            Files.write(cert, in.readAllBytes());
            return cert;
        }
    }

    /** The footer lines after an "Example:"/"Examples:" heading, continuation lines ({@code \}) joined. */
    private static List<String> exampleLines(String usage) {
        List<String> examples = new ArrayList<>();
        boolean inExamples = false;
        StringBuilder pending = new StringBuilder();
        for (String line : usage.lines().toList()) {
            if (line.matches("Examples?:\\s*")) {
                inExamples = true;
                continue;
            }
            if (!inExamples) {
                continue;
            }
            if (line.isBlank() || !line.startsWith(" ")) {
                break;
            }
            String text = line.strip();
            if (text.endsWith("\\")) {
                pending.append(text, 0, text.length() - 1).append(' ');
                continue;
            }
            examples.add((pending + text).strip());
            pending.setLength(0);
        }
        return examples;
    }

    /** "tpmphone tpm pcrread" of "TPMPHONE_TPM=x ./tpmphone tpm pcrread --pcrs ...": the command words. */
    private static String commandOf(String example) {
        List<String> words = new ArrayList<>(words(example));
        if (words.isEmpty()) {
            return "";
        }
        words.set(0, words.get(0).replaceFirst("^\\./", ""));
        StringBuilder command = new StringBuilder();
        for (String w : words) {
            if (w.startsWith("-")) {
                break;
            }
            command.append(command.length() == 0 ? "" : " ").append(w);
        }
        return command.toString();
    }

    /** A shell line's words: quotes removed, leading VAR=value dropped, up to a comment or redirection. */
    private static List<String> words(String line) {
        List<String> words = new ArrayList<>();
        StringBuilder word = null;
        char quote = 0;
        for (int i = 0; i < line.length(); i++) {
            char ch = line.charAt(i);
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
        while (!words.isEmpty() && words.get(0).matches("[A-Z_]+=.*")) {
            words.remove(0);
        }
        return words;
    }
}
