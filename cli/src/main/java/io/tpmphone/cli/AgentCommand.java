package io.tpmphone.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.agent.Agent;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.attestation.UntrustedText;
import io.tpmphone.cli.internal.Pem;
import io.tpmphone.softphone.PhoneConfig;
import io.tpmphone.softphone.SoftphoneMain;
import io.tpmphone.softphone.SoftphoneRelease;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** The host agent: enroll, measure and launch the softphone core, keep it attested. */
@Command(name = "agent", mixinStandardHelpOptions = true,
        description = "The host agent: enrollment, measured launch of the softphone core, broker, re-attestation.",
        footer = {"", "Examples:",
                "  tpmphone agent run --tpm device:/dev/tpmrm0 --host $(hostname) \\",
                "      --server https://attest.example:8443 --server-cert server-tls.pem \\",
                "      --state /var/lib/tpmphone-agent",
                "  tpmphone agent status --state /var/lib/tpmphone-agent"},
        subcommands = {AgentCommand.Run.class, AgentCommand.Status.class})
final class AgentCommand {

    /** How long `agent run` waits for the softphone to serve (it waits up to 60 s for its device certificate). */
    static final Duration SOFTPHONE_START = Duration.ofSeconds(90);

    /** What the agent launches, shared with `policy approve` so both measure the same thing. */
    static final class LaunchOptions {
        @Option(names = "--java-home", description = "JVM for the softphone core (default: this one)")
        Path javaHome;
        @Option(names = "--classpath", description = "jars of the softphone core, ':'-separated (default: the"
                + " distribution's softphone-core jar and its runtime dependencies)")
        String classPath;
        @Option(names = "--config", description = "softphone configuration file (default: STATE/softphone.properties,"
                + " created by `agent run` for sips:HOST@HOST on port 5061)")
        Path config;
        @Option(names = "--main-class", description = "main class (default: ${DEFAULT-VALUE})",
                defaultValue = "io.tpmphone.softphone.SoftphoneMain")
        String mainClass;
        @Option(names = "--jvm-option", description = "extra JVM option; repeatable")
        List<String> jvmOptions = new ArrayList<>();
        @Option(names = "--no-isolation", description = "do not use PID/mount/IPC namespaces (no HARDENED level)")
        boolean noIsolation;
        @Option(names = "--child-user", description = "the softphone core's own unprivileged user (default:"
                + " tpmphone-HOST-HASH, HASH from the full host name, created if missing; never a user other"
                + " processes run as, such as nobody)")
        String childUser;

