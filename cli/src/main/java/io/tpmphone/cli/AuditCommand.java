package io.tpmphone.cli;

import io.tpmphone.attestation.UntrustedText;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.server.audit.AuditReader;
import io.tpmphone.server.audit.AuditRecord;
import io.tpmphone.server.audit.AuditVerifier;
import io.tpmphone.server.audit.VerificationReport;
import io.tpmphone.server.audit.VerifyOptions;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.PublicKey;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** Offline tools for the attestation server's hash-chained audit log (docs/audit.md). */
@Command(name = "audit", mixinStandardHelpOptions = true,
        description = "Verify, export or show the attestation server's tamper-evident audit log.",
        footer = {"", "Examples:",
                "  tpmphone audit verify --db /var/lib/tpmphone-server/audit.db \\",
                "      --public-key /var/lib/tpmphone-server/keys/result-signing-cert.pem",
                "  tpmphone audit tail --db /var/lib/tpmphone-server/audit.db -n 50"},
        subcommands = {AuditCommand.Verify.class, AuditCommand.Export.class, AuditCommand.Tail.class,
                AuditCommand.Verifier.class})
final class AuditCommand {
    private static final ObjectMapper JSON = TpmCommand.JSON;

    /** {@code db} if it exists; otherwise the error names the file (and the command line, the option). */
    static Path existing(Path db) throws NoSuchFileException {
        if (!Files.exists(db)) {
            throw new NoSuchFileException(db.toString());
        }
        return db;
    }

    static final class Source {
        @Option(names = "--db", required = true, paramLabel = "FILE", description = "audit database (opened read-only)")
        Path db;
        @Option(names = "--export", required = true, paramLabel = "FILE",
                description = "JSON export from `tpmphone audit export`")
        Path export;
        @Option(names = "--database", required = true, paramLabel = "URL", description = "the shared audit log of"
                + " several server instances: jdbc:postgresql://HOST:PORT/DB?user=USER (read-only)")
        String database;
    }

    /** An SQLite audit file, or the shared log of several instances in PostgreSQL. */
    static final class Database {
        @Option(names = "--db", required = true, paramLabel = "FILE", description = "audit database")
        Path db;
        @Option(names = "--database", required = true, paramLabel = "URL", description = "the shared audit log of"
                + " several server instances: jdbc:postgresql://HOST:PORT/DB?user=USER")
        String database;

