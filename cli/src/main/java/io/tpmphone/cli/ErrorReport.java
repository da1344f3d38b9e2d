package io.tpmphone.cli;

import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.agent.AttestationClientException;
import io.tpmphone.swtpm.SwtpmNotInstalledException;
import io.tpmphone.tpm.TpmTransportException;
import java.io.PrintWriter;
import java.net.BindException;
import java.net.ConnectException;
import java.nio.channels.UnresolvedAddressException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import javax.net.ssl.SSLException;
import picocli.CommandLine;
import picocli.CommandLine.Help.Ansi;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * What a person sees when a command fails: {@code error: what failed}, the causes not already said, and a last line
 * with what to do next ({@code next: ...}, or {@code see: tpmphone CMD --help} for a usage error). The library
 * messages say what failed; this class adds what the command line knows and they do not: which option named a file,
 * which command starts a swtpm or the server. "error:" is red when the colour scheme is on (a terminal, no NO_COLOR).
 * Immutable.
 */
final class ErrorReport {
    /** Exit code of a command whose operation failed. */
    static final int FAILED = 1;
    /** Exit code of a usage error (picocli's default for invalid input). */
    static final int USAGE = 2;

    /** What to give for a file option that names no file: by "command option" first, then by option. */
    private static final Map<String, String> FILE_ADVICE = Map.ofEntries(
            Map.entry("--server-cert", "give the server's TLS certificate, its STATE/keys/tls-cert.pem"
                    + " (`tpmphone server` prints the path when it starts)"),
            Map.entry("--admin-token-file", "give the admin token file the server was started with"
                    + " (`tpmphone server --admin-token-file`)"),
            Map.entry("--enrollment-token-file", "issue one with"
                    + " `tpmphone enrollment-token --host HOST --out FILE --server ...`"),
            Map.entry("--public-key", "give the server's STATE/keys/result-signing-cert.pem"),
            Map.entry("--db", "give the server's audit database, STATE/audit.db"),
            Map.entry("--export", "write one with `tpmphone audit export --db STATE/audit.db --json --out FILE`"),
            Map.entry("--ek-ca", "give the TPM manufacturer's CA certificate (PEM); for a swtpm started with"
                    + " --ek-cert, the caCertificate that `tpmphone swtpm start --json` prints"),
            Map.entry("server --admin-token-file", "pass --generate-admin-token to create it"),
            Map.entry("server --policy", "give a policy JSON file (docs/attestation.md), or start without one and"
                    + " add releases with `tpmphone policy approve --server ...`"),
            Map.entry("approve --policy", "give the policy file to add the release to, or leave --policy out to"
                    + " print the release entry"),
            Map.entry("--config", "give the softphone configuration, or leave --config out to use"
                    + " STATE/softphone.properties"));

    private final String message;
    private final List<String> causes;
    private final String lastLine;
    private final int exitCode;

    private ErrorReport(String message, List<String> causes, String lastLine, int exitCode) {
        this.message = message;
        this.causes = List.copyOf(causes);
        this.lastLine = lastLine;
        this.exitCode = exitCode;
    }

    /** A failure the command itself describes, with what to do next (may be null). */
    static ErrorReport of(String message, String next) {
        return new ErrorReport(message, List.of(), next == null ? null : "next: " + next, FAILED);
    }

    /**
     * The report of an exception thrown by {@code failed} (the command that ran, with its parsed options). An
     * {@link IllegalArgumentException} is a value that parsed but means nothing (bad TPM URI, PCR list, name): a usage
     * error.
     */
    static ErrorReport of(Throwable e, CommandLine failed) {
        String message = describe(e);
        List<String> causes = new ArrayList<>();
        StringBuilder said = new StringBuilder(message);
        for (Throwable cause = e.getCause(); cause != null && cause != e; cause = cause.getCause()) {
            // A wrapper often repeats its cause's message, and a cause without a message says nothing.
            if (cause.getMessage() != null && !cause.getMessage().isBlank() && !alreadySaid(said, cause)) {
                String text = describe(cause);
                causes.add(text);
                said.append('\n').append(text);
            }
        }
        CommandSpec spec = failed.getCommandSpec();
        if (e instanceof IllegalArgumentException) {
            return new ErrorReport(message, causes, "see: " + spec.qualifiedName() + " --help", USAGE);
        }
        return new ErrorReport(message, causes, nextStep(e, spec).map(s -> "next: " + s).orElse(null), FAILED);
    }

