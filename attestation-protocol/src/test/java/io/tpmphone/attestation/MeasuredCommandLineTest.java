package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Known answers for the measured command line, version 1. Every approved release in every policy names these bytes
 * (through its {@code commandLine}), so a change here makes every host fail at {@code configuration}: if one of these
 * tests fails, the refactoring changed the bytes. Fix the code, do not update the vectors.
 */
@Timeout(10)
class MeasuredCommandLineTest {
    private static final String JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";
    private static final List<String> ARGV = List.of(JAVA, "-XX:+DisableAttachMechanism", "-XX:-UsePerfData",
            "-Xmx64m", "-cp", "softphone-core.jar:attestation-protocol.jar", "io.tpmphone.softphone.SoftphoneMain",
            "--config", "softphone.properties", "--headless");
    /** The UTF-8 of ARGV joined with NUL, computed outside Java ({@code printf '%s\0' ... | head -c -1 | xxd -p}). */
    private static final String ENCODED = "2f7573722f6c69622f6a766d2f6a6176612d31372d6f70656e6a646b2d616d6436342f62696e"
            + "2f6a617661002d58583a2b44697361626c654174746163684d656368616e69736d002d58583a2d55736550657266446174610"
            + "02d586d7836346d002d637000736f667470686f6e652d636f72652e6a61723a6174746573746174696f6e2d70726f746f636f"
            + "6c2e6a617200696f2e74706d70686f6e652e736f667470686f6e652e536f667470686f6e654d61696e002d2d636f6e666967"
            + "00736f667470686f6e652e70726f70657274696573002d2d686561646c657373";
    /** SHA-256 of ENCODED ({@code sha256sum}). */
    private static final String DIGEST = "ad8d0de5492fccf71ba239b0f37ff7be67e521f75c7be2045bb3bd9259a56d94";

    private static MeasuredCommandLine launch() {
        return MeasuredCommandLine.forLaunch(JAVA, List.of("-Xmx64m"),
                List.of("softphone-core.jar", "attestation-protocol.jar"), "io.tpmphone.softphone.SoftphoneMain",
                "softphone.properties", List.of("--headless"));
    }

    @Test
    void version1_isRecordedAsTheCommandLineEvent() {
        assertEquals(1, MeasuredCommandLine.VERSION);
        assertEquals(EventType.COMMAND_LINE, MeasuredCommandLine.EVENT_TYPE);
        assertEquals(0x8000_0004L, MeasuredCommandLine.EVENT_TYPE.code());
    }

    @Test
    void aLaunch_hasTheVersion1Layout() {
        assertEquals(ARGV, launch().argv());
    }

    @Test
    void aLaunch_encodesToKnownBytes_andDigest() {
        MeasuredCommandLine c = launch();
        assertEquals(ENCODED, HexFormat.of().formatHex(c.encoded()));
        assertEquals(221, c.encoded().length);
        assertEquals(DIGEST, HexFormat.of().formatHex(c.digest()));
    }

    @Test
    void theApprovedArgv_encodesLikeTheLaunch() {
        assertEquals(launch(), MeasuredCommandLine.of(ARGV));
        assertTrue(MeasuredCommandLine.of(ARGV).matches(HexFormat.of().parseHex(ENCODED)));
    }

    @Test
    void decode_givesBackTheArgv() throws Exception {
        MeasuredCommandLine c = MeasuredCommandLine.decode(HexFormat.of().parseHex(ENCODED));
        assertEquals(ARGV, c.argv());
        assertArrayEquals(HexFormat.of().parseHex(ENCODED), c.encoded());
        assertEquals(List.of("a", "", "b"), MeasuredCommandLine.decode(new byte[] {'a', 0, 0, 'b'}).argv());
    }

    @Test
    void decodeOfMalformedUtf8_isRefused() {
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasuredCommandLine.decode(new byte[] {'a', (byte) 0xC3}));
        assertEquals("data", e.field());
    }

    @Test
    void decodeOfMoreThanOneEvent_isRefused() {
        MalformedStructureException e = assertThrows(MalformedStructureException.class,
                () -> MeasuredCommandLine.decode(new byte[MeasuredCommandLine.MAX_LENGTH + 1]));
        assertTrue(e.getMessage().contains("at most 4096"), e.getMessage());
    }

    @Test
    void anArgumentWithNul_isRefused() {
        assertThrows(IllegalArgumentException.class, () -> MeasuredCommandLine.of(List.of("java", "a\0b")));
    }

    @Test
    void anEmptyCommandLine_isRefused() {
        assertThrows(IllegalArgumentException.class, () -> MeasuredCommandLine.of(List.of()));
    }

    @Test
    void aCommandLineLongerThanOneEvent_isRefused_withTheLimit() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MeasuredCommandLine
                .forLaunch(JAVA, Collections.nCopies(300, "-Dsome.long.property=value"), List.of("a.jar"), "Main",
                        "a.properties", List.of()));
        assertTrue(e.getMessage().contains("at most 4096"), e.getMessage());
    }

    @Test
    void aJarNameWithTheClassPathSeparator_isRefused() {
        assertThrows(IllegalArgumentException.class, () -> MeasuredCommandLine.forLaunch(JAVA, List.of(),
                List.of("a.jar:evil.jar"), "Main", "a.properties", List.of()));
        assertThrows(IllegalArgumentException.class, () -> MeasuredCommandLine.forLaunch(JAVA, List.of(),
                List.of(), "Main", "a.properties", List.of()));
    }

    @Test
    void anotherArgument_changesTheBytes() {
        assertFalse(launch().matches(MeasuredCommandLine.of(List.of(JAVA)).encoded()));
    }
}
