package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.tpmphone.agent.Agent;
import io.tpmphone.agent.AttestationClient;
import io.tpmphone.agent.Broker;
import io.tpmphone.agent.Fixture;
import io.tpmphone.agent.LaunchSpec;
import io.tpmphone.server.AttestationServer;
import io.tpmphone.softphone.BrokerHostIdentity;
import io.tpmphone.softphone.internal.BrokerClient;
import io.tpmphone.swtpm.SwtpmProcess;
import io.tpmphone.tls.PassportVerifier;
import io.tpmphone.tpm.TpmClient;
import io.tpmphone.tpm.TpmUri;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Two measured hosts, "alice" and "bob": each its own swtpm, agent and measured softphone core, one attestation server
 * trusting both EK CAs, and for each host the softphone's view of its broker (a broker session over the agent's child
 * service, the identity and key source the softphone gets).
 */
final class TwoHosts implements AutoCloseable {
    /** One host as its softphone sees it. */
    record Host(String name, Agent agent, TpmClient tpm, BrokerClient broker, BrokerHostIdentity identity) {
    }

    final AttestationServer server;
    final AttestationClient client;
    final Host alice;
    final Host bob;
    final PassportVerifier verifier;
    private final List<AutoCloseable> resources = new ArrayList<>();

    TwoHosts(Path dir) throws Exception {
        LaunchSpec spec = Fixture.spec(Fixture.softphoneJar(dir), Fixture.config(dir, "a=1\n"), List.of());
        SwtpmProcess tpmA = keep(SwtpmProcess.builder().withEkCertificate(true).start());
        SwtpmProcess tpmB = keep(SwtpmProcess.builder().withEkCertificate(true).start());
        AttestationServer.Builder b = AttestationServer.builder().stateDirectory(dir.resolve("server"))
                .adminToken(Fixture.ADMIN_TOKEN).policy(Fixture.policy(1, spec)).clock(Clock.systemUTC());
        for (SwtpmProcess t : List.of(tpmA, tpmB)) {
            for (X509Certificate ca : Fixture.caChain(t)) {
                b.trustEkCa(ca);
            }
        }
        server = b.start();
        client = Fixture.client(server);
        alice = host(dir, tpmA, "alice", spec);
        bob = host(dir, tpmB, "bob", spec);
        X509Certificate deviceCa = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(
                new ByteArrayInputStream(client.get("/v1/server", null).get("deviceCaCertificate").asText()
                        .getBytes(StandardCharsets.US_ASCII)));
        verifier = new PassportVerifier(server.resultVerificationKey(), List.of(deviceCa), Clock.systemUTC());
    }

    private Host host(Path dir, SwtpmProcess swtpm, String name, LaunchSpec spec) throws Exception {
        TpmClient tpm = keep(TpmClient.open(TpmUri.parse(swtpm.tpmUri())));
        Agent agent = keep(new Agent(tpm, client, dir.resolve(name), name, Fixture.PCR, spec, Duration.ofHours(1),
                Clock.systemUTC()).withEnrollmentToken(Fixture.enrollmentToken(client, name)));
        Agent.Status s = agent.start();
        assertEquals("MEASURED", s.level(), () -> name + ": " + s.reasons());
        Broker broker = keep(Broker.start(dir.resolve(name + "-broker"), agent.childService()));
        BrokerClient c = keep(BrokerClient.connect(broker.socketPath(), broker.token()));
        return new Host(name, agent, tpm, c, new BrokerHostIdentity(c));
    }

    private <T extends AutoCloseable> T keep(T resource) {
        resources.add(0, resource);
        return resource;
    }

    @Override
    public void close() throws Exception {
        for (AutoCloseable r : resources) {
            r.close();
        }
        server.close();
    }
}