    int exitCode() {
        return exitCode;
    }

    /** The lines as printed with colours off. */
    List<String> lines() {
        List<String> lines = new ArrayList<>();
        // A message may quote a server's or a peer's words: rendered, never obeyed.
        lines.add("error: " + UntrustedText.forTerminal(message, 4000));
        causes.forEach(c -> lines.add("  caused by: " + UntrustedText.forTerminal(c, 4000)));
        if (lastLine != null) {
            lines.add(lastLine);
        }
        return lines;
    }

    /** Prints the report; "error:" in red if {@code ansi} is enabled. */
    void print(PrintWriter err, Ansi ansi) {
        List<String> lines = lines();
        err.println(red(ansi, "error:") + lines.get(0).substring("error:".length()));
        lines.subList(1, lines.size()).forEach(err::println);
        err.flush();
    }

    /** A fixed label such as {@code error:} (no picocli markup in it) in bold red when {@code ansi} is enabled. */
    static String red(Ansi ansi, String label) {
        return ansi.string("@|bold,red " + label + "|@");
    }

    /** Whether errors should show their stack trace: {@code TPMPHONE_LOG=debug} (or trace), as for the logs. */
    static boolean stackTraces(Map<String, String> env) {
        String level = env.getOrDefault("TPMPHONE_LOG", "");
        return level.equalsIgnoreCase("debug") || level.equalsIgnoreCase("trace");
    }

    /** A throwable's message for a person: file system errors say what happened to which file. */
    static String describe(Throwable t) {
        if (t instanceof NoSuchFileException) {
            return "no such file: " + ((NoSuchFileException) t).getFile();
        }
        if (t instanceof AccessDeniedException) {
            return "permission denied: " + ((AccessDeniedException) t).getFile();
        }
        String m = t.getMessage();
        return m == null || m.isBlank() ? t.getClass().getSimpleName() : m;
    }

    private static boolean alreadySaid(CharSequence said, Throwable cause) {
        String text = said.toString();
        if (cause instanceof NoSuchFileException || cause instanceof AccessDeniedException) {
            // "cannot open TPM device /dev/tpmrm0: no such file" says all that NoSuchFileException(/dev/tpmrm0) does.
            String file = ((FileSystemException) cause).getFile();
            String reason = cause instanceof NoSuchFileException ? "no such file" : "permission denied";
            return text.contains(file) && text.contains(reason);
        }
        return text.contains(describe(cause));
    }