        /**
         * The launch: the softphone-core jar and its runtime dependencies (from this distribution's lib/), the
         * configuration, the softphone's logging option first. Without --config, STATE/softphone.properties is used;
         * {@code host} non-null creates it if missing (a phone for sips:HOST@HOST on TLS port 5061 that needs MEASURED
         * peers). The softphone's configuration is checked here as the softphone will check it, so a release that
         * could never start is neither approved nor launched (the agent prepares everything else the child needs,
         * such as its control socket's directory, STATE/control/).
         *
         * @throws InvalidConfigurationException naming the file and the line when the configuration is not valid
         */
        LaunchSpec spec(Path state, String host) throws Exception {
            Path home = javaHome != null ? javaHome : Path.of(System.getProperty("java.home"));
            List<Path> jars = new ArrayList<>();
            if (classPath != null) {
                for (String p : classPath.split(":")) {
                    jars.add(Path.of(p).toAbsolutePath());
                }
            } else {
                jars.addAll(SoftphoneRelease.classPath(SoftphoneRelease.codeLocation()));
            }
            Path cfg = config;
            if (cfg == null) {
                cfg = state.resolve("softphone.properties");
                if (!Files.exists(cfg)) {
                    if (host == null) {
                        throw new IllegalArgumentException("no --config and no " + cfg + ": give --config, or run"
                                + " `tpmphone agent run` once to create the default configuration there");
                    }
                    OwnerOnlyFiles.createPrivateDirectories(state);
                    String user = host.replaceAll("[^A-Za-z0-9._~-]", "-");
                    OwnerOnlyFiles.writeNew(cfg, String.join("\n", "# tpmphone softphone core configuration (measured:"
                            + " a change needs a new approved release)", "sip.user=" + user, "sip.host=" + host,
                            "sip.address=127.0.0.1", "sip.tls.port=5061", "policy.1=default MEASURED reject", "")
                            .getBytes(StandardCharsets.UTF_8));
                }
            }
            List<Path> natives = List.of();
            List<String> options = new ArrayList<>();
            options.add(SoftphoneRelease.LOGGING_OPTION);
            if (mainClass.equals(SoftphoneMain.class.getName())
                    && checkConfiguration(cfg).audio().soundServer()) {
                // real audio: libjitsi's native libraries, from its jar into the measured code tree (docs/softphone.md)
                natives = io.tpmphone.softphone.media.NativeLibraries.extract(state.resolve("native"));
                options.add("-Djava.library.path=" + LaunchSpec.NATIVE_DIRECTORY);
            }
            options.addAll(jvmOptions);
            return new LaunchSpec(home, jars, cfg, mainClass, options, List.of(), !noIsolation)
                    .withChildUser(childUser != null ? childUser
                            : host != null ? LaunchSpec.childUserFor(host) : LaunchSpec.DEFAULT_CHILD_USER)
                    .withNativeLibraries(natives)
                    // an isolated child with real audio reads the client configuration its agent writes (measured)
                    .withSoundClient(!natives.isEmpty() && !noIsolation);
        }
    }

    /** A softphone configuration the softphone would refuse (exit 1: the operation failed, not the options). */
    static final class InvalidConfigurationException extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidConfigurationException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Reads {@code cfg} as the softphone will; the error names the file, the line and what to do. */
    static PhoneConfig checkConfiguration(Path cfg) throws InvalidConfigurationException {
        try {
            return PhoneConfig.read(cfg);
        } catch (IOException e) {
            throw new InvalidConfigurationException("cannot read the softphone configuration " + cfg + ": " + e, e);
        } catch (IllegalArgumentException e) {
            throw new InvalidConfigurationException("the softphone configuration " + cfg + " is not valid: "
                    + e.getMessage() + ". Fix it (see docs/softphone.md); a changed configuration is a new release"
                    + " to approve with `tpmphone policy approve`", e);
        }
    }

