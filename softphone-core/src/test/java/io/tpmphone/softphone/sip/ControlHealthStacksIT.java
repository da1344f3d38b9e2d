package io.tpmphone.softphone.sip;

import static io.tpmphone.softphone.sip.TestHosts.LOOPBACK;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.softphone.CallPolicy;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.softphone.control.ControlServer;
import io.tpmphone.tls.AttestedTlsConfig;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control channel's {@code health} op with {@code stacks} (issue 18: the soak asks both phones where their media
 * threads wait when a call's audio stalls): every thread's name, state and frames, over the real Unix socket.
 */
@Timeout(60)
class ControlHealthStacksIT {
    @TempDir
    Path dir;

    @Test
    void healthWithStacks_showsEveryThreadWhereItIs_andPlainHealthDoesNot() throws Exception {
        TestHosts hosts = new TestHosts();
        try (SipPhone phone = SipPhone.start(new SipPhone.Config("victim", "victim", LOOPBACK, TestHosts.freePort(),
                        0, 0, Duration.ofSeconds(15)),
                AttestedTlsConfig.of(hosts.identity("victim"), hosts.verifier(), Clock.systemUTC()),
                CallPolicy.parse("default FAILED accept"), TestHosts.keys(), new SipPhone.Listener() { },
                Clock.systemUTC());
             ControlServer control = ControlServer.start(phone, dir.resolve("control.sock"));
             ControlClient client = ControlClient.connect(control.path(), Duration.ofSeconds(10))) {
            JsonNode plain = client.health();
            assertFalse(plain.has("stacks"), "health without stacks, saw: " + plain);
            JsonNode health = client.healthWithStacks();
            JsonNode stacks = health.path("stacks");
            assertTrue(stacks.isArray() && stacks.size() >= health.path("threads").asInt() / 2,
                    "a stack per live thread (" + health.path("threads") + " threads), saw " + stacks.size());
            // this thread was inside the client's request, reading the answer, while the phone took the stacks
            String me = "\"" + Thread.currentThread().getName() + "\" ";
            boolean found = StreamSupport.stream(stacks.spliterator(), false).map(JsonNode::asText)
                    .anyMatch(s -> s.startsWith(me)
                            && s.contains("io.tpmphone.softphone.control.ControlClient.request("));
            assertTrue(found, "this test's thread, waiting in ControlClient.request, among the stacks; saw: "
                    + stacks.toString().substring(0, Math.min(3000, stacks.toString().length())));
        }
    }
}
