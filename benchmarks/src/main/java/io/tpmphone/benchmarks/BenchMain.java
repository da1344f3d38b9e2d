package io.tpmphone.benchmarks;

import io.tpmphone.cli.Main;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The entry point of {@code ./tpmphone bench …}: a {@code tpmphone} command tree with only {@link BenchCommand}, run
 * by the script on this module's class path ({@code benchmarks/target/tpmphone-benchmarks.jar} and
 * {@code benchmarks/target/lib/}), which has JMH and the benchmark rig. The CLI's distribution has neither, and the
 * CLI does not depend on this module; the error reports and colours are the CLI's ({@link Main#withConventions}).
 */
@Command(name = "tpmphone", mixinStandardHelpOptions = true,
        description = "tpmphone's benchmarks (not part of the distribution; see benchmarks/README.md).",
        subcommands = {BenchCommand.class, SoakCommand.class, CrashTestCommand.class},
        footer = {"", "Examples:", "  ./tpmphone bench --help", "  ./tpmphone soak --help"})
public final class BenchMain implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(commandLine(System.getenv()).execute(args));
    }

    /** The bench command tree with the CLI's conventions (error reports, colours). */
    static CommandLine commandLine(Map<String, String> env) {
        return Main.withConventions(new CommandLine(new BenchMain()), env);
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
