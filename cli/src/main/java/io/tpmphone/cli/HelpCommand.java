package io.tpmphone.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Help.ColorScheme;
import picocli.CommandLine.Parameters;

/**
 * {@code tpmphone help [COMMAND...]}: picocli's help command, but for nested commands too ({@code help tpm quote}),
 * with the standard options and an example like every other command.
 */
@Command(name = "help", helpCommand = true, mixinStandardHelpOptions = true,
        description = "Show the usage help of tpmphone or of one of its commands (the same as COMMAND --help).",
        footer = {"", "Examples:", "  tpmphone help tpm", "  tpmphone help tpm quote"})
final class HelpCommand implements CommandLine.IHelpCommandInitializable2, Runnable {
    @Parameters(paramLabel = "COMMAND", arity = "0..*", description = "a command and its subcommands, e.g. tpm quote")
    List<String> commands = new ArrayList<>();

    private CommandLine self;
    private ColorScheme colorScheme;
    private PrintWriter out;

    @Override
    public void init(CommandLine helpCommandLine, ColorScheme colors, PrintWriter outWriter, PrintWriter errWriter) {
        this.self = helpCommandLine;
        this.colorScheme = colors;
        this.out = outWriter;
    }

    @Override
    public void run() {
        CommandLine target = self.getParent();
        for (String name : commands) {
            CommandLine sub = target.getSubcommands().get(name);
            if (sub == null) {
                throw new CommandLine.ParameterException(target, target.getCommandSpec().qualifiedName()
                        + " has no command '" + name + "'");
            }
            target = sub;
        }
        target.usage(out, colorScheme);
        out.flush();
    }
}
