package io.tpmphone.softphone;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.attestation.IntegrityLevel;
import io.tpmphone.tls.PeerAttestation;
import java.time.Instant;
import java.util.List;
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
        assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                "default MEASURED reject\ndefault FAILED reject"));
        assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                "default MEASURED reject\nin sip:* MEASURED frobnicate"));
    }

    @Test
    void integrityLevels_areOrderedFromFailedToHardened() {
        assertEquals(List.of(IntegrityLevel.FAILED, IntegrityLevel.UNATTESTED, IntegrityLevel.IDENTIFIED,
                IntegrityLevel.MEASURED, IntegrityLevel.HARDENED), List.of(IntegrityLevel.values()));
        IntegrityLevel[] v = IntegrityLevel.values();
        for (int i = 0; i < v.length; i++) {
            for (int j = 0; j < v.length; j++) {
                assertEquals(i >= j, v[i].atLeast(v[j]), v[i] + " at least " + v[j]);
            }
        }
    }

    /** What {@code line} decides for a peer at each level, in level order, as "ACTION/requiredLevel". */
    private static List<String> decisions(String policy, String uri) {
        CallPolicy p = CallPolicy.parse(policy);
        return List.of(IntegrityLevel.values()).stream().map(l -> {
            CallPolicy.Decision d = p.decide(CallPolicy.Direction.IN, uri, at(l));
            assertEquals(l, d.peerLevel());
            return d.action() + "/" + d.requiredLevel();
        }).toList();
    }

    @Test
    void anAcceptRule_admitsItsLevelAndAbove_andRefusesBelow_reportingItsLevel() {
        // The reported case: a FAILED host is not let in by an UNATTESTED accept rule.
        CallPolicy.Decision d = CallPolicy.parse("default MEASURED reject\nany sip:*@x UNATTESTED accept")
                .decide(CallPolicy.Direction.IN, "sip:mallory@x", at(IntegrityLevel.FAILED));
        assertEquals(CallPolicy.Action.REJECT, d.action());
        assertEquals(IntegrityLevel.UNATTESTED, d.requiredLevel());
        assertEquals("any sip:*@x", d.rule());
        assertTrue(d.reason().contains("FAILED is below the required UNATTESTED"), d.reason());

        assertEquals(List.of("REJECT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED",
                "ACCEPT/UNATTESTED"), decisions("default MEASURED reject\nany sip:*@x UNATTESTED accept", "sip:a@x"));
        assertEquals(List.of("REJECT/IDENTIFIED", "REJECT/IDENTIFIED", "ACCEPT/IDENTIFIED", "ACCEPT/IDENTIFIED",
                "ACCEPT/IDENTIFIED"), decisions("default MEASURED reject\nin sip:*@x IDENTIFIED accept", "sip:a@x"));
        assertEquals(List.of("ACCEPT/FAILED", "ACCEPT/FAILED", "ACCEPT/FAILED", "ACCEPT/FAILED", "ACCEPT/FAILED"),
                decisions("default MEASURED reject\nin sip:*@x FAILED accept", "sip:a@x"),
                "FAILED accept admits every peer");
    }

    @Test
    void aRejectRule_admitsItsLevelAndAbove_andRefusesBelow_likeAccept() {
        assertEquals(List.of("REJECT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED",
                "ACCEPT/UNATTESTED"), decisions("default MEASURED reject\nany sip:*@x UNATTESTED reject", "sip:a@x"));
        assertEquals(List.of("REJECT/HARDENED", "REJECT/HARDENED", "REJECT/HARDENED", "REJECT/HARDENED",
                "ACCEPT/HARDENED"), decisions("default MEASURED reject\nin sip:*@x HARDENED reject", "sip:a@x"));
    }

    @Test
    void aRestrictRule_admitsItsLevelAndAbove_andRestrictsBelow() {
        assertEquals(List.of("RESTRICT/MEASURED", "RESTRICT/MEASURED", "RESTRICT/MEASURED", "ACCEPT/MEASURED",
                "ACCEPT/MEASURED"), decisions("default HARDENED reject\nin sip:*@x MEASURED restrict", "sip:a@x"));
        assertEquals(List.of("RESTRICT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED",
                "ACCEPT/UNATTESTED"), decisions("default MEASURED reject\nin sip:*@x UNATTESTED restrict", "sip:a@x"),
                "UNATTESTED restrict restricts exactly the FAILED peers");
    }

    @Test
    void theDefaultLine_readsLikeEveryOtherLine() {
        for (String action : List.of("accept", "reject")) {
            assertEquals(List.of("REJECT/MEASURED", "REJECT/MEASURED", "REJECT/MEASURED", "ACCEPT/MEASURED",
                    "ACCEPT/MEASURED"), decisions("default MEASURED " + action, "sip:a@x"), action);
            assertEquals(List.of("REJECT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED", "ACCEPT/UNATTESTED",
                    "ACCEPT/UNATTESTED"), decisions("default UNATTESTED " + action, "sip:a@x"), action);
        }
        assertEquals(List.of("RESTRICT/IDENTIFIED", "RESTRICT/IDENTIFIED", "ACCEPT/IDENTIFIED", "ACCEPT/IDENTIFIED",
                "ACCEPT/IDENTIFIED"), decisions("default IDENTIFIED restrict", "sip:a@x"));
        assertEquals(List.of("ACCEPT/FAILED", "ACCEPT/FAILED", "ACCEPT/FAILED", "ACCEPT/FAILED", "ACCEPT/FAILED"),
                decisions("default FAILED accept", "sip:a@x"));
        assertEquals(CallPolicy.Action.ACCEPT, CallPolicy.acceptAll().decide(CallPolicy.Direction.OUT, "sip:a@x",
                at(IntegrityLevel.FAILED)).action());
    }

    @Test
    void aFailedFloorWithRejectOrRestrict_isRefused_sayingWhatToWriteInstead() {
        for (String line : List.of("default FAILED reject", "default MEASURED reject\nin sip:*@x FAILED reject")) {
            String m = assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(line)).getMessage();
            assertTrue(m.startsWith("line " + line.split("\n").length + ": no peer is below FAILED"), m);
            assertTrue(m.contains("'FAILED accept'") && m.contains("'UNATTESTED reject'"), m);
        }
        String m = assertThrows(IllegalArgumentException.class,
                () -> CallPolicy.parse("default MEASURED reject\n\nany sip:*@x FAILED restrict")).getMessage();
        assertTrue(m.startsWith("line 3: no peer is below FAILED, so 'FAILED restrict' would never restrict"), m);
        assertTrue(m.contains("'FAILED accept'") && m.contains("'UNATTESTED restrict'"), m);
    }

    @Test
    void linesFromElsewhere_areNamedByTheCaller() {
        String m = assertThrows(IllegalArgumentException.class, () -> CallPolicy.parse(
                List.of("default MEASURED reject", "in sip:*@x MEASURD accept"), i -> "policy." + (i * 5 + 1)))
                .getMessage();
        assertTrue(m.startsWith("policy.6: unknown level \"MEASURD\""), m);
    }

    @Test
    void anEndToEndFloor_decidesTheFarEnd_whileTheLinesLevelDecidesTheHop() {
        CallPolicy p = CallPolicy.parse("default MEASURED reject\n"
                + "any sip:*@example.test UNATTESTED reject end-to-end MEASURED\n");
        String bob = "sip:bob@example.test";
        // the proxy hop: UNATTESTED is enough
        CallPolicy.Decision hop = p.decide(CallPolicy.Direction.OUT, bob, at(IntegrityLevel.UNATTESTED));
        assertEquals(CallPolicy.Action.ACCEPT, hop.action(), hop.reason());
        assertEquals(CallPolicy.ONE_HOP, hop.established());
        assertTrue(!hop.endToEnd() && hop.evidenceDigest().isEmpty(), hop::toString);
        // the far end: MEASURED required
        CallPolicy.Decision far = p.decideEndToEnd(CallPolicy.Direction.OUT, bob, at(IntegrityLevel.UNATTESTED),
                "");
        assertEquals(CallPolicy.Action.REJECT, far.action(), far.reason());
        assertEquals(IntegrityLevel.MEASURED, far.requiredLevel());
        assertTrue(far.reason().startsWith("far end level UNATTESTED is below the required MEASURED"), far.reason());
        CallPolicy.Decision measured = p.decideEndToEnd(CallPolicy.Direction.IN, bob, at(IntegrityLevel.MEASURED),
                "ab".repeat(32));
        assertEquals(CallPolicy.Action.ACCEPT, measured.action(), measured.reason());
        assertEquals(CallPolicy.END_TO_END, measured.established());
        assertEquals("ab".repeat(32), measured.evidenceDigest());
    }

    @Test
    void withoutAnEndToEndFloor_theFarEndMustMeetTheLinesLevel_andTheDefaultsToo() {
        CallPolicy p = CallPolicy.parse("default HARDENED reject end-to-end MEASURED\n"
                + "any sip:*@example.test IDENTIFIED reject\n");
        assertEquals(CallPolicy.Action.REJECT, p.decideEndToEnd(CallPolicy.Direction.IN, "sip:x@example.test",
                at(IntegrityLevel.UNATTESTED), "").action(), "the line's own level for the far end");
        assertEquals(CallPolicy.Action.ACCEPT, p.decideEndToEnd(CallPolicy.Direction.IN, "sip:x@example.test",
                at(IntegrityLevel.IDENTIFIED), "").action());
        assertEquals(CallPolicy.Action.ACCEPT, p.decideEndToEnd(CallPolicy.Direction.IN, "sip:x@other.test",
                at(IntegrityLevel.MEASURED), "").action(), "the default's end-to-end floor");
        assertEquals(CallPolicy.Action.REJECT, p.decide(CallPolicy.Direction.IN, "sip:x@other.test",
                at(IntegrityLevel.MEASURED)).action(), "the default's own level for a hop");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CallPolicy.parse("default MEASURED reject end-to-end\n"));
        assertTrue(e.getMessage().startsWith("line 1: expected 'default LEVEL"), e.getMessage());
    }

    @Test
    void withoutEndToEndEvidence_theHopMustMeetTheFarEndsFloorToo() {
        CallPolicy p = CallPolicy.parse("default MEASURED reject\nany sip:*@example.test UNATTESTED reject end-to-end"
                + " MEASURED");
        CallPolicy.Decision viaProxy = p.decideWithoutEndToEnd(CallPolicy.Direction.IN, "sip:eve@example.test",
                at(IntegrityLevel.UNATTESTED));
        assertEquals(CallPolicy.Action.REJECT, viaProxy.action(), viaProxy::reason);
        assertEquals(IntegrityLevel.MEASURED, viaProxy.requiredLevel(), viaProxy::reason);
        assertTrue(viaProxy.reason().contains("required end-to-end MEASURED"), viaProxy::reason);
        // what the hop decision alone says: accepted (the floor for the hop is UNATTESTED)
        assertEquals(CallPolicy.Action.ACCEPT, p.decide(CallPolicy.Direction.IN, "sip:eve@example.test",
                at(IntegrityLevel.UNATTESTED)).action());
        // a direct call over an attested hop that meets both floors is accepted as before
        CallPolicy.Decision direct = p.decideWithoutEndToEnd(CallPolicy.Direction.IN, "sip:bob@example.test",
                at(IntegrityLevel.MEASURED));
        assertEquals(CallPolicy.Action.ACCEPT, direct.action(), direct::reason);
        // a line without an end-to-end floor changes nothing
        CallPolicy plain = CallPolicy.parse("default UNATTESTED reject");
        assertEquals(CallPolicy.Action.ACCEPT, plain.decideWithoutEndToEnd(CallPolicy.Direction.IN, "sip:x@y",
                at(IntegrityLevel.UNATTESTED)).action());
    }
}
