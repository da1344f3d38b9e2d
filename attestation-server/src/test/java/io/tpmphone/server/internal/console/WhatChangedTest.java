package io.tpmphone.server.internal.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.EventType;
import io.tpmphone.attestation.HashAlgorithm;
import io.tpmphone.attestation.MeasurementLog;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class WhatChangedTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static byte[] sha(String s) {
        return HashAlgorithm.SHA256.digest(s.getBytes(StandardCharsets.UTF_8));
    }

    private static MeasurementLog.Builder launch(MeasurementLog.Builder b, String jar, String argv) {
        return b.append(EventType.JVM, sha("java"), "/usr/bin/java")
                .append(EventType.CLASSPATH_JAR, sha(jar), "softphone.jar")
                .append(EventType.CLASSPATH_JAR, sha("lib"), "lib.jar")
                .append(EventType.COMMAND_LINE, sha(argv), argv)
                .append(EventType.LAUNCH, sha("launch"), "pid 1");
    }

    private static JsonNode detail(String level, String executables, byte[] log) throws Exception {
        return JSON.readTree("{\"level\":\"" + level + "\",\"policyVersion\":3,\"reasons\":[\"softphone.jar is not"
                + " approved\"],\"claims\":{\"instance-identity\":\"affirming\",\"executables\":\"" + executables
                + "\"},\"eventLogSha256\":\"" + HexFormat.of().formatHex(HashAlgorithm.SHA256.digest(log)) + "\"}");
    }

    @Test
    void aRelaunchWithAnotherJar_showsThatJarsDigests_theArgumentThatMoved_andTheClaim() throws Exception {
        MeasurementLog.Builder b = MeasurementLog.builder(14, new byte[32]);
        byte[] before = launch(b, "jar", "java\0-jar\0softphone.jar").build().encode();
        b.append(EventType.TERMINATED, sha("exit"), "exit 0");
        byte[] after = launch(b, "tampered", "java\0-Xdebug\0-jar\0softphone.jar").build().encode();
        WhatChanged w = WhatChanged.between(10, "MEASURED", detail("MEASURED", "affirming", before),
                Optional.of(before), 20, "FAILED", detail("FAILED", "contraindicated", after), Optional.of(after));
        WhatChanged.EventChange jar = w.events().stream().filter(e -> e.type().equals("CLASSPATH_JAR"))
                .findFirst().orElseThrow(() -> new AssertionError("no jar change in " + w.events()));
        assertEquals("changed", jar.kind());
        assertEquals("softphone.jar", jar.name());
        assertEquals(HexFormat.of().formatHex(sha("jar")), jar.fromDigest());
        assertEquals(HexFormat.of().formatHex(sha("tampered")), jar.toDigest());
        WhatChanged.EventChange argv = w.events().stream().filter(e -> e.type().equals("COMMAND_LINE"))
                .findFirst().orElseThrow();
        assertTrue(argv.arguments().stream().anyMatch(l -> l.added() && l.text().equals("-Xdebug")),
                "the added argument: " + argv.arguments());
        assertTrue(w.events().stream().noneMatch(e -> e.name().equals("lib.jar")), "lib.jar did not change");
        assertTrue(w.notes().stream().anyMatch(n -> n.contains("last launch")), "says it compared launches: "
                + w.notes());
        WhatChanged.ClaimMove executables = w.claims().stream().filter(c -> c.claim().equals("executables"))
                .findFirst().orElseThrow();
        assertTrue(executables.moved());
        assertEquals("contraindicated", executables.to());
        assertTrue(w.levelMoved());
        assertEquals(List.of("softphone.jar is not approved"), w.toReasons());
    }

    @Test
    void aMissingOrAlteredArchivedLog_isSaid_notGuessed() throws Exception {
        byte[] log = launch(MeasurementLog.builder(14, new byte[32]), "jar", "a").build().encode();
        WhatChanged w = WhatChanged.between(1, "MEASURED", detail("MEASURED", "affirming", log), Optional.empty(),
                2, "MEASURED", detail("MEASURED", "affirming", log), Optional.of(log));
        assertTrue(w.events().isEmpty());
        assertTrue(w.notes().stream().anyMatch(n -> n.contains("#1") && n.contains("not in the archive")),
                w.notes().toString());
    }
}
