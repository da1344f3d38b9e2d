package io.tpmphone.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.ReleaseManifest;
import io.tpmphone.attestation.AttestationPolicy;
import io.tpmphone.cli.internal.Pem;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** The integrity-level policy: show it, approve a softphone release. */
@Command(name = "policy", mixinStandardHelpOptions = true,
        description = "Show the attestation policy or approve a softphone release in it.",
        footer = {"", "Examples:", "  tpmphone policy show --server https://127.0.0.1:8443 \\",
                "      --server-cert tls-cert.pem --admin-token-file admin.token",
                "  tpmphone policy approve --name softphone-1.2 --policy policy.json \\",
                "      --out policy.json"},
        subcommands = {PolicyCommand.Show.class, PolicyCommand.Approve.class})
final class PolicyCommand {

    static final class ServerOptions {
        @Option(names = "--server", required = true, description = "attestation server URL")
        URI server;
        @Option(names = "--server-cert", required = true, description = "the server's TLS certificate (PEM)")
        Path serverCert;
        @Option(names = "--admin-token-file", required = true, description = "file holding the admin token")
        Path adminTokenFile;

        AttestationClient client() throws Exception {
            return new AttestationClient(requireHttps(server), Pem.certificates(serverCert).get(0),
                    Duration.ofSeconds(15));
        }
    }

    /** The server speaks HTTPS only: an http:// URL would fail later with an HTTP parser error. */
    static URI requireHttps(URI server) {
        if (!"https".equalsIgnoreCase(server.getScheme()) || server.getHost() == null) {
            throw new IllegalArgumentException("--server must be an https://HOST:PORT URL, e.g."
                    + " https://127.0.0.1:8443, got '" + server + "'");
        }
        return server;
    }

    @Command(name = "show", mixinStandardHelpOptions = true, description = "The policy in force at a server.",
            footer = {"", "Example:", "  tpmphone policy show --server https://127.0.0.1:8443 \\",
                    "      --server-cert tls-cert.pem --admin-token-file admin.token"})
    static final class Show implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @ArgGroup(exclusive = false, multiplicity = "1")
        ServerOptions server;

        @Override
        public Integer call() throws Exception {
            JsonNode policy = server.client().get("/v1/policy", Pem.secret(server.adminTokenFile, false));
            spec.commandLine().getOut().println(TpmCommand.JSON.writeValueAsString(policy));
            return 0;
        }
    }

    @Command(name = "approve", mixinStandardHelpOptions = true,
            description = {"Approve a softphone release: measure what the agent would launch (same options as",
                    "`agent run`) and add it to a policy as a new version — a policy file (--policy/--out), a",
                    "server (--server ...), or just print the release entry. No re-sealing is needed."},
            footer = {"", "Examples:", "  tpmphone policy approve --name softphone-1.2 --config softphone.properties",
                    "  tpmphone policy approve --name softphone-1.2 --state /var/lib/tpmphone-agent \\",
                    "      --host $(hostname)",
                    "  tpmphone policy approve --name softphone-1.2 --policy policy.json \\",
                    "      --out policy.json",
                    "  tpmphone policy approve --name softphone-1.2 --server https://127.0.0.1:8443 \\",
                    "      --server-cert tls-cert.pem --admin-token-file admin.token"})
    static final class Approve implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Option(names = "--name", required = true, description = "release name")
        String name;
        @Option(names = "--state", defaultValue = ".", description = "agent state directory for the default"
                + " configuration file (default: current directory)")
        Path state;
        @Option(names = "--host", description = "create STATE/softphone.properties for this host if it is missing,"
                + " exactly as `agent run --host` would (so both measure the same file)")
        String host;
        @ArgGroup(exclusive = false)
        AgentCommand.LaunchOptions launch = new AgentCommand.LaunchOptions();
        @Option(names = "--policy", description = "policy file to add the release to")
        Path policyFile;
        @Option(names = "--out", description = "where to write the new policy (default: stdout)")
        Path out;
        @ArgGroup(exclusive = false)
        ServerOptions server;

        @Override
        public Integer call() throws Exception {
            Map<String, Object> release = ReleaseManifest.of(name, launch.spec(state, host));
            if (policyFile == null && server == null) {
                spec.commandLine().getOut().println(TpmCommand.JSON.writeValueAsString(release));
                return 0;
            }
            if (policyFile != null && server != null) {
                throw new IllegalArgumentException("give either --policy or --server, not both");
            }
            String current = policyFile != null ? Files.readString(policyFile, StandardCharsets.UTF_8)
                    : server.client().get("/v1/policy", Pem.secret(server.adminTokenFile, false)).toString();
            ObjectNode policy = (ObjectNode) TpmCommand.JSON.readTree(current);
            policy.put("version", policy.path("version").asInt() + 1);
            ArrayNode releases = policy.withArray("releases");
            for (int i = releases.size() - 1; i >= 0; i--) {
                if (releases.get(i).path("name").asText().equals(name)) {
                    releases.remove(i);
                }
            }
            releases.add(TpmCommand.JSON.valueToTree(release));
            String next = TpmCommand.JSON.writeValueAsString(policy);
            AttestationPolicy.parse(next); // refuse to write what the server would refuse
            if (server != null) {
                JsonNode r = server.client().put("/v1/policy", next, Pem.secret(server.adminTokenFile, false));
                spec.commandLine().getOut().println("policy version " + r.path("version").asInt() + " approves "
                        + name);
            } else if (out != null) {
                Files.writeString(out, next + "\n", StandardCharsets.UTF_8);
                spec.commandLine().getOut().println("wrote policy version " + policy.get("version").asInt() + " to "
                        + out);
            } else {
                spec.commandLine().getOut().println(next);
            }
            return 0;
        }
    }
}
