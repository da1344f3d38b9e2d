package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.rig.TwoHostRig;
import java.io.PrintWriter;
import io.tpmphone.swtpm.testing.Await;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code tpmphone call} and {@code tpmphone phone} against the measured softphone processes of two real hosts. */
class PhoneCommandsIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Run(int exit, String out, String err) {
        @Override
        public String toString() {
            return "exit code " + exit + ", stderr: " + err + ", stdout: " + out;
        }
    }

    private static Run tpmphone(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    void callListAndHangUp_throughTheSoftphonesControlSockets(@TempDir Path dir) throws Exception {
        try (TwoHostRig hosts = TwoHostRig.start(dir)) {
            String alice = hosts.alice().childControl().toString();
            String bob = hosts.bob().childControl().toString();
            // the softphones start a moment after their agents: wait until both answer
            Await.until("alice's softphone to answer `tpmphone phone`", Duration.ofSeconds(60),
                    () -> tpmphone("phone", "--control", alice), r -> r.exit() == 0);
            Await.until("bob's softphone to answer `tpmphone phone`", Duration.ofSeconds(60),
                    () -> tpmphone("phone", "--control", bob), r -> r.exit() == 0);
            Run call = tpmphone("call", "sips:bob@bob", "--next", "127.0.0.1:" + hosts.bob().childTlsPort(),
                    "--control", alice, "--json");
            assertEquals(0, call.exit(), call.err() + call.out());
            JsonNode c = JSON.readTree(call.out());
            assertEquals("ESTABLISHED", c.path("state").asText(), () -> c + "; stderr: " + call.err());
            assertEquals("MEASURED", c.path("level").asText(), c.toString());
            assertEquals("bob", c.path("peerHost").asText(), c.toString());

            // bob's side is established when alice's ACK arrives, a moment after alice's 200
            Run atBob = Await.until("bob's `tpmphone phone` to list the call ESTABLISHED", Duration.ofSeconds(10),
                    () -> tpmphone("phone", "--control", bob), r -> r.out().contains("ESTABLISHED"));
            assertEquals(0, atBob.exit(), atBob::toString);
            assertTrue(atBob.out().startsWith("sips:bob@bob on TLS port " + hosts.bob().childTlsPort()),
                    () -> "bob's phone names its URI and TLS port " + hosts.bob().childTlsPort() + ": " + atBob.out());
            assertTrue(atBob.out().contains("IN  ESTABLISHED  level MEASURED  call \"" + c.path("callId").asText()
                    + "\"  peer \"sips:alice@alice\"") && atBob.out().contains("MEASURED alice"), () -> "bob lists call " + c.path("callId").asText()
                    + " IN from alice, ESTABLISHED and MEASURED: " + atBob.out());

            Run hangup = tpmphone("phone", "--control", alice, "--hangup", c.path("callId").asText(), "--json");
            assertEquals(0, hangup.exit(), hangup::toString);
            assertEquals("ENDED", JSON.readTree(hangup.out()).at("/calls/0/state").asText(), hangup::toString);

            Run refused = tpmphone("call", "sips:bob@bob", "--next", "127.0.0.1:1", "--control", alice);
            assertEquals(1, refused.exit(), refused::toString);
            assertTrue(refused.out().contains("REFUSED"), () -> "a call to port 1 is REFUSED: " + refused);
        }
        Run nobody = tpmphone("phone", "--control", dir.resolve("none.sock").toString());
        assertEquals(1, nobody.exit(), nobody::toString);
        assertTrue(nobody.err().contains("no softphone answers on") && nobody.err().contains("is the agent running"),
                () -> "no softphone answers, and the hint asks whether the agent runs: " + nobody);
    }
}