        AuditReader open() throws Exception {
            return db != null ? AuditReader.open(existing(db)) : AuditReader.openDatabase(database);
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true,
            description = {"Re-check every record hash, prev link and seq, and every checkpoint, of a database or an "
                    + "export, offline and read-only.",
                    "Exit 0 if intact; exit 1 and print the first problem otherwise (e.g. CHECKPOINT_MISSING at 1000,",
                    "NOT_CLOSED at 4001: records after the last checkpoint are not signed).",
                    "A log must end with the closing checkpoint the server writes when it stops; for a running",
                    "server's database (or an export of it) give --open, which accepts a short, recent unsigned tail",
                    "and says how many records it holds: nothing protects those records yet.",
                    "Without the signer's key a whole rewritten chain would look intact, so --public-key is required",
                    "unless --unsigned says you accept that (exit 3 then, even when the chain is consistent)."},
            footer = {"", "Examples:", "  tpmphone audit verify --db audit.db --public-key audit-key.pem",
                    "  tpmphone audit verify --export audit.json --public-key audit-key.pem"})
    static final class Verify implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @ArgGroup(exclusive = true, multiplicity = "1")
        Source source;
        @Option(names = "--public-key", paramLabel = "PEM",
                description = "checkpoint signer's public key or certificate (PEM), e.g. the server's"
                        + " keys/result-signing-cert.pem")
        Path publicKey;
        @Option(names = "--unsigned", description = "check the hash chain only, without signatures (exit 3 if"
                + " consistent)")
        boolean unsigned;
        @Option(names = "--open", description = "the log is still being written (a running server): accept"
                + " records after the last checkpoint if fewer than the checkpoint interval and recent")
        boolean open;
        @Option(names = "--accept-v1", description = "also accept checkpoints of the old v1 format, whose deletion"
                + " goes unnoticed (only for a log never opened by a server with checkpoint v2)")
        boolean acceptV1;
        @Option(names = "--expect-head", paramLabel = "SEQ:HASH", description = "also require that the log still"
                + " holds record SEQ with hash HASH: a head this command printed earlier and you kept where the"
                + " server cannot write. Shows a log cut back to an earlier clean state, which nothing in the file can")
        String expectHead;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            if (publicKey == null && !unsigned) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "give --public-key (the server's"
                        + " keys/result-signing-cert.pem) or, knowingly, --unsigned");
            }
            Optional<PublicKey> key = Optional.empty();
            if (publicKey != null) {
                key = Optional.of(AuditVerifier.publicKeyFromPem(Files.readString(publicKey)));
            }
            VerifyOptions options = open ? VerifyOptions.open(java.time.Clock.systemUTC()) : VerifyOptions.closed();
            if (acceptV1) {
                options = options.acceptV1();
            }
            if (expectHead != null) {
                options = expectedHead(spec.commandLine(), options, expectHead);
            }
            VerificationReport report;
            if (source.db != null) {
                report = AuditVerifier.verify(existing(source.db), key, options);
            } else if (source.database != null) {
                report = AuditVerifier.verify(source.database, key, options);
            } else {
                try (InputStream in = Files.newInputStream(source.export)) {
                    report = AuditVerifier.verifyExport(in, key, options);
                }
            }
            PrintWriter out = spec.commandLine().getOut();
            if (json) {
                ObjectNode node = JSON.createObjectNode();
                node.put("intact", report.intact());
                node.put("source", report.source());
                node.put("recordsChecked", report.recordsChecked());
                node.put("checkpointsChecked", report.checkpointsChecked());
                node.put("signaturesChecked", report.signaturesChecked());
                node.put("headSeq", report.headSeq());
                node.put("open", report.open());
                node.put("unsignedRecords", report.unsignedRecords());
                node.put("legacyCheckpoints", report.legacyCheckpoints());
                report.headHashHex().ifPresent(h -> node.put("headHash", h));
                report.firstProblem().ifPresent(p -> {
                    ObjectNode problem = node.putObject("firstProblem");
                    problem.put("seq", p.seq());
                    problem.put("kind", p.kind().name());
                    problem.put("message", p.message());
                });
                out.println(JSON.writeValueAsString(node));
            } else {
                out.println(UntrustedText.forTerminal(report.summary(), 4000));
                if (report.intact() && report.unsignedRecords() > 0) {
                    spec.commandLine().getErr().println(spec.commandLine().getColorScheme().ansi().string(
                            "@|bold,yellow warning:|@") + " " + report.unsignedRecords() + " records after the last"
                            + " checkpoint are not signed yet; they could be cut off or rewritten unnoticed. Keep the"
                            + " head above to detect that later");
                }
                if (report.legacyCheckpoints() > 0) {
                    spec.commandLine().getErr().println(spec.commandLine().getColorScheme().ansi().string(
                            "@|bold,yellow warning:|@") + " " + report.legacyCheckpoints() + " v1 checkpoints"
                            + " accepted: deleting one of them would go unnoticed");
                }
                if (!report.signaturesChecked()) {
                    spec.commandLine().getErr().println(spec.commandLine().getColorScheme().ansi().string(
                            "@|bold,yellow warning:|@") + " checkpoint signatures not checked; pass --public-key to"
                            + " detect a chain rewritten after the last good record");
                }
            }
            out.flush();
            if (!report.intact()) {
                return 1;
            }
            return report.signaturesChecked() ? 0 : 3;
        }
    }

    private static VerifyOptions expectedHead(picocli.CommandLine commandLine, VerifyOptions options, String value) {
        int colon = value.indexOf(':');
        String seqText = colon < 0 ? "" : value.substring(0, colon);
        String hashText = colon < 0 ? "" : value.substring(colon + 1);
        long seq;
        byte[] hash;
        try {
            seq = Long.parseLong(seqText);
            hash = java.util.HexFormat.of().parseHex(hashText);
            return options.expectHead(seq, hash);
        } catch (IllegalArgumentException e) {
            throw new picocli.CommandLine.ParameterException(commandLine, "--expect-head must be SEQ:HASH as `audit "
                    + "verify` prints the head (\"head 4039 694b…\": 4039:694b…, 64 hex digits), got "
                    + UntrustedText.forTerminal(value, 100));
        }
    }

    @Command(name = "export", mixinStandardHelpOptions = true,
            description = "Write all records and signed checkpoints as one JSON document that `audit verify --export` "
                    + "checks offline. Reads the database read-only; safe while the server runs.",
            footer = {"", "Example:", "  tpmphone audit export --db audit.db --json --out audit.json"})
    static final class Export implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @ArgGroup(exclusive = true, multiplicity = "1")
        Database source;
        @Option(names = "--json", required = true, description = "export as JSON (the only format)")
        boolean json;
        @Option(names = "--out", paramLabel = "FILE", description = "write to FILE instead of standard output")
        Path out;
        @Option(names = "--public-key", paramLabel = "PEM", description = "carry the checkpoint signer's public key"
                + " (e.g. the server's keys/result-signing-cert.pem) in the export, so the in-browser verifier"
                + " needs one file; refused if that key did not sign the log")
        Path publicKey;

        @Override
        public Integer call() throws Exception {
            Optional<PublicKey> key = Optional.empty();
            if (publicKey != null) {
                key = Optional.of(AuditVerifier.publicKeyFromPem(Files.readString(publicKey)));
            }
            try (AuditReader reader = source.open()) {
                if (out == null) {
                    PrintWriter writer = spec.commandLine().getOut();
                    reader.exportJson(writer, key);
                    writer.println();
                    writer.flush();
                } else {
                    // Written next to the target and moved, so a failed export never leaves a half file behind.
                    Path absolute = out.toAbsolutePath();
                    Path partial = Files.createTempFile(absolute.getParent(), absolute.getFileName() + ".", ".partial");
                    try {
                        try (OutputStream stream = Files.newOutputStream(partial)) {
                            reader.exportJson(stream, key);
                        }
                        Files.move(partial, absolute, StandardCopyOption.REPLACE_EXISTING,
                                StandardCopyOption.ATOMIC_MOVE);
                    } finally {
                        Files.deleteIfExists(partial);
                    }
                    spec.commandLine().getOut().println("exported " + reader.size() + " records to " + absolute);
                }
            }
            return 0;
        }
    }

    @Command(name = "verifier", mixinStandardHelpOptions = true,
            description = {"Write the in-browser verifier (verify.html and its static/ files) into a directory: open",
                    "verify.html in a browser and give it an export; it checks the chain and the checkpoint",
                    "signatures with the browser's WebCrypto, offline, with the verdicts of `audit verify`",
                    "(docs/console.md, \"Verify an export in the browser\"). Export with `audit export --public-key PEM`",
                    "so the export carries the key."},
            footer = {"", "Example:", "  tpmphone audit verifier --out audit-verifier"})
    static final class Verifier implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--out", required = true, paramLabel = "DIR", description = "directory to write into"
                + " (created if missing; files already there are replaced)")
        Path out;

        @Override
        public Integer call() throws Exception {
            List<Path> written = io.tpmphone.server.audit.BrowserVerifier.writeTo(out);
            for (Path p : written) {
                spec.commandLine().getOut().println("wrote " + p);
            }
            spec.commandLine().getOut().println("open " + out.toAbsolutePath().resolve("verify.html").toUri()
                    + " in a browser");
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    @Command(name = "tail", mixinStandardHelpOptions = true,
            description = "Show the last records of an audit database (read-only; does not verify them).",
            footer = {"", "Example:", "  tpmphone audit tail --db audit.db -n 50 --json"})
    static final class Tail implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @ArgGroup(exclusive = true, multiplicity = "1")
        Database source;
        @Option(names = "-n", defaultValue = "20", paramLabel = "N",
                description = "number of records (default ${DEFAULT-VALUE}, at most " + AuditReader.MAX_PAGE + ")")
        int n;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            if (n < 0 || n > AuditReader.MAX_PAGE) {
                throw new IllegalArgumentException("-n must be 0.." + AuditReader.MAX_PAGE + ", got " + n);
            }
            List<AuditRecord> records;
            try (AuditReader reader = source.open()) {
                records = reader.tail(n);
            }
            PrintWriter out = spec.commandLine().getOut();
            if (json) {
                ArrayNode array = JSON.createArrayNode();
                for (AuditRecord r : records) {
                    ObjectNode node = array.addObject();
                    node.put("seq", r.seq());
                    node.put("timestamp", r.timestamp().toString());
                    node.put("type", r.type().name());
                    node.put("subject", r.subject());
                    node.put("outcome", r.outcome());
                    node.set("detail", JSON.readTree(r.detailJson()));
                    node.put("prevHash", r.prevHashHex());
                    node.put("hash", r.hashHex());
                }
                out.println(JSON.writeValueAsString(array));
            } else {
                for (AuditRecord r : records) {
                    // subject, outcome and detail hold what hosts and peers sent: rendered, never obeyed
                    out.printf("%8d  %s  %-13s  %-24s  %-10s  %s  %s%n", r.seq(), r.timestamp(), r.type(),
                            UntrustedText.forTerminal(r.subject(), 200), UntrustedText.forTerminal(r.outcome(), 100),
                            r.hashHex().substring(0, 16), UntrustedText.forTerminal(r.detailJson(), 2000));
                }
            }
            out.flush();
            return 0;
        }
    }
}
