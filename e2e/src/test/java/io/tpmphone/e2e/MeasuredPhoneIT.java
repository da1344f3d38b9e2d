package io.tpmphone.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.tpmphone.rig.TwoHostRig;
import io.tpmphone.softphone.control.ControlClient;
import io.tpmphone.swtpm.testing.Await;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The softphone as it is deployed: SIP and SRTP inside the measured, isolated process each agent launched (its full
 * class path measured and approved), driven through its control channel. Alice's process calls Bob's; both see
 * MEASURED; each hears the other's tone.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@org.junit.jupiter.api.extension.ExtendWith(SharedRig.class) // the module's shared rig: this class only uses it
class MeasuredPhoneIT {
    private TwoHostRig hosts;

    @BeforeAll
    void start(TwoHostRig rig) {
        hosts = rig;
    }

    @Test
    void theMeasuredProcesses_callEachOther_bothSeeMeasured_andHearEachOther() throws Exception {
        try (ControlClient alice = ControlClient.connect(hosts.alice().childControl(), Duration.ofSeconds(60));
             ControlClient bob = ControlClient.connect(hosts.bob().childControl(), Duration.ofSeconds(60))) {
            String callId = alice.call("sips:bob@bob", "127.0.0.1:" + hosts.bob().childTlsPort());
            JsonNode call = alice.await(callId, Duration.ofSeconds(20));
            assertEquals("ESTABLISHED", call.path("state").asText(), () -> call + "\nalice's softphone log:\n"
                    + childLogTail("alice"));
            assertEquals("MEASURED", call.path("level").asText(), call.toString());
            assertEquals("bob", call.path("peerHost").asText(), call.toString());
            JsonNode atBob = bob.await(callId, Duration.ofSeconds(10));
            assertEquals("ESTABLISHED", atBob.path("state").asText(), () -> atBob + "\nbob's softphone log:\n"
                    + childLogTail("bob"));
            assertEquals("MEASURED", atBob.path("level").asText(), atBob.toString());
            assertEquals("alice", atBob.path("peerHost").asText(), atBob.toString());
            assertTrue(atBob.path("display").asText().contains("MEASURED alice"),
                    () -> "bob's display shows MEASURED alice: " + atBob);

            JsonNode aliceHears = alice.awaitAudio(callId, 2.0, Duration.ofSeconds(20));
            JsonNode bobHears = bob.awaitAudio(callId, 2.0, Duration.ofSeconds(20));
            assertEquals(440.0, aliceHears.path("dominantHz").asDouble(), 20.0, "alice hears bob: " + aliceHears
                    + "\nalice's softphone log:\n" + hosts.childLog("alice"));
            assertEquals(1000.0, bobHears.path("dominantHz").asDouble(), 20.0, () -> "bob hears alice: " + bobHears
                    + "\nbob's softphone log:\n" + childLogTail("bob"));
            assertEquals(0, bobHears.path("packetsLost").asLong(), () -> "no loss on loopback: " + bobHears);

            alice.hangUp(callId);
            JsonNode ended = Await.until("bob's softphone to report call " + callId + " ENDED", Duration.ofSeconds(10),
                    () -> bob.await(callId, Duration.ofSeconds(1)), c -> c.path("state").asText().equals("ENDED"));
            assertEquals("ENDED", ended.path("state").asText(), ended.toString());
            assertEquals("the peer hung up", ended.path("reason").asText(), ended.toString());
        }
    }

    /** The last lines of a host's measured softphone log, for assertion messages. */
    private String childLogTail(String host) {
        List<String> lines = hosts.childLog(host).lines().toList();
        return "(last " + Math.min(80, lines.size()) + " of " + lines.size() + " lines)\n"
                + String.join("\n", lines.subList(Math.max(0, lines.size() - 80), lines.size()));
    }

    @Test
    void malformedControlRequests_getAClearError_andTheChannelStaysUsable() throws Exception {
        try (ControlClient alice = ControlClient.connect(hosts.alice().childControl(), Duration.ofSeconds(60))) {
            IOException notJson = assertThrows(IOException.class, () -> alice.request(
                    (com.fasterxml.jackson.databind.node.ObjectNode) new com.fasterxml.jackson.databind.ObjectMapper()
                            .readTree("{\"op\":\"call\",\"target\":\"mailto:x\",\"next\":\"127.0.0.1:1\"}")));
            assertTrue(notJson.getMessage().contains("sip: or sips: URI"),
                    () -> "a mailto: target is refused as no sip: or sips: URI: " + notJson);
            IOException unknown = assertThrows(IOException.class, () -> alice.request(ControlClient.op("dance")));
            assertTrue(unknown.getMessage().contains("unknown op"), () -> "op dance is an unknown op: " + unknown);
            IOException noCall = assertThrows(IOException.class, () -> alice.hangUp("nope"));
            assertTrue(noCall.getMessage().contains("no call nope"), () -> "hanging up nope names no call nope: "
                    + noCall);
            JsonNode status = alice.request(ControlClient.op("status"));
            assertEquals("sips:alice@alice", status.path("uri").asText(), () -> "the channel still answers: " + status);
        }
    }
}
