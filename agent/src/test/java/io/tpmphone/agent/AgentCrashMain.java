package io.tpmphone.agent;

import io.tpmphone.keystore.KeystoreException;
import io.tpmphone.keystore.SrtpKeys;
import io.tpmphone.keystore.SrtpSuite;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.List;

/**
 * An agent in its own JVM that a test drives over stdin and kills with SIGKILL in the middle of an operation
 * ({@link AgentCrashIT}). Arguments: TPM URI, server URI, server TLS certificate PEM file, state directory, host,
 * jar, config, child user[, enrollment token]. Prints {@code STARTED level logState}, then answers one line per
 * command: {@code release} (an SRTP key from the sealed keystore, as the broker hands one to the softphone: {@code
 * RELEASED} or {@code REFUSED reason}), {@code attest} ({@code LEVEL level}), {@code status} ({@code STATUS level
 * logState}) and {@code handles} ({@code HANDLES transient sessions}: what the TPM holds, read through the agent's own
 * connection, the only one swtpm serves). End of stdin closes the agent (its softphone stopped) and exits.
 */
public final class AgentCrashMain {
    private AgentCrashMain() {
    }

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.US_ASCII);
        X509Certificate cert;
        try (var in = Files.newInputStream(Path.of(args[2]))) {
            cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        TpmClient tpm = TpmClient.open(TpmUri.parse(args[0]));
        AttestationClient client = new AttestationClient(URI.create(args[1]), cert, Duration.ofSeconds(10));
        LaunchSpec spec = Fixture.spec(Path.of(args[5]), Path.of(args[6]), List.of()).withChildUser(args[7]);
        Agent agent = new Agent(tpm, client, Path.of(args[3]), args[4], Fixture.PCR, spec, Duration.ofHours(1),
                Clock.systemUTC()).withEnrollmentToken(args.length > 8 ? args[8] : null);
        Agent.Status s = agent.start();
        out.println("STARTED " + s.levelName() + " " + s.logState());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        int n = 0;
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            switch (line) {
                case "release" -> {
                    try {
                        SrtpKeys k = agent.childService().srtpKey("crash-call-" + n++,
                                SrtpSuite.AES_CM_128_HMAC_SHA1_80);
                        k.destroy();
                        out.println("RELEASED");
                    } catch (KeystoreException e) {
                        out.println("REFUSED " + e.reason());
                    }
                }
                case "attest" -> out.println("LEVEL " + agent.attestNow().levelName());
                case "status" -> out.println("STATUS " + agent.status().levelName() + " " + agent.status().logState());
                case "handles" -> out.println("HANDLES " + tpm.handles(TpmClient.HandleType.TRANSIENT).size() + " "
                        + tpm.handles(TpmClient.HandleType.LOADED_SESSION).size());
                default -> out.println("UNKNOWN " + line);
            }
        }
        agent.close(); // stdin closed: stop the softphone as an operator's stop would
        tpm.close();
        System.exit(0);
    }
}
