package io.tpmphone.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.tpmphone.attestation.PcrSelection;
import io.tpmphone.attestation.PcrValues;
import io.tpmphone.attestation.TpmtPublic;
import io.tpmphone.cli.internal.Tpm2ToolsFiles;
import io.tpmphone.tpm.EkType;
import io.tpmphone.tpm.PersistentHandle;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmInfo;
import io.tpmphone.tpm.TpmQuote;
import io.tpmphone.tpm.TpmUri;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** TPM diagnostics against a TPM URI. */
@Command(name = "tpm", mixinStandardHelpOptions = true, description = "TPM diagnostics: info, pcrread, extend, quote.",
        footer = {"", "Examples:", "  tpmphone tpm info --tpm device:/dev/tpmrm0",
                "  TPMPHONE_TPM=device:/dev/tpmrm0 tpmphone tpm pcrread --pcrs sha256:0-7"},
        subcommands = {TpmCommand.Info.class, TpmCommand.PcrRead.class, TpmCommand.Extend.class,
                TpmCommand.Quote.class})
final class TpmCommand {

    /**
     * JSON for the terminal (every command's {@code --json}): indented, and every non-ASCII character escaped, so text
     * that others control (a peer's URI, a server's reason, a log line) cannot carry a control, bidi or invisible
     * character to the terminal; JSON itself escapes the ASCII controls.
     */
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
            .enable(com.fasterxml.jackson.core.json.JsonWriteFeature.ESCAPE_NON_ASCII.mappedFeature());
    /** {@link #JSON} on one line. */
    static final com.fasterxml.jackson.databind.ObjectWriter JSON_LINE = JSON.writer()
            .without(SerializationFeature.INDENT_OUTPUT);

    @Option(names = "--tpm", description = "TPM URI: device:/dev/tpmrm0, or swtpm:socket=PATH for a swtpm's Unix"
            + " socket (`tpmphone swtpm start` prints it; docs/tpm.md lists every form) (default: ${DEFAULT-VALUE}"
            + " or $TPMPHONE_TPM)", defaultValue = "${env:TPMPHONE_TPM:-device:/dev/tpmrm0}",
            scope = picocli.CommandLine.ScopeType.INHERIT)
    String tpm;

    TpmClient open() throws Exception {
        return TpmClient.open(TpmUri.parse(tpm));
    }

