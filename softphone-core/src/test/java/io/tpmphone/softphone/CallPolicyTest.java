package io.tpmphone.softphone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.tls.PeerAttestation;
import java.time.Instant;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class CallPolicyTest {
    private static final String POLICY = String.join("\n",
            "# integrity-level call policy",
            "default MEASURED reject",
            "in  sip:*@partner.example   UNATTESTED accept",
            "out sip:ceo@example.org     HARDENED   reject   # the CEO's phone",
            "any sips:*@*.example.org    IDENTIFIED restrict",
            "");

    private static PeerAttestation at(IntegrityLevel level) {
        return new PeerAttestation(level, Optional.of("peer"), "summary", Optional.empty(), Instant.EPOCH,
                "because " + level);
    }

    @Test
    void firstMatchingRuleWins_elseTheDefault_andTheReasonNamesBothLevels() {
        CallPolicy p = CallPolicy.parse(POLICY);
        CallPolicy.Decision d = p.decide(CallPolicy.Direction.IN, "sip:bob@other.example",
                at(IntegrityLevel.UNATTESTED));
        assertEquals(CallPolicy.Action.REJECT, d.action());
        assertEquals(IntegrityLevel.MEASURED, d.requiredLevel());
        assertTrue(d.reason().contains("UNATTESTED") && d.reason().contains("MEASURED"), d.reason());
        assertEquals("399 alice.example \"" + d.reason() + "\"", d.warning("alice.example"));

        assertEquals(CallPolicy.Action.ACCEPT, p.decide(CallPolicy.Direction.IN, "sip:carol@partner.example",
                at(IntegrityLevel.UNATTESTED)).action());
        assertEquals(CallPolicy.Action.REJECT, p.decide(CallPolicy.Direction.OUT, "sip:carol@partner.example",
                at(IntegrityLevel.UNATTESTED)).action(), "the 'in' rule does not cover outgoing calls");
        assertEquals(CallPolicy.Action.REJECT, p.decide(CallPolicy.Direction.OUT, "sip:CEO@example.org",
                at(IntegrityLevel.MEASURED)).action(), "case-insensitive, needs HARDENED");
        assertEquals(CallPolicy.Action.RESTRICT, p.decide(CallPolicy.Direction.IN, "sips:dave@lab.example.org",
                at(IntegrityLevel.UNATTESTED)).action());
        assertEquals(CallPolicy.Action.ACCEPT, p.decide(CallPolicy.Direction.IN, "sips:dave@lab.example.org",
                at(IntegrityLevel.MEASURED)).action());
        assertEquals(CallPolicy.Action.REJECT, p.decide(CallPolicy.Direction.IN, "sip:dave@lab.example.org",
                at(IntegrityLevel.UNATTESTED)).action(), "sip: is not sips:");
        assertEquals(CallPolicy.Action.REJECT, p.decide(CallPolicy.Direction.IN, "sip:x@evil.example@partner.example",
                at(IntegrityLevel.UNATTESTED)).action(), "* does not cross an @");
        assertEquals(CallPolicy.Action.REJECT, p.decide(CallPolicy.Direction.IN, "sip:bob@other.example",
                at(IntegrityLevel.FAILED)).action());
    }

    @Test
    void malformedPolicies_nameTheLine() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse("default MEASURD reject"))
                .getMessage().startsWith("line 1: unknown level"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                "default MEASURED reject\nsideways sip:* MEASURED reject")).getMessage().startsWith("line 2:"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                "default MEASURED reject\nin bob@x MEASURED reject")).getMessage().contains("sip: or sips:"));
        assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse("in sip:* MEASURED reject"));
        assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse("default MEASURED accept"));
        assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                "default MEASURED reject\ndefault FAILED reject"));
        assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                "default MEASURED reject\nin sip:* MEASURED frobnicate"));
    }
}
