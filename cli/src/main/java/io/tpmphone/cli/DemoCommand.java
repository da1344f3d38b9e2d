package io.tpmphone.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** The end-to-end demo. Not built yet: it needs the attestation server, the agent and the softphone. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "The whole story on one machine: two TPM hosts, attestation, an attested SRTP call, a tamper.",
        footer = {"", "Example:", "  ./tpmphone demo"})
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().getErr().println("tpmphone demo is not built yet: it needs the attestation server, the agent"
                + " and the softphone (issues 3-6). What works today: `./tpmphone test`, `tpmphone swtpm start`,"
                + " `tpmphone tpm info|pcrread|quote`, `tpmphone bench tpm`.");
        return 3;
    }
}
