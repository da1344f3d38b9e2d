package io.tpmphone.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ScreenshotsTest {
    private static final String DOC = "text\n\n<!-- screenshot: a.txt -->\n```\n Phone hh:mm:ss UTC\n```\nmore\n";

    @Test
    void masksOnlyTimesTheAppraisalsAgeAndTheAkId_andTrimsTrailingBlanks() {
        String pane = " Phone sips:bob@bob   06:09:28 UTC   (tpmphone)   \n"
                + "   Why:         release softphone-alice, policy v1, AK 000b7e29fa03…\n"
                + "   Freshness:   appraised by the attestation server 12 s before it was verified, verified"
                + " 06:09:27 UTC\n   [ MEASURED ] 42 calls\u001b[K\n\n\n";
        assertEquals(" Phone sips:bob@bob   hh:mm:ss UTC   (tpmphone)\n"
                + "   Why:         release softphone-alice, policy v1, AK xxxxxxxxxxxx…\n"
                + "   Freshness:   appraised by the attestation server N s before it was verified, verified"
                + " hh:mm:ss UTC\n   [ MEASURED ] 42 calls\\x1b[K", Screenshots.mask(pane));
    }

    @Test
    void bidiAndOtherFormatCharacters_areEscapedAsUntrustedTextDoes_andBackslashesStay() {
        assertEquals(" why \"evil\\u{202E}txt.exe\\u{200B}\" \\x22", Screenshots.mask(" why \"evil\u202Etxt.exe\u200B\" \\x22"));
    }

    @Test
    void aCapturedFenceLine_isRefused_notWrittenIntoTheBlock() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Screenshots.mask(" CALLS\n```\n more"));
        assertTrue(e.getMessage().contains("fence"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> Screenshots.mask("   ```java"));
    }

    @Test
    void aBlockEqualToTheMaskedCapturePasses_anotherFailsNamingIt(@TempDir Path dir) throws Exception {
        Path doc = Files.writeString(dir.resolve("softphone.md"), DOC);
        assertEquals(List.of(), Screenshots.check(doc, Map.of("a.txt", " Phone 01:02:03 UTC  \n"), false));
        List<String> diff = Screenshots.check(doc, Map.of("a.txt", " Phone 01:02:03 UTC\n RINGING\n"), false);
        assertEquals(1, diff.size(), diff::toString);
        assertTrue(diff.get(0).startsWith("a.txt: ") && diff.get(0).contains(" RINGING"), diff::toString);
    }

    @Test
    void aBlockThisRunDidNotCapture_fails(@TempDir Path dir) throws Exception {
        Path doc = Files.writeString(dir.resolve("softphone.md"), DOC);
        List<String> diff = Screenshots.check(doc, Map.of("b.txt", "x"), false);
        assertEquals(1, diff.size(), diff::toString);
        assertTrue(diff.get(0).contains("not captured"), diff::toString);
        assertEquals(1, Screenshots.check(Files.writeString(dir.resolve("none.md"), "no blocks\n"), Map.of(), false)
                .size(),
                "a page without screenshot blocks is not a pass");
    }

    @Test
    void rewriteReplacesOnlyTheMarkedBlocks() {
        String out = Screenshots.rewrite(DOC + "```\nunmarked\n```\n", Map.of("a.txt", " Phone 01:02:03 UTC\n X \n"));
        assertEquals("text\n\n<!-- screenshot: a.txt -->\n```\n Phone hh:mm:ss UTC\n X\n```\nmore\n"
                + "```\nunmarked\n```\n", out);
        assertEquals(Map.of("a.txt", " Phone hh:mm:ss UTC\n X"), Screenshots.blocks(out));
    }

    @Test
    void aMarkerWithoutAFencedBlock_isAnError() {
        assertThrows(IllegalStateException.class, () -> Screenshots.blocks("<!-- screenshot: a.txt -->\ntext\n"));
        assertThrows(IllegalStateException.class, () -> Screenshots.blocks("<!-- screenshot: a.txt -->\n```\nx\n"));
    }

    @Test
    void theSoftphoneDocsScreenshotsAreAllMarked_andNameWhatRingScreenTmuxItCaptures() throws Exception {
        Map<String, String> blocks = Screenshots.blocks(Files.readString(Screenshots.softphoneDoc()));
        assertEquals(List.of("ringing.txt", "in-call.txt", "declined.txt", "no-attestation.txt", "refused-failed.txt"),
                List.copyOf(blocks.keySet()), "docs/softphone.md's screenshot blocks, in order");
        for (String block : blocks.values()) {
            assertEquals(block, Screenshots.mask(block), "a docs screenshot is stored masked: " + block);
        }
    }
}
