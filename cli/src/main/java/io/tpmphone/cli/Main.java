package io.tpmphone.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code tpmphone} command. Logs go to stderr; results to stdout ({@code --json} where a command reports). */
@Command(name = "tpmphone", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "A softphone host whose integrity a peer can verify before it talks to it.",
        subcommands = {ServerCommand.class, AgentCommand.class, PolicyCommand.class, EnrollmentTokenCommand.class,
                AuditCommand.class,
                SwtpmCommand.class, TpmCommand.class, BenchCommand.class, DemoCommand.class,
                CommandLine.HelpCommand.class},
        footer = {"", "Examples:", "  tpmphone swtpm start --json", "  tpmphone tpm info --tpm swtpm:host=127.0.0.1,port=2321",
                "", "Every command has --help with an example."})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (0 ok, 1 the operation failed, 2 usage error). */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            commandLine.getErr().println("error: " + ex.getMessage());
            Throwable cause = ex.getCause();
            while (cause != null) {
                commandLine.getErr().println("  caused by: " + cause.getMessage());
                cause = cause.getCause();
            }
            if (ex instanceof IllegalArgumentException) {
                // A value that parsed as an option but means nothing (bad TPM URI, PCR list, name): usage error.
                commandLine.getErr().println("see: " + commandLine.getCommandSpec().qualifiedName() + " --help");
                return 2;
            }
            return 1;
        });
        return cli.execute(args);
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
