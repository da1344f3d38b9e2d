package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tpmphone.attestation.IntegrityLevel;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link Agent.Status}: "no level" is its own value, not a level's name, and the status file keeps the fields, their
 * order and their text that {@code agent status --json} readers already parse.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class AgentStatusTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The status file's members, in the order the agent wrote them before the level was typed. */
    private static final List<String> FIELDS = List.of("host", "akId", "level", "failedCheck", "reasons",
            "appraisedAt", "expiresAt", "logState", "measurements", "childPid", "childAlive", "keysApproved",
            "keyApprovalRefused", "softphone", "softphoneDetail");
    private static final Instant AT = Instant.parse("2026-12-07T10:15:30.123Z");

    private static Agent.Status status(Optional<IntegrityLevel> level, String failedCheck) {
        return new Agent.Status("host-s", "000b12", level, failedCheck, List.of("a reason"), AT,
                level.isPresent() ? "2026-12-07T10:20:30Z" : null, "CURRENT", 9, level.isPresent() ? 4242L : null,
                level.isPresent(), level.isPresent(), level.isPresent() ? null : "not attested",
                Agent.SoftphoneState.READY, "serving sips:host-s");
    }

    private static JsonNode json(Agent.Status s) throws Exception {
        return JSON.readTree(JSON.writeValueAsString(s.toJson()));
    }

    private static List<String> names(JsonNode n) {
        List<String> names = new ArrayList<>();
        n.fieldNames().forEachRemaining(names::add);
        return names;
    }

    @Test
    void anAppraisedStatus_writesTheLevelsName_andTheSameFieldsAsBefore() throws Exception {
        Agent.Status s = status(Optional.of(IntegrityLevel.MEASURED), null);
        JsonNode n = json(s);
        assertEquals(FIELDS, names(n), () -> "fields of " + n);
        assertEquals("MEASURED", n.get("level").asText(), n::toString);
        assertTrue(n.get("failedCheck").isNull(), n::toString);
        assertEquals("2026-12-07T10:15:30.123Z", n.get("appraisedAt").asText(), n::toString);
        assertEquals(4242, n.get("childPid").asLong(), n::toString);
        assertEquals("READY", n.get("softphone").asText(), n::toString);
        assertEquals("MEASURED", s.levelName());
        assertTrue(s.is(IntegrityLevel.MEASURED));
        assertFalse(s.is(IntegrityLevel.HARDENED));
    }

    @Test
    void aStatusWithoutAppraisal_hasNoLevel_andWritesNotAppraised() throws Exception {
        Agent.Status s = status(Optional.empty(), "runtime");
        JsonNode n = json(s);
        assertEquals(FIELDS, names(n), () -> "fields of " + n);
        assertEquals(Agent.Status.NOT_APPRAISED, n.get("level").asText(), n::toString);
        assertEquals("NOT_APPRAISED", s.levelName());
        assertEquals(Optional.empty(), s.level());
        for (IntegrityLevel l : IntegrityLevel.values()) {
            assertFalse(s.is(l), () -> "no level is " + l);
            assertFalse(l.name().equals(s.levelName()), () -> "NOT_APPRAISED is not the name of " + l);
        }
        assertTrue(n.get("childPid").isNull(), n::toString);
    }

    @Test
    void aStatusWithoutALevelValue_isRefused() {
        assertThrows(NullPointerException.class, () -> status(null, null));
    }

    @Test
    void theReasonsAreCopied() {
        List<String> reasons = new ArrayList<>(List.of("one"));
        Agent.Status s = new Agent.Status("h", "ak", Optional.of(IntegrityLevel.FAILED), "executables", reasons, AT,
                null, "CURRENT", 1, null, false, false, null, Agent.SoftphoneState.EXITED, "exit status 1");
        reasons.add("two");
        assertEquals(List.of("one"), s.reasons());
    }
}
