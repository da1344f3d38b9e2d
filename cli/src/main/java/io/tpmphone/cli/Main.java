package io.tpmphone.cli;

import java.io.PrintWriter;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Help.Ansi;

/**
 * The {@code tpmphone} command. Logs go to stderr; results to stdout ({@code --json} where a command reports).
 * Errors are one {@code error:} line (red on a terminal), the causes, and a last line with what to do next.
 */
@Command(name = "tpmphone", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "A softphone host whose integrity a peer can verify before it talks to it.",
        subcommands = {ServerCommand.class, AgentCommand.class, PolicyCommand.class, EnrollmentTokenCommand.class,
                AuditCommand.class, PhoneCommands.Call.class, PhoneCommands.Phone.class,
                SwtpmCommand.class, TpmCommand.class, DemoCommand.class,
                HelpCommand.class},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:ok", "1:the operation failed", "2:usage error (the message says which option)"},
        footer = {"", "Examples:", "  tpmphone swtpm start --json",
                "  tpmphone tpm info --tpm device:/dev/tpmrm0",
                "  tpmphone help tpm quote",
                "", "Every command has --help with an example.",
                "", "Environment:",
                "  TPMPHONE_TPM   default --tpm of the tpm commands (default device:/dev/tpmrm0)",
                "  TPMPHONE_HOME  where `swtpm start` keeps its instances (default ~/.tpmphone)",
                "  TPMPHONE_LOG   log level on stderr (default warn); debug also prints the stack",
                "                 trace of an error",
                "  NO_COLOR       if set and not empty: no colours (there are none when piped)",
                "", "Benchmarks are not part of this program: ./tpmphone bench --help runs them",
                "from the benchmarks module (benchmarks/README.md). Nor is fuzzing:",
                "./tpmphone fuzz --help lists the fuzz targets and runs them (docs/fuzzing.md).",
                "Nor are ./tpmphone crash-test and ./tpmphone soak (kill -9 under load, an hour",
                "of calls; docs/robustness.md)."})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (0 ok, 1 the operation failed, 2 usage error). */
    public static int run(String... args) {
        return commandLine(System.getenv()).execute(args);
    }

    /** As {@link #run(String...)}, with the commands' standard output and error going to {@code out} and {@code err}. */
    static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cli = commandLine(System.getenv());
        cli.setOut(out);
        cli.setErr(err);
        try {
            return cli.execute(args);
        } finally {
            out.flush();
            err.flush();
        }
    }

    /**
     * The whole command tree, its colours decided by {@link #ansi} and its error handlers installed: usage errors
     * (exit 2) and failed operations (exit 1, or 2 for a value that parsed but means nothing) both end with what to
     * do next; stack traces only with {@code TPMPHONE_LOG=debug}.
     */
    static CommandLine commandLine(Map<String, String> env) {
        return withConventions(new CommandLine(new Main()), env);
    }

    /**
     * Gives {@code cli} what every tpmphone command does (see {@link #commandLine}): colours, and usage errors and
     * failed operations reported with what to do next. Public for the benchmark commands ({@code ./tpmphone bench}),
     * a command tree of their own outside this distribution. Returns {@code cli}.
     */
    public static CommandLine withConventions(CommandLine cli, Map<String, String> env) {
        cli.setColorScheme(CommandLine.Help.defaultColorScheme(ansi(env)));
        boolean stackTraces = ErrorReport.stackTraces(env);
        cli.setParameterExceptionHandler((ex, args) -> usageError(ex, stackTraces));
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            PrintWriter err = commandLine.getErr();
            if (stackTraces) {
                ex.printStackTrace(err);
            }
            ErrorReport report = ErrorReport.of(ex, commandLine);
            report.print(err, commandLine.getColorScheme().ansi());
            return report.exitCode();
        });
        return cli;
    }

    /**
     * {@link Ansi#OFF} if {@code NO_COLOR} is set and not empty (https://no-color.org), otherwise {@link Ansi#AUTO}:
     * colours on a terminal, none when output is piped, and the {@code picocli.ansi} system property obeyed.
     */
    static Ansi ansi(Map<String, String> env) {
        String noColor = env.get("NO_COLOR");
        return noColor != null && !noColor.isEmpty() ? Ansi.OFF : Ansi.AUTO;
    }

    /**
     * An option or argument picocli could not take: the message, picocli's suggestions, the synopsis (or the
     * command list of a command that needs a subcommand), and where the full help is. No usage dump.
     */
    private static int usageError(CommandLine.ParameterException ex, boolean stackTraces) {
        CommandLine cmd = ex.getCommandLine();
        PrintWriter err = cmd.getErr();
        if (stackTraces) {
            ex.printStackTrace(err);
        }
        CommandLine.Help help = cmd.getHelp();
        err.println(ErrorReport.red(cmd.getColorScheme().ansi(), "error:") + " " + ex.getMessage());
        CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
        if (cmd.getSubcommands().isEmpty()) {
            err.print("usage: " + help.synopsis(0));
        } else {
            err.print(help.commandListHeading() + help.commandList());
        }
        err.println("see: " + cmd.getCommandSpec().qualifiedName() + " --help");
        err.flush();
        return cmd.getExitCodeExceptionMapper() != null ? cmd.getExitCodeExceptionMapper().getExitCode(ex)
                : cmd.getCommandSpec().exitCodeOnInvalidInput();
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"tpmphone " + (v == null ? "(development build)" : v)};
        }
    }
}
