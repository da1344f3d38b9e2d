package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.softphone.control.ControlServer;
import io.tpmphone.tls.AttestedTlsConfig;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control channel's {@code register}, {@code unregister} and {@code call} with {@code via} (the demo registers
 * the measured softphones at its kamailio through them; DemoIT shows them against the real proxy): malformed requests
 * get a reason and the channel stays usable, a registrar that is not there is a failed registration with a reason,
 * a call through a registration that does not exist is refused, and the password is never in a reply.
 */
@Timeout(60)
class ControlRegisterIT {
    private static final String PASSWORD = "pw-Do-Not-Echo-7f3a";

    @TempDir
    Path dir;

    @Test
    void register_malformedOrUnreachable_isRefusedWithAReason_andThePasswordNeverComesBack() throws Exception {
        TestHosts hosts = new TestHosts();
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, LOOPBACK)) {
            closedPort = s.getLocalPort(); // nothing listens there once closed
        }
        try (SipPhone phone = SipPhone.start(new SipPhone.Config("alice", "alice", LOOPBACK, TestHosts.freePort(),
                        0, 0, Duration.ofSeconds(5)),
                AttestedTlsConfig.of(hosts.identity("alice"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
             ControlServer control = ControlServer.start(phone, dir.resolve("control.sock"));
             ControlClient client = ControlClient.connect(control.path(), Duration.ofSeconds(10))) {
            String registrar = "127.0.0.1:" + closedPort;
            refused(() -> client.register("alice@example.test", registrar, "alice", PASSWORD, Duration.ofMinutes(1)),
                    "aor is sip:USER@DOMAIN");
            refused(() -> client.register("sip:alice@example.test", "127.0.0.1", "alice", PASSWORD,
                    Duration.ofMinutes(1)), "registrar is HOST:PORT");
            refused(() -> client.register("sip:alice@example.test", "127.0.0.1:70000", "alice", PASSWORD,
                    Duration.ofMinutes(1)), "the port of registrar must be 1..65535");
            refused(() -> client.register("sip:alice@example.test", registrar, "al ice", PASSWORD,
                    Duration.ofMinutes(1)), "user must be 1-64 characters");
            refused(() -> client.register("sip:alice@example.test", registrar, "alice", "",
                    Duration.ofMinutes(1)), "\"password\" (1-256 characters) is required");
            refused(() -> client.register("sip:alice@example.test", registrar, "alice", PASSWORD,
                    Duration.ofSeconds(1)), "expiresSeconds must be 2..86400");
            refused(() -> client.callVia("sip:bob@example.test", "sip:alice@example.test"),
                    "not registered as sip:alice@example.test");
            refused(() -> client.request(ControlClient.op("call").put("target", "sip:bob@example.test")
                    .put("via", "sip:alice@example.test").put("next", "127.0.0.1:5061")), "not both");
            refused(() -> client.unregister("sip:alice@example.test"), "no registration as sip:alice@example.test");
            // a registrar that is not there: a registration that failed, saying why
            JsonNode r = client.register("sip:alice@example.test", registrar, "alice", PASSWORD,
                    Duration.ofMinutes(1));
            assertTrue(!r.toString().contains(PASSWORD), () -> "no password in the reply: " + r);
            assertTrue(r.path("state").asText().equals("FAILED") && !r.path("reason").asText().isBlank(),
                    () -> "a failed registration with its reason: " + r);
            refused(() -> client.callVia("sip:bob@example.test", "sip:alice@example.test"), "(FAILED: ");
            JsonNode u = client.unregister("sip:alice@example.test");
            assertTrue(!u.toString().contains(PASSWORD), () -> "no password in the reply: " + u);
            assertEquals("alice", client.request(ControlClient.op("status")).path("uri").asText()
                    .replaceAll("^sips:([^@]+)@.*", "$1"), "the channel still serves");
        }
    }

    private interface Request {
        Object send() throws IOException;
    }

    private static void refused(Request request, String reason) {
        IOException e = assertThrows(IOException.class, request::send, "refused: " + reason);
        assertTrue(e.getMessage().contains(reason), () -> "the reply says \"" + reason + "\": " + e.getMessage());
        assertTrue(!e.getMessage().contains(PASSWORD), () -> "no password in the reply: " + e.getMessage());
    }
}
