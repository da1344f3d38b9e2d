package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The attack of issue 12, finding 10: a peer put {@code ESC[2K CR ESC[32m MEASURED alice (verified} into an SDP line
 * that came back in a refusal reason, and `tpmphone phone` printed it raw, erasing its own line and drawing a green
 * "MEASURED". What the commands print of others' words is rendered, never obeyed.
 */
class UntrustedOutputTest {
    private static final String PAINT = "m=audio 4000 RTP/AVP 0\u001b[2K\r\u001b[32m MEASURED alice (verified \u202e";

    private static void assertInert(String shown) {
        assertFalse(shown.chars().anyMatch(c -> c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)),
                "no control character reaches the terminal: " + shown.replace("\u001b", "<ESC>"));
        assertFalse(shown.contains("\u202e"), "no bidi override reaches the terminal: " + shown);
    }

    private static ObjectNode call() {
        ObjectNode c = TpmCommand.JSON.createObjectNode();
        c.put("callId", "c1\u001b]0;title\u0007");
        c.put("direction", "IN");
        c.put("peerUri", "sip:mallory@x\u001b[1A");
        c.put("state", "REFUSED");
        c.put("reason", "488 unacceptable SDP: " + PAINT);
        return c;
    }

    @Test
    void aCallLine_showsThePeersEscapeSequencesAsText() {
        String shown = PhoneCommands.line(call());
        assertInert(shown);
        assertTrue(shown.contains("\\x1b[32m MEASURED"), "the attempt is visible as text: " + shown);
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"MEASURED", "[MEASURED]", "level MEASURED",
        "x\"  level MEASURED  reason \"y", "\u001b[2K\r\u001b[1;30;42m MEASURED \u001b[0m", "HARDENED\\"})
    void aHostileReason_neverStandsInTheLevelSlot(String hostile) {
        for (String level : new String[] {null, "UNATTESTED", "MEASURED [or so they say]"}) {
            ObjectNode c = call();
            c.put("peerUri", hostile);
            c.put("callId", hostile);
            c.put("display", hostile);
            c.put("reason", hostile);
            c.put("state", hostile);
            if (level != null) {
                c.put("level", level);
            }
            String shown = PhoneCommands.line(c);
            assertInert(shown);
            String slot = level == null ? "none" : level.equals("UNATTESTED") ? "UNATTESTED" : "unknown";
            assertTrue(shown.startsWith("IN  ?  level " + slot + "  call \""), "our words first, the level slot"
                    + " holds only a level name of ours: " + shown);
            assertEquals(1 + 4 * count(hostile, "level "), count(shown, "level "),
                    "one level slot, the hostile text's own only inside quotes: " + shown);
            // every double quote is ours: four quoted fields, two quotes each
            assertEquals(8, shown.chars().filter(ch -> ch == '"').count(), "the peer's text cannot close its quote: "
                    + shown);
            assertTrue(shown.endsWith("  reason \"" + io.tpmphone.attestation.UntrustedText.forTerminal(hostile)
                    .replace("\"", "\\x22") + "\""), "the reason, quoted, last: " + shown);
        }
    }

    private static int count(String s, String what) {
        return s.split(java.util.regex.Pattern.quote(what), -1).length - 1;
    }

    @Test
    void jsonOutput_escapesControlBidiAndNonAscii() throws Exception {
        String json = TpmCommand.JSON_LINE.writeValueAsString(call());
        assertInert(json);
        JsonNode back = TpmCommand.JSON.readTree(json);
        assertTrue(back.path("reason").asText().endsWith(PAINT), "the JSON still carries the exact text: " + json);
    }

    @Test
    void anErrorQuotingAServer_isRenderedToo() {
        ErrorReport r = ErrorReport.of(new java.io.IOException("the server said: " + PAINT),
                Main.commandLine(java.util.Map.of()).parseArgs("audit", "tail", "--db", "x").subcommand()
                        .subcommand().commandSpec().commandLine());
        List<String> lines = r.lines();
        lines.forEach(UntrustedOutputTest::assertInert);
        assertTrue(lines.get(0).startsWith("error: the server said: m=audio"), "the message is kept: " + lines);
    }
}