    /** What to do next about the first cause the command line can say something about. */
    private static Optional<String> nextStep(Throwable e, CommandSpec spec) {
        List<Throwable> chain = new ArrayList<>();
        for (Throwable t = e; t != null && !chain.contains(t); t = t.getCause()) {
            chain.add(t);
        }
        if (find(chain, SwtpmNotInstalledException.class).isPresent()) {
            return Optional.of("install swtpm: apt-get install -y swtpm swtpm-tools (./tpmphone installs it when run"
                    + " as root)");
        }
        if (find(chain, TpmTransportException.class).isPresent()) {
            Optional<NoSuchFileException> missing = find(chain, NoSuchFileException.class);
            if (missing.isPresent()) {
                return Optional.of("no TPM at " + missing.get().getFile() + " here: check --tpm, or use a software"
                        + " TPM: `tpmphone swtpm start` prints a TPM URI to pass with --tpm");
            }
            Optional<AccessDeniedException> denied = find(chain, AccessDeniedException.class);
            if (denied.isPresent()) {
                return Optional.of("user " + System.getProperty("user.name") + " may not open "
                        + denied.get().getFile() + ": add it to group tss (sudo usermod -aG tss "
                        + System.getProperty("user.name") + ", then log in again) or run as root");
            }
            if (find(chain, ConnectException.class).isPresent()) {
                return Optional.of("check --tpm; `tpmphone swtpm start` starts a swtpm and prints its TPM URI");
            }
            return Optional.empty();
        }
        Optional<AttestationClientException> server = find(chain, AttestationClientException.class);
        if (server.isPresent()) {
            return serverNextStep(server.get(), chain, spec);
        }
        Optional<NoSuchFileException> missing = find(chain, NoSuchFileException.class);
        if (missing.isPresent()) {
            String file = missing.get().getFile();
            Optional<String> option = optionNaming(spec, file);
            if (option.isEmpty()) {
                return Optional.of("check that " + file + " exists");
            }
            String advice = FILE_ADVICE.getOrDefault(spec.name() + " " + option.get(),
                    FILE_ADVICE.get(option.get()));
            return Optional.of(advice == null ? "check " + option.get() + ": " + file + " does not exist"
                    : option.get() + " " + file + " does not exist: " + advice);
        }
        Optional<AccessDeniedException> denied = find(chain, AccessDeniedException.class);
        if (denied.isPresent()) {
            String file = denied.get().getFile();
            String option = optionNaming(spec, file).map(o -> " (" + o + ")").orElse("");
            return Optional.of("user " + System.getProperty("user.name") + " may not use " + file + option
                    + ": run as the user that owns it, or change its permissions");
        }
        if (find(chain, BindException.class).isPresent() && spec.findOption("--listen") != null) {
            return Optional.of("another process listens there: stop it, or choose another --listen host:port");
        }
        return Optional.empty();
    }

    private static Optional<String> serverNextStep(AttestationClientException e, List<Throwable> chain,
                                                   CommandSpec spec) {
        if (e.status() == 0) {
            if (find(chain, SSLException.class).isPresent()) {
                return Optional.of("check --server-cert: it must be the certificate this server presents, its"
                        + " STATE/keys/tls-cert.pem; and --server must name a host in that certificate (server"
                        + " --tls-name)");
            }
            if (find(chain, UnresolvedAddressException.class).isPresent()) {
                return Optional.of("check --server: its host name does not resolve here");
            }
            return Optional.of("is the server running? check --server (`tpmphone server` prints the URL it serves)");
        }
        boolean admin = e.error().equals("unauthenticated") || e.error().equals("forbidden");
        if (admin && spec.findOption("--admin-token-file") != null) {
            return Optional.of("check --admin-token-file: it must hold the token the server was started with"
                    + " (`tpmphone server --admin-token-file`)");
        }
        return Optional.empty();
    }

    /** The option of {@code spec} whose value is {@code file} (a path or a list of paths), if any. */
    private static Optional<String> optionNaming(CommandSpec spec, String file) {
        Path wanted = Path.of(file).toAbsolutePath().normalize();
        for (OptionSpec option : spec.options()) {
            Object value;
            try {
                value = option.getValue();
            } catch (RuntimeException e) {
                continue; // an option of an argument group that was not given has no instance to read
            }
            Collection<?> values = value instanceof Collection ? (Collection<?>) value
                    : value == null ? List.of() : List.of(value);
            for (Object v : values) {
                if (v instanceof Path && ((Path) v).toAbsolutePath().normalize().equals(wanted)) {
                    return Optional.of(option.longestName());
                }
            }
        }
        return Optional.empty();
    }

    private static <T extends Throwable> Optional<T> find(List<Throwable> chain, Class<T> type) {
        return chain.stream().filter(type::isInstance).map(type::cast).findFirst();
    }
}
