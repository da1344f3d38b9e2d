package io.tpmphone.agent;

import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.List;

/**
 * An agent in its own JVM, so a test can kill it with SIGKILL (a crash). Arguments: TPM URI, server URI, server TLS
 * certificate PEM file, state directory, host, jar, config[, enrollment token]. Prints the level on stdout, then runs until killed.
 */
public final class AgentProcessMain {
    private AgentProcessMain() {
    }

    public static void main(String[] args) throws Exception {
        X509Certificate cert;
        try (var in = Files.newInputStream(Path.of(args[2]))) {
            cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        TpmClient tpm = TpmClient.open(TpmUri.parse(args[0]));
        AttestationClient client = new AttestationClient(URI.create(args[1]), cert, Duration.ofSeconds(10));
        LaunchSpec spec = Fixture.spec(Path.of(args[5]), Path.of(args[6]), List.of());
        Agent agent = new Agent(tpm, client, Path.of(args[3]), args[4], Fixture.PCR, spec, Duration.ofHours(1),
                Clock.systemUTC()).withEnrollmentToken(args.length > 7 ? args[7] : null);
        System.out.println("LEVEL " + agent.start().levelName());
        System.out.flush();
        Thread.currentThread().join();
    }
}
