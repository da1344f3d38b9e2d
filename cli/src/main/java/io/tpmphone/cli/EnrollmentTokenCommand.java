package io.tpmphone.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.attestation.OwnerOnlyFiles;
import io.tpmphone.cli.internal.Pem;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** Lets a new host name enroll: an operator's single-use token for that name. */
@Command(name = "enrollment-token", mixinStandardHelpOptions = true,
        description = {"Issue a single-use token that lets a new host enroll under one name.",
                "An EK certificate proves a genuine TPM, not the right to a name. Give the token to that",
                "host's agent (agent run --enrollment-token-file). Re-enrolling a host with its own TPM needs none."},
        footer = {"", "Example:", "  tpmphone enrollment-token --host host1 --out host1.token \\",
                "      --server https://127.0.0.1:8443 --server-cert tls-cert.pem \\",
                "      --admin-token-file admin.token"})
final class EnrollmentTokenCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    @Option(names = "--host", required = true, description = "the host name the token is for")
    String host;
    @Option(names = "--ttl", defaultValue = "86400", description = "validity in seconds (default ${DEFAULT-VALUE})")
    int ttl;
    @Option(names = "--out", description = "write the token to this file (owner-only) instead of stdout")
    Path out;
    @ArgGroup(exclusive = false, multiplicity = "1")
    PolicyCommand.ServerOptions server;

    @Override
    public Integer call() throws Exception {
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("host", host);
        request.put("ttlSeconds", ttl);
        JsonNode r = server.client().post("/v1/enrollment-tokens", request, Pem.secret(server.adminTokenFile, false));
        String token = r.get("enrollmentToken").asText();
        if (out != null) {
            // Owner-only from its first byte; an existing file (an earlier token) is replaced, not rewritten in place.
            OwnerOnlyFiles.replace(out, (token + "\n").getBytes(StandardCharsets.US_ASCII));
            spec.commandLine().getOut().println("enrollment token for " + host + " written to " + out + " (valid until "
                    + r.get("expiresAt").asText() + ")");
        } else {
            spec.commandLine().getOut().println(token);
        }
        return 0;
    }
}
