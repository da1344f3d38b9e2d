package io.tpmphone.cli;

import io.tpmphone.swtpm.SwtpmProcess;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** A local swtpm for development and CI that outlives this command, stopped with {@code swtpm stop}. */
@Command(name = "swtpm", mixinStandardHelpOptions = true,
        description = "Start or stop a local swtpm (software TPM) for development and CI.",
        footer = {"", "Examples:", "  tpmphone swtpm start --name dev", "  tpmphone swtpm stop --name dev --purge"},
        subcommands = {SwtpmCommand.Start.class, SwtpmCommand.Stop.class})
final class SwtpmCommand {

    static Path home(String name) {
        String base = System.getProperty("tpmphone.home",
                System.getenv().getOrDefault("TPMPHONE_HOME", System.getProperty("user.home") + "/.tpmphone"));
        if (!name.matches("[A-Za-z0-9_.-]{1,64}") || name.equals(".") || name.equals("..")) {
            throw new IllegalArgumentException("--name must be 1-64 letters, digits, '.', '_' or '-', got '" + name + "'");
        }
        return Path.of(base, "swtpm", name);
    }

    /**
     * {@code text} as one word for a POSIX shell: single-quoted, a {@code '} in it as {@code '\''}. The TCTI holds the
     * instance's path, which may hold quotes of its own ({@code TPMPHONE_HOME} is the user's choice).
     */
    static String shellWord(String text) {
        return "'" + text.replace("'", "'\\''") + "'";
    }

    /** Creates {@code directory} with mode 0700, or makes an existing one 0700: it holds a TPM and its key. */
    static void ownerOnlyDirectory(Path directory) throws IOException {
        java.util.Set<java.nio.file.attribute.PosixFilePermission> ownerOnly =
                java.nio.file.attribute.PosixFilePermissions.fromString("rwx------");
        if (!Files.isDirectory(directory)) {
            Files.createDirectories(directory, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(ownerOnly));
        }
        Files.setPosixFilePermissions(directory, ownerOnly);
    }

    /** The names of the instances under {@code swtpmHome} that have a descriptor (were started, not stopped). */
    static List<String> instances(Path swtpmHome) throws IOException {
        if (!Files.isDirectory(swtpmHome)) {
            return List.of();
        }
        try (Stream<Path> dirs = Files.list(swtpmHome)) {
            return dirs.filter(d -> Files.exists(d.resolve("instance.json"))).map(d -> d.getFileName().toString())
                    .sorted().collect(Collectors.toList());
        }
    }

    @Command(name = "start", mixinStandardHelpOptions = true,
            description = {"Start a swtpm with its state in $TPMPHONE_HOME/swtpm/NAME (default ~/.tpmphone),",
                    "encrypted with a key of its own, reachable only by this user through Unix sockets in a private",
                    "directory. Prints the TPM URI to use with --tpm, or JSON."},
            footer = {"", "Examples:", "  tpmphone swtpm start --ek-cert --json",
                    "  tpmphone tpm info --tpm \"$(tpmphone swtpm start --uri-only)\""})
    static final class Start implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--name", defaultValue = "default", description = "instance name (default ${DEFAULT-VALUE})")
        String name;
        @Option(names = "--ek-cert", description = "provision EK certificates from a private test CA")
        boolean ekCert;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;
        @Option(names = "--uri-only", description = "print only the TPM URI")
        boolean uriOnly;