    @Command(name = "info", mixinStandardHelpOptions = true, description = "Manufacturer, firmware and spec revision.",
            footer = {"", "Examples:", "  tpmphone tpm info --tpm device:/dev/tpmrm0 --json",
                    "  tpmphone tpm info --tpm \"$(tpmphone swtpm start --uri-only)\""})
    static final class Info implements Callable<Integer> {
        @ParentCommand
        TpmCommand parent;
        @Spec
        CommandSpec spec;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            try (TpmClient client = parent.open()) {
                TpmInfo info = client.info();
                PrintWriter out = spec.commandLine().getOut();
                if (json) {
                    out.println(JSON.writeValueAsString(info));
                } else {
                    out.printf("TPM %s (spec level %d, revision %.2f)%nmanufacturer: %s%nvendor: %s%nfirmware: %s%n",
                            info.family(), info.specLevel(), info.specRevision(), info.manufacturer(),
                            info.vendorString(), info.firmwareVersion());
                }
                return 0;
            }
        }
    }

    @Command(name = "pcrread", mixinStandardHelpOptions = true, description = "Read PCR values.",
            footer = {"", "Example:", "  tpmphone tpm pcrread --tpm device:/dev/tpmrm0 --pcrs sha256:0,1,16"})
    static final class PcrRead implements Callable<Integer> {
        @ParentCommand
        TpmCommand parent;
        @Spec
        CommandSpec spec;
        @Option(names = "--pcrs", description = "bank:list, e.g. sha256:0-7,16", defaultValue = "sha256:0-23")
        String pcrs;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PcrSelection selection = PcrSelection.parse(pcrs);
            try (TpmClient client = parent.open()) {
                PcrValues values = client.pcrRead(selection);
                PrintWriter out = spec.commandLine().getOut();
                Map<String, String> byIndex = new LinkedHashMap<>();
                for (int pcr : selection.pcrs()) {
                    byIndex.put(Integer.toString(pcr), HexFormat.of().formatHex(values.value(pcr)));
                }
                if (json) {
                    out.println(JSON.writeValueAsString(Map.of("bank", selection.bank().name().toLowerCase(
                            java.util.Locale.ROOT), "pcrs", byIndex)));
                } else {
                    out.println(selection.bank().name().toLowerCase(java.util.Locale.ROOT) + ":");
                    byIndex.forEach((k, v) -> out.printf("  %2s: 0x%s%n", k, v.toUpperCase(java.util.Locale.ROOT)));
                }
                return 0;
            }
        }
    }

    @Command(name = "extend", mixinStandardHelpOptions = true,
            description = "Extend a SHA-256 PCR with a digest, or with the SHA-256 of a file.",
            footer = {"", "Example:", "  tpmphone tpm extend --tpm device:/dev/tpmrm0 --pcr 16 --file app.jar"})
    static final class Extend implements Callable<Integer> {
        @ParentCommand
        TpmCommand parent;
        @Spec
        CommandSpec spec;
        @Option(names = "--pcr", required = true, description = "PCR index 0..23")
        int pcr;
        @Option(names = "--digest", description = "32-byte SHA-256 digest in hex")
        String digest;
        @Option(names = "--file", description = "extend with the SHA-256 of this file")
        Path file;

        @Override
        public Integer call() throws Exception {
            if ((digest == null) == (file == null)) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "give exactly one of --digest or --file");
            }
            byte[] d = digest != null ? HexFormat.of().parseHex(digest)
                    : io.tpmphone.attestation.HashAlgorithm.SHA256.digest(Files.readAllBytes(file));
            try (TpmClient client = parent.open()) {
                client.pcrExtend(pcr, d);
                return 0;
            }
        }
    }

    @Command(name = "quote", mixinStandardHelpOptions = true,
            description = {"Quote PCRs and write files that tpm2_checkquote accepts.",
                    "The quote is signed by the host's attestation key (created under the RSA EK if absent); the",
                    "files are quote.msg (TPMS_ATTEST), quote.sig (TPMT_SIGNATURE), pcrs.bin (as tpm2_quote -o",
                    "writes it) and ak.pub.pem."},
            footer = {"", "Examples:",
                    "  tpmphone tpm quote --tpm device:/dev/tpmrm0 --pcrs sha256:0,1,16 \\",
                    "      --nonce abcd --out q",
                    "  tpm2_checkquote -u q/ak.pub.pem -m q/quote.msg -s q/quote.sig \\",
                    "      -f q/pcrs.bin -g sha256 -q abcd"})
    static final class Quote implements Callable<Integer> {
        @ParentCommand
        TpmCommand parent;
        @Spec
        CommandSpec spec;
        @Option(names = "--pcrs", required = true, description = "bank:list, e.g. sha256:0-7,16")
        String pcrs;
        @Option(names = "--nonce", required = true, description = "qualifying data in hex (at most 64 bytes)")
        String nonce;
        @Option(names = "--out", required = true, description = "directory to write the files to")
        Path out;
        @Option(names = "--ak", description = "persistent handle of the attestation key (default: ${DEFAULT-VALUE})",
                defaultValue = "0x81010010")
        String akHandle;

        @Override
        public Integer call() throws Exception {
            PcrSelection selection = PcrSelection.parse(pcrs);
            byte[] qualifyingData;
            try {
                qualifyingData = HexFormat.of().parseHex(nonce);
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--nonce must be hex digits, e.g. --nonce abcd (" + e.getMessage() + ")");
            }
            PersistentHandle ak = new PersistentHandle(Integer.parseUnsignedInt(akHandle.replaceFirst("^0x", ""), 16));
            try (TpmClient client = parent.open()) {
                TpmtPublic akPublic = client.readPublic(ak).orElse(null);
                if (akPublic == null) {
                    client.ensureEndorsementKey(EkType.RSA_2048);
                    akPublic = client.createAttestationKey(EkType.RSA_2048.defaultHandle(), ak);
                }
                TpmQuote quote = client.quote(ak, selection, qualifyingData);
                Files.createDirectories(out);
                Files.write(out.resolve("quote.msg"), quote.attest());
                Files.write(out.resolve("quote.sig"), quote.signature());
                Files.write(out.resolve("pcrs.bin"), Tpm2ToolsFiles.serializedPcrs(quote.pcrValues()));
                Files.writeString(out.resolve("ak.pub.pem"), akPublic.toPem(), StandardCharsets.US_ASCII);
                spec.commandLine().getOut().println("wrote quote.msg, quote.sig, pcrs.bin, ak.pub.pem to " + out);
                return 0;
            }
        }
    }
}