    @Command(name = "run", mixinStandardHelpOptions = true,
            description = {"Enroll (once), measure and launch the softphone core, and keep it attested until",
                    "interrupted. Writes STATE/status.json after every appraisal."},
            footer = {"", "Example:", "  tpmphone agent run --tpm device:/dev/tpmrm0 --host $(hostname) \\",
                    "      --server https://attest.example:8443 \\",
                    "      --server-cert /etc/tpmphone/server-tls.pem --state /var/lib/tpmphone-agent"})
    static final class Run implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--tpm", required = true, description = "TPM URI: device:/dev/tpmrm0, or"
                + " swtpm:socket=PATH for a swtpm's Unix socket (`tpmphone swtpm start` prints it)")
        String tpm;
        @Option(names = "--server", required = true, split = ",", paramLabel = "URL", description = {"attestation"
                + " server URL; repeatable or comma-separated for the instances of a cluster: the agent starts at one"
                + " chosen by --host and moves on when one fails (no answer, timeout, 5xx)"})
        List<URI> servers = new ArrayList<>();
        @Option(names = "--server-cert", paramLabel = "PEM", description = "the server's own TLS certificate (PEM) to"
                + " pin (one server, or instances that share it)")
        Path serverCert;
        @Option(names = "--server-ca", paramLabel = "PEM", description = "the private CA (PEM) that issues every"
                + " instance's TLS certificate; each URL's host name or IP must be in its certificate's SAN")
        Path serverCa;
        @Option(names = "--state", required = true, description = "agent state directory")
        Path state;
        @Option(names = "--host", required = true, description = "this host's name at the server")
        String host;
        @Option(names = "--pcr", defaultValue = "14", description = "measurement PCR (default ${DEFAULT-VALUE};"
                + " see docs/decisions/0003)")
        int pcr;
        @Option(names = "--interval", defaultValue = "60", description = "re-attestation interval, seconds")
        int interval;
        @Option(names = "--enrollment-token-file", description = "the operator's enrollment token for this host's"
                + " first enrollment (tpmphone enrollment-token)")
        Path enrollmentTokenFile;
        @Option(names = "--sound-server", description = "the host's PulseAudio (or PipeWire-Pulse) server,"
                + " unix:/PATH of its native socket, e.g. unix:/run/user/1000/pulse/native: the isolated softphone"
                + " (media.audio=pulseaudio) gets a socket into it only while it has a call. The agent must be a"
                + " client the server accepts (its user, or its cookie in PULSE_COOKIE)")
        String soundServer;
        @Option(names = "--sound-server-user", description = "the user the sound server runs as (the desktop user,"
                + " e.g. alice): it makes the per-call socket itself, in a directory of its own under "
                + "/run/tpmphone/sound that only it and the softphone's group may enter. Without it the sound server"
                + " must run as root")
        String soundServerUser;
        @Option(names = "--phrase-file", description = "a file holding the phrase the ring screen shows (one line,"
                + " 1..64 bytes): sealed into the keystore at start, so only the measured softphone can show it and a"
                + " look-alike prompt cannot. Delete the file afterwards")
        Path phraseFile;
        @picocli.CommandLine.ArgGroup(exclusive = false)
        LaunchOptions launch = new LaunchOptions();

        @Override
        public Integer call() throws Exception {
            AttestationClient client = client(servers, serverCert, serverCa, host);
            TpmClient tpmClient = TpmClient.open(TpmUri.parse(tpm));
            Agent agent = new Agent(tpmClient, client, state, host, pcr, launch.spec(state, host),
                    Duration.ofSeconds(interval), Clock.systemUTC()).withEnrollmentToken(enrollmentTokenFile == null
                    ? null : Pem.secret(enrollmentTokenFile, false));
            if (soundServer != null && soundServerUser != null) {
                agent.withSoundServer(soundServer, soundServerUser);
            } else if (soundServer != null) {
                agent.withSoundServer(soundServer);
            } else if (soundServerUser != null) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--sound-server-user needs"
                        + " --sound-server");
            }
            if (phraseFile != null) {
                List<String> lines = java.nio.file.Files.readAllLines(phraseFile, StandardCharsets.UTF_8);
                if (lines.size() != 1) {
                    throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--phrase-file "
                            + phraseFile + " must hold exactly one line, the phrase");
                }
                agent.withPhrase(lines.get(0).strip());
            }
            CountDownLatch stopped = new CountDownLatch(1);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                agent.close();
                tpmClient.close();
                stopped.countDown();
            }, "agent-shutdown"));
            Agent.Status s = agent.start();
            PrintWriter out = spec.commandLine().getOut();
            out.println("agent for " + host + ": " + s.levelName()
                    + (s.failedCheck() == null ? "" : " (" + UntrustedText.forTerminal(s.failedCheck(), 100) + ")")
                    + "; Ctrl-C stops it");
            out.flush();
            // The softphone waits for its device certificate (up to 60 s) before it serves.
            Agent.Softphone phone = agent.awaitSoftphone(SOFTPHONE_START);
            switch (phone.state()) {
                case READY -> out.println("softphone: " + UntrustedText.forTerminal(phone.detail()));
                case STOPPED -> out.println("softphone: " + UntrustedText.forTerminal(phone.detail()));
                case STARTING -> out.println("softphone: not serving after " + SOFTPHONE_START.toSeconds() + " s"
                        + " (see " + state.resolve("launch/child.log") + "; `tpmphone agent status` tells when it"
                        + " does)");
                case EXITED -> ErrorReport.of("the softphone core did not start: "
                                + UntrustedText.forTerminal(phone.detail()),
                        "fix what it names, then run the agent again (the agent keeps attesting this host until"
                                + " it is stopped)").print(spec.commandLine().getErr(),
                        spec.commandLine().getColorScheme().ansi());
            }
            out.flush();
            stopped.await();
            return 0;
        }
    }

    /**
     * The agent's client over {@code servers}, trusting either the pinned {@code cert} or the CA {@code ca} (exactly
     * one), starting at the server {@code host} hashes to.
     */
    static AttestationClient client(List<URI> servers, Path cert, Path ca, String host) throws Exception {
        if ((cert == null) == (ca == null)) {
            throw new IllegalArgumentException("give exactly one of --server-cert (the server's own certificate, to"
                    + " pin) and --server-ca (the CA that issues the instances' certificates)");
        }
        List<URI> https = new ArrayList<>();
        for (URI u : servers) {
            https.add(PolicyCommand.requireHttps(u));
        }
        AttestationClient.Builder b = AttestationClient.builder().servers(https).preferenceKey(host)
                .timeout(Duration.ofSeconds(15));
        if (cert != null) {
            b.pinnedCertificate(Pem.certificates(cert).get(0));
        } else {
            b.trustedCa(Pem.certificates(ca));
        }
        return b.build();
    }

    @Command(name = "status", mixinStandardHelpOptions = true,
            description = "The agent's current level and last appraisal (from STATE/status.json).",
            footer = {"", "Example:", "  tpmphone agent status --state /var/lib/tpmphone-agent --json"})
    static final class Status implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--state", required = true, description = "agent state directory")
        Path state;
        @Option(names = "--json", description = "machine-readable output")
        boolean json;

        @Override
        public Integer call() throws Exception {
            Path file = Agent.statusFile(state);
            if (!Files.exists(file)) {
                ErrorReport.of("no agent status in " + state + " (no " + file.getFileName() + ")", "check --state:"
                        + " it must be the --state of a `tpmphone agent run` that has appraised at least once")
                        .print(spec.commandLine().getErr(), spec.commandLine().getColorScheme().ansi());
                return 1;
            }
            JsonNode s = TpmCommand.JSON.readTree(file.toFile());
            PrintWriter out = spec.commandLine().getOut();
            if (json) {
                // Text from the server and the child may hold anything: non-ASCII is escaped, so no control or
                // bidi character reaches the terminal.
                out.println(TpmCommand.JSON.writer().with(com.fasterxml.jackson.core.json.JsonWriteFeature
                        .ESCAPE_NON_ASCII).writeValueAsString(s));
            } else {
                out.printf("host %s: %s%s%n  appraised %s, result valid until %s%n  log: %s, %d events; softphone"
                                + " pid %s (%s)%n", s.path("host").asText(), s.path("level").asText(),
                        s.hasNonNull("failedCheck") ? " (failed check " + s.get("failedCheck").asText() + ")" : "",
                        s.path("appraisedAt").asText(), s.path("expiresAt").asText(), s.path("logState").asText(),
                        s.path("measurements").asInt(), s.path("childPid").asText(),
                        s.path("childAlive").asBoolean() ? "running" : "not running");
                for (JsonNode r : s.path("reasons")) {
                    out.println("  - " + UntrustedText.forTerminal(r.asText()));
                }
                out.println(s.path("keysApproved").asBoolean() ? "  keystore: approved by the server"
                        : "  keystore: not approved (" + s.path("keyApprovalRefused").asText("no approval") + ")");
                out.println("  softphone: " + s.path("softphone").asText("unknown").toLowerCase(java.util.Locale.ROOT)
                        + (s.hasNonNull("softphoneDetail")
                        ? ", " + UntrustedText.forTerminal(s.get("softphoneDetail").asText()) : ""));
            }
            return 0;
        }
    }
}