        @Override
        public Integer call() throws Exception {
            Path dir = home(name);
            Path descriptor = dir.resolve("instance.json");
            if (Files.exists(descriptor)) {
                Map<?, ?> existing = TpmCommand.JSON.readValue(descriptor.toFile(), Map.class);
                long pid = ((Number) existing.get("pid")).longValue();
                if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                    throw new IllegalStateException("swtpm '" + name + "' is already running (pid " + pid + ", "
                            + existing.get("tpmUri") + "); stop it with: tpmphone swtpm stop --name " + name);
                }
                Files.delete(descriptor);
            }
            ownerOnlyDirectory(dir.getParent());
            ownerOnlyDirectory(dir);
            // The state key is created beside the state (NAME/state.key), so a copy of NAME/state alone is useless.
            // Sockets at a stable place (NAME/run/server.sock), so the TPM URI stays the same across restarts.
            SwtpmProcess swtpm = SwtpmProcess.builder().stateDirectory(dir.resolve("state"))
                    .socketDirectory(dir.resolve("run")).withEkCertificate(ekCert).start();
            Path workDirectory = swtpm.detach();
            Map<String, Object> info = new LinkedHashMap<>();
            try {
                info.put("name", name);
                info.put("tpmUri", swtpm.tpmUri());
                info.put("tcti", swtpm.tctiString());
                info.put("serverSocket", swtpm.serverSocket().toString());
                info.put("controlSocket", swtpm.controlSocket().toString());
                info.put("pid", swtpm.pid());
                info.put("stateDirectory", swtpm.stateDirectory().toString());
                info.put("stateKeyFile", swtpm.stateKeyFile().toString());
                info.put("workDirectory", workDirectory.toString());
                // The descriptor is written before anything else can fail, so `stop` always finds the process.
                Files.writeString(descriptor, TpmCommand.JSON.writeValueAsString(info));
                if (ekCert) {
                    // The shared test CA lives in a temporary directory of this JVM: keep copies with the instance.
                    Path ca = Files.createDirectories(dir.resolve("ca"));
                    Files.copy(swtpm.caCertificate(), ca.resolve("issuer-cert.pem"),
                            java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    Files.copy(swtpm.rootCertificate(), ca.resolve("root-cert.pem"),
                            java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    info.put("caCertificate", ca.resolve("issuer-cert.pem").toString());
                    info.put("rootCertificate", ca.resolve("root-cert.pem").toString());
                    Files.writeString(descriptor, TpmCommand.JSON.writeValueAsString(info));
                }
            } catch (Exception e) {
                SwtpmProcess.stopDetached(swtpm.pid(), swtpm.serverSocket());
                Files.deleteIfExists(descriptor);
                SwtpmProcess.deleteDirectory(workDirectory);
                throw e;
            }
            PrintWriter out = spec.commandLine().getOut();
            if (json) {
                out.println(TpmCommand.JSON.writeValueAsString(info));
            } else if (uriOnly) {
                out.println(swtpm.tpmUri());
            } else {
                out.println("swtpm '" + name + "' running, pid " + swtpm.pid());
                out.println("  TPM URI:      " + swtpm.tpmUri() + "   (tpmphone ... --tpm URI)");
                out.println("  tpm2-tools:   export TPM2TOOLS_TCTI=" + shellWord(swtpm.tctiString()));
                out.println("  reachable by: this user (and root) only; state encrypted with " + swtpm.stateKeyFile());
                out.println("  stop with:    tpmphone swtpm stop --name " + name);
            }
            return 0;
        }
    }

    @Command(name = "stop", mixinStandardHelpOptions = true,
            description = "Stop a swtpm started with `tpmphone swtpm start` (state is kept unless --purge).",
            footer = {"", "Example:", "  tpmphone swtpm stop --name default --purge"})
    static final class Stop implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--name", defaultValue = "default", description = "instance name (default ${DEFAULT-VALUE})")
        String name;
        @Option(names = "--purge", description = "also delete the TPM state (EK, keys, NV)")
        boolean purge;

        @Override
        public Integer call() throws Exception {
            Path dir = home(name);
            Path descriptor = dir.resolve("instance.json");
            if (!Files.exists(descriptor)) {
                List<String> started = instances(dir.getParent());
                String next = started.isEmpty()
                        ? "nothing to stop: no swtpm started with `tpmphone swtpm start` is running"
                        : "started and not stopped: " + String.join(", ", started) + "; stop one with: tpmphone swtpm"
                        + " stop --name " + started.get(0);
                ErrorReport.of("no swtpm '" + name + "' is running (no " + descriptor + ")", next)
                        .print(spec.commandLine().getErr(), spec.commandLine().getColorScheme().ansi());
                return 1;
            }
            Map<?, ?> info = TpmCommand.JSON.readValue(descriptor.toFile(), Map.class);
            long pid = ((Number) info.get("pid")).longValue();
            if (info.get("serverSocket") != null) {
                SwtpmProcess.stopDetached(pid, Path.of(info.get("serverSocket").toString()));
            } else {
                // An instance started by an older tpmphone, on TCP ports.
                SwtpmProcess.stopDetached(pid, (String) info.get("host"), ((Number) info.get("port")).intValue());
            }
            Files.delete(descriptor);
            Object work = info.get("workDirectory");
            if (work != null) {
                SwtpmProcess.deleteDirectory(Path.of(work.toString()));
            }
            if (purge) {
                SwtpmProcess.deleteDirectory(dir);
            }
            spec.commandLine().getOut().println("swtpm '" + name + "' stopped" + (purge ? " and its state deleted" : ""));
            return 0;
        }
    }
}
