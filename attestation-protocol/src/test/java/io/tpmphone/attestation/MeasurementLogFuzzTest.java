package io.tpmphone.attestation;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

/**
 * Coverage-guided fuzzing of the measurement event log as the server receives it: the parser, the replay check
 * against a quote the log itself replays to (so every structural check runs, and the diagnosis against the log
 * accepted before), the measured command line, and the appraisal under the example policy. Contract: a value, or
 * {@link MalformedStructureException} / {@link EventLogException}; the appraisal always returns. Regression inputs
 * under {@code MeasurementLogFuzzTestInputs/}; fuzz with {@code ./tpmphone fuzz event-log}.
 */
@Timeout(10)
class MeasurementLogFuzzTest {
    private static final int PCR = 14;
    private static AttestationPolicy policy;
    private static MeasurementLog accepted;

    @BeforeAll
    static void policyAndTheAgentsLog() throws Exception {
        accepted = MeasurementLog.parse(SwtpmSamples.bytes("agent-measured-launch.log"));
        policy = approving(accepted);
        // The harness reaches the appraisal's end: the agent's real log replays and is the approved release.
        Appraisal a = Appraiser.appraise(policy, accepted, quoting(accepted),
                AppraisalContext.builder().quoteVerified(true).isolationAttested(true).keysSealed(true).build());
        assertTrue(a.level().atLeast(IntegrityLevel.MEASURED), "the agent's own log is the approved release: "
                + a.reasons());
    }

    /** The example policy with one release: what {@code log} measured (so mutated logs reach every event check). */
    private static AttestationPolicy approving(MeasurementLog log) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode p;
        try (InputStream in = MeasurementLogFuzzTest.class.getResourceAsStream("example-policy.json")) {
            p = (ObjectNode) json.readTree(in);
        }
        String zero = "00".repeat(32);
        p.putArray("measurementPcrBaselines").add(zero);
        ObjectNode boot = p.putObject("bootReferenceValues");
        boot.putArray("0").add(zero);
        boot.putArray("7").add(zero);
        ObjectNode release = json.createObjectNode().put("name", "agent-measured-launch");
        ObjectNode jvm = release.putObject("jvm");
        ObjectNode jars = release.putObject("jars");
        ObjectNode configuration = release.putObject("configuration");
        ArrayNode commandLine = release.putArray("commandLine");
        for (MeasurementEvent e : log.events()) {
            switch (e.type()) {
                case JVM -> jvm.put(e.dataAsString(), e.contentDigestHex());
                case CLASSPATH_JAR -> jars.put(e.dataAsString(), e.contentDigestHex());
                case CONFIGURATION -> configuration.put(e.dataAsString(), e.contentDigestHex());
                case COMMAND_LINE -> MeasuredCommandLine.decode(e.data()).argv().forEach(commandLine::add);
                default -> {
                    // baseline, isolation, launch: not part of a release
                }
            }
        }
        p.putArray("releases").add(release);
        AttestationPolicy parsed = AttestationPolicy.parse(json.writeValueAsString(p));
        assertEquals(PCR, parsed.measurementPcr());
        return parsed;
    }

    /** PCR values as a TPM would quote them after extending {@code log}: PCR 14 its replay, the rest zero. */
    private static PcrValues quoting(MeasurementLog log) {
        PcrSelection selection = PcrSelection.parse("sha256:0-7,14");
        List<byte[]> values = new ArrayList<>();
        for (int pcr : selection.indices()) {
            values.add(pcr == PCR ? log.replay(PCR).value() : new byte[32]);
        }
        return PcrValues.of(selection, values);
    }

    @FuzzTest
    void appraise(byte[] data) {
        MeasurementLog log;
        try {
            log = MeasurementLog.parse(data);
        } catch (MalformedStructureException e) {
            assertEquals("MeasurementLog", e.structure());
            return;
        }
        assertArrayEquals(data, log.encode(), "a parsed log is exactly its input");
        for (MeasurementEvent e : log.events()) {
            if (e.type() == EventType.COMMAND_LINE) {
                try {
                    assertTrue(MeasuredCommandLine.decode(e.data()).matches(e.data()));
                } catch (MalformedStructureException refused) {
                    assertNotNull(refused.field());
                }
            }
        }
        PcrValues quoted = quoting(log);
        try {
            ReplayResult r = LogReplayVerifier.check(log, quoted, PCR, accepted);
            assertArrayEquals(quoted.value(PCR), r.value());
        } catch (EventLogException e) {
            assertNotNull(e.problem());
        }
        Appraisal a = Appraiser.appraise(policy, log, quoted, AppraisalContext.builder().quoteVerified(true)
                .previouslyAcceptedLog(accepted).isolationAttested(true).keysSealed(true).build());
        assertTrue(a.level() != IntegrityLevel.FAILED || !a.reasons().isEmpty(), "a FAILED appraisal says why: " + a);
    }
}
